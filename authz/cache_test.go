package authz

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"
)

func cachedRequest(id, client string) fosite.Requester {
	r := fosite.NewRequest()
	r.ID = id
	r.Client = &Client{ID: client}
	return r
}

func TestTokenCacheEvictions(t *testing.T) {
	now := time.Now()
	entry := func(id, client string) tokenEntry {
		return tokenEntry{req: cachedRequest(id, client), expires: now.Add(time.Minute)}
	}
	tests := []struct {
		name  string
		evict func(c *tokenCache)
		left  []string
	}{
		{"by request", func(c *tokenCache) { c.evictRequest("r1") }, []string{"s3"}},
		{"by client", func(c *tokenCache) { c.evictClient("b") }, []string{"s1", "s2"}},
		{"by signature", func(c *tokenCache) { c.evictSig("s2") }, []string{"s1", "s3"}},
		{"expired", func(c *tokenCache) { c.sweep(now.Add(time.Hour)) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTokenCache(10)
			c.put("s1", entry("r1", "a"), c.generation())
			c.put("s2", entry("r1", "a"), c.generation())
			c.put("s3", entry("r2", "b"), c.generation())
			tt.evict(c)
			if c.len() != len(tt.left) {
				t.Fatalf("%d entries left, want %v", c.len(), tt.left)
			}
			for _, sig := range tt.left {
				if _, ok := c.get(sig); !ok {
					t.Errorf("%s evicted", sig)
				}
			}
		})
	}
}

func TestTokenCacheDoesNotResurrectARevokedToken(t *testing.T) {
	c := newTokenCache(10)
	gen := c.generation() // a miss starts loading from storage...
	c.evictRequest("r1")  // ...the grant is revoked meanwhile...
	c.put("s1", tokenEntry{req: cachedRequest("r1", "a"), expires: time.Now().Add(time.Minute)}, gen)
	if _, ok := c.get("s1"); ok {
		t.Fatal("a load that raced a revocation was cached")
	}
}

func TestLocalBusDeliversToEverySubscriber(t *testing.T) {
	b := NewLocalBus()
	var got1, got2 []string
	b.Subscribe(func(id string) { got1 = append(got1, id) })
	b.Subscribe(func(id string) { got2 = append(got2, id) })
	if err := b.Publish(context.Background(), "r1", "client:x"); err != nil {
		t.Fatal(err)
	}
	if len(got1) != 2 || len(got2) != 2 || got1[1] != "client:x" {
		t.Fatalf("got %v and %v", got1, got2)
	}
}

// TestSnapshotKeepsAMandateTokensClaims: a cached mandate token keeps its
// decoded mandate claims (introspection need not decode the JWT again); a
// plain token's snapshot has none.
func TestSnapshotKeepsAMandateTokensClaims(t *testing.T) {
	until := time.Unix(1_900_000_000, 0)
	r := cachedRequest("grant-1", "console")
	r.(*fosite.Request).Session = &fosite.DefaultSession{Subject: "holder:jeanne", Extra: map[string]any{
		ExtraMandateID: "m-1", ExtraActorSub: "staff:alice", ExtraMailbox: "jeanne@mail.example",
		ExtraActions: []string{"mail.read", "mail.send"}, ExtraExclusion: []string{"personal"}, ExtraNotAfter: until.Unix(),
	}}
	c, ok := mandateClaimsOf(snapshot(r).GetSession())
	if !ok || c.MandateID != "m-1" || c.ActorSub != "staff:alice" || c.Mailbox != "jeanne@mail.example" ||
		len(c.Actions) != 2 || len(c.Exclusions) != 1 || !c.NotAfter.Equal(until) {
		t.Errorf("claims of the snapshot: %+v, %v", c, ok)
	}
	plain := cachedRequest("grant-2", "console")
	plain.(*fosite.Request).Session = &fosite.DefaultSession{Subject: "staff:alice"}
	if c, ok := mandateClaimsOf(snapshot(plain).GetSession()); ok {
		t.Errorf("a plain token's snapshot has mandate claims: %+v", c)
	}
}
