package audit

import (
	"context"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// maxCachedHashes bounds the hash cache (it starts over when full: the
// hashes the next appends need are read again once).
const maxCachedHashes = 1 << 16

// hashCache keeps committed tree hashes by stored index. A stored hash never
// changes once committed (the database refuses UPDATE), so the cache needs
// no invalidation; only committed hashes enter it. It saves the writer the
// reads of the right edge of the tree that every batch needs, and proofs a
// few reads.
type hashCache struct {
	mu sync.Mutex
	m  map[int64]tlog.Hash
}

func (c *hashCache) add(start int64, hs []tlog.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(hs) > maxCachedHashes {
		c.m = make(map[int64]tlog.Hash, min(maxCachedHashes, 4*len(hs)+64))
	}
	for i, h := range hs {
		c.m[start+int64(i)] = h
	}
}

// cachedHashReader reads committed hashes through the cache.
type cachedHashReader struct {
	base  tlog.HashReader
	cache *hashCache
}

func (r cachedHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	var at []int
	r.cache.mu.Lock()
	for i, x := range indexes {
		if h, ok := r.cache.m[x]; ok {
			out[i] = h
		} else {
			missing = append(missing, x)
			at = append(at, i)
		}
	}
	r.cache.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	hs, err := r.base.ReadHashes(missing)
	if err != nil {
		return nil, err
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	if r.cache.m == nil || len(r.cache.m)+len(hs) > maxCachedHashes {
		r.cache.m = make(map[int64]tlog.Hash, 64)
	}
	for j, i := range at {
		out[i] = hs[j]
		r.cache.m[missing[j]] = hs[j]
	}
	return out, nil
}

// hashReader reads the store's committed hashes through the cache.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return cachedHashReader{base: l.cfg.Store.AuditHashReader(ctx), cache: &l.hashes}
}
