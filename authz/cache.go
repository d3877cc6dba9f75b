package authz

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
)

// tokenCache holds active access tokens by JWS signature so introspection
// answers from memory. Entries go when they expire (sweep), when their grant
// is revoked (evictRequest, fed by the RevocationBus) or when their client is
// deleted (evictClient).
//
// A miss that loads from storage must not resurrect a token revoked while it
// was loading: put takes the generation read before the load and is ignored
// if any eviction happened since.
type tokenCache struct {
	mu    sync.RWMutex
	bySig map[string]tokenEntry
	byReq map[string][]string // request ID -> signatures
	gen   uint64
	max   int
}

type tokenEntry struct {
	req      fosite.Requester // read-only once cached
	expires  time.Time
	hash     [sha256.Size]byte // SHA-256 of the whole token, once verified
	verified bool
}

// snapshot copies what introspection reports of req (ID, time, client,
// scopes, audiences, and of a *fosite.DefaultSession the subject, access
// token expiry and jti) into a small immutable request. The request fosite
// issued carries maps (form, session expiries and extras) and a copy of the
// form; keeping it whole made every cached token cost about 2 KB, which at
// thousands of tokens a second is what bounds the server's memory.
func snapshot(req fosite.Requester) fosite.Requester {
	if req == nil {
		return nil
	}
	if r, ok := req.(*fosite.Request); ok {
		if _, done := r.Session.(accessSnapshot); done {
			return r
		}
	}
	var sess fosite.Session
	switch s := req.GetSession().(type) {
	case *fosite.DefaultSession:
		if s != nil {
			jti, _ := s.Extra[extraJTI].(string)
			snap := accessSnapshot{subject: s.Subject, expires: s.GetExpiresAt(fosite.AccessToken), jti: jti}
			if c, ok := mandateClaimsOf(s); ok {
				snap.mandate = &c // decoded once, not at every introspection
			}
			sess = snap
		}
	case nil:
	default:
		sess = s // not ours: keep as is
	}
	return &fosite.Request{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt(),
		Client:            req.GetClient(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Session:           sess,
	}
}

// accessSnapshot is the session of a cached access token: what introspection
// reports of a *fosite.DefaultSession. It is immutable (a value; SetExpiresAt
// changes nothing), as cached entries are shared between requests.
type accessSnapshot struct {
	subject string
	expires time.Time // access token expiry
	jti     string
	mandate *mandateClaims // a mandate token's claims (read-only); nil for others
}

var _ fosite.Session = accessSnapshot{}

func (accessSnapshot) SetExpiresAt(fosite.TokenType, time.Time) {}

func (s accessSnapshot) GetExpiresAt(t fosite.TokenType) time.Time {
	if t == fosite.AccessToken {
		return s.expires
	}
	return time.Time{}
}

func (accessSnapshot) GetUsername() string     { return "" }
func (s accessSnapshot) GetSubject() string    { return s.subject }
func (s accessSnapshot) Clone() fosite.Session { return s }

func newTokenCache(max int) *tokenCache {
	return &tokenCache{bySig: map[string]tokenEntry{}, byReq: map[string][]string{}, max: max}
}

func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *tokenCache) get(sig string) (tokenEntry, bool) {
	c.mu.RLock()
	e, ok := c.bySig[sig]
	c.mu.RUnlock()
	return e, ok
}

// put stores an entry unless an eviction happened after gen was read or the
// cache is full (then lookups fall back to storage). The entry keeps only
// what introspection reports (see snapshot).
func (c *tokenCache) put(sig string, e tokenEntry, gen uint64) {
	// Outside the lock: copying is the costly part.
	e.req = snapshot(e.req)
	// sig is usually a substring of the whole token: cloning it lets the
	// token's bytes go.
	sig = strings.Clone(sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || len(c.bySig) >= c.max {
		return
	}
	if _, exists := c.bySig[sig]; !exists {
		id := e.req.GetID()
		c.byReq[id] = append(c.byReq[id], sig)
	}
	c.bySig[sig] = e
}

// markVerified records the hash of a token whose signature was checked.
func (c *tokenCache) markVerified(sig string, hash [sha256.Size]byte) {
	c.mu.Lock()
	if e, ok := c.bySig[sig]; ok && !e.verified {
		e.hash, e.verified = hash, true
		c.bySig[sig] = e
	}
	c.mu.Unlock()
}

func (c *tokenCache) evictSig(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.bySig[sig]; ok {
		c.deleteLocked(sig, e)
	}
}

func (c *tokenCache) evictRequest(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, sig := range c.byReq[id] {
		delete(c.bySig, sig)
	}
	delete(c.byReq, id)
}

func (c *tokenCache) evictClient(clientID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for sig, e := range c.bySig {
		if e.req.GetClient().GetID() == clientID {
			c.deleteLocked(sig, e)
		}
	}
}

func (c *tokenCache) deleteLocked(sig string, e tokenEntry) {
	delete(c.bySig, sig)
	id := e.req.GetID()
	sigs := c.byReq[id][:0]
	for _, s := range c.byReq[id] {
		if s != sig {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) == 0 {
		delete(c.byReq, id)
	} else {
		c.byReq[id] = sigs
	}
}

// sweep drops expired entries.
func (c *tokenCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sig, e := range c.bySig {
		if !now.Before(e.expires) {
			c.deleteLocked(sig, e)
		}
	}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.bySig)
}

// clientCache holds clients for client authentication. Clients never change
// after registration, only go away: DeleteClient evicts (on every replica,
// through the bus); the TTL bounds staleness should a message be lost.
type clientCache struct {
	mu  sync.RWMutex
	m   map[string]cachedClient
	gen uint64 // bumped by evict; a load that raced an eviction is not cached
	ttl time.Duration
}

type cachedClient struct {
	c      *Client
	loaded time.Time
}

func newClientCache(ttl time.Duration) *clientCache {
	return &clientCache{m: map[string]cachedClient{}, ttl: ttl}
}

func (c *clientCache) get(id string, now time.Time) (*Client, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.Sub(e.loaded) >= c.ttl {
		return nil, false
	}
	return e.c, true
}

func (c *clientCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *clientCache) put(cl *Client, now time.Time, gen uint64) {
	c.mu.Lock()
	if gen == c.gen {
		c.m[cl.ID] = cachedClient{c: cl, loaded: now}
	}
	c.mu.Unlock()
}

func (c *clientCache) evict(id string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, id)
	c.mu.Unlock()
}

func (c *clientCache) flush() {
	c.mu.Lock()
	c.gen++
	c.m = map[string]cachedClient{}
	c.mu.Unlock()
}

// flush forgets every entry (the bus may have missed messages).
func (c *tokenCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.bySig = map[string]tokenEntry{}
	c.byReq = map[string][]string{}
}
