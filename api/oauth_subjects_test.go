package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// newHarnessWith is newHarness over st with more authz options.
func newHarnessWith(t testing.TB, st *store.Store, clock *testClock, opts ...authz.Option) *harness {
	t.Helper()
	ctx := context.Background()
	sealer, err := seal.New(randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := authz.New(authz.Config{Issuer: issuer, HMACSecret: randomBytes(t, 32)}, st, keys,
		append([]authz.Option{authz.WithClock(clock)}, opts...)...)
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
	ts.Config.Handler = e
	ts.Start()
	t.Cleanup(ts.Close)
	return &harness{t: t, ctx: ctx, st: st, srv: srv, keys: keys, clock: clock, echo: e, ts: ts, issuer: issuer}
}

// peopleCheck is the subject check the binary wires (cmd/mandated/app.go).
func peopleCheck(svc *people.Service) authz.Option {
	return authz.WithSubjectCheck(func(ctx context.Context, subject string) error {
		err := svc.CheckSubject(ctx, subject)
		if errors.Is(err, people.ErrSubjectInactive) {
			return fmt.Errorf("%w: %w", authz.ErrSubjectRefused, err)
		}
		return err
	})
}

// TestNoGrantIssuesTokensForADeactivatedPerson: once a staff member is
// deactivated, an RFC 7523 trust allowed any subject can no longer mint
// tokens for them, their earlier refresh token no longer refreshes, and a
// code issued before no longer exchanges — all invalid_grant, audited — while
// an active colleague, an existing holder and a service subject still get
// tokens. The access-ender is deliberately not wired here, so the grants
// still exist in storage and only the subject check refuses them.
func TestNoGrantIssuesTokensForADeactivatedPerson(t *testing.T) {
	for _, dialect := range []struct {
		name string
		open func(testing.TB) *store.Store
	}{{"SQLite", storetest.OpenSQLite}, {"PostgreSQL", storetest.OpenPostgres}} {
		t.Run(dialect.name, func(t *testing.T) {
			st := dialect.open(t)
			ctx := t.Context()
			clock := &testClock{}
			log := storetest.StartAuditLog(t, st, clock)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(st.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "Mairie de Tulle"}))
			now := clock.Now()
			for _, s := range []people.Staff{
				{ID: "alice", Email: "alice@tulle.fr", Role: people.RoleMediator}, // the test pages' principal
				{ID: "bob", Email: "bob@tulle.fr", Role: people.RoleMediator},
				{ID: "chef", Email: "chef@tulle.fr", Role: people.RoleAdmin},
			} {
				s.DisplayName, s.StructureID, s.Status, s.CreatedAt = s.ID, "tulle", people.StaffActive, now
				must(st.CreateStaff(ctx, s))
			}
			must(st.CreateHolder(ctx, people.Holder{ID: "h1", Mailbox: "jeanne@example.fr", DisplayName: "Jeanne",
				Email: "jeanne@example.fr", Language: "fr", CreatedAt: now}, "tulle"))
			svc := people.NewService(st, nil, clock, nil, people.Config{Holders: st, Recorder: log})
			adm := people.NewAdmin(svc, st, people.AdminConfig{})
			h := newHarnessWith(t, st, clock, peopleCheck(svc), authz.WithRecorder(log))

			// A trust that allows any subject, and the portal that uses it.
			idpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pub, _ := json.Marshal(jose.JSONWebKey{Key: &idpKey.PublicKey, KeyID: "idp-1", Algorithm: "ES256"})
			const idp = "https://idp.example.fr"
			if _, err := h.srv.RegisterTrust(ctx, authz.TrustSpec{Issuer: idp, AnySubject: true, JWK: pub, Scopes: []string{"mail.read"}}); err != nil {
				t.Fatal(err)
			}
			portal, portalSecret := h.register(authz.ClientSpec{Name: "Portail", GrantTypes: []string{authz.GrantJWTBearer}, Scopes: []string{"mail.read"}})
			n := 0
			bearer := func(sub string) reply {
				n++
				a := bearerAssertion(t, idpKey, idp, sub, h.issuer+authz.PathToken, fmt.Sprintf("jti-%d", n))
				return h.post(authz.PathToken, url.Values{"grant_type": {authz.GrantJWTBearer}, "assertion": {a}, "scope": {"mail.read"}}, portal.ID, portalSecret)
			}

			// Before: alice signs in to the mail app (tokens, and a second
			// code not yet exchanged); the portal gets tokens for everyone.
			app, appSecret, conf := h.webApp()
			verifier := oauth2.GenerateVerifier()
			tok, err := conf.Exchange(h.clientCtx(), h.authorize(h.browser(), conf, verifier), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			laterVerifier := oauth2.GenerateVerifier()
			laterCode := h.authorize(h.browser(), conf, laterVerifier)
			for _, sub := range []string{"staff:alice", "staff:bob", "holder:h1", "agent-42"} {
				if r := bearer(sub); r.status != http.StatusOK || r.str("access_token") == "" {
					t.Fatalf("jwt-bearer for %s before: %d %s", sub, r.status, r.raw)
				}
			}
			for _, sub := range []string{"staff:ghost", "holder:nobody", "staff:"} {
				if r := bearer(sub); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
					t.Errorf("jwt-bearer for unknown %q: %d %s", sub, r.status, r.raw)
				}
			}

			chef := people.Principal{Subject: "staff:chef", Kind: "staff", ID: "chef", Role: people.RoleAdmin, StructureID: "tulle"}
			must(adm.Deactivate(ctx, chef, "tulle", "alice"))

			refresh := func() reply {
				return h.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.ID, appSecret)
			}
			for name, r := range map[string]reply{
				"jwt-bearer": bearer("staff:alice"),
				"refresh":    refresh(),
				"code":       h.post(authz.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {laterCode}, "redirect_uri": {conf.RedirectURL}, "code_verifier": {laterVerifier}}, app.ID, appSecret),
			} {
				if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" || r.str("access_token") != "" {
					t.Errorf("%s for deactivated alice: %d %s", name, r.status, r.raw)
				}
			}
			// Nothing was spent: the refresh token is still there (only the
			// access-ender, not wired here, revokes it), and still refused.
			if got := h.introspect(tok.RefreshToken, app.ID, appSecret); got.body["active"] != true {
				t.Errorf("the refused refresh changed the grant: %s", got.raw)
			}
			if r := refresh(); r.str("error") != "invalid_grant" {
				t.Errorf("second refresh: %d %s", r.status, r.raw)
			}
			// Everyone else still gets tokens.
			for _, sub := range []string{"staff:bob", "holder:h1", "agent-42"} {
				if r := bearer(sub); r.status != http.StatusOK {
					t.Errorf("jwt-bearer for %s after: %d %s", sub, r.status, r.raw)
				}
			}

			// Each refusal about alice is in the audit log, with her as actor.
			page, err := log.Query(ctx, audit.Filter{Limit: 1000})
			must(err)
			var refusals []string
			for _, e := range slices.Backward(page.Events) {
				if e.Action == audit.ActionRequestRefused && e.Actor.Kind == audit.ActorStaff && e.Actor.ID == "alice" {
					if e.Outcome != audit.OutcomeDenied || !strings.HasPrefix(e.Reason, "invalid_grant") {
						t.Errorf("refusal recorded as %+v", e)
					}
					refusals = append(refusals, e.Reason[strings.Index(e.Reason, "grant_type="):])
				}
			}
			slices.Sort(refusals)
			want := []string{"grant_type=authorization_code)", "grant_type=refresh_token)", "grant_type=refresh_token)", "grant_type=" + authz.GrantJWTBearer + ")"}
			if !slices.Equal(refusals, want) {
				t.Errorf("recorded refusals %q, want %q", refusals, want)
			}
		})
	}
}

// TestSubjectCheckFailureIsAServerError: a check that cannot answer (the
// database is down) issues nothing and says server_error, not invalid_grant.
func TestSubjectCheckFailureIsAServerError(t *testing.T) {
	h := newHarnessWith(t, storetest.OpenSQLite(t), &testClock{}, authz.WithSubjectCheck(func(context.Context, string) error {
		return errors.New("database unavailable")
	}))
	app, secret, conf := h.webApp()
	verifier := oauth2.GenerateVerifier()
	code := h.authorize(h.browser(), conf, verifier)
	r := h.post(authz.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {conf.RedirectURL}, "code_verifier": {verifier}}, app.ID, secret)
	if r.status != http.StatusInternalServerError || r.str("error") != "server_error" || r.str("access_token") != "" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	// client_credentials names no person: the check is not consulted.
	svc, svcSecret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	if r := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}, svc.ID, svcSecret); r.status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", r.status, r.raw)
	}
}
