package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// benchServer is the OAuth2 endpoints on echo over st, with a client allowed
// client_credentials and mail.read.
type benchServer struct {
	echo       *echo.Echo
	id, secret string
}

func newBenchServer(b *testing.B, st *store.Store) benchServer {
	b.Helper()
	ctx := context.Background()
	sealer, err := seal.New(randomBytes(b, 32))
	if err != nil {
		b.Fatal(err)
	}
	clock := mandate.SystemClock{}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := authz.New(authz.Config{Issuer: "http://127.0.0.1:1", HMACSecret: randomBytes(b, 32)}, st, keys, authz.WithClock(clock))
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	api.RegisterOAuth(e, srv, testPages{})
	c, secret, err := srv.RegisterClient(ctx, authz.ClientSpec{
		Name: "bench", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"},
		AuthMethod: authz.AuthMethodSecretBasic,
	})
	if err != nil {
		b.Fatal(err)
	}
	return benchServer{echo: e, id: c.ID, secret: secret}
}

func (s benchServer) issue(b *testing.B) string {
	rec := httptest.NewRecorder()
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}.Encode()
	s.echo.ServeHTTP(rec, benchRequest(authz.PathToken, body, s.id, s.secret))
	if rec.Code != http.StatusOK {
		b.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// BenchmarkPostgresClientCredentialsIssue issues tokens in parallel on
// PostgreSQL (one INSERT, committed synchronously, per token). Parallelism
// lets PostgreSQL group commits, as it does under a real load.
func BenchmarkPostgresClientCredentialsIssue(b *testing.B) {
	s := newBenchServer(b, storetest.OpenPostgres(b))
	b.SetParallelism(8) // 8 × GOMAXPROCS requests in flight
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.issue(b)
		}
	})
}

// BenchmarkPostgresIntrospect introspects one token on PostgreSQL: after the
// first call everything comes from memory, so this matches BenchmarkIntrospect.
func BenchmarkPostgresIntrospect(b *testing.B) {
	s := newBenchServer(b, storetest.OpenPostgres(b))
	tok := s.issue(b)
	tok = tok[strings.Index(tok, `"access_token":"`)+16:]
	tok = tok[:strings.IndexByte(tok, '"')]
	body := url.Values{"token": {tok}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			s.echo.ServeHTTP(rec, benchRequest(authz.PathIntrospect, body, s.id, s.secret))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":true`) {
				b.Errorf("%d %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}

// BenchmarkIssuedTokenMemory reports the heap each issued, still valid
// access token keeps alive (the introspection cache holds it until expiry):
// the figure that bounds RSS under sustained issuance.
func BenchmarkIssuedTokenMemory(b *testing.B) {
	s := newBenchServer(b, storetest.OpenSQLite(b))
	const n = 2000
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		for j := 0; j < n; j++ {
			s.issue(b)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/token")
}
