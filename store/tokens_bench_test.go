package store_test

import (
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// benchCreateAccessToken measures the store's hottest write: the one INSERT
// behind every issued access token (a client-credentials request as fosite
// hands it over). Parallel, so PostgreSQL can group commits; SQLite queues
// on its single writer connection.
func benchCreateAccessToken(b *testing.B, s *store.Store) {
	ctx := b.Context()
	now := time.Now().UTC()
	c := &authz.Client{
		ID: "bench", Name: "bench", SecretHash: make([]byte, 32),
		GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"},
		AuthMethod: authz.AuthMethodSecretBasic, CreatedAt: now,
	}
	if err := s.CreateClient(ctx, c); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			sess := &fosite.DefaultSession{Subject: c.ID, Extra: map[string]any{"jti": fmt.Sprint("jti-", i)}}
			sess.SetExpiresAt(fosite.AccessToken, now.Add(5*time.Minute))
			r := fosite.NewRequest()
			r.ID = fmt.Sprint("req-", i)
			r.RequestedAt = now
			r.Client = c
			r.RequestedScope = fosite.Arguments{"mail.read"}
			r.GrantedScope = fosite.Arguments{"mail.read"}
			r.Form = url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}
			r.Session = sess
			if err := s.CreateAccessTokenSession(ctx, fmt.Sprint("sig-", i), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSQLiteCreateAccessToken(b *testing.B) {
	benchCreateAccessToken(b, storetest.OpenSQLite(b))
}

func BenchmarkPostgresCreateAccessToken(b *testing.B) {
	benchCreateAccessToken(b, storetest.OpenPostgres(b))
}
