package api_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite", to break the audit table
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// reportEnv is the OAuth2 harness recording into a real audit log, plus the
// reporting endpoint on its own echo (with the CSRF middleware, which it
// must skip), a resource server holding audit.write, and a web app whose
// tokens are meant for that resource server (aud).
type reportEnv struct {
	*harness
	log              *storetest.AuditLog
	url              string
	rs               *authz.Client
	rsSecret         string
	reporter         string // the resource server's bearer token
	app              *authz.Client
	appSecret        string
	refuseAuditWrite func(on bool) // makes the database refuse audit writes
}

// reportStructures is the test's staff directory.
var reportStructures = map[string]string{"alice": "mairie-lyon"}

func newReportEnv(t *testing.T, st *store.Store, refuse func(on bool)) *reportEnv {
	t.Helper()
	var log *storetest.AuditLog
	h := newHarnessRecording(t, st, func(st *store.Store, clock mandate.Clock) authz.Recorder {
		log = storetest.StartAuditLog(t, st, clock)
		return log
	})
	e := echo.New()
	e.Use(middleware.RequestID())
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:     func(c echo.Context) bool { return api.OAuthCSRFSkipper(c) || api.ReportCSRFSkipper(c) },
		TokenLookup: "form:_csrf",
	}))
	api.RegisterAuditReporting(e, api.ReportDeps{Tokens: h.srv, Recorder: log,
		StructureOf: func(_ context.Context, a audit.Actor) (string, error) {
			if a.Kind == audit.ActorStaff {
				return reportStructures[a.ID], nil
			}
			return "", nil
		}})
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	r := &reportEnv{harness: h, log: log, url: ts.URL + api.PathAuditActions, refuseAuditWrite: refuse}
	r.rs, r.rsSecret = h.register(authz.ClientSpec{Name: "IMAP gateway", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"audit.write"}})
	r.app, r.appSecret = h.register(authz.ClientSpec{Name: "Webmail", GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantRefreshToken, authz.GrantClientCredentials},
		Scopes: []string{"mail.read"}, RedirectURIs: []string{appRedirect}, Audience: []string{r.rs.ID}})
	r.reporter = r.ccToken(r.rs.ID, r.rsSecret, "audit.write")
	return r
}

func (r *reportEnv) ccToken(id, secret, scope string, aud ...string) string {
	r.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if len(aud) > 0 {
		form.Set("audience", strings.Join(aud, " "))
	}
	tok := r.post(authz.PathToken, form, id, secret)
	if tok.status != http.StatusOK || tok.str("access_token") == "" {
		r.t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	return tok.str("access_token")
}

// staffToken runs the code flow as staff:alice for the web app, asking for
// the resource server as audience.
func (r *reportEnv) staffToken() *oauth2.Token {
	r.t.Helper()
	conf := &oauth2.Config{
		ClientID: r.app.ID, ClientSecret: r.appSecret, RedirectURL: appRedirect, Scopes: []string{"mail.read"},
		Endpoint: oauth2.Endpoint{AuthURL: r.ts.URL + authz.PathAuthorize, TokenURL: r.ts.URL + authz.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	b := r.browser()
	page, loc := b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("audience", r.rs.ID)), nil)
	if loc == nil {
		_, loc = b.decide(page, "allow")
	}
	tok, err := conf.Exchange(r.clientCtx(), codeFrom(r.t, loc), oauth2.VerifierOption(verifier))
	if err != nil {
		r.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// report POSTs body to the reporting endpoint.
func (r *reportEnv) report(bearer, contentType, body string) reply {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return r.do(req)
}

func reportBody(token, action, target, outcome, reason string) string {
	b, _ := jsonMarshal(map[string]string{"token": token, "action": action, "target": target, "outcome": outcome, "reason": reason})
	return b
}

// size is the number of events in the log.
func (r *reportEnv) size() int64 {
	r.t.Helper()
	n, err := r.st.AuditTreeSize(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

// event reads the event numbered seq.
func (r *reportEnv) event(seq int64) audit.Event {
	r.t.Helper()
	page, err := r.log.Query(r.ctx, audit.Filter{Before: seq + 1, Limit: 1})
	if err != nil || len(page.Events) != 1 || page.Events[0].Seq != seq {
		r.t.Fatalf("event %d: %+v, %v", seq, page.Events, err)
	}
	return page.Events[0]
}

func TestReportActionRecordsTheTokensClaims(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testReportAction(t, openSQLiteRefusable) })
	t.Run("postgres", func(t *testing.T) { testReportAction(t, openPostgresRefusable) })
}

func testReportAction(t *testing.T, open func(*testing.T) (*store.Store, func(bool))) {
	st, refuse := open(t)
	r := newReportEnv(t, st, refuse)
	staff := r.staffToken()

	// A mediator's mailbox read, reported by the resource server.
	res := r.report(r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", "INBOX/42", "success", "opened in the webmail"))
	if res.status != http.StatusCreated {
		t.Fatalf("report: %d %s", res.status, res.raw)
	}
	seq, ok := res.body["seq"].(float64)
	if !ok || int64(seq) != r.size()-1 {
		t.Fatalf("seq = %v, log size %d", res.body["seq"], r.size())
	}
	got := r.event(int64(seq))
	if got.Action != audit.ActionMailboxRead || got.Actor != (audit.Actor{Kind: audit.ActorStaff, ID: "alice"}) ||
		got.ClientID != r.app.ID || got.Structure != "mairie-lyon" || got.Target != "INBOX/42" ||
		got.Outcome != audit.OutcomeSuccess || got.Reason != "reported by "+r.rs.ID+": opened in the webmail" ||
		got.Holder != "" || got.MandateID != "" || got.RequestID == "" {
		t.Errorf("recorded %+v", got)
	}

	// A service token of the app meant for the resource server: the client acted.
	svc := r.ccToken(r.app.ID, r.appSecret, "mail.read", r.rs.ID)
	res = r.report(r.reporter, "application/json; charset=utf-8", reportBody(svc, "mailbox.move", "Archives", "denied", ""))
	if res.status != http.StatusCreated {
		t.Fatalf("report: %d %s", res.status, res.raw)
	}
	got = r.event(int64(res.body["seq"].(float64)))
	if got.Actor != (audit.Actor{Kind: audit.ActorClient, ID: r.app.ID}) || got.ClientID != r.app.ID || got.Structure != "" ||
		got.Action != audit.ActionMailboxMove || got.Outcome != audit.OutcomeDenied || got.Reason != "reported by "+r.rs.ID {
		t.Errorf("recorded %+v", got)
	}

	// Claims in the body are not members of a report: refused, not used.
	res = r.report(r.reporter, "application/json", `{"token":"`+svc+`","action":"mailbox.read","target":"x","outcome":"success","actor":"staff:mallory"}`)
	if res.status != http.StatusBadRequest {
		t.Errorf("a body naming its actor: %d %s", res.status, res.raw)
	}

	// Refusals: the right status and problem, and nothing recorded.
	noAudit, noAuditSecret := r.register(authz.ClientSpec{Name: "Other", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"}})
	otherToken := r.ccToken(noAudit.ID, noAuditSecret, "mail.read")
	notForRS := r.ccToken(r.app.ID, r.appSecret, "mail.read")
	ok1 := reportBody(staff.AccessToken, "mailbox.read", "INBOX/1", "success", "")
	before := r.size()
	tests := []struct {
		name, bearer, contentType, body string
		status                          int
		www                             string // in WWW-Authenticate
	}{
		{"no bearer", "", "application/json", ok1, 401, `Bearer realm="mandated"`},
		{"garbage bearer", "garbage", "application/json", ok1, 401, `error="invalid_token"`},
		{"bearer too long", strings.Repeat("a", 9000), "application/json", ok1, 401, `error="invalid_token"`},
		{"bearer without audit.write", otherToken, "application/json", ok1, 403, `error="insufficient_scope"`},
		{"a person's token as bearer", staff.AccessToken, "application/json", ok1, 403, `error="insufficient_scope"`},
		{"not JSON", r.reporter, "text/plain", ok1, 415, ""},
		{"malformed JSON", r.reporter, "application/json", `{"token":`, 400, ""},
		{"a batch", r.reporter, "application/json", "[" + ok1 + "]", 400, ""},
		{"two objects", r.reporter, "application/json", ok1 + ok1, 400, ""},
		{"a string", r.reporter, "application/json", `"mailbox.read"`, 400, ""},
		{"token not a string", r.reporter, "application/json", `{"token":1,"action":"mailbox.read","target":"x","outcome":"success"}`, 400, ""},
		{"unknown action", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.burn", "x", "success", ""), 422, ""},
		{"an audit action that is not a mailbox action", r.reporter, "application/json", reportBody(staff.AccessToken, "token.issued", "x", "success", ""), 422, ""},
		{"unknown outcome", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", "x", "maybe", ""), 422, ""},
		{"no target", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", "", "success", ""), 422, ""},
		{"no token", r.reporter, "application/json", reportBody("", "mailbox.read", "x", "success", ""), 422, ""},
		{"target too long", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", strings.Repeat("x", 513), "success", ""), 422, ""},
		{"reason too long", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", "x", "success", strings.Repeat("é", 300)), 422, ""},
		{"control character", r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.read", "a\nb", "success", ""), 422, ""},
		{"body too large", r.reporter, "application/json", `{"reason":"` + strings.Repeat("x", 20<<10) + `"}`, 413, ""},
		{"presented token unknown", r.reporter, "application/json", reportBody("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "mailbox.read", "x", "success", ""), 422, ""},
		{"presented token not meant for the reporter", r.reporter, "application/json", reportBody(notForRS, "mailbox.read", "x", "success", ""), 422, ""},
		{"presented refresh token", r.reporter, "application/json", reportBody(staff.RefreshToken, "mailbox.read", "x", "success", ""), 422, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.report(tt.bearer, tt.contentType, tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q: %s", ct, res.raw)
			}
			if res.str("title") == "" || res.body["status"] != float64(tt.status) {
				t.Errorf("not a problem document: %s", res.raw)
			}
			if www := res.header.Get("WWW-Authenticate"); !strings.Contains(www, tt.www) || (tt.www == "" && www != "") {
				t.Errorf("WWW-Authenticate %q, want %q", www, tt.www)
			}
			if strings.Contains(res.raw, "mallory") || (len(tt.body) > 20 && strings.Contains(res.raw, tt.body)) {
				t.Errorf("the problem echoes the body: %s", res.raw)
			}
		})
	}
	if n := r.size(); n != before {
		t.Fatalf("refused reports recorded %d events", n-before)
	}

	// A revoked token is refused.
	if res := r.post(authz.PathRevoke, url.Values{"token": {svc}}, r.app.ID, r.appSecret); res.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.status, res.raw)
	}
	before = r.size()
	if res := r.report(r.reporter, "application/json", reportBody(svc, "mailbox.read", "x", "success", "")); res.status != http.StatusUnprocessableEntity {
		t.Errorf("revoked token: %d %s", res.status, res.raw)
	}

	// A database that refuses the write: 503, and nothing recorded.
	r.refuseAuditWrite(true)
	res = r.report(r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.delete", "INBOX/7", "success", ""))
	if res.status != http.StatusServiceUnavailable || res.header.Get("Content-Type") != "application/problem+json" || res.header.Get("Retry-After") == "" {
		t.Errorf("database refusing writes: %d %v %s", res.status, res.header, res.raw)
	}
	r.refuseAuditWrite(false)
	if n := r.size(); n != before {
		t.Fatalf("refused reports recorded %d events", n-before)
	}
	res = r.report(r.reporter, "application/json", reportBody(staff.AccessToken, "mailbox.delete", "INBOX/7", "success", ""))
	if res.status != http.StatusCreated || int64(res.body["seq"].(float64)) != before {
		t.Fatalf("after the database recovered: %d %s (log size was %d)", res.status, res.raw, before)
	}

	// Expired: the presented token, while the reporter's own (issued by a
	// replica configured with longer-lived tokens, on the same store and
	// keys) is still valid; then the reporter's own.
	long, err := authz.New(authz.Config{Issuer: r.issuer, HMACSecret: randomBytes(t, 32), AccessTokenLifetime: time.Hour},
		r.st, r.keys, authz.WithClock(r.clock))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"audit.write"}}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, r.issuer+authz.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(r.rs.ID, r.rsSecret)
	rec := httptest.NewRecorder()
	long.Token(rec, req)
	var longTok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &longTok); err != nil || longTok.AccessToken == "" {
		t.Fatalf("long-lived reporter token: %d %s", rec.Code, rec.Body)
	}
	r.clock.Advance(authz.DefaultAccessTokenLifetime + time.Minute)
	before = r.size()
	if res := r.report(longTok.AccessToken, "application/json", ok1); res.status != http.StatusUnprocessableEntity {
		t.Errorf("expired presented token: %d %s", res.status, res.raw)
	}
	if res := r.report(r.reporter, "application/json", ok1); res.status != http.StatusUnauthorized ||
		!strings.Contains(res.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("expired reporter token: %d %s", res.status, res.raw)
	}
	if n := r.size(); n != before {
		t.Fatalf("refused reports recorded %d events", n-before)
	}

	// The exported log, reports included, verifies.
	r.log.Tick()
	if page, err := r.log.Query(r.ctx, audit.Filter{Action: audit.ActionMailboxDelete}); err != nil || len(page.Events) != 1 {
		t.Fatalf("mailbox.delete events: %+v, %v", page.Events, err)
	}
}

// openSQLiteRefusable is a migrated SQLite store, and a switch that makes
// the database itself refuse inserts into the audit events (a trigger).
func openSQLiteRefusable(t *testing.T) (*store.Store, func(bool)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandated.db")
	st, err := store.Open(t.Context(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return st, func(on bool) {
		q := "DROP TRIGGER report_test_refuse"
		if on {
			q = "CREATE TRIGGER report_test_refuse BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
		}
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// openPostgresRefusable is openSQLiteRefusable on PostgreSQL.
func openPostgresRefusable(t *testing.T) (*store.Store, func(bool)) {
	t.Helper()
	dsn := storetest.PostgresSchema(t)
	st, err := store.Open(t.Context(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st, func(on bool) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		stmts := []string{"DROP TRIGGER report_test_refuse ON audit_events"}
		if on {
			stmts = []string{
				`CREATE OR REPLACE FUNCTION report_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
				`CREATE TRIGGER report_test_refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION report_test_refuse()`,
			}
		}
		for _, q := range stmts {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
