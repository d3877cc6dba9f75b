// Package storetest is the conformance suite every store backend passes
// (RunTests), and helpers that give other packages' tests a real, migrated
// store on SQLite or PostgreSQL.
package storetest

import (
	"errors"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/store"
	"github.com/ory/fosite"
)

// Opener returns a fresh, migrated, empty store built with opts, closed when
// the test ends.
type Opener func(t testing.TB, opts store.Options) *store.Store

// RunTests runs the conformance suite against stores from open.
func RunTests(t *testing.T, open Opener) {
	groups := []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"Migrate", testMigrate},
		{"Clients", testClients},
		{"AuthorizeCodes", testAuthorizeCodes},
		{"PKCE", testPKCE},
		{"AccessTokens", testAccessTokens},
		{"RefreshTokens", testRefreshTokens},
		{"Transactions", testTransactions},
		{"Concurrency", testConcurrency},
		{"JTIs", testJTIs},
		{"SigningKeys", testSigningKeys},
		{"Consents", testConsents},
		{"Trusts", testTrusts},
		{"Grants", testGrants},
		{"Structures", testStructures},
		{"Staff", testStaff},
		{"Enrolments", testEnrolments},
		{"SignInFailures", testSignInFailures},
		{"PruneSignInFailures", testPruneSignInFailures},
		{"Sessions", testSessions},
		{"Audit", testAudit},
		{"AuditRetention", testAuditRetention}, // audit_retention.go
		{"Holders", testHolders},               // holders.go
		{"OneTimeCodes", testOneTimeCodes},     // codes.go
		{"Passkeys", testPasskeys},             // passkeys.go
		{"StaffAdmin", testStaffAdmin},         // staffadmin.go
		{"Account", testAccount},               // account.go
		{"Mandates", testMandates},             // mandates.go
		{"DeviceAuthorizations", testDeviceAuthorizations},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, open) })
	}
}

// Clock is a settable mandate.Clock for tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// t0 is when every suite test starts: microsecond precision, as stored.
var t0 = time.Date(2030, 3, 4, 10, 20, 30, 123456000, time.UTC)

// env is one test's store and clock.
type env struct {
	s     *store.Store
	clock *Clock
}

func newEnv(t *testing.T, open Opener) env {
	t.Helper()
	c := NewClock(t0)
	return env{s: open(t, store.Options{Clock: c}), clock: c}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// createClient stores a confidential client with the given ID.
func (e env) createClient(t *testing.T, id string) *authz.Client {
	t.Helper()
	c := &authz.Client{
		ID: id, Name: "Client " + id, SecretHash: []byte("hash-" + id),
		RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		Scopes:       []string{"mail.read", "mail.send"},
		AuthMethod:   authz.AuthMethodSecretBasic,
		CreatedAt:    e.clock.Now(),
	}
	must(t, e.s.CreateClient(t.Context(), c))
	return c
}

// newRequest builds a fosite request of client for subject, whose tokens
// expire at exp. Its form holds secrets the store must not keep.
func newRequest(id string, client fosite.Client, subject string, exp time.Time) *fosite.Request {
	sess := &fosite.DefaultSession{Subject: subject, Username: "user-" + subject, Extra: map[string]any{"purpose": "test"}}
	for _, tt := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken} {
		sess.SetExpiresAt(tt, exp)
	}
	r := fosite.NewRequest()
	r.ID = id
	r.RequestedAt = t0
	r.Client = client
	r.RequestedScope = fosite.Arguments{"mail.read", "mail.send"}
	r.GrantedScope = fosite.Arguments{"mail.read"}
	r.RequestedAudience = fosite.Arguments{"https://mail.example"}
	r.GrantedAudience = fosite.Arguments{"https://mail.example"}
	r.Form = url.Values{
		"redirect_uri":  {"https://app.example/cb"},
		"state":         {"xyz"},
		"client_secret": {"s3cret"},
		"code":          {"the-code"},
		"refresh_token": {"the-refresh-token"},
		"password":      {"hunter2"},
	}
	r.Session = sess
	return r
}

// checkRequest compares a loaded request with the one stored.
func checkRequest(t *testing.T, got fosite.Requester, want *fosite.Request) {
	t.Helper()
	if got == nil {
		t.Fatal("request is nil")
	}
	if got.GetID() != want.ID {
		t.Errorf("ID = %q, want %q", got.GetID(), want.ID)
	}
	if !got.GetRequestedAt().Equal(want.RequestedAt) {
		t.Errorf("RequestedAt = %v, want %v", got.GetRequestedAt(), want.RequestedAt)
	}
	if got.GetClient() == nil || got.GetClient().GetID() != want.Client.GetID() {
		t.Errorf("client = %v, want %s", got.GetClient(), want.Client.GetID())
	} else if _, ok := got.GetClient().(*authz.Client); !ok {
		t.Errorf("client is %T, want *authz.Client", got.GetClient())
	}
	for _, c := range []struct {
		name      string
		got, want fosite.Arguments
	}{
		{"requested scopes", got.GetRequestedScopes(), want.RequestedScope},
		{"granted scopes", got.GetGrantedScopes(), want.GrantedScope},
		{"requested audience", got.GetRequestedAudience(), want.RequestedAudience},
		{"granted audience", got.GetGrantedAudience(), want.GrantedAudience},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	form := got.GetRequestForm()
	if form.Get("redirect_uri") != want.Form.Get("redirect_uri") || form.Get("state") != want.Form.Get("state") {
		t.Errorf("form = %v, lost redirect_uri or state", form)
	}
	for _, k := range []string{"client_secret", "code", "refresh_token", "password"} {
		if form.Has(k) {
			t.Errorf("form kept secret %s", k)
		}
	}
	gs, ok := got.GetSession().(*fosite.DefaultSession)
	if !ok {
		t.Fatalf("session is %T, want *fosite.DefaultSession", got.GetSession())
	}
	ws := want.Session.(*fosite.DefaultSession)
	if gs.Subject != ws.Subject || gs.Username != ws.Username || gs.Extra["purpose"] != "test" {
		t.Errorf("session = %+v, want %+v", gs, ws)
	}
	if !gs.GetExpiresAt(fosite.AccessToken).Equal(ws.GetExpiresAt(fosite.AccessToken)) {
		t.Errorf("session access expiry = %v, want %v", gs.GetExpiresAt(fosite.AccessToken), ws.GetExpiresAt(fosite.AccessToken))
	}
}

func testMigrate(t *testing.T, open Opener) {
	e := newEnv(t, open)
	// The opener migrated once already: again must be a no-op.
	must(t, e.s.Migrate(t.Context()))
	must(t, e.s.Migrate(t.Context()))
	must(t, e.s.Ping(t.Context()))
	e.createClient(t, "after-migrate")
	if d := e.s.Dialect(); d != store.DialectSQLite && d != store.DialectPostgres {
		t.Errorf("Dialect() = %q", d)
	}
}
