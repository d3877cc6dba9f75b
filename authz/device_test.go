package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/authz/authztest"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// lateRevoker forwards to the server, built after the mandate service
// (each needs the other).
type lateRevoker struct{ srv *authz.Server }

func (r *lateRevoker) RevokeGrant(ctx context.Context, grantID string) error {
	return r.srv.RevokeGrant(ctx, grantID)
}

// deviceEnv is an authorization server with the device flow on, over a
// real SQLite store, the real mandate service, people directory and audit
// log, served by a real HTTP server.
type deviceEnv struct {
	t      *testing.T
	ctx    context.Context
	clk    *clock
	st     *store.Store
	log    *storetest.AuditLog
	svc    *mandate.Service
	srv    *authz.Server
	ts     *httptest.Server
	issuer string

	structure string
	staff     people.Staff
	holder    people.Holder

	// app is the mediator's application: confidential, code + device +
	// refresh. staffToken is its access token for the staff member.
	app        *authz.Client
	appSecret  string
	staffToken string
}

const (
	mailGateway   = "mail-gateway"
	holderMailbox = "jeanne.martin@mail.example"
	appRedirect   = "https://app.example/cb"
)

func newDeviceEnv(t *testing.T) *deviceEnv { return newDeviceEnvOn(t, storetest.OpenSQLiteWith) }

func newDeviceEnvOn(t *testing.T, open func(testing.TB, store.Options) *store.Store) *deviceEnv {
	t.Helper()
	ctx := context.Background()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	st := open(t, store.Options{Clock: clk})
	log := storetest.StartAuditLog(t, st, clk)
	e := &deviceEnv{t: t, ctx: ctx, clk: clk, st: st, log: log, structure: "mairie"}

	if err := st.CreateStructure(ctx, people.Structure{ID: e.structure, Name: "Mairie de Lyon", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	e.staff = people.Staff{ID: "med1", Email: "med1@mairie.example", DisplayName: "Paul Médiateur", Role: people.RoleMediator,
		StructureID: e.structure, Status: people.StaffActive, CreatedAt: clk.Now()}
	if err := st.CreateStaff(ctx, e.staff); err != nil {
		t.Fatal(err)
	}
	e.holder = people.Holder{ID: "h1", Mailbox: holderMailbox, DisplayName: "Jeanne Martin", Phone: "+33612345678", Language: "fr", CreatedAt: clk.Now()}
	if err := st.CreateHolder(ctx, e.holder, e.structure); err != nil {
		t.Fatal(err)
	}

	e.ts = httptest.NewUnstartedServer(nil)
	e.issuer = "http://" + e.ts.Listener.Addr().String()
	// Every mandate token is also for the mail gateway (Config.MandateAudience).
	flow := authztest.NewDeviceFlow(t, st, log, clk, authz.Config{Issuer: e.issuer, MandateAudience: []string{mailGateway}}, nil)
	e.svc, e.srv = flow.Mandates, flow.Server
	mux := http.NewServeMux()
	mux.HandleFunc(authz.PathToken, e.srv.Token)
	mux.HandleFunc(authz.PathDeviceAuthorization, e.srv.DeviceAuthorization)
	mux.HandleFunc(authz.PathIntrospect, e.srv.Introspect)
	mux.HandleFunc(authz.PathAuthorize, func(rw http.ResponseWriter, r *http.Request) {
		// The staff member is signed in and consents to everything.
		ar, err := e.srv.NewAuthorizeRequest(r.Context(), r)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		e.srv.FinishAuthorize(r.Context(), rw, ar, "staff:"+e.staff.ID, ar.GetRequestedScopes(), time.Time{})
	})
	e.ts.Config.Handler = mux
	e.ts.Start()
	t.Cleanup(e.ts.Close)

	e.app, e.appSecret = e.register(authz.ClientSpec{
		Name: "Console", GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantTypeDeviceCode, authz.GrantRefreshToken},
		Scopes: []string{"mail.read", "mail.send", "mail.organize", "mail.delete"}, RedirectURIs: []string{appRedirect},
	})
	// fosite's code flow stamps expiries with the wall clock: tests that
	// move the clock more than a few minutes make every request first.
	e.staffToken = e.codeFlowToken(e.app, e.appSecret)
	return e
}

func (e *deviceEnv) register(spec authz.ClientSpec) (*authz.Client, string) {
	e.t.Helper()
	c, secret, err := e.srv.RegisterClient(e.ctx, spec)
	if err != nil {
		e.t.Fatalf("register %s: %v", spec.Name, err)
	}
	return c, secret
}

// codeFlowToken runs the authorization code flow (PKCE) for the staff
// member and returns the access token.
func (e *deviceEnv) codeFlowToken(c *authz.Client, secret string) string {
	e.t.Helper()
	verifier := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("v", 48)))
	sum := sha256Sum(verifier)
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {appRedirect}, "scope": {"mail.read"},
		"state": {"state-1234567890"}, "code_challenge": {sum}, "code_challenge_method": {"S256"},
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(e.ts.URL + authz.PathAuthorize + "?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		e.t.Fatalf("authorize: %d, no redirect", resp.StatusCode)
	}
	r := e.post(authz.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {appRedirect}, "code_verifier": {verifier},
	}, c.ID, secret)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		e.t.Fatalf("code exchange: %d %s", r.status, r.raw)
	}
	return r.str("access_token")
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// post sends a form; with secret != "" the client authenticates with HTTP
// Basic, else it only names itself (public client).
func (e *deviceEnv) post(path string, form url.Values, id, secret string) reply {
	e.t.Helper()
	if secret == "" && id != "" {
		form.Set("client_id", id)
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw), body: map[string]any{}}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// deviceForm is a valid device authorization request by the staff member.
func (e *deviceEnv) deviceForm() url.Values {
	return url.Values{
		"scope": {"mail.read mail.send"}, "holder_hint": {holderMailbox}, "duration": {"1800"},
		"purpose": {"Dossier CAF"}, "purpose_category": {"social"},
		"actor_token": {e.staffToken}, "actor_token_type": {authz.TokenTypeAccessToken},
	}
}

// authorize posts a device authorization request and checks it succeeded.
func (e *deviceEnv) authorize(form url.Values, id, secret string) reply {
	e.t.Helper()
	r := e.post(authz.PathDeviceAuthorization, form, id, secret)
	if r.status != http.StatusOK || r.str("device_code") == "" {
		e.t.Fatalf("device authorization: %d %s", r.status, r.raw)
	}
	return r
}

func (e *deviceEnv) poll(deviceCode, id, secret string) reply {
	e.t.Helper()
	return e.post(authz.PathToken, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {deviceCode}}, id, secret)
}

func (e *deviceEnv) introspect(token string) reply {
	e.t.Helper()
	return e.post(authz.PathIntrospect, url.Values{"token": {token}}, e.app.ID, e.appSecret)
}

func (e *deviceEnv) approve(mandateID string) mandate.Mandate {
	e.t.Helper()
	m, err := e.svc.Approve(e.ctx, e.holder.ID, mandateID, mandate.Approval{})
	if err != nil {
		e.t.Fatalf("approve: %v", err)
	}
	return m
}

// tokens runs a device flow to its tokens: request, approval, exchange.
func (e *deviceEnv) tokens() (reply, string) {
	e.t.Helper()
	da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
	e.approve(da.str("mandate_id"))
	tok := e.poll(da.str("device_code"), e.app.ID, e.appSecret)
	if tok.status != http.StatusOK || tok.str("access_token") == "" {
		e.t.Fatalf("device token: %d %s", tok.status, tok.raw)
	}
	return tok, da.str("mandate_id")
}

func wantError(t *testing.T, what string, r reply, code string) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.str("error") != code {
		t.Errorf("%s: %d %s, want 400 %s", what, r.status, r.raw, code)
	}
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// asJSON is v as JSON with object keys sorted (a JSON string is decoded first).
func asJSON(v any) string {
	if s, ok := v.(string); ok {
		var x any
		if json.Unmarshal([]byte(s), &x) == nil {
			v = x
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var userCodeRE = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// TestDeviceFlow runs RFC 8628 from the request to the tokens and their
// end: the response, authorization_pending, slow_down with the interval
// growing, the holder finding the request by its user code, approval, the
// tokens and their claims, single use, introspection, refresh, and the
// holder ending the mandate.
func TestDeviceFlow(t *testing.T) { testDeviceFlow(t, newDeviceEnv(t)) }

// TestDeviceFlowOnPostgres is TestDeviceFlow on PostgreSQL (skipped
// without MANDATED_TEST_DATABASE_URL).
func TestDeviceFlowOnPostgres(t *testing.T) {
	testDeviceFlow(t, newDeviceEnvOn(t, storetest.OpenPostgresWith))
}

func testDeviceFlow(t *testing.T, e *deviceEnv) {
	da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
	code, mandateID := da.str("device_code"), da.str("mandate_id")
	userCode := da.str("user_code")
	if !userCodeRE.MatchString(userCode) {
		t.Errorf("user_code = %q", userCode)
	}
	if da.str("verification_uri") != e.issuer+authz.PathDeviceVerification ||
		da.str("verification_uri_complete") != e.issuer+authz.PathDeviceVerification+"?user_code="+userCode {
		t.Errorf("verification URIs = %q, %q", da.str("verification_uri"), da.str("verification_uri_complete"))
	}
	if da.body["expires_in"] != float64(600) || da.body["interval"] != float64(5) || mandateID == "" {
		t.Errorf("device authorization = %s", da.raw)
	}
	if da.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(da.header.Get("Content-Type"), "application/json") {
		t.Errorf("headers = %v", da.header)
	}
	m, err := e.svc.Get(e.ctx, mandateID)
	if err != nil || m.State != mandate.StateRequested || m.HolderID != e.holder.ID || m.DelegateID != e.staff.ID ||
		m.ClientID != e.app.ID || m.Duration != 30*time.Minute || !slices.Equal(m.Scopes, []string{"mail.read", "mail.send"}) {
		t.Fatalf("mandate = %+v, %v", m, err)
	}

	// Polling: pending, then too fast (slow_down), and the interval grows by 5 s each time.
	wantError(t, "first poll", e.poll(code, e.app.ID, e.appSecret), "authorization_pending")
	wantError(t, "at once", e.poll(code, e.app.ID, e.appSecret), "slow_down") // interval 5 → 10
	e.clk.Advance(6 * time.Second)
	wantError(t, "6 s later, interval 10", e.poll(code, e.app.ID, e.appSecret), "slow_down") // → 15
	e.clk.Advance(13 * time.Second)
	wantError(t, "13 s later, interval 15", e.poll(code, e.app.ID, e.appSecret), "slow_down") // → 20
	e.clk.Advance(19 * time.Second)
	wantError(t, "one second early is forgiven", e.poll(code, e.app.ID, e.appSecret), "authorization_pending")
	e.clk.Advance(20 * time.Second)
	wantError(t, "20 s later", e.poll(code, e.app.ID, e.appSecret), "authorization_pending")

	// The holder finds the request by the code they read, however typed.
	got, err := e.srv.LookupUserCode(e.ctx, " "+strings.ToLower(strings.ReplaceAll(userCode, "-", ""))+" ", "192.0.2.10")
	if err != nil || got.ID != mandateID {
		t.Fatalf("LookupUserCode = %+v, %v", got, err)
	}
	e.clk.Advance(20 * time.Second)
	m = e.approve(mandateID)
	if _, err := e.srv.LookupUserCode(e.ctx, userCode, "192.0.2.10"); !errors.Is(err, authz.ErrUserCodeUsed) {
		t.Errorf("LookupUserCode after approval: %v, want ErrUserCodeUsed", err)
	}

	tok := e.poll(code, e.app.ID, e.appSecret)
	if tok.status != http.StatusOK || tok.str("token_type") != "bearer" || tok.str("refresh_token") == "" ||
		tok.str("scope") != "mail.read mail.send" || tok.body["expires_in"] != float64(300) {
		t.Fatalf("token = %d %s", tok.status, tok.raw)
	}
	if tok.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token Cache-Control = %q", tok.header.Get("Cache-Control"))
	}
	// Single use: the code is spent.
	wantError(t, "second exchange", e.poll(code, e.app.ID, e.appSecret), "invalid_grant")
	if m, _ = e.svc.Get(e.ctx, mandateID); m.State != mandate.StateActive || m.GrantID == "" {
		t.Fatalf("after the exchange, mandate = %+v", m)
	}

	access := tok.str("access_token")
	c := jwtClaims(t, access)
	wantDetails := asJSON(`[{"type":"urn:mandated:mailbox","locations":["mailto:` + holderMailbox + `"],"actions":["mail.read","mail.send"],"exclusions":["personal"],"mandate_id":"` + mandateID + `"}]`)
	if c["sub"] != "holder:"+e.holder.ID || asJSON(c["act"]) != `{"sub":"staff:`+e.staff.ID+`"}` || c["mandate_id"] != mandateID ||
		asJSON(c["authorization_details"]) != wantDetails || c["client_id"] != e.app.ID || c["scope"] != "mail.read mail.send" {
		t.Errorf("access token claims = %s", asJSON(c))
	}
	now := e.clk.Now()
	if exp := int64(c["exp"].(float64)); exp != now.Add(5*time.Minute).Unix() || exp > m.NotAfter.Unix() {
		t.Errorf("exp = %d, now %d, mandate ends %d", exp, now.Unix(), m.NotAfter.Unix())
	}

	// Introspection: from storage, then from memory; the same answer.
	for i := 0; i < 2; i++ {
		in := e.introspect(access)
		if in.body["active"] != true || in.str("sub") != "holder:"+e.holder.ID || in.str("mandate_id") != mandateID ||
			asJSON(in.body["act"]) != `{"sub":"staff:`+e.staff.ID+`"}` || in.str("act_sub") != "staff:"+e.staff.ID ||
			in.str("username") != holderMailbox || in.str("rights") != "mail.read mail.send" ||
			asJSON(in.body["authorization_details"]) != wantDetails || in.str("presence") != "present" {
			t.Errorf("introspection %d = %s", i, in.raw)
		}
	}
	in := e.post(authz.PathIntrospect, url.Values{"token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret)
	if in.body["active"] != true || in.str("mandate_id") != mandateID || in.str("token_type") != "refresh_token" || in.str("username") != holderMailbox {
		t.Errorf("refresh token introspection = %s", in.raw)
	}

	// Refresh while the holder is present: new tokens with the same claims.
	e.clk.Advance(10 * time.Second)
	if _, err := e.svc.Heartbeat(e.ctx, e.holder.ID, mandateID); err != nil {
		t.Fatal(err)
	}
	ref := e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret)
	if ref.status != http.StatusOK || ref.str("access_token") == "" {
		t.Fatalf("refresh: %d %s", ref.status, ref.raw)
	}
	if c := jwtClaims(t, ref.str("access_token")); c["mandate_id"] != mandateID || asJSON(c["authorization_details"]) != wantDetails ||
		asJSON(c["act"]) != `{"sub":"staff:`+e.staff.ID+`"}` || c["sub"] != "holder:"+e.holder.ID {
		t.Errorf("refreshed claims = %s", asJSON(c))
	}

	// The holder presses "Arrêter": every token is dead at once.
	if _, err := e.svc.End(e.ctx, mandateID, mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: e.holder.ID}, ""); err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"first access": access, "refreshed access": ref.str("access_token"), "refresh": ref.str("refresh_token")} {
		if in := e.introspect(token); in.body["active"] != false || len(in.body) != 1 {
			t.Errorf("after End, %s token introspects %s", name, in.raw)
		}
	}
	wantError(t, "refresh after End",
		e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref.str("refresh_token")}}, e.app.ID, e.appSecret),
		"invalid_grant")

	// Every step is in the audit log; the tokens' events name the mandate.
	page, err := e.log.Query(e.ctx, audit.Filter{MandateID: mandateID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range page.Events {
		actions = append(actions, string(ev.Action))
		if ev.Action == audit.ActionTokenIssued || ev.Action == audit.ActionTokenRefreshed {
			if ev.Actor.Kind != audit.ActorStaff || ev.Actor.ID != e.staff.ID || ev.Holder != e.holder.ID || ev.ClientID != e.app.ID {
				t.Errorf("%s event = %+v", ev.Action, ev)
			}
		}
	}
	slices.Reverse(actions)
	want := []string{"mandate.requested", "mandate.approved", "mandate.activated", "token.issued", "token.refreshed", "mandate.ended"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit of the mandate = %v, want %v", actions, want)
	}
}

// TestMandateTokensDieWithTheLease: no heartbeat, and the tokens introspect
// inactive and refresh no more once the lease lapses — before any sweep
// ends the mandate.
func TestMandateTokensDieWithTheLease(t *testing.T) {
	e := newDeviceEnv(t)
	tok, mandateID := e.tokens()
	if in := e.introspect(tok.str("access_token")); in.body["active"] != true {
		t.Fatalf("fresh token: %s", in.raw)
	}
	e.clk.Advance(14 * time.Second)
	if in := e.introspect(tok.str("access_token")); in.body["active"] != true {
		t.Fatalf("14 s later, lease alive: %s", in.raw)
	}
	e.clk.Advance(time.Second) // the 15 s lease lapses
	if in := e.introspect(tok.str("access_token")); in.body["active"] != false {
		t.Errorf("after the lease lapsed: %s", in.raw)
	}
	if in := e.post(authz.PathIntrospect, url.Values{"token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret); in.body["active"] != false {
		t.Errorf("refresh token after the lease lapsed: %s", in.raw)
	}
	wantError(t, "refresh after the lease lapsed",
		e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret),
		"invalid_grant")
	if m, _ := e.svc.Get(e.ctx, mandateID); m.State != mandate.StateActive {
		t.Errorf("the mandate was not swept yet, state = %s", m.State)
	}
}

// TestMandateCacheFollowsHeartbeats: introspection answers from its
// mandate cache, and a heartbeat moves the lease without any bus message
// (it may land on another replica). A token must stay active past the
// lease end the cache saw, as long as heartbeats keep coming, and die once
// they stop.
func TestMandateCacheFollowsHeartbeats(t *testing.T) {
	e := newDeviceEnv(t)
	tok, mandateID := e.tokens()
	access := tok.str("access_token")
	if in := e.introspect(access); in.body["active"] != true { // caches the mandate
		t.Fatalf("fresh token: %s", in.raw)
	}
	for i := range 6 { // 6 × 10 s: well past the first 15 s lease
		e.clk.Advance(10 * time.Second)
		if _, err := e.svc.Heartbeat(e.ctx, e.holder.ID, mandateID); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		if in := e.introspect(access); in.body["active"] != true {
			t.Fatalf("after heartbeat %d (%d s): %s", i, 10*(i+1), in.raw)
		}
	}
	e.clk.Advance(16 * time.Second) // heartbeats stop: the lease lapses
	if in := e.introspect(access); in.body["active"] != false {
		t.Fatalf("after the heartbeats stopped: %s", in.raw)
	}
}

// TestMandateTokensNeverOutliveTheMandate: the access token of a 5-minute
// session (the policy minimum) exchanged 3 minutes in expires with the
// session, not 5 minutes later; at the session's end it introspects
// inactive and refreshes no more, the holder present or not.
func TestMandateTokensNeverOutliveTheMandate(t *testing.T) {
	e := newDeviceEnv(t)
	form := e.deviceForm()
	form.Set("duration", "300")
	da := e.authorize(form, e.app.ID, e.appSecret)
	m := e.approve(da.str("mandate_id"))
	for i := 0; i < 18; i++ { // the holder stays 3 minutes before the exchange
		e.clk.Advance(10 * time.Second)
		if _, err := e.svc.Heartbeat(e.ctx, e.holder.ID, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	tok := e.poll(da.str("device_code"), e.app.ID, e.appSecret)
	if tok.status != http.StatusOK {
		t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	c := jwtClaims(t, tok.str("access_token"))
	if exp := int64(c["exp"].(float64)); exp != m.NotAfter.Unix() {
		t.Errorf("exp = %d, want the mandate's end %d (2 minutes away, under the 5-minute lifetime)", exp, m.NotAfter.Unix())
	}
	if tok.body["expires_in"].(float64) > 121 {
		t.Errorf("expires_in = %v", tok.body["expires_in"])
	}
	for i := 0; i < 12; i++ {
		e.clk.Advance(10 * time.Second)
		_, _ = e.svc.Heartbeat(e.ctx, e.holder.ID, m.ID)
	}
	if in := e.introspect(tok.str("access_token")); in.body["active"] != false {
		t.Errorf("after the mandate's end: %s", in.raw)
	}
	wantError(t, "refresh after the mandate's end",
		e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret),
		"invalid_grant")
}

// TestDeviceGrantErrors: every way the device code grant says no.
func TestDeviceGrantErrors(t *testing.T) {
	e := newDeviceEnv(t)

	t.Run("access_denied", func(t *testing.T) {
		da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		if _, err := e.svc.Refuse(e.ctx, e.holder.ID, da.str("mandate_id"), ""); err != nil {
			t.Fatal(err)
		}
		wantError(t, "refused", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "access_denied")
		e.clk.Advance(5 * time.Second)
		wantError(t, "after access_denied", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "invalid_grant")
	})
	t.Run("wrong client", func(t *testing.T) {
		other, secret := e.register(authz.ClientSpec{Name: "Other", GrantTypes: []string{authz.GrantTypeDeviceCode}, Scopes: []string{"mail.read"}})
		da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		e.approve(da.str("mandate_id"))
		wantError(t, "another client's code", e.poll(da.str("device_code"), other.ID, secret), "invalid_grant")
		// The rightful client still gets its tokens (one interval later:
		// every poll counts).
		e.clk.Advance(5 * time.Second)
		if tok := e.poll(da.str("device_code"), e.app.ID, e.appSecret); tok.status != http.StatusOK {
			t.Errorf("rightful client: %d %s", tok.status, tok.raw)
		}
	})
	t.Run("ended before the exchange", func(t *testing.T) {
		da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		e.approve(da.str("mandate_id"))
		if _, err := e.svc.End(e.ctx, da.str("mandate_id"), mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: e.holder.ID}, ""); err != nil {
			t.Fatal(err)
		}
		wantError(t, "ended", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "invalid_grant")
	})
	t.Run("lease lapsed before the exchange", func(t *testing.T) {
		da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		e.approve(da.str("mandate_id"))
		e.clk.Advance(15 * time.Second)
		wantError(t, "lapsed lease", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "invalid_grant")
	})
	t.Run("unknown or malformed", func(t *testing.T) {
		unknown := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		wantError(t, "unknown device code", e.poll(unknown, e.app.ID, e.appSecret), "invalid_grant")
		wantError(t, "malformed device code", e.poll("not-a-device-code", e.app.ID, e.appSecret), "invalid_grant")
		wantError(t, "no device code", e.post(authz.PathToken, url.Values{"grant_type": {authz.GrantTypeDeviceCode}}, e.app.ID, e.appSecret), "invalid_request")
	})
	t.Run("client not allowed the grant", func(t *testing.T) {
		web, secret := e.register(authz.ClientSpec{Name: "Web", GrantTypes: []string{authz.GrantAuthorizationCode}, Scopes: []string{"mail.read"}, RedirectURIs: []string{appRedirect}})
		r := e.poll(base64.RawURLEncoding.EncodeToString(make([]byte, 32)), web.ID, secret)
		if r.str("error") != "unauthorized_client" {
			t.Errorf("poll by a code-only client: %d %s", r.status, r.raw)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		r := e.poll(base64.RawURLEncoding.EncodeToString(make([]byte, 32)), e.app.ID, "wrong")
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Errorf("wrong secret: %d %s", r.status, r.raw)
		}
	})
	t.Run("expired_token", func(t *testing.T) {
		// Last: the clock moves past the staff token's life.
		da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		lapsed := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
		e.clk.Advance(10 * time.Minute)
		wantError(t, "past expires_in", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "expired_token")
		wantError(t, "after expired_token", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "invalid_grant")
		// Lapsed by the sweeper (its device authorization still there).
		da = lapsed
		if _, err := e.svc.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
		if m, _ := e.svc.Get(e.ctx, da.str("mandate_id")); m.State != mandate.StateUnanswered {
			t.Fatalf("state after sweep = %s", m.State)
		}
		wantError(t, "lapsed", e.poll(da.str("device_code"), e.app.ID, e.appSecret), "expired_token")
		if _, err := e.svc.Approve(e.ctx, e.holder.ID, da.str("mandate_id"), mandate.Approval{}); err == nil {
			t.Error("a lapsed request was approved")
		}
	})
}

// TestPublicDeviceClient: a public client (RFC 8628's usual case) names
// itself with client_id at both endpoints.
func TestPublicDeviceClient(t *testing.T) {
	e := newDeviceEnv(t)
	pub, _ := e.register(authz.ClientSpec{Name: "Tablet", AuthMethod: authz.AuthMethodNone,
		GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantTypeDeviceCode, authz.GrantRefreshToken},
		Scopes:     []string{"mail.read", "mail.send"}, RedirectURIs: []string{appRedirect}})
	form := e.deviceForm()
	form.Set("actor_token", e.codeFlowToken(pub, ""))
	da := e.authorize(form, pub.ID, "")
	wantError(t, "pending", e.poll(da.str("device_code"), pub.ID, ""), "authorization_pending")
	e.clk.Advance(5 * time.Second)
	e.approve(da.str("mandate_id"))
	tok := e.poll(da.str("device_code"), pub.ID, "")
	if tok.status != http.StatusOK || tok.str("refresh_token") == "" {
		t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	// The console's token is not the tablet's actor token.
	form.Set("actor_token", e.staffToken)
	if r := e.post(authz.PathDeviceAuthorization, form, pub.ID, ""); r.str("error") != "invalid_request" {
		t.Errorf("another client's actor token: %d %s", r.status, r.raw)
	}
}

// TestDeviceAuthorizationRefusals: bad device authorization requests get
// the standard error with a plain description, and nothing is created.
func TestDeviceAuthorizationRefusals(t *testing.T) {
	e := newDeviceEnv(t)
	codeOnly, codeSecret := e.register(authz.ClientSpec{Name: "Web", GrantTypes: []string{authz.GrantAuthorizationCode}, Scopes: []string{"mail.read"}, RedirectURIs: []string{appRedirect}})
	narrow, narrowSecret := e.register(authz.ClientSpec{Name: "Narrow", GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantTypeDeviceCode},
		Scopes: []string{"mail.read"}, RedirectURIs: []string{appRedirect}})

	// A mandate token is not a staff member's token.
	mandateTok, _ := e.tokens()
	other := people.Staff{ID: "med2", Email: "med2@ailleurs.example", DisplayName: "Autre", Role: people.RoleMediator,
		StructureID: "ailleurs", Status: people.StaffActive, CreatedAt: e.clk.Now()}
	if err := e.st.CreateStructure(e.ctx, people.Structure{ID: "ailleurs", Name: "Ailleurs", CreatedAt: e.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateStaff(e.ctx, other); err != nil {
		t.Fatal(err)
	}

	before, err := e.svc.List(e.ctx, mandate.Query{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) url.Values {
		f := e.deviceForm()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	twice := e.deviceForm()
	twice.Add("scope", "mail.delete")
	for _, tt := range []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
		code       string
		hint       string
	}{
		{"no actor token", with("actor_token", ""), "", "", 400, "invalid_request", "actor_token"},
		{"wrong actor token type", with("actor_token_type", "urn:ietf:params:oauth:token-type:id_token"), "", "", 400, "invalid_request", "actor_token_type"},
		{"garbage actor token", with("actor_token", "not.a.token"), "", "", 400, "invalid_request", "not an active access token"},
		{"mandate token as actor", with("actor_token", mandateTok.str("access_token")), "", "", 400, "invalid_request", "does not name a staff member"},
		{"unknown scope", with("scope", "mail.read mail.burn"), "", "", 400, "invalid_scope", "mail.burn"},
		{"service scope", with("scope", "audit.write"), "", "", 400, "invalid_scope", "audit.write"},
		{"no scope", with("scope", ""), "", "", 400, "invalid_scope", "at least one scope"},
		{"scope not registered", with("scope", "mail.read mail.send"), "narrow", "", 400, "invalid_scope", "mail.send"},
		{"unknown holder", with("holder_hint", "nobody@mail.example"), "", "", 400, "invalid_request", "unknown"},
		{"no holder", with("holder_hint", ""), "", "", 400, "invalid_request", "holder"},
		{"session too long", with("duration", "18000"), "", "", 400, "invalid_request", "at most 1h0m0s"},
		{"session too short", with("duration", "60"), "", "", 400, "invalid_request", "at least 5m0s"},
		{"bad duration", with("duration", "half an hour"), "", "", 400, "invalid_request", "duration"},
		{"bad kind", with("kind", "forever"), "", "", 400, "invalid_request", "kind"},
		{"relaxed session", with("presence", "relaxed"), "", "", 400, "invalid_request", "presence"},
		{"bad purpose category", with("purpose_category", "fun"), "", "", 400, "invalid_request", "purpose category"},
		{"bad include_personal", with("include_personal", "perhaps"), "", "", 400, "invalid_request", "include_personal"},
		{"bad not_after", with("not_after", "tomorrow"), "", "", 400, "invalid_request", "not_after"},
		{"repeated parameter", twice, "", "", 400, "invalid_request", "more than once"},
		{"client not allowed the grant", e.deviceForm(), "code-only", "", 400, "unauthorized_client", "device"},
		{"wrong secret", e.deviceForm(), "wrong-secret", "", 401, "invalid_client", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, secret := e.app.ID, e.appSecret
			switch tt.id {
			case "narrow":
				id, secret = narrow.ID, narrowSecret
				tt.form.Set("actor_token", e.codeFlowToken(narrow, narrowSecret)) // its own staff token
			case "code-only":
				id, secret = codeOnly.ID, codeSecret
			case "wrong-secret":
				secret = "wrong"
			}
			r := e.post(authz.PathDeviceAuthorization, tt.form, id, secret)
			if r.status != tt.status || r.str("error") != tt.code || !strings.Contains(r.str("error_description"), tt.hint) {
				t.Errorf("%d %s, want %d %s mentioning %q", r.status, r.raw, tt.status, tt.code, tt.hint)
			}
		})
	}
	after, err := e.svc.List(e.ctx, mandate.Query{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d mandates created by refused requests", len(after)-len(before))
	}
}

// TestLookupUserCodeThrottles: wrong codes are refused as unknown and
// recorded without the code; after ten from one address, that address is
// refused even the right code for 15 minutes, while others are not.
func TestLookupUserCodeThrottles(t *testing.T) {
	e := newDeviceEnv(t)
	da := e.authorize(e.deviceForm(), e.app.ID, e.appSecret)
	right := da.str("user_code")
	wrong := "BCDF-GHJK"
	if wrong == right {
		wrong = "BCDF-GHJL"
	}
	const attacker, holder = "198.51.100.7", "192.0.2.10"
	for i := 0; i < 9; i++ {
		if _, err := e.srv.LookupUserCode(e.ctx, wrong, attacker); !errors.Is(err, authz.ErrUserCodeUnknown) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if _, err := e.srv.LookupUserCode(e.ctx, "hello", attacker); !errors.Is(err, authz.ErrUserCodeUnknown) {
		t.Fatalf("malformed code: %v", err)
	}
	if _, err := e.srv.LookupUserCode(e.ctx, right, attacker); !errors.Is(err, authz.ErrUserCodeThrottled) {
		t.Fatalf("after 10 wrong codes, the right one: %v, want ErrUserCodeThrottled", err)
	}
	if m, err := e.srv.LookupUserCode(e.ctx, right, holder); err != nil || m.ID != da.str("mandate_id") {
		t.Fatalf("from another address: %+v, %v", m, err)
	}
	// An expired code is unknown too.
	e.clk.Advance(10 * time.Minute)
	if _, err := e.srv.LookupUserCode(e.ctx, right, holder); !errors.Is(err, authz.ErrUserCodeUnknown) {
		t.Errorf("expired code: %v", err)
	}
	e.clk.Advance(5 * time.Minute)
	if _, err := e.srv.LookupUserCode(e.ctx, wrong, attacker); !errors.Is(err, authz.ErrUserCodeUnknown) {
		t.Errorf("15 minutes later: %v, want ErrUserCodeUnknown", err)
	}

	page, err := e.log.Query(e.ctx, audit.Filter{Action: audit.ActionRequestRefused, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range page.Events {
		if !strings.HasPrefix(ev.Reason, "device verification:") {
			continue
		}
		n++
		if ev.Actor.Kind != audit.ActorUnknown || ev.Outcome != audit.OutcomeDenied ||
			strings.Contains(ev.Reason, strings.ReplaceAll(wrong, "-", "")) || strings.Contains(ev.Reason, wrong) {
			t.Errorf("event = %+v", ev)
		}
	}
	if n != 12 { // 9 wrong + 1 malformed + 1 expired + 1 after the window
		t.Errorf("%d wrong codes recorded, want 12", n)
	}
}

// TestRevokeGrant: revoking a grant ends its tokens at once, even while
// its mandate is live, and is idempotent.
func TestRevokeGrant(t *testing.T) {
	e := newDeviceEnv(t)
	tok, mandateID := e.tokens()
	if in := e.introspect(tok.str("access_token")); in.body["active"] != true { // now cached
		t.Fatalf("before: %s", in.raw)
	}
	m, err := e.svc.Get(e.ctx, mandateID)
	if err != nil || m.GrantID == "" {
		t.Fatalf("mandate = %+v, %v", m, err)
	}
	if err := e.srv.RevokeGrant(e.ctx, m.GrantID); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{tok.str("access_token"), tok.str("refresh_token")} {
		if in := e.introspect(token); in.body["active"] != false {
			t.Errorf("after RevokeGrant: %s", in.raw)
		}
	}
	wantError(t, "refresh after RevokeGrant",
		e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret),
		"invalid_grant")
	if err := e.srv.RevokeGrant(e.ctx, m.GrantID); err != nil {
		t.Errorf("second RevokeGrant: %v", err)
	}
	if err := e.srv.RevokeGrant(e.ctx, ""); err == nil {
		t.Error("RevokeGrant of an empty id succeeded")
	}
}

// TestDeviceFlowMetadata: the device endpoint and grant are announced when
// the flow is on.
func TestDeviceFlowMetadata(t *testing.T) {
	e := newDeviceEnv(t)
	md := e.srv.Metadata()
	if md.DeviceAuthorizationEndpoint != e.issuer+authz.PathDeviceAuthorization || !slices.Contains(md.GrantTypesSupported, authz.GrantTypeDeviceCode) {
		t.Errorf("metadata = %+v", md)
	}
}

func sha256Sum(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestDeviceFlowOptions: the flow needs both the mandate service and the
// device store; without them nothing of it is announced or served.
func TestDeviceFlowOptions(t *testing.T) {
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clk})
	keys := newKeys(t, st, clk)
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: &lateRevoker{},
		Recorder: audit.MandateRecorder(storetest.StartAuditLog(t, st, clk).Log), Clock: clk}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := authz.Config{Issuer: "https://as.example", HMACSecret: make([]byte, 32)}
	if _, err := authz.New(cfg, st, keys, authz.WithMandates(svc)); err == nil || !strings.Contains(err.Error(), "WithDeviceStore") {
		t.Errorf("WithMandates alone: %v", err)
	}
	if _, err := authz.New(cfg, st, keys, authz.WithDeviceStore(st)); err == nil || !strings.Contains(err.Error(), "WithMandates") {
		t.Errorf("WithDeviceStore alone: %v", err)
	}
	srv, err := authz.New(cfg, st, keys)
	if err != nil {
		t.Fatal(err)
	}
	md := srv.Metadata()
	if srv.DeviceFlowEnabled() || md.DeviceAuthorizationEndpoint != "" || slices.Contains(md.GrantTypesSupported, authz.GrantTypeDeviceCode) {
		t.Errorf("device flow off, metadata = %+v", md)
	}
	if _, err := srv.LookupUserCode(context.Background(), "BCDF-GHJK", "192.0.2.1"); err == nil {
		t.Error("LookupUserCode with the flow off succeeded")
	}
	if _, err := srv.AuthorizeDevice(context.Background(), authz.DeviceRequest{ClientID: "x"}); err == nil {
		t.Error("AuthorizeDevice with the flow off succeeded")
	}
}

// TestDeviceClientRegistration: clients may register the device code grant,
// public ones too, with refresh tokens; never with service scopes.
func TestDeviceClientRegistration(t *testing.T) {
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clk})
	srv, err := authz.New(authz.Config{Issuer: "https://as.example", HMACSecret: make([]byte, 32)}, st, newKeys(t, st, clk))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, spec := range []authz.ClientSpec{
		{Name: "Console", GrantTypes: []string{authz.GrantTypeDeviceCode}, Scopes: []string{"mail.read"}},
		{Name: "Tablet", AuthMethod: authz.AuthMethodNone, GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantRefreshToken}, Scopes: []string{"mail.read"}},
	} {
		if _, _, err := srv.RegisterClient(ctx, spec); err != nil {
			t.Errorf("%s: %v", spec.Name, err)
		}
	}
	for _, spec := range []authz.ClientSpec{
		{Name: "Service scope", GrantTypes: []string{authz.GrantTypeDeviceCode}, Scopes: []string{"audit.write"}},
		{Name: "Public service", AuthMethod: authz.AuthMethodNone, GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantClientCredentials}, Scopes: []string{"mail.read"}},
		{Name: "Refresh alone", GrantTypes: []string{authz.GrantRefreshToken, authz.GrantClientCredentials}, Scopes: []string{"mail.read"}},
	} {
		if _, _, err := srv.RegisterClient(ctx, spec); !errors.Is(err, authz.ErrInvalidClientSpec) {
			t.Errorf("%s: %v, want ErrInvalidClientSpec", spec.Name, err)
		}
	}
}

// TestDelegationExchangedAheadOfItsWindow: a colleague's client takes its
// grant when the holder approves, days before the absence. The access token
// is not valid before the window (nbf), introspects inactive and refreshes
// no more than that until the window opens and the holder is present; then
// a refresh gives a usable token.
func TestDelegationExchangedAheadOfItsWindow(t *testing.T) {
	e := newDeviceEnv(t)
	from := e.clk.Now().Add(48 * time.Hour).Truncate(time.Second)
	to := from.Add(72 * time.Hour)
	form := e.deviceForm()
	form.Del("duration")
	form.Set("kind", "delegation")
	form.Set("purpose_category", "absence")
	form.Set("not_before", from.Format(time.RFC3339))
	form.Set("not_after", to.Format(time.RFC3339))
	da := e.authorize(form, e.app.ID, e.appSecret)
	m := e.approve(da.str("mandate_id"))
	if !m.LeaseUntil.IsZero() {
		t.Fatalf("approval ahead of the window started a lease: %+v", m)
	}
	tok := e.poll(da.str("device_code"), e.app.ID, e.appSecret)
	if tok.status != http.StatusOK {
		t.Fatalf("exchange ahead of the window: %d %s", tok.status, tok.raw)
	}
	access, refresh := tok.str("access_token"), tok.str("refresh_token")
	claims := jwtClaims(t, access)
	if nbf, _ := claims["nbf"].(float64); int64(nbf) != from.Unix() {
		t.Errorf("nbf = %v, want the window's start %d", claims["nbf"], from.Unix())
	}
	if in := e.introspect(access); in.body["active"] != false {
		t.Errorf("before the window: %s", in.raw)
	}
	wantError(t, "refresh before the window",
		e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, e.app.ID, e.appSecret),
		"invalid_grant")

	// Inside the window, the holder says they are available: a refresh
	// gives a token that works, without nbf.
	e.clk.Advance(48*time.Hour + time.Minute)
	if _, err := e.svc.StartPresence(e.ctx, e.holder.ID, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Get(e.ctx, m.ID); got.State != mandate.StateActive {
		t.Fatalf("state = %s, want active", got.State)
	}
	if refresh == "" {
		t.Fatal("the exchange gave no refresh token")
	}
	r := e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, e.app.ID, e.appSecret)
	if r.status != http.StatusOK {
		t.Fatalf("refresh inside the window, holder present: %d %s", r.status, r.raw)
	}
	if c := jwtClaims(t, r.str("access_token")); c["nbf"] != nil {
		t.Errorf("a token issued inside the window has nbf %v", c["nbf"])
	}
	// (Introspecting it here would say expired: fosite stamps the refreshed
	// token's expiry with the wall clock, two days behind this test's clock.
	// TestMandateCacheFollowsHeartbeats covers introspection while present.)
}

// TestDevicePolicyScopeRefusal: a scope the structure's policy does not
// allow answers invalid_scope; a session longer than the policy allows
// answers invalid_request; nothing is created.
func TestDevicePolicyScopeRefusal(t *testing.T) {
	e := newDeviceEnv(t)
	p, err := e.svc.Policy(e.ctx, e.staff.StructureID)
	if err != nil {
		t.Fatal(err)
	}
	p.AllowedScopes = []string{mandate.ScopeMailRead}
	if _, err := e.svc.SetPolicy(e.ctx, mandate.Actor{Kind: mandate.ActorStaff, ID: e.staff.ID}, p); err != nil {
		t.Fatal(err)
	}
	r := e.post(authz.PathDeviceAuthorization, e.deviceForm(), e.app.ID, e.appSecret)
	if r.status != http.StatusBadRequest || r.str("error") != "invalid_scope" || !strings.Contains(r.str("error_description"), "mail.send") {
		t.Errorf("scope beyond the policy: %d %s", r.status, r.raw)
	}
	form := e.deviceForm()
	form.Set("scope", "mail.read")
	form.Set("duration", "7200")
	r = e.post(authz.PathDeviceAuthorization, form, e.app.ID, e.appSecret)
	if r.status != http.StatusBadRequest || r.str("error") != "invalid_request" {
		t.Errorf("duration beyond the policy: %d %s", r.status, r.raw)
	}
	if ms, err := e.svc.List(e.ctx, mandate.Query{StructureID: e.staff.StructureID, Limit: 10}); err != nil || len(ms) != 0 {
		t.Errorf("mandates created by refused requests: %d, %v", len(ms), err)
	}
}

// TestMandateTokensAreForTheMailGateway: whichever client gets a mandate
// token (here one registered with no audience), the configured mandate
// audience is in its aud, so the mail servers may introspect it.
func TestMandateTokensAreForTheMailGateway(t *testing.T) {
	e := newDeviceEnv(t)
	tok, _ := e.tokens()
	claims := jwtClaims(t, tok.str("access_token"))
	aud, _ := claims["aud"].([]any)
	if !slices.Contains(aud, any(mailGateway)) || len(aud) < 2 {
		t.Fatalf("aud = %v, want the client's audience and %s", claims["aud"], mailGateway)
	}
	// Introspection says the same; and a refresh keeps it.
	in := e.introspect(tok.str("access_token"))
	if got, _ := in.body["aud"].([]any); !slices.Contains(got, any(mailGateway)) {
		t.Errorf("introspected aud = %v", in.body["aud"])
	}
	r := e.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, e.app.ID, e.appSecret)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	if got, _ := jwtClaims(t, r.str("access_token"))["aud"].([]any); !slices.Contains(got, any(mailGateway)) {
		t.Errorf("refreshed aud = %v", got)
	}
}
