package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// noticeEnv is the app as serve wires it for access notices — settings
// from the flags' defaults, the real store (SQLite), audit log, mandate
// service and authorization server with the token hook — on a test clock,
// sending SMS to a real webhook listener and email to a real SMTP one.
type noticeEnv struct {
	t       *testing.T
	a       *app
	clock   *storetest.Clock
	notices *accessNotices
	logged  *syncBuffer
	sms     *notifytest.WebhookServer
	mail    *notifytest.SMTPServer
	token   string // the token endpoint's URL
	client  *authz.Client
	secret  string
}

const noticeStructure = "lyon"

func newNoticeEnv(t *testing.T) *noticeEnv {
	t.Helper()
	ctx := t.Context()
	cfg := serveConfig(t, "--issuer", "https://id.example.org/")
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)) // 11:00 in Paris
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	auditLog := storetest.StartAuditLog(t, st, clock)
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	e := &noticeEnv{t: t, clock: clock, logged: &syncBuffer{}, sms: notifytest.StartWebhook(t), mail: notifytest.StartSMTP(t)}
	cfg.Notify.SMSWebhookURL = e.sms.URL() // as configured: SMS first
	e.a = &app{cfg: cfg, log: slog.New(slog.NewTextHandler(e.logged, nil)), clock: clock, store: st, audit: auditLog.Log,
		notifier: notify.Router{notify.SMS: notifytest.WebhookNotifier(t, e.sms), notify.Email: notifytest.SMTPNotifier(t, e.mail)},
		secrets:  secrets{Sealer: sealer, HMAC: bytes.Repeat([]byte{3}, 32), CodeKey: bytes.Repeat([]byte{4}, 32)}}
	e.a.people = people.NewService(st, sealer, clock, quiet, people.Config{Recorder: auditLog.Log, Holders: st})
	rev := &lateRevoker{e.a}
	e.a.mandates, err = mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: rev,
		Recorder: audit.MandateRecorder(auditLog.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.notices = e.a.newAccessNotices()
	e.a.notices = e.notices
	e.a.authz, err = authz.New(authz.Config{Issuer: cfg.Issuer, HMACSecret: e.a.secrets.HMAC}, st, keys,
		authz.WithClock(clock), authz.WithLogger(quiet), authz.WithRecorder(auditLog.Log),
		authz.WithMandates(e.a.mandatesForAuthz()), authz.WithDeviceStore(st), authz.WithTokenHook(e.notices.hook))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(e.a.authz.Token))
	t.Cleanup(ts.Close)
	e.token = ts.URL
	e.client, e.secret, err = e.a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Poste de l'accueil",
		GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantRefreshToken}, Scopes: []string{mandate.ScopeMailRead}})
	if err != nil {
		t.Fatal(err)
	}

	now := clock.Now()
	for _, err := range []error{
		st.CreateStructure(ctx, people.Structure{ID: noticeStructure, Name: "Mairie de Lyon", CreatedAt: now}),
		st.CreateStaff(ctx, people.Staff{ID: "paul", Email: "paul@lyon.example", DisplayName: "Paul Martin", Role: people.RoleMediator,
			StructureID: noticeStructure, Status: people.StaffActive, CreatedAt: now}),
		st.CreateHolder(ctx, people.Holder{ID: "jeanne", Mailbox: "jeanne.dupont@lyon.example", DisplayName: "Jeanne Dupont",
			Phone: "+33612345678", Email: "jeanne@perso.example", Language: "fr", CreatedAt: now}, noticeStructure),
		st.CreateHolder(ctx, people.Holder{ID: "john", Mailbox: "john.smith@lyon.example", DisplayName: "John Smith",
			Phone: "+33698765432", Language: "en", CreatedAt: now}, noticeStructure),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// ask is Paul's device authorization request on holder's mailbox: a
// session, or a delegation for from..from+2 days; the holder approves it.
func (e *noticeEnv) ask(holder string, kind mandate.Kind, from time.Time) authz.DeviceResponse {
	e.t.Helper()
	req := authz.DeviceRequest{ClientID: e.client.ID, Scopes: []string{mandate.ScopeMailRead}, HolderID: holder, Kind: kind,
		Purpose: "Congés", PurposeCategory: mandate.PurposeAbsence, ActorStaffID: "paul", ActorStructure: noticeStructure}
	if kind == mandate.KindDelegation {
		req.NotBefore, req.NotAfter = from, from.Add(48*time.Hour)
	} else {
		req.Duration, req.PurposeCategory = 30*time.Minute, mandate.PurposeSocial
	}
	d, err := e.a.authz.AuthorizeDevice(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("device authorization: %v", err)
	}
	if _, err := e.a.mandates.Approve(e.t.Context(), holder, d.MandateID, mandate.Approval{}); err != nil {
		e.t.Fatalf("approve: %v", err)
	}
	e.notices.wait() // the request's notice
	return d
}

// post calls the token endpoint as the client and waits for the notices
// the call started; it returns the status and the refresh token.
func (e *noticeEnv) post(form url.Values) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.client.ID), url.QueryEscape(e.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	e.notices.wait()
	return resp.StatusCode, body.RefreshToken
}

func (e *noticeEnv) exchange(deviceCode string) string {
	e.t.Helper()
	status, refresh := e.post(url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {deviceCode}})
	if status != http.StatusOK {
		e.t.Fatalf("device code exchange: %d", status)
	}
	return refresh
}

// refresh says the holder is available (a delegation that needs their
// presence) and refreshes; it returns the next refresh token.
func (e *noticeEnv) refresh(holder, mandateID, refresh string) string {
	e.t.Helper()
	if _, err := e.a.mandates.StartPresence(e.t.Context(), holder, mandateID, ""); err != nil {
		e.t.Fatalf("presence: %v", err)
	}
	status, next := e.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	if status != http.StatusOK {
		e.t.Fatalf("refresh: %d", status)
	}
	return next
}

// isRequestNotice tells a request notice (a delegation awaits the
// holder's answer) from an access notice.
func isRequestNotice(text string) bool {
	return strings.Contains(text, "vous demande l'accès") || strings.Contains(text, "asks to access")
}

// smsDelivered are the SMS the gateway accepted so far: request notices
// when requests, else access notices.
func (e *noticeEnv) smsDelivered(requests bool) []notify.WebhookPayload {
	var out []notify.WebhookPayload
	for _, c := range e.sms.Calls() {
		if c.Status < 300 && isRequestNotice(c.Payload.Text) == requests {
			out = append(out, c.Payload)
		}
	}
	return out
}

// delivered are the access notices the SMS gateway accepted so far.
func (e *noticeEnv) delivered() []notify.WebhookPayload { return e.smsDelivered(false) }

// sent is how many access notices were delivered so far, by SMS or email.
func (e *noticeEnv) sent() int {
	n := len(e.delivered())
	for _, m := range e.mail.Messages() {
		if !isRequestNotice(m.Text) {
			n++
		}
	}
	return n
}

func (e *noticeEnv) wantSent(what string, n int) {
	e.t.Helper()
	if got := e.sent(); got != n {
		e.t.Errorf("%s: %d notices sent in all, want %d", what, got, n)
	}
}

// TestColleagueAccessNotifiesTheHolder: each time a colleague's client
// gets tokens under a delegation, the holder gets one short message on
// their own phone — who, which mailbox, when, where to stop it — at most
// one per delegation per 15 minutes; a session (the holder is there) sends
// none; a delegation exchanged ahead of its window is told at its first
// real access.
func TestColleagueAccessNotifiesTheHolder(t *testing.T) {
	e := newNoticeEnv(t)

	d := e.ask("jeanne", mandate.KindDelegation, e.clock.Now())
	// The request was told to the holder, with the link to answer it.
	if reqs := e.smsDelivered(true); len(reqs) != 1 || !strings.Contains(reqs[0].Text,
		"Paul Martin (Mairie de Lyon) vous demande l'accès à votre boîte mail jeanne.dupont@lyon.example du 4 mars 2030 à 11:00 au 6 mars 2030 à 11:00") ||
		!strings.Contains(reqs[0].Text, "https://id.example.org/holder/mandates/"+d.MandateID+"/approve") {
		t.Errorf("request notices: %+v", reqs)
	}
	refresh := e.exchange(d.DeviceCode)
	e.wantSent("the first token", 1)
	calls := e.delivered()
	if len(calls) == 0 {
		t.Fatal("no SMS")
	}
	sms := calls[0]
	if sms.To != "+33612345678" || sms.Language != "fr" {
		t.Errorf("SMS to %s in %s", sms.To, sms.Language)
	}
	for _, want := range []string{"Paul Martin (Mairie de Lyon) a accédé à votre boîte mail jeanne.dupont@lyon.example",
		"le 4 mars 2030 à 11:00", "délégation", "https://id.example.org/holder/mandates"} {
		if !strings.Contains(sms.Text, want) {
			t.Errorf("SMS lacks %q:\n%s", want, sms.Text)
		}
	}

	e.clock.Advance(5 * time.Minute)
	refresh = e.refresh("jeanne", d.MandateID, refresh)
	e.clock.Advance(9*time.Minute + 59*time.Second)
	refresh = e.refresh("jeanne", d.MandateID, refresh)
	e.wantSent("refreshes within 15 minutes", 1)
	e.clock.Advance(time.Second) // 15 minutes after the notice
	e.refresh("jeanne", d.MandateID, refresh)
	e.wantSent("a refresh 15 minutes later", 2)
	if calls := e.delivered(); len(calls) == 2 && !strings.Contains(calls[1].Text, "à 11:15") {
		t.Errorf("second notice: %s", calls[1].Text)
	}

	// A session: the holder is in the room; nothing is sent.
	s := e.ask("jeanne", mandate.KindSession, time.Time{})
	e.exchange(s.DeviceCode)
	e.wantSent("a session's token", 2)

	// A delegation approved ahead of its window: its token works only
	// from the window's start, and that is when the holder is told.
	ahead := e.ask("jeanne", mandate.KindDelegation, e.clock.Now().Add(24*time.Hour))
	r := e.exchange(ahead.DeviceCode)
	e.wantSent("a token ahead of the window", 2)
	if n := len(e.smsDelivered(true)); n != 2 {
		t.Errorf("%d request notices after two delegations and a session, want 2", n)
	}
	// A third request within 5 minutes of the last one is not told (it
	// waits in the holder's list all the same).
	e.ask("jeanne", mandate.KindDelegation, e.clock.Now().Add(48*time.Hour))
	if n := len(e.smsDelivered(true)); n != 2 {
		t.Errorf("%d request notices after a third request at once, want 2", n)
	}
	e.clock.Advance(24*time.Hour + time.Minute)
	e.refresh("jeanne", ahead.MandateID, r)
	e.wantSent("the first access inside the window", 3)
}

// TestFailedNoticeNeverFailsTheToken: the SMS gateway refuses, the holder
// has no email: the token is issued all the same, the failure is logged
// (not the message), and the next access tries again.
func TestFailedNoticeNeverFailsTheToken(t *testing.T) {
	e := newNoticeEnv(t)
	d := e.ask("john", mandate.KindDelegation, e.clock.Now())
	if n := len(e.smsDelivered(true)); n != 1 { // the request, told before the gateway fails
		t.Fatalf("%d request notices", n)
	}
	e.sms.Respond(http.StatusBadRequest)
	refresh := e.exchange(d.DeviceCode) // fails the test unless 200
	if calls := e.sms.Calls(); len(calls) != 2 || calls[1].Status != http.StatusBadRequest {
		t.Fatalf("gateway calls: %+v", calls)
	}
	if n := e.sent(); n != 0 {
		t.Errorf("%d notices delivered while the gateway refused", n)
	}
	logged := e.logged.String()
	if !strings.Contains(logged, "access notice not sent") || !strings.Contains(logged, d.MandateID) {
		t.Errorf("the failure is not logged:\n%s", logged)
	}
	if strings.Contains(logged, "accessed your mailbox") {
		t.Errorf("the log holds the message:\n%s", logged)
	}
	// The audit log has the access all the same.
	page, err := e.a.audit.Query(t.Context(), audit.Filter{MandateID: d.MandateID, Action: audit.ActionTokenIssued})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("token.issued events: %d, %v", len(page.Events), err)
	}

	// The next access, a minute later, is told (in English, for John).
	e.clock.Advance(time.Minute)
	e.refresh("john", d.MandateID, refresh)
	var told []string
	for _, c := range e.delivered() {
		told = append(told, c.Text)
	}
	if len(told) != 1 || !strings.Contains(told[0], "Paul Martin (Mairie de Lyon) accessed your mailbox john.smith@lyon.example on 4 March 2030 at 11:01 (Paris time)") {
		t.Errorf("notices after the failure: %q", told)
	}
}

// TestOpenAppWiresAccessNotices: the app as serve opens it (openApp) tells
// the holder of a colleague's access under a delegation: the token hook is
// wired into the authorization server the binary serves.
func TestOpenAppWiresAccessNotices(t *testing.T) {
	ctx := t.Context()
	cfg := serveConfig(t, "--data-dir", t.TempDir(), "--issuer", "https://id.example.org", "--log-level", "error")
	a, err := openApp(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	sms := notifytest.StartWebhook(t)
	a.notifier = notifytest.WebhookNotifier(t, sms) // read when a notice is sent
	cfg.Notify.SMSWebhookURL = sms.URL()            // SMS first, as configured

	now := time.Now()
	for _, err := range []error{
		a.store.CreateStructure(ctx, people.Structure{ID: noticeStructure, Name: "Mairie de Lyon", CreatedAt: now}),
		a.store.CreateStaff(ctx, people.Staff{ID: "paul", Email: "paul@lyon.example", DisplayName: "Paul Martin", Role: people.RoleMediator,
			StructureID: noticeStructure, Status: people.StaffActive, CreatedAt: now}),
		a.store.CreateHolder(ctx, people.Holder{ID: "jeanne", Mailbox: "jeanne.dupont@lyon.example", DisplayName: "Jeanne Dupont",
			Phone: "+33612345678", Language: "fr", CreatedAt: now}, noticeStructure),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	client, secret, err := a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Poste de l'accueil",
		GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantRefreshToken}, Scopes: []string{mandate.ScopeMailRead}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.authz.AuthorizeDevice(ctx, authz.DeviceRequest{ClientID: client.ID, Scopes: []string{mandate.ScopeMailRead},
		HolderID: "jeanne", Kind: mandate.KindDelegation, NotBefore: now, NotAfter: now.Add(48 * time.Hour),
		Purpose: "Congés", PurposeCategory: mandate.PurposeAbsence, ActorStaffID: "paul", ActorStructure: noticeStructure})
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if _, err := a.mandates.Approve(ctx, "jeanne", d.MandateID, mandate.Approval{}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	ts := httptest.NewServer(http.HandlerFunc(a.authz.Token))
	t.Cleanup(ts.Close)
	form := url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {d.DeviceCode}}
	req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client.ID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("device code exchange: %d", resp.StatusCode)
	}
	a.notices.wait()
	var texts []string
	for _, c := range sms.Calls() {
		texts = append(texts, c.Payload.Text)
	}
	if len(texts) != 2 || !strings.Contains(texts[0], "Paul Martin (Mairie de Lyon) vous demande l'accès à votre boîte mail jeanne.dupont@lyon.example") ||
		!strings.Contains(texts[1], "Paul Martin (Mairie de Lyon) a accédé à votre boîte mail jeanne.dupont@lyon.example") {
		t.Errorf("notices (the request, then the access): %q", texts)
	}
}
