package audit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mandated/mandated/seal"
)

// LegacyPeriod is the period of the person keys made before keys had
// periods (migration 00004): one key per person for all their earlier
// events. No new event uses it.
const LegacyPeriod = ""

// PeriodFormat lays out a period: the UTC calendar month of the events a
// person key covers.
const PeriodFormat = "2006-01"

// Period returns the period of an event at t: its UTC calendar month,
// "2026-11". Periods compare as strings in time order.
func Period(t time.Time) string { return t.UTC().Format(PeriodFormat) }

// PeriodEnd returns the first instant after period p ("2026-11" ends at
// 2026-12-01T00:00:00Z).
func PeriodEnd(p string) (time.Time, error) {
	t, err := time.Parse(PeriodFormat, p)
	if err != nil {
		return time.Time{}, fmt.Errorf("period %q: %w", p, err)
	}
	return t.AddDate(0, 1, 0), nil
}

// PersonKeyPurpose is the seal purpose of a person's key for a period.
// Legacy keys keep the purpose they were sealed with.
func PersonKeyPurpose(person, period string) string {
	if period == LegacyPeriod {
		return "audit-person:" + person
	}
	return "audit-person-period:" + period + ":" + person
}

type personPeriod struct{ person, period string }

// set is a list of distinct strings, in first-added order.
type set struct {
	list []string
	seen map[string]bool
}

func (s *set) add(v string) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if !s.seen[v] {
		s.seen[v] = true
		s.list = append(s.list, v)
	}
}

// openedKey is a person key and the sealer of its readable fields.
type openedKey struct {
	key    []byte
	sealer *seal.Sealer
}

// keyCache keeps opened person keys by their sealed blob, so that it can
// never hand out a key the database no longer holds for a (person,
// period): callers always read the sealed blob first. Entries unused for
// ttl to 2*ttl are dropped (two generations), and erasures on this replica
// drop theirs at once.
type keyCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	rotated time.Time
	cur     map[string]cachedKey
	prev    map[string]cachedKey
}

type cachedKey struct {
	pp personPeriod
	openedKey
}

func (c *keyCache) get(sealed []byte) (openedKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate()
	if k, ok := c.cur[string(sealed)]; ok {
		return k.openedKey, true
	}
	if k, ok := c.prev[string(sealed)]; ok {
		c.cur[string(sealed)] = k
		return k.openedKey, true
	}
	return openedKey{}, false
}

func (c *keyCache) put(sealed []byte, pp personPeriod, k openedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate()
	c.cur[string(sealed)] = cachedKey{pp, k}
}

// rotate starts a new generation every ttl; c.mu is held.
func (c *keyCache) rotate() {
	now := time.Now()
	if c.cur == nil || now.Sub(c.rotated) >= c.ttl {
		c.prev, c.cur, c.rotated = c.cur, map[string]cachedKey{}, now
	}
}

// forget drops the keys of the pairs match selects.
func (c *keyCache) forget(match func(personPeriod) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[string]cachedKey{c.cur, c.prev} {
		for s, k := range m {
			if match(k.pp) {
				delete(m, s)
			}
		}
	}
}

// open unseals a stored person key, through the cache.
func (l *Log) openKey(k PersonKey) (openedKey, error) {
	if o, ok := l.keys.get(k.Sealed); ok {
		return o, nil
	}
	key, err := l.cfg.Sealer.Open(k.Sealed, PersonKeyPurpose(k.Person, k.Period))
	if err != nil {
		return openedKey{}, fmt.Errorf("person key: %w", err)
	}
	s, err := seal.New(key)
	if err != nil {
		return openedKey{}, fmt.Errorf("person key: %w", err)
	}
	o := openedKey{key: key, sealer: s}
	l.keys.put(k.Sealed, personPeriod{k.Person, k.Period}, o)
	return o, nil
}

// writerKeys are the keys the writer used, valid at a key epoch: while
// the epoch read in a batch's transaction is the same, no erasure happened
// since they were read or made, so they are all still stored.
type writerKeys struct {
	mu    sync.Mutex
	epoch int64
	m     map[personPeriod]openedKey
}

// maxWriterKeys bounds the writer's key cache (it starts over when full).
const maxWriterKeys = 100_000

// batchKeys returns the keys batch needs, by person and period of each
// event: from the writer's cache when h.KeyEpoch says it is current, else
// read with h.Keys inside the batch's transaction, the missing ones made
// (returned in created, written with the batch). Call commit once the
// batch committed: only then do the keys enter the cache.
func (l *Log) batchKeys(h AppendHead, batch []*pending) (keys map[personPeriod]openedKey, created []PersonKey, commit func(), err error) {
	wk := &l.writerKeys
	wk.mu.Lock()
	cached := wk.m
	if wk.epoch != h.KeyEpoch {
		cached = nil
	}
	need := map[personPeriod]bool{}
	keys = map[personPeriod]openedKey{}
	var persons, periods set
	for _, p := range batch {
		period := Period(p.e.Time)
		for _, person := range p.e.People() {
			pp := personPeriod{person, period}
			if _, ok := keys[pp]; ok || need[pp] {
				continue
			}
			if k, ok := cached[pp]; ok {
				keys[pp] = k
				continue
			}
			need[pp] = true
			persons.add(person)
			periods.add(period)
		}
	}
	wk.mu.Unlock()
	fresh := map[personPeriod]openedKey{}
	if len(need) > 0 {
		stored, err := h.Keys(persons.list, periods.list)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read person keys: %w", err)
		}
		for _, k := range stored {
			pp := personPeriod{k.Person, k.Period}
			if !need[pp] {
				continue
			}
			o, err := l.openKey(k)
			if err != nil {
				return nil, nil, nil, err
			}
			keys[pp], fresh[pp] = o, o
		}
	}
	now := l.cfg.Clock.Now()
	for pp := range need {
		if _, ok := keys[pp]; ok {
			continue
		}
		key := make([]byte, seal.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, nil, nil, fmt.Errorf("person key: %w", err)
		}
		sealed, err := l.cfg.Sealer.Seal(key, PersonKeyPurpose(pp.person, pp.period))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("person key: %w", err)
		}
		s, err := seal.New(key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("person key: %w", err)
		}
		keys[pp] = openedKey{key: key, sealer: s}
		fresh[pp] = keys[pp]
		created = append(created, PersonKey{Person: pp.person, Period: pp.period, Sealed: sealed, CreatedAt: now})
	}
	commit = func() {
		wk.mu.Lock()
		defer wk.mu.Unlock()
		if wk.epoch != h.KeyEpoch || wk.m == nil || len(wk.m)+len(fresh) > maxWriterKeys {
			wk.epoch, wk.m = h.KeyEpoch, map[personPeriod]openedKey{}
		}
		for pp, k := range fresh {
			wk.m[pp] = k
		}
	}
	return keys, created, commit, nil
}

// forgetWriterKeys empties the writer's cache (after an erasure here; other
// replicas notice the epoch).
func (l *Log) forgetWriterKeys() {
	l.writerKeys.mu.Lock()
	l.writerKeys.m = nil
	l.writerKeys.mu.Unlock()
}

// readKeys adds to known the opened keys of the (person, period) pairs rows
// need, nil for erased ones.
func (l *Log) readKeys(ctx context.Context, rows []SealedReadable, known map[personPeriod]*openedKey) error {
	need := map[personPeriod]bool{}
	var persons, periods set
	for _, r := range rows {
		pp := personPeriod{r.Person, r.Period}
		if _, ok := known[pp]; ok || need[pp] {
			continue
		}
		need[pp] = true
		persons.add(r.Person)
		periods.add(r.Period)
	}
	if len(need) == 0 {
		return nil
	}
	stored, err := l.cfg.Store.AuditPersonKeys(ctx, persons.list, periods.list)
	if err != nil {
		return err
	}
	for _, k := range stored {
		pp := personPeriod{k.Person, k.Period}
		if !need[pp] {
			continue
		}
		o, err := l.openKey(k)
		if err != nil {
			return err
		}
		known[pp] = &o
	}
	for pp := range need {
		if _, ok := known[pp]; !ok {
			known[pp] = nil // erased
		}
	}
	return nil
}

// openReadable decrypts one person's readable fields of one event; ok is
// false when their key is erased.
func openReadable(known map[personPeriod]*openedKey, r SealedReadable) (fields map[string]string, ok bool, err error) {
	k := known[personPeriod{r.Person, r.Period}]
	if k == nil {
		return nil, false, nil
	}
	plain, err := k.sealer.Open(r.Sealed, ReadablePurpose(r.Seq, r.Person))
	if err != nil {
		return nil, false, fmt.Errorf("readable fields of %d: %w", r.Seq, err)
	}
	if err := json.Unmarshal(plain, &fields); err != nil {
		return nil, false, fmt.Errorf("readable fields of %d: %w", r.Seq, err)
	}
	return fields, true, nil
}
