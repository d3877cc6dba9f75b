package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// newReplica is a harness over a shared store with the store's revocation
// bus (LISTEN/NOTIFY on PostgreSQL): several of them are replicas of one
// deployment (same sealer, HMAC secret and issuer).
func newReplica(t *testing.T, st *store.Store, sealer *seal.Sealer, hmac []byte, issuer string, clock *testClock) *harness {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	bus, err := st.RevocationBus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = bus.Run(runCtx) }()
	t.Cleanup(func() { stop(); _ = bus.Close(); <-done })
	if r, ok := bus.(interface{ Ready() <-chan struct{} }); ok {
		select { // a guard against a hung database, not a timed assertion
		case <-r.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("the revocation bus never listened")
		}
	}
	srv, err := authz.New(authz.Config{Issuer: issuer, HMACSecret: hmac}, st, keys,
		authz.WithClock(clock), authz.WithRevocationBus(bus), authz.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{Skipper: api.OAuthCSRFSkipper, TokenLookup: "form:_csrf"}))
	api.RegisterOAuth(e, srv, testPages{})
	e.GET("/test/signin", func(c echo.Context) error {
		c.SetCookie(&http.Cookie{Name: "signed_in", Value: "1", Path: "/"})
		return c.Redirect(http.StatusSeeOther, c.QueryParam("next"))
	})
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return &harness{t: t, ctx: ctx, st: st, srv: srv, keys: keys, clock: clock, echo: e, ts: ts, issuer: issuer}
}

// TestDeactivatedStaffTokensIntrospectInactiveAtOnceOnEveryReplica is the
// issue's "done when": a deactivated mediator's tokens introspect inactive
// immediately — on the replica that deactivated them (the bus delivers
// locally before it returns) and, through LISTEN/NOTIFY, on every other
// replica that had the token cached. Refresh tokens stop working too.
func TestDeactivatedStaffTokensIntrospectInactiveAtOnceOnEveryReplica(t *testing.T) {
	for _, dialect := range []struct {
		name     string
		open     func(testing.TB) *store.Store
		replicas int
	}{
		{"SQLite", storetest.OpenSQLite, 1},
		{"PostgreSQL", storetest.OpenPostgres, 2},
	} {
		t.Run(dialect.name, func(t *testing.T) {
			st := dialect.open(t)
			sealer, err := seal.New(randomBytes(t, seal.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			hmac, clock := randomBytes(t, 32), &testClock{}
			var replicas []*harness
			for range dialect.replicas {
				replicas = append(replicas, newReplica(t, st, sealer, hmac, "https://id.example.fr", clock))
			}
			a := replicas[0]
			ctx := t.Context()

			// alice (the test pages' principal) is a mediator of a structure.
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(st.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "Mairie de Tulle"}))
			now := clock.Now()
			must(st.CreateStaff(ctx, people.Staff{ID: "alice", Email: "alice@tulle.fr", DisplayName: "Alice", Role: people.RoleMediator,
				StructureID: "tulle", Status: people.StaffActive, CreatedAt: now}))
			must(st.CreateStaff(ctx, people.Staff{ID: "chef", Email: "chef@tulle.fr", DisplayName: "Chef", Role: people.RoleAdmin,
				StructureID: "tulle", Status: people.StaffActive, CreatedAt: now}))
			svc := people.NewService(st, sealer, clock, nil, people.Config{})
			adm := people.NewAdmin(svc, st, people.AdminConfig{AccessEnders: []people.AccessEnder{a.srv}})

			client, secret, conf := a.webApp()
			verifier := oauth2.GenerateVerifier()
			code := a.authorize(a.browser(), conf, verifier)
			tok, err := conf.Exchange(a.clientCtx(), code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			for i, r := range replicas {
				for _, tk := range []string{tok.AccessToken, tok.RefreshToken} {
					if got := r.introspect(tk, client.ID, secret); got.body["active"] != true || got.str("sub") != "staff:alice" {
						t.Fatalf("replica %d before deactivation: %s", i, got.raw)
					}
				}
			}
			if consents, _ := a.srv.ListConsents(ctx, "staff:alice"); len(consents) != 1 {
				t.Fatalf("alice has %d consents", len(consents))
			}

			chef := people.Principal{Subject: "staff:chef", Kind: "staff", ID: "chef", Role: people.RoleAdmin, StructureID: "tulle"}
			if err := adm.Deactivate(ctx, chef, "tulle", "alice"); err != nil {
				t.Fatal(err)
			}

			// This replica: at once, from its cache as well as from storage.
			for _, tk := range []string{tok.AccessToken, tok.RefreshToken} {
				if got := a.introspect(tk, client.ID, secret); got.body["active"] != false || len(got.body) != 1 {
					t.Fatalf("the deactivating replica still answers %s", got.raw)
				}
			}
			// The other replicas: as soon as the notification arrives (they
			// had the token cached). The wait is a guard, not an assertion.
			for i, r := range replicas[1:] {
				deadline := time.Now().Add(30 * time.Second)
				for {
					got := r.introspect(tok.AccessToken, client.ID, secret)
					if got.body["active"] == false {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("replica %d never learnt of the deactivation: %s", i+1, got.raw)
					}
					time.Sleep(10 * time.Millisecond)
				}
				if got := r.introspect(tok.RefreshToken, client.ID, secret); got.body["active"] != false {
					t.Fatalf("replica %d: refresh token still active: %s", i+1, got.raw)
				}
			}
			// The refresh token no longer gets tokens; the consent is gone.
			refreshed := a.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, client.ID, secret)
			if refreshed.status != http.StatusBadRequest || refreshed.str("error") != "invalid_grant" {
				t.Errorf("refresh after deactivation: %d %s", refreshed.status, refreshed.raw)
			}
			if consents, _ := a.srv.ListConsents(ctx, "staff:alice"); len(consents) != 0 {
				t.Errorf("alice's consents survived: %v", consents)
			}
		})
	}
}
