package authz_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// reportEnv is an authorization server on SQLite whose token and revocation
// endpoints are called in process.
type reportEnv struct {
	t    *testing.T
	srv  *authz.Server
	clk  *clock
	st   *store.Store
	keys *authz.KeyManager
}

func newReportEnv(t *testing.T) *reportEnv {
	t.Helper()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	st := storetest.OpenSQLite(t)
	keys := newKeys(t, st, clk)
	srv, err := authz.New(authz.Config{Issuer: "https://as.example", HMACSecret: make([]byte, 32)}, st, keys, authz.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	return &reportEnv{t: t, srv: srv, clk: clk, st: st, keys: keys}
}

func (e *reportEnv) client(spec authz.ClientSpec) (*authz.Client, string) {
	e.t.Helper()
	c, secret, err := e.srv.RegisterClient(e.t.Context(), spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, secret
}

func (e *reportEnv) call(h http.HandlerFunc, form url.Values, id, secret string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequestWithContext(e.t.Context(), http.MethodPost, "https://as.example/x", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec
}

// token runs the client_credentials grant.
func (e *reportEnv) token(id, secret, scope string, aud ...string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	for _, a := range aud {
		form.Add("audience", a)
	}
	rec := e.call(e.srv.Token, form, id, secret)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.AccessToken == "" {
		e.t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	return body.AccessToken
}

func TestTokenForReporting(t *testing.T) {
	e := newReportEnv(t)
	ctx := t.Context()
	rs, rsSecret := e.client(authz.ClientSpec{Name: "IMAP gateway", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"audit.write"}})
	plain, plainSecret := e.client(authz.ClientSpec{Name: "No audit", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"}})
	app, appSecret := e.client(authz.ClientSpec{Name: "App", GrantTypes: []string{authz.GrantClientCredentials},
		Scopes: []string{"mail.read"}, Audience: []string{rs.ID}})

	reporter := e.token(rs.ID, rsSecret, "audit.write")
	if rc, err := e.srv.ReportingClient(ctx, reporter); err != nil || rc.ID != rs.ID {
		t.Fatalf("ReportingClient = %+v, %v", rc, err)
	}
	for name, bearer := range map[string]string{
		"empty": "", "garbage": "abc", "forged JWT": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
	} {
		if _, err := e.srv.ReportingClient(ctx, bearer); !errors.Is(err, authz.ErrReporterToken) {
			t.Errorf("%s bearer: err = %v, want ErrReporterToken", name, err)
		}
	}
	if _, err := e.srv.ReportingClient(ctx, e.token(plain.ID, plainSecret, "mail.read")); !errors.Is(err, authz.ErrReporterScope) {
		t.Errorf("token without audit.write: err = %v, want ErrReporterScope", err)
	}

	forRS := e.token(app.ID, appSecret, "mail.read", rs.ID)
	rc, tok, err := e.srv.TokenForReporting(ctx, reporter, forRS)
	if err != nil {
		t.Fatalf("TokenForReporting: %v", err)
	}
	want := authz.ReportedToken{ClientID: app.ID, Subject: app.ID, Actor: audit.Actor{Kind: audit.ActorClient, ID: app.ID}, Scopes: []string{"mail.read"}}
	if rc.ID != rs.ID || tok.ClientID != want.ClientID || tok.Subject != want.Subject || tok.Actor != want.Actor ||
		tok.Holder != "" || tok.MandateID != "" || strings.Join(tok.Scopes, " ") != "mail.read" {
		t.Fatalf("TokenForReporting = %+v, %+v; want %+v", rc, tok, want)
	}

	notForRS := e.token(app.ID, appSecret, "mail.read") // aud: the issuer only
	tests := []struct {
		name, presented string
	}{
		{"empty", ""},
		{"garbage", "not-a-token"},
		{"a token neither issued to nor meant for the reporter", notForRS},
		{"another client's token", e.token(plain.ID, plainSecret, "mail.read")},
	}
	for _, tt := range tests {
		if _, _, err := e.srv.TokenForReporting(ctx, reporter, tt.presented); !errors.Is(err, authz.ErrPresentedToken) {
			t.Errorf("%s: err = %v, want ErrPresentedToken", tt.name, err)
		}
	}

	// Revoked by its client: refused from then on (the cache is evicted).
	if rec := e.call(e.srv.Revoke, url.Values{"token": {forRS}}, app.ID, appSecret); rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if _, _, err := e.srv.TokenForReporting(ctx, reporter, forRS); !errors.Is(err, authz.ErrPresentedToken) {
		t.Errorf("revoked token: err = %v, want ErrPresentedToken", err)
	}

	// Expired: the presented token, while the reporter's own (issued by a
	// replica configured with longer-lived tokens, on the same store and
	// keys) is still valid; then the reporter's own.
	long, err := authz.New(authz.Config{Issuer: "https://as.example", HMACSecret: make([]byte, 32), AccessTokenLifetime: time.Hour},
		e.st, e.keys, authz.WithClock(e.clk))
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.token(app.ID, appSecret, "mail.read", rs.ID)
	longReporter := (&reportEnv{t: t, srv: long, clk: e.clk}).token(rs.ID, rsSecret, "audit.write")
	e.clk.Advance(authz.DefaultAccessTokenLifetime + time.Minute)
	if _, _, err := e.srv.TokenForReporting(ctx, longReporter, fresh); !errors.Is(err, authz.ErrPresentedToken) {
		t.Errorf("expired presented token: err = %v, want ErrPresentedToken", err)
	}
	if _, _, err := e.srv.TokenForReporting(ctx, reporter, fresh); !errors.Is(err, authz.ErrReporterToken) {
		t.Errorf("expired reporter token: err = %v, want ErrReporterToken", err)
	}
}
