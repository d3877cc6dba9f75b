package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// consoleEnv is the sessions console over the real stores and services on
// SQLite: people, holders, the mandate service with its audit log, and the
// authorization server with the device flow. Structure "Trifouillis" has
// two mediators, an admin and an auditor, and serves Marie; "Ailleurs" has
// a mediator and an admin, and serves Jean.
type consoleEnv struct {
	*env
	svc     *mandate.Service
	hub     *mandate.Hub
	console *ui.ConsoleSessions
	secrets map[string]string // TOTP secrets by staff key
	staff   map[string]people.Staff
	marie   people.Holder
	jean    people.Holder
}

// consoleRevoker lets the mandate service revoke through the authorization
// server built after it.
type consoleRevoker struct{ srv **authz.Server }

func (r consoleRevoker) RevokeGrant(ctx context.Context, id string) error {
	return (*r.srv).RevokeGrant(ctx, id)
}

// consoleWatchers tells the hub of this process, as cmd/mandated's bus does.
type consoleWatchers struct{ hub *mandate.Hub }

func (w consoleWatchers) MandateChanged(_ context.Context, id string) { w.hub.Notify(id) }

func newConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	ctx := t.Context()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	sealer, err := seal.New(randomBytes(t, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	log := storetest.StartAuditLog(t, st, clock)
	ppl := people.NewService(st, sealer, clock, quiet, people.Config{})
	hub := mandate.NewHub()
	var srv *authz.Server
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: consoleRevoker{&srv},
		Watchers: consoleWatchers{hub}, Recorder: audit.MandateRecorder(log.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = authz.New(authz.Config{Issuer: "http://127.0.0.1", HMACSecret: randomBytes(t, 32)}, st, keys,
		authz.WithClock(clock), authz.WithLogger(quiet), authz.WithMandates(svc), authz.WithDeviceStore(st))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.EnsureConsoleClient(ctx); err != nil {
		t.Fatal(err)
	}
	holders, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: randomBytes(t, 32), Recorder: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	u := ui.New(ui.Deps{People: ppl, Consents: srv, Logger: quiet})
	e := echo.New()
	e.Use(middleware.RequestID())
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{TokenLookup: "form:_csrf"}))
	u.Register(e)
	console := ui.NewConsoleSessions(u, ui.ConsoleDeps{Mandates: svc, Device: srv, Holders: holders, Hub: hub, Sealer: sealer,
		Clock: clock, Heartbeat: 20 * time.Millisecond})
	console.Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ce := &consoleEnv{
		env: &env{t: t, clock: clock, store: st, people: ppl, authz: srv, ui: u, echo: e, url: ts.URL, client: client},
		svc: svc, hub: hub, console: console, secrets: map[string]string{}, staff: map[string]people.Staff{},
	}
	for _, s := range []struct{ key, role, structure string }{
		{"mediator", "mediator", "Trifouillis"}, {"colleague", "mediator", "Trifouillis"},
		{"admin", "admin", "Trifouillis"}, {"auditor", "auditor", "Trifouillis"},
		{"other", "mediator", "Ailleurs"}, {"otheradmin", "admin", "Ailleurs"},
	} {
		ce.enrolAs(s.key, s.role, s.structure)
	}
	by := func(key string) people.Principal {
		s := ce.staff[key]
		return people.Principal{Kind: "staff", ID: s.ID, Role: s.Role, StructureID: s.StructureID}
	}
	res, err := holders.Create(ctx, by("mediator"), ce.staff["mediator"].StructureID,
		people.HolderInput{Mailbox: "marie@example.org", DisplayName: "Marie Dupont", Email: "marie@example.net"})
	if err != nil {
		t.Fatal(err)
	}
	ce.marie = res.Holder
	res, err = holders.Create(ctx, by("other"), ce.staff["other"].StructureID,
		people.HolderInput{Mailbox: "jean@example.org", DisplayName: "Jean Martin", Email: "jean@example.net"})
	if err != nil {
		t.Fatal(err)
	}
	ce.jean = res.Holder
	return ce
}

func (ce *consoleEnv) enrolAs(key, role, structure string) {
	ce.t.Helper()
	ctx := ce.t.Context()
	s, token, err := ce.people.CreateStaff(ctx, key+"@example.fr", role, structure, false)
	if err != nil {
		ce.t.Fatal(err)
	}
	view, err := ce.people.BeginEnrolment(ctx, token)
	if err != nil {
		ce.t.Fatal(err)
	}
	if err := ce.people.CompleteEnrolment(ctx, token, "Agent "+key, testPassword, ce.code(view.TOTP.Secret)); err != nil {
		ce.t.Fatal(err)
	}
	ce.secrets[key], ce.staff[key] = view.TOTP.Secret, s
}

// as returns a browser of its own, signed in as the staff member key.
func (ce *consoleEnv) as(key string) *env {
	ce.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := *ce.env
	b.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := b.signIn(key+"@example.fr", testPassword, b.code(ce.secrets[key]), "")
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		ce.t.Fatalf("sign in as %s: %d", key, resp.StatusCode)
	}
	return &b
}

// sessionForm is a valid new-session form for Marie.
func (ce *consoleEnv) sessionForm(b *env) url.Values {
	ce.t.Helper()
	resp, page := b.get("/console/sessions/new")
	if resp.StatusCode != http.StatusOK {
		ce.t.Fatalf("new-session form: %d %s", resp.StatusCode, page)
	}
	return url.Values{"_csrf": {b.csrf(page)}, "holder": {ce.marie.ID}, "scope": {"mail.read", "mail.send"},
		"duration": {"30"}, "category": {"social"}, "purpose": {"Retrouver le courrier de la CAF"}}
}

var sessionLocation = regexp.MustCompile(`^/console/sessions/([A-Za-z0-9_-]+)$`)

// start posts a new-session form and returns the mandate's id.
func (ce *consoleEnv) start(b *env, form url.Values) string {
	ce.t.Helper()
	resp, page := b.post("/console/sessions/new", form)
	m := sessionLocation.FindStringSubmatch(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || m == nil {
		ce.t.Fatalf("start a session: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	return m[1]
}

func (ce *consoleEnv) count(q mandate.Query) int {
	ce.t.Helper()
	q.Limit = 500
	list, err := ce.svc.List(ce.t.Context(), q)
	if err != nil {
		ce.t.Fatal(err)
	}
	return len(list)
}

func deviceCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "mandated_device" {
			return c
		}
	}
	return nil
}

var userCodeShown = regexp.MustCompile(`id="user-code"[^>]*>([A-Z0-9-]+)<`)

func TestMediatorStartsASessionAndOnlyTheirBrowserShowsTheCode(t *testing.T) {
	ce := newConsoleEnv(t)
	b := ce.as("mediator")
	resp, page := b.get("/console/sessions/new")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("form: %d", resp.StatusCode)
	}
	mustContain(t, page, "Ouvrir une session accompagnée", "Marie Dupont · marie@example.org", "Lire les messages",
		"Envoyer des messages", `<option value="30" selected>30 minutes</option>`, `<option value="60">1 heure</option>`,
		"Droits sociaux", "Inclure les messages personnels")
	if strings.Contains(page, "Jean Martin") || strings.Contains(page, `value="90"`) {
		t.Error("the form offers another structure's holder or a duration past the policy's hour")
	}

	form := ce.sessionForm(b)
	resp, _ = b.post("/console/sessions/new", form)
	id := sessionLocation.FindStringSubmatch(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || id == nil {
		t.Fatalf("start: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := deviceCookieOf(resp)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/sessions/"+id[1] || ck.MaxAge <= 0 || ck.MaxAge > 600 {
		t.Fatalf("device cookie %+v", ck)
	}
	m, err := ce.svc.Get(t.Context(), id[1])
	if err != nil {
		t.Fatal(err)
	}
	if m.State != mandate.StateRequested || m.HolderID != ce.marie.ID || m.DelegateID != ce.staff["mediator"].ID ||
		m.ClientID != ui.ConsoleClientID || strings.Join(m.Scopes, " ") != "mail.read mail.send" || m.Duration != 30*time.Minute ||
		strings.Join(m.Exclusions, " ") != mandate.ExcludePersonal || m.PurposeCategory != mandate.PurposeSocial ||
		m.Purpose != "Retrouver le courrier de la CAF" || m.Presence != mandate.PresenceRequired || m.Kind != mandate.KindSession {
		t.Fatalf("mandate %+v", m)
	}

	resp, page = b.get("/console/sessions/" + m.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("session page: %d", resp.StatusCode)
	}
	code := userCodeShown.FindStringSubmatch(page)
	if code == nil {
		t.Fatalf("no user code on the page:\n%s", page)
	}
	mustContain(t, page, "Demandée : en attente de la réponse de la personne", `src="data:image/png;base64,`,
		"Sur son téléphone, la personne scanne ce code QR ou va sur", "http://127.0.0.1/device", `data-device-code="`,
		`data-client-id="mandated-console"`, "marie@example.org", "Terminer la session", "exclus")
	// In English on request.
	_, en := b.get("/console/sessions/"+m.ID, "Accept-Language", "en-GB,en;q=0.9")
	mustContain(t, en, `<html lang="en">`, "Requested: waiting for the person", "On their phone, the person scans this QR code",
		"End the session", "Social benefits")
	_, en = b.get("/console/sessions/new", "Accept-Language", "en")
	mustContain(t, en, "Open an assisted session", "Read messages", "1 hour", "Include personal messages")
	// The code on the page is the one the holder's page accepts.
	looked, err := ce.authz.LookupUserCode(t.Context(), code[1], "192.0.2.1")
	if err != nil || looked.ID != m.ID {
		t.Fatalf("the user code shown finds %+v, %v", looked, err)
	}

	// Another browser of the same mediator, and the structure's admin, see
	// the state but never the codes.
	for _, who := range []string{"mediator", "admin"} {
		_, page := ce.as(who).get("/console/sessions/" + m.ID)
		mustContain(t, page, "Demandée")
		if strings.Contains(page, code[1]) || strings.Contains(page, "data-device-code") {
			t.Errorf("%s's other browser shows the codes", who)
		}
	}
	// A cookie for another mandate, or tampered with, shows nothing either.
	other := ce.start(b, ce.sessionForm(b))
	forged := &http.Cookie{Name: "mandated_device", Value: ck.Value}
	req, _ := http.NewRequest(http.MethodGet, b.url+"/console/sessions/"+other, nil)
	req.AddCookie(forged)
	if _, page := b.do(req); strings.Contains(page, code[1]) || strings.Contains(page, "data-device-code") {
		t.Error("another mandate's cookie shows its codes")
	}
	mid := len(ck.Value) / 2
	flip := "A"
	if ck.Value[mid] == 'A' {
		flip = "B"
	}
	tampered := &http.Cookie{Name: "mandated_device", Value: ck.Value[:mid] + flip + ck.Value[mid+1:]}
	req, _ = http.NewRequest(http.MethodGet, b.url+"/console/sessions/"+m.ID, nil)
	req.AddCookie(tampered)
	jar, _ := cookiejar.New(nil)
	fresh := *b
	fresh.client = &http.Client{Jar: jar}
	for _, c := range b.client.Jar.Cookies(req.URL) {
		if c.Name != "mandated_device" {
			jar.SetCookies(req.URL, []*http.Cookie{c})
		}
	}
	if _, page := fresh.do(req); strings.Contains(page, "data-device-code") {
		t.Error("a tampered cookie shows codes")
	}
	// Once the holder answered, the code is no longer shown.
	if _, err := ce.svc.Approve(t.Context(), ce.marie.ID, m.ID, mandate.Approval{}); err != nil {
		t.Fatal(err)
	}
	_, page = b.get("/console/sessions/" + m.ID)
	mustContain(t, page, "Autorisée", "Temps restant : 30 min 00 s")
	if strings.Contains(page, `id="device"`) && !strings.Contains(page, `id="device" class="device" aria-labelledby="device-title" hidden`) {
		t.Error("the QR code is still shown once approved")
	}
}

func TestNewSessionRefusalsCreateNothing(t *testing.T) {
	ce := newConsoleEnv(t)
	b := ce.as("mediator")
	// The structure allows reading only, for 15 minutes at most.
	if _, err := ce.svc.SetPolicy(t.Context(), mandate.Actor{Kind: mandate.ActorStaff, ID: ce.staff["admin"].ID}, mandate.Policy{
		StructureID: ce.staff["admin"].StructureID, AllowedScopes: []string{mandate.ScopeMailRead},
		MaxSessionDuration: 15 * time.Minute, MaxDelegationDuration: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, page := b.get("/console/sessions/new")
	if strings.Contains(page, "Envoyer des messages") || strings.Contains(page, `value="30"`) {
		t.Error("the form offers what the policy forbids")
	}
	mustContain(t, page, `<option value="15" selected>15 minutes</option>`)
	for _, tt := range []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"no holder", func(f url.Values) { f.Del("holder") }, "Choisissez la personne dans la liste"},
		{"both", func(f url.Values) { f.Set("mailbox", "marie@example.org") }, "pas les deux"},
		{"bad mailbox", func(f url.Values) { f.Del("holder"); f.Set("mailbox", "pas-une-adresse") }, "Tapez une adresse de boîte mail"},
		{"another structure's holder", func(f url.Values) { f.Del("holder"); f.Set("mailbox", "jean@example.org") }, "Votre structure ne suit pas cette personne"},
		{"holder id of another structure", func(f url.Values) { f.Set("holder", ce.jean.ID) }, "Votre structure ne suit pas cette personne"},
		{"no scope", func(f url.Values) { f.Del("scope") }, "Cochez au moins une chose à faire"},
		{"scope past the policy", func(f url.Values) { f.Set("scope", "mail.send") }, "Votre structure ne permet pas une des actions cochées"},
		{"service scope", func(f url.Values) { f.Set("scope", "audit.write") }, "Votre structure ne permet pas une des actions cochées"},
		{"too long", func(f url.Values) { f.Set("duration", "30") }, "Choisissez une durée dans la liste"},
		{"no category", func(f url.Values) { f.Set("category", "") }, "Choisissez le type de démarche"},
		{"no purpose", func(f url.Values) { f.Set("purpose", "  ") }, "Écrivez pourquoi"},
		{"long purpose", func(f url.Values) { f.Set("purpose", strings.Repeat("a", 501)) }, "500 caractères au plus"},
	} {
		form := ce.sessionForm(b)
		form.Set("scope", "mail.read")
		form.Set("duration", "15")
		tt.change(form)
		resp, page := b.post("/console/sessions/new", form)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, tt.want) {
			t.Errorf("%s: %d, page lacks %q", tt.name, resp.StatusCode, tt.want)
		}
		if deviceCookieOf(resp) != nil {
			t.Errorf("%s: a device cookie was set", tt.name)
		}
	}
	// Without the CSRF token: refused.
	form := ce.sessionForm(b)
	form.Del("_csrf")
	form.Set("scope", "mail.read")
	form.Set("duration", "15")
	if resp, _ := b.post("/console/sessions/new", form); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no CSRF token: %d", resp.StatusCode)
	}
	if n := ce.count(mandate.Query{}); n != 0 {
		t.Fatalf("%d mandates after refused requests", n)
	}
	// Staff who may not ask: the admin and the auditor.
	for _, who := range []string{"admin", "auditor"} {
		if resp, _ := ce.as(who).get("/console/sessions/new"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s opens the form: %d", who, resp.StatusCode)
		}
	}
	// Signed out: sent to sign in.
	if resp, _ := ce.get("/console/sessions/new"); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/signin?return_to=%2Fconsole%2Fsessions%2Fnew" {
		t.Errorf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The same request within the policy works.
	form = ce.sessionForm(b)
	form.Set("scope", "mail.read")
	form.Set("duration", "15")
	ce.start(b, form)
}

func TestOnlyTheDelegateOrTheStructureSeesAndEndsASession(t *testing.T) {
	ce := newConsoleEnv(t)
	b := ce.as("mediator")
	first := ce.start(b, ce.sessionForm(b))
	second := ce.start(b, ce.sessionForm(b))
	for who, status := range map[string]int{
		"mediator": http.StatusOK, "admin": http.StatusOK, "auditor": http.StatusOK,
		"colleague": http.StatusNotFound, "other": http.StatusNotFound, "otheradmin": http.StatusNotFound,
	} {
		c := ce.as(who)
		paths := []string{"/console/sessions/" + first}
		if status == http.StatusNotFound { // (a stream that may be followed stays open)
			paths = append(paths, "/console/sessions/"+first+"/events", "/console/sessions/events?id="+first)
		}
		for _, path := range paths {
			if resp, _ := c.get(path); resp.StatusCode != status {
				t.Errorf("%s GET %s: %d, want %d", who, path, resp.StatusCode, status)
			}
		}
		// Ending: others of the structure and other structures cannot.
		if who == "mediator" || who == "admin" {
			continue
		}
		_, home := c.get("/")
		resp, _ := c.post("/console/sessions/"+first+"/end", url.Values{"_csrf": {c.csrf(home)}})
		want := http.StatusNotFound
		if who == "auditor" {
			want = http.StatusForbidden
		}
		if resp.StatusCode != want {
			t.Errorf("%s ends: %d, want %d", who, resp.StatusCode, want)
		}
	}
	if m, _ := ce.svc.Get(t.Context(), first); m.State != mandate.StateRequested {
		t.Fatalf("refused ends changed the mandate: %s", m.State)
	}
	if resp, _ := ce.as("mediator").get("/console/sessions/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown session: %d", resp.StatusCode)
	}

	// The delegate ends the first; the admin the second, from the list.
	_, page := b.get("/console/sessions/" + first)
	resp, _ := b.post("/console/sessions/"+first+"/end", url.Values{"_csrf": {b.csrf(page)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/sessions/"+first+"?done=ended" {
		t.Fatalf("end by delegate: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if m, _ := ce.svc.Get(t.Context(), first); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByDelegate {
		t.Fatalf("after the delegate's end: %s %s", m.State, m.EndReason)
	}
	_, page = b.get("/console/sessions/" + first + "?done=ended")
	mustContain(t, page, "La session est terminée", "Terminée", "La session a été terminée par le médiateur.")
	if strings.Contains(page, `id="end-session"`) {
		t.Error("an ended session still offers to end it")
	}
	resp, _ = b.post("/console/sessions/"+first+"/end", url.Values{"_csrf": {b.csrf(page)}})
	if resp.Header.Get("Location") != "/console/sessions/"+first+"?done=already" {
		t.Errorf("second end: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	a := ce.as("admin")
	_, page = a.get("/console/sessions")
	mustContain(t, page, "Les sessions de la structure", `action="/console/sessions/`+second+`/end"`)
	if strings.Contains(page, `action="/console/sessions/`+first+`/end"`) {
		t.Error("the list offers to end an ended session")
	}
	resp, _ = a.post("/console/sessions/"+second+"/end", url.Values{"_csrf": {a.csrf(page)}, "return": {"list"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/sessions?done=ended" {
		t.Fatalf("end by admin: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if m, _ := ce.svc.Get(t.Context(), second); m.EndReason != mandate.EndedByAdmin || m.EndedBy != ce.staff["admin"].ID {
		t.Fatalf("after the admin's end: %s by %s", m.EndReason, m.EndedBy)
	}
	// Without the CSRF token nothing is ended.
	third := ce.start(b, ce.sessionForm(b))
	if resp, _ := b.post("/console/sessions/"+third+"/end", url.Values{"_csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("end without CSRF: %d", resp.StatusCode)
	}
	if m, _ := ce.svc.Get(t.Context(), third); m.State != mandate.StateRequested {
		t.Errorf("an end without CSRF changed the mandate: %s", m.State)
	}
}

func TestSessionListShowsOnesOwnNewestFirstWithPaging(t *testing.T) {
	ce := newConsoleEnv(t)
	b := ce.as("mediator")
	c := ce.as("colleague")
	var ids []string
	for range 27 {
		ids = append(ids, ce.start(b, ce.sessionForm(b)))
		ce.clock.Advance(time.Second)
	}
	theirs := ce.start(c, ce.sessionForm(c))
	_, page := b.get("/console/sessions")
	mustContain(t, page, "Mes sessions accompagnées", "Sessions plus anciennes", `href="/console/sessions/new"`)
	if n := strings.Count(page, `data-session="`); n != 25 {
		t.Fatalf("first page shows %d sessions", n)
	}
	if strings.Index(page, ids[26]) > strings.Index(page, ids[2]) || strings.Contains(page, ids[0]) || strings.Contains(page, theirs) {
		t.Error("first page: not newest first, or shows the oldest or a colleague's")
	}
	if strings.Contains(page, "/end\"") {
		t.Error("a mediator's list offers the admin's end buttons")
	}
	next := regexp.MustCompile(`href="(/console/sessions\?before=[^"]+)"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatal("no next link")
	}
	_, page = b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	if n := strings.Count(page, `data-session="`); n != 2 || !strings.Contains(page, ids[0]) || !strings.Contains(page, ids[1]) {
		t.Errorf("second page shows %d sessions", n)
	}
	if strings.Contains(page, "Sessions plus anciennes") {
		t.Error("the last page links further")
	}
	if resp, _ := b.get("/console/sessions?before=garbage"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad cursor: %d", resp.StatusCode)
	}
	// The admin sees the structure's, the colleague's included.
	_, page = ce.as("admin").get("/console/sessions")
	mustContain(t, page, theirs, "Règles des sessions et remplacements")
	_, page = ce.as("otheradmin").get("/console/sessions")
	mustContain(t, page, "Aucune session pour")
	if resp, _ := ce.as("auditor").get("/console/sessions"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor's list: %d", resp.StatusCode)
	}
}

// readState reads the next "state" event of a stream.
func readState(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a state event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "state":
			var v map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
}

func TestSessionEventsFollowTheMandateUntilItEnds(t *testing.T) {
	ce := newConsoleEnv(t)
	b := ce.as("mediator")
	id := ce.start(b, ce.sessionForm(b))
	// A guard against a hang, not a timing assertion.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/console/sessions/"+id+"/events", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	if ev := readState(t, r); ev["state"] != "requested" || ev["id"] != id {
		t.Fatalf("first event %v", ev)
	}
	// While nothing changes, a comment every heartbeat keeps it open.
	line, err := r.ReadString('\n')
	for err == nil && line == "\n" {
		line, err = r.ReadString('\n')
	}
	if err != nil || line != ": keep-alive\n" {
		t.Fatalf("after the first event: %q, %v", line, err)
	}
	if ce.hub.Followers(id) != 1 { // it subscribed before sending its first event
		t.Fatalf("%d streams follow the mandate", ce.hub.Followers(id))
	}
	if _, err := ce.svc.Approve(t.Context(), ce.marie.ID, id, mandate.Approval{}); err != nil {
		t.Fatal(err)
	}
	ev := readState(t, r)
	if ev["state"] != "approved" || ev["remaining"] != float64(1800) || ev["not_after"] == "" {
		t.Fatalf("after approval %v", ev)
	}
	if _, err := ce.svc.End(t.Context(), id, mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: ce.marie.ID}, ""); err != nil {
		t.Fatal(err)
	}
	if ev := readState(t, r); ev["state"] != "ended" || ev["end_reason"] != "holder" {
		t.Fatalf("after the end %v", ev)
	}
	// The stream ends with the mandate.
	if _, err := r.ReadString('\n'); err == nil {
		rest, _ := r.ReadString(0)
		if strings.Contains(rest, "event:") {
			t.Errorf("the stream goes on after the end: %q", rest)
		}
	}

	// The list's stream names each session.
	other := ce.start(b, ce.sessionForm(b))
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/console/sessions/events?id="+other+"&id="+id, nil)
	resp2, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	r = bufio.NewReader(resp2.Body)
	got := map[string]string{}
	for range 2 {
		ev := readState(t, r)
		got[ev["id"].(string)] = ev["state"].(string)
	}
	if got[other] != "requested" || got[id] != "ended" {
		t.Fatalf("list stream %v", got)
	}
	if _, err := ce.svc.End(t.Context(), other, mandate.EndedByDelegate, mandate.Actor{Kind: mandate.ActorStaff, ID: ce.staff["mediator"].ID}, ""); err != nil {
		t.Fatal(err)
	}
	if ev := readState(t, r); ev["id"] != other || ev["state"] != "ended" {
		t.Fatalf("list stream after the end %v", ev)
	}
	// A server's write timeout does not cut a stream: each write moves it.
	short := httptest.NewUnstartedServer(ce.echo)
	short.Config.WriteTimeout = 150 * time.Millisecond
	short.Start()
	defer short.Close()
	live := ce.start(b, ce.sessionForm(b))
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, short.URL+"/console/sessions/"+live+"/events", nil)
	for _, c := range b.client.Jar.Cookies(req.URL) { // the same host: the session cookie
		req.AddCookie(c)
	}
	resp4, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp4.Body.Close()
	r = bufio.NewReader(resp4.Body)
	readState(t, r)
	for beats := 0; beats < 25; { // 25 heartbeats of 20 ms outlast the timeout
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream was cut after %d heartbeats: %v", beats, err)
		}
		if line == ": keep-alive\n" {
			beats++
		}
	}

	// Shutting the server down ends the streams still open.
	third := ce.start(b, ce.sessionForm(b))
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/console/sessions/"+third+"/events", nil)
	resp3, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp3.Body.Close()
	r = bufio.NewReader(resp3.Body)
	readState(t, r)
	ce.console.Shutdown()
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // the server ended the stream
		}
		if err != nil {
			t.Fatalf("the stream did not end: %v", err)
		}
		if strings.HasPrefix(line, "event:") {
			t.Fatalf("an event after shutdown: %q", line)
		}
	}
	// Someone else's sessions are left out of a list stream.
	if resp, _ := ce.as("other").get("/console/sessions/events?id=" + other); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another structure's list stream: %d", resp.StatusCode)
	}
}

func TestAdminSetsTheStructurePolicy(t *testing.T) {
	ce := newConsoleEnv(t)
	a := ce.as("admin")
	resp, page := a.get("/admin/policy")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("policy page: %d", resp.StatusCode)
	}
	mustContain(t, page, "Règles des sessions et remplacements", "Règles par défaut", `<option value="60" selected>1 heure</option>`,
		`<option value="336" selected>14 jours</option>`, "Supprimer des messages")
	post := func(change func(url.Values)) (*http.Response, string) {
		_, page := a.get("/admin/policy")
		f := url.Values{"_csrf": {a.csrf(page)}, "scope": {"mail.read", "mail.organize"}, "max_session": {"45"}, "max_delegation": {"168"}}
		change(f)
		return a.post("/admin/policy", f)
	}
	for _, tt := range []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"no scope", func(f url.Values) { f.Del("scope") }, "Cochez au moins une action."},
		{"service scope", func(f url.Values) { f.Add("scope", "audit.write") }, "Une des actions cochées"},
		{"odd session", func(f url.Values) { f.Set("max_session", "1000") }, "Choisissez une durée de session dans la liste."},
		{"odd delegation", func(f url.Values) { f.Set("max_delegation", "0") }, "Choisissez une durée de remplacement dans la liste."},
	} {
		resp, page := post(tt.change)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, tt.want) {
			t.Errorf("%s: %d, lacks %q", tt.name, resp.StatusCode, tt.want)
		}
	}
	if p, _ := ce.svc.Policy(t.Context(), ce.staff["admin"].StructureID); !p.UpdatedAt.IsZero() {
		t.Fatal("refused edits stored a policy")
	}
	resp, _ = post(func(f url.Values) { f.Set("relaxed", "1") })
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/policy?done=1" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	p, _ := ce.svc.Policy(t.Context(), ce.staff["admin"].StructureID)
	if strings.Join(p.AllowedScopes, " ") != "mail.read mail.organize" || p.MaxSessionDuration != 45*time.Minute ||
		p.MaxDelegationDuration != 7*24*time.Hour || !p.AllowRelaxedPresence || p.UpdatedBy != ce.staff["admin"].ID {
		t.Fatalf("stored %+v", p)
	}
	_, page = a.get("/admin/policy?done=1")
	mustContain(t, page, "Les règles sont enregistrées", `<option value="45" selected>45 minutes</option>`, "Modifiées le 4 mars 2030 à")
	// The mediator's form follows it.
	_, page = ce.as("mediator").get("/console/sessions/new")
	mustContain(t, page, "Ranger les messages", `<option value="45">45 minutes</option>`)
	if strings.Contains(page, "Envoyer des messages") || strings.Contains(page, `value="60"`) {
		t.Error("the form offers what the new policy forbids")
	}

	// Others: mediators, another structure's admin (even naming this one).
	for _, who := range []string{"mediator", "auditor"} {
		if resp, _ := ce.as(who).get("/admin/policy"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s opens the policy: %d", who, resp.StatusCode)
		}
	}
	o := ce.as("otheradmin")
	if resp, _ := o.get("/admin/policy?structure=" + ce.staff["admin"].StructureID); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another structure's admin opens this policy: %d", resp.StatusCode)
	}
	_, home := o.get("/admin/policy")
	resp, _ = o.post("/admin/policy", url.Values{"_csrf": {o.csrf(home)}, "structure": {ce.staff["admin"].StructureID},
		"scope": {"mail.delete"}, "max_session": {"5"}, "max_delegation": {"24"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another structure's admin saves this policy: %d", resp.StatusCode)
	}
	// Without the CSRF token: refused.
	if resp, _ := a.post("/admin/policy", url.Values{"scope": {"mail.delete"}, "max_session": {"5"}, "max_delegation": {"24"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no CSRF: %d", resp.StatusCode)
	}
	if p2, _ := ce.svc.Policy(t.Context(), ce.staff["admin"].StructureID); p2.MaxSessionDuration != 45*time.Minute {
		t.Errorf("refused posts changed the policy: %+v", p2)
	}
}

func TestHomeLinksToTheConsole(t *testing.T) {
	ce := newConsoleEnv(t)
	for who, want := range map[string]bool{"mediator": true, "admin": true, "auditor": false} {
		_, page := ce.as(who).get("/")
		if got := strings.Contains(page, `href="/console/sessions"`); got != want {
			t.Errorf("%s's home links to the console: %v", who, got)
		}
	}
}
