package ui_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// The real services are what the holder's mandate pages need.
var (
	_ ui.HolderMandates = (*mandate.Service)(nil)
	_ ui.UserCodes      = (*authz.Server)(nil)
)

// mandateEnv is the holder's mandate pages over the real mandate service,
// authorization server (device flow on), people and audit log on SQLite,
// behind the server's own middleware (CSRF included).
type mandateEnv struct {
	t       *testing.T
	clock   *storetest.Clock
	store   *store.Store
	people  *people.Service
	holders *people.Holders
	authz   *authz.Server
	svc     *mandate.Service
	log     *storetest.AuditLog
	url     string
	client  string // the mediator's OAuth2 client (device code grant)
	secret  string // its secret
	token   string // the token endpoint's URL
	staff   people.Staff
}

// lateRevoker revokes through the authorization server, built after the
// mandate service.
type lateRevoker struct{ srv **authz.Server }

func (r lateRevoker) RevokeGrant(ctx context.Context, id string) error {
	return (*r.srv).RevokeGrant(ctx, id)
}

// hubWatchers tells the hub of every change (one process: no bus).
type hubWatchers struct{ hub *mandate.Hub }

func (w hubWatchers) MandateChanged(_ context.Context, id string) { w.hub.Notify(id) }

func newMandateEnv(t *testing.T) *mandateEnv {
	t.Helper()
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	sealer, err := seal.New(randomBytes(t, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ps := people.NewService(st, sealer, clock, quiet, people.Config{Holders: st})
	log := storetest.StartAuditLog(t, st, clock)
	hub := mandate.NewHub()
	var srv *authz.Server
	dir := people.NewDirectory(st)
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: dir, Revoker: lateRevoker{&srv},
		Watchers: hubWatchers{hub}, Recorder: audit.MandateRecorder(log.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = authz.New(authz.Config{Issuer: "http://127.0.0.1", HMACSecret: randomBytes(t, 32)}, st, keys,
		authz.WithClock(clock), authz.WithLogger(quiet), authz.WithMandates(svc), authz.WithDeviceStore(st), authz.WithRecorder(log))
	if err != nil {
		t.Fatal(err)
	}
	tokens := httptest.NewServer(http.HandlerFunc(srv.Token))
	t.Cleanup(tokens.Close)
	client, secret, err := srv.RegisterClient(ctx, authz.ClientSpec{Name: "Console", GrantTypes: []string{authz.GrantTypeDeviceCode},
		Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}})
	if err != nil {
		t.Fatal(err)
	}
	smtp := notifytest.StartSMTP(t)
	holders, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: bytes.Repeat([]byte{5}, 32),
		Notifier: notify.Router{notify.Email: notifytest.SMTPNotifier(t, smtp)}, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}

	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet})
	u := ui.New(ui.Deps{People: ps, Logger: quiet})
	u.Register(e)
	ui.NewHolderPages(u, holders).Register(e)
	ui.NewHolderMandatePages(u, svc, srv, dir, hub, ui.HolderMandateConfig{Clock: clock, KeepAlive: time.Hour,
		Receipts: srv, ReceiptKeysURL: "https://id.example.org" + authz.PathJWKS, Events: log.Log}).Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)

	env := &mandateEnv{t: t, clock: clock, store: st, people: ps, holders: holders, authz: srv, svc: svc, log: log,
		url: ts.URL, client: client.ID, secret: secret, token: tokens.URL}
	env.staff = env.mediator("agent@trifouillis.fr", "Agent Durand")
	return env
}

// mediator creates and enrols a mediator of the Mairie de Trifouillis.
func (e *mandateEnv) mediator(email, name string) people.Staff {
	e.t.Helper()
	ctx := e.t.Context()
	_, token, err := e.people.CreateStaff(ctx, email, "mediator", "Mairie de Trifouillis", false)
	if err != nil {
		e.t.Fatal(err)
	}
	view, err := e.people.BeginEnrolment(ctx, token)
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second)
	code, err := totp.GenerateCode(view.TOTP.Secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.people.CompleteEnrolment(ctx, token, name, testPassword, code); err != nil {
		e.t.Fatal(err)
	}
	st, err := e.store.FindStaffByEmail(ctx, email)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// holder creates a holder the mediator's structure serves and signs them in
// on a browser of their own.
func (e *mandateEnv) holder(mailbox, name string) *holderBrowser {
	e.t.Helper()
	ctx := e.t.Context()
	by := people.Principal{Kind: "staff", ID: e.staff.ID, Role: e.staff.Role, StructureID: e.staff.StructureID}
	res, err := e.holders.Create(ctx, by, e.staff.StructureID, people.HolderInput{Mailbox: mailbox, DisplayName: name, Email: "contact." + mailbox})
	if err != nil {
		e.t.Fatal(err)
	}
	b := e.browser()
	cookie, _, err := e.people.StartSession(ctx, people.HolderPrincipal(res.Holder))
	if err != nil {
		e.t.Fatal(err)
	}
	u, _ := url.Parse(e.url)
	b.jar.SetCookies(u, []*http.Cookie{{Name: ui.DefaultCookieName, Value: cookie, Path: "/"}})
	b.holder = res.Holder
	return b
}

// browser is a client with no session.
func (e *mandateEnv) browser() *holderBrowser {
	jar, _ := cookiejar.New(nil)
	return &holderBrowser{e: e, jar: jar, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// ask is the mediator's device authorization request for holder.
func (e *mandateEnv) ask(holderID string, includePersonal bool) authz.DeviceResponse {
	e.t.Helper()
	resp, err := e.authz.AuthorizeDevice(e.t.Context(), authz.DeviceRequest{
		ClientID: e.client, Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}, HolderID: holderID,
		Duration: 30 * time.Minute, Purpose: "Dossier de prime d'activité", PurposeCategory: mandate.PurposeSocial,
		IncludePersonal: includePersonal, ActorStaffID: e.staff.ID, ActorStructure: e.staff.StructureID,
	})
	if err != nil {
		e.t.Fatalf("device authorization: %v", err)
	}
	return resp
}

func (e *mandateEnv) mandate(id string) mandate.Mandate {
	e.t.Helper()
	m, err := e.svc.Get(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// holderBrowser is one holder's browser.
type holderBrowser struct {
	e      *mandateEnv
	jar    *cookiejar.Jar
	c      *http.Client
	holder people.Holder
	token  string // the CSRF token of the last page seen
}

var csrfInPage = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *holderBrowser) do(req *http.Request) (*http.Response, string) {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		b.e.t.Fatal(err)
	}
	body := buf.String()
	if m := csrfInPage.FindStringSubmatch(body); m != nil {
		b.token = m[1]
	}
	return resp, body
}

func (b *holderBrowser) get(path string) (*http.Response, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.url+path, nil)
	return b.do(req)
}

// post sends a form with the CSRF token of the last page (unless form
// already has _csrf, even empty).
func (b *holderBrowser) post(path string, form url.Values) (*http.Response, string) {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", b.token)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// script posts as presence.js does: no body, the token in X-CSRF-Token.
func (b *holderBrowser) script(path string) (*http.Response, map[string]any) {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.url+path, nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", b.token)
	resp, body := b.do(req)
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		b.e.t.Fatalf("%s answered %d with no JSON: %s", path, resp.StatusCode, body)
	}
	return resp, doc
}

func location(resp *http.Response) string { return resp.Header.Get("Location") }

// text is a page's visible text, roughly: tags out, entities decoded,
// white space collapsed.
func text(page string) string {
	return strings.Join(strings.Fields(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " "))), " ")
}

// approved runs the holder's approval through the pages.
func (b *holderBrowser) approved(includePersonal bool) mandate.Mandate {
	b.e.t.Helper()
	d := b.e.ask(b.holder.ID, false)
	b.get("/holder/mandates/" + d.MandateID + "/approve")
	form := url.Values{}
	if includePersonal {
		form.Set("include_personal", "1")
	}
	resp, page := b.post("/holder/mandates/"+d.MandateID+"/approve", form)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates/"+d.MandateID+"/live" {
		b.e.t.Fatalf("approve: %d %s %s", resp.StatusCode, location(resp), text(page))
	}
	return b.e.mandate(d.MandateID)
}

func TestHolderTypesTheCodeAndApprovesOnOneCard(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	d := e.ask(marie.holder.ID, false)

	// From the QR code: the code is in the link, and the page asks to check it.
	resp, page := marie.get("/device?user_code=" + url.QueryEscape(d.UserCode))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/device: %d", resp.StatusCode)
	}
	mustContain(t, page, `value="`+d.UserCode+`"`, `autocomplete="one-time-code"`, "Vérifiez que ce code est bien celui affiché")
	// Typed in lower case without the dash: the same code.
	typed := strings.ToLower(strings.ReplaceAll(d.UserCode, "-", ""))
	resp, _ = marie.post("/device", url.Values{"user_code": {typed}})
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates/"+d.MandateID+"/approve" {
		t.Fatalf("POST /device: %d %s", resp.StatusCode, location(resp))
	}

	resp, page = marie.get(location(resp))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approval card: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Agent Durand vous demande l'accès à votre boîte mail", "Agent Durand, de Mairie de Trifouillis",
		"marie.dupont@example.org", "Lire les messages", "Voir la liste des messages et les ouvrir", "Envoyer des messages",
		"Les messages que vous avez marqués « personnel » restent cachés.", "30 minutes à partir de votre accord.",
		"Aides sociales (CAF, CPAM, France Travail…)", "Dossier de prime d'activité",
		"L'accès s'arrête dès que vous fermez cette page ou appuyez sur « Arrêter ».", "Autoriser", "Refuser")
	if strings.Contains(page, `id="include_personal" name="include_personal" value="1" aria-describedby="include_personal-hint" checked`) {
		t.Error("the personal messages box is ticked by default")
	}

	resp, _ = marie.post("/holder/mandates/"+d.MandateID+"/approve", url.Values{"include_personal": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates/"+d.MandateID+"/live" {
		t.Fatalf("approve: %d %s", resp.StatusCode, location(resp))
	}
	m := e.mandate(d.MandateID)
	if m.State != mandate.StateApproved || len(m.Exclusions) != 0 || m.ConsentHash == "" || !m.Present(e.clock.Now()) {
		t.Fatalf("after approval: %+v", m)
	}

	resp, page = marie.get("/holder/mandates/" + d.MandateID + "/live")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live page: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Session en cours", "Agent Durand (Mairie de Trifouillis) peut agir sur votre boîte mail.", "Temps restant : 30:00",
		"Jusqu'à 4 mars 2030 à 11:", "Arrêter maintenant", "Voir aussi les messages marqués « personnel »")
	mustContain(t, page, `data-heartbeat="/holder/mandates/`+d.MandateID+`/heartbeat"`, `data-every="5000"`, `data-remaining="1800"`,
		`<script src="/static/presence-`, `action="/holder/mandates/`+d.MandateID+`/end"`)

	// The code is spent.
	resp, page = marie.post("/device", url.Values{"user_code": {d.UserCode}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("used code: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Ce code a déjà servi.")
	// The card now says the request no longer waits, with no buttons.
	_, page = marie.get("/holder/mandates/" + d.MandateID + "/approve")
	mustContain(t, text(page), "Cette demande n'attend plus de réponse.", "Ouvrir la page de la session")
	if strings.Contains(page, `id="allow"`) {
		t.Error("an answered request still shows its buttons")
	}
}

func TestDeviceCodeMistakesGetPlainWordsAndNoOracle(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	jean := e.holder("jean.martin@example.org", "Jean Martin")
	d := e.ask(marie.holder.ID, false)

	// Not signed in: the holder's sign-in, coming back with the code.
	anon := e.browser()
	resp, _ := anon.get("/device?user_code=" + url.QueryEscape(d.UserCode))
	want := "/holder/signin?return_to=" + url.QueryEscape("/device?user_code="+url.QueryEscape(d.UserCode))
	if resp.StatusCode != http.StatusSeeOther || location(resp) != want {
		t.Fatalf("anonymous /device: %d %s, want %s", resp.StatusCode, location(resp), want)
	}

	jean.get("/device")
	resp, page := jean.post("/device", url.Values{"user_code": {"  "}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty code: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Entrez le code affiché sur l'écran")
	mustContain(t, page, `aria-invalid="true"`)

	// Someone else's real code and a made-up one read the same.
	_, other := jean.post("/device", url.Values{"user_code": {d.UserCode}})
	_, wrong := jean.post("/device", url.Values{"user_code": {"BBBB-BBBB"}})
	mustContain(t, text(other), "Ce code n'est pas bon ou il a expiré.")
	if strings.ReplaceAll(text(other), d.UserCode, "BBBB-BBBB") != text(wrong) {
		t.Errorf("someone else's code and a wrong code answer differently:\n%s\n%s", text(other), text(wrong))
	}
	if m := e.mandate(d.MandateID); m.State != mandate.StateRequested {
		t.Fatalf("someone else's code changed the request: %s", m.State)
	}

	// Expired: the answer time is over.
	e.clock.Advance(11 * time.Minute)
	marie.get("/device")
	resp, page = marie.post("/device", url.Values{"user_code": {d.UserCode}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("expired code: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Ce code n'est pas bon ou il a expiré.")

	// Too many wrong codes from one address: wait.
	var last *http.Response
	for range 12 {
		last, page = jean.post("/device", url.Values{"user_code": {"ZZZZ-ZZZZ"}})
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after many wrong codes: %d", last.StatusCode)
	}
	mustContain(t, text(page), "Trop de codes essayés.")
}

func TestAnotherHolderGetsNotFoundOnEveryRouteAndChangesNothing(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	jean := e.holder("jean.martin@example.org", "Jean Martin")
	waiting := e.ask(marie.holder.ID, false).MandateID
	live := marie.approved(false)
	before := map[string]mandate.Mandate{waiting: e.mandate(waiting), live.ID: e.mandate(live.ID)}

	jean.get("/holder/mandates")
	for _, id := range []string{waiting, live.ID, "no-such-mandate"} {
		for _, p := range []string{"approve", "live", "receipt"} {
			if resp, page := jean.get("/holder/mandates/" + id + "/" + p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s of another holder: %d", p, resp.StatusCode)
			} else {
				mustContain(t, text(page), "Demande introuvable")
			}
		}
		for _, p := range []string{"approve", "refuse", "end", "presence"} {
			if resp, _ := jean.post("/holder/mandates/"+id+"/"+p, url.Values{"include_personal": {"1"}}); resp.StatusCode != http.StatusNotFound {
				t.Errorf("POST %s of another holder: %d", p, resp.StatusCode)
			}
		}
		for _, p := range []string{"heartbeat", "leave", "events"} {
			method := http.MethodPost
			if p == "events" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, e.url+"/holder/mandates/"+id+"/"+p, nil)
			req.Header.Set("X-CSRF-Token", jean.token)
			resp, body := jean.do(req)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s of another holder: %d %s %s", method, p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
	}
	for id, was := range before {
		now := e.mandate(id)
		if now.State != was.State || now.Version != was.Version || !now.LeaseUntil.Equal(was.LeaseUntil) {
			t.Errorf("another holder changed %s: %+v → %+v", id, was, now)
		}
	}
	if _, page := jean.get("/holder/mandates"); strings.Contains(page, waiting) || strings.Contains(page, live.ID) {
		t.Error("another holder's list shows Marie's mandates")
	}

	// Nobody signed in: the sign-in page for pages, 401 for the script.
	anon := e.browser()
	resp, _ := anon.get("/holder/mandates/" + live.ID + "/live")
	if want := "/holder/signin?return_to=" + url.QueryEscape("/holder/mandates/"+live.ID+"/live"); location(resp) != want {
		t.Errorf("anonymous live page: %d %s", resp.StatusCode, location(resp))
	}
	anon.get("/holder/signin")
	if resp, _ := anon.script("/holder/mandates/" + live.ID + "/heartbeat"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous heartbeat: %d", resp.StatusCode)
	}
	// A staff member is not the holder either.
	staff := e.browser()
	cookie, _, err := e.people.StartSession(t.Context(), people.Principal{Subject: people.StaffSubject(e.staff.ID), Kind: "staff",
		ID: e.staff.ID, Role: e.staff.Role, StructureID: e.staff.StructureID})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.url)
	staff.jar.SetCookies(u, []*http.Cookie{{Name: ui.DefaultCookieName, Value: cookie, Path: "/"}})
	if resp, _ := staff.get("/holder/mandates/" + waiting + "/approve"); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(location(resp), "/holder/signin") {
		t.Errorf("staff on the approval card: %d %s", resp.StatusCode, location(resp))
	}
}

func TestHolderFormsAndScriptsNeedTheCSRFToken(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	d := e.ask(marie.holder.ID, false)
	marie.get("/holder/mandates/" + d.MandateID + "/approve")
	for _, p := range []string{"approve", "refuse"} {
		if resp, _ := marie.post("/holder/mandates/"+d.MandateID+"/"+p, url.Values{"_csrf": {""}}); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without the token: %d", p, resp.StatusCode)
		}
	}
	if m := e.mandate(d.MandateID); m.State != mandate.StateRequested {
		t.Fatalf("a form without its token answered the request: %s", m.State)
	}
	m := marie.approved(false)
	token := marie.token
	for _, p := range []string{"heartbeat", "leave"} {
		marie.token = ""
		if resp, _ := marie.script("/holder/mandates/" + m.ID + "/" + p); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without the token: %d", p, resp.StatusCode)
		}
	}
	marie.token = token
	if resp, _ := marie.post("/holder/mandates/"+m.ID+"/end", url.Values{"_csrf": {"not-the-token"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("end with a wrong token: %d", resp.StatusCode)
	}
	if now := e.mandate(m.ID); now.State != mandate.StateApproved || !now.LeaseUntil.Equal(m.LeaseUntil) {
		t.Errorf("requests without their token changed the mandate: %+v", now)
	}
}

func TestHolderRefusesAndTheRequestIsOver(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	d := e.ask(marie.holder.ID, false)
	marie.get("/holder/mandates/" + d.MandateID + "/approve")
	resp, _ := marie.post("/holder/mandates/"+d.MandateID+"/refuse", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates?done=refused" {
		t.Fatalf("refuse: %d %s", resp.StatusCode, location(resp))
	}
	if m := e.mandate(d.MandateID); m.State != mandate.StateRefused || m.ConsentHash != "" {
		t.Fatalf("after refusal: %+v", m)
	}
	_, page := marie.get(location(resp))
	mustContain(t, text(page), "Vous avez refusé. Rien n'a été autorisé.", "Terminés", "Agent Durand (Mairie de Trifouillis)", "Refusé par vous")
	// Too late to approve now; no receipt for what was never allowed.
	resp, page = marie.post("/holder/mandates/"+d.MandateID+"/approve", nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("approve after refusal: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Cette demande n'attend plus de réponse.")
	if m := e.mandate(d.MandateID); m.State != mandate.StateRefused {
		t.Fatalf("approve after refusal changed it: %s", m.State)
	}
	if resp, page := marie.get("/holder/mandates/" + d.MandateID + "/receipt"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("receipt of a refused request: %d", resp.StatusCode)
	} else {
		mustContain(t, text(page), "cette demande n'a jamais été autorisée")
	}
	// A request left unanswered: too late.
	late := e.ask(marie.holder.ID, false)
	marie.get("/holder/mandates/" + late.MandateID + "/approve")
	e.clock.Advance(11 * time.Minute)
	resp, page = marie.post("/holder/mandates/"+late.MandateID+"/approve", nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("late approval: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Il est trop tard pour répondre à cette demande.")
}

func TestHeartbeatsMoveTheLeaseAndLeavingEndsTheSession(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(false)
	marie.get("/holder/mandates/" + m.ID + "/live")

	e.clock.Advance(5 * time.Second)
	resp, doc := marie.script("/holder/mandates/" + m.ID + "/heartbeat")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("heartbeat: %d %v", resp.StatusCode, doc)
	}
	lease := e.mandate(m.ID).LeaseUntil
	if !lease.After(m.LeaseUntil) || doc["lease_until"] != lease.UTC().Format(time.RFC3339) {
		t.Fatalf("heartbeat: lease %s → %s, answered %v", m.LeaseUntil, lease, doc)
	}

	resp, doc = marie.script("/holder/mandates/" + m.ID + "/leave")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("leave: %d %v", resp.StatusCode, doc)
	}
	if now := e.mandate(m.ID); now.State != mandate.StateEnded || now.EndReason != mandate.EndedByPresence {
		t.Fatalf("after leave: %s %s", now.State, now.EndReason)
	}
	resp, doc = marie.script("/holder/mandates/" + m.ID + "/heartbeat")
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("heartbeat after leave: %d %v", resp.StatusCode, doc)
	}
	_, page := marie.get("/holder/mandates/" + m.ID + "/live")
	mustContain(t, text(page), "La session est terminée", "Votre page s'est fermée ou la connexion a été perdue.", "Voir le reçu de mon accord")
	if strings.Contains(page, "presence-") {
		t.Error("the page of an ended session still beats")
	}

	// A lease nobody renews lapses: the next heartbeat is refused.
	lapsed := marie.approved(false)
	e.clock.Advance(16 * time.Second)
	if resp, _ := marie.script("/holder/mandates/" + lapsed.ID + "/heartbeat"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("heartbeat after the lease lapsed: %d", resp.StatusCode)
	}
}

func TestHolderStopsASessionFromTheLivePageAndFromTheList(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(false)
	marie.get("/holder/mandates/" + m.ID + "/live")
	resp, _ := marie.post("/holder/mandates/"+m.ID+"/end", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates/"+m.ID+"/live" {
		t.Fatalf("end: %d %s", resp.StatusCode, location(resp))
	}
	if now := e.mandate(m.ID); now.State != mandate.StateEnded || now.EndReason != mandate.EndedByHolder || now.EndedBy != marie.holder.ID {
		t.Fatalf("after end: %+v", now)
	}
	_, page := marie.get(location(resp))
	mustContain(t, text(page), "La session est terminée", "Vous l'avez arrêté.")

	other := marie.approved(false)
	waiting := e.ask(marie.holder.ID, false)
	resp, page = marie.get("/holder/mandates")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "En cours", "En attente de votre réponse", "Terminés", "Voir la demande et répondre", "Vous l'avez arrêté.")
	mustContain(t, page, `href="/holder/mandates/`+waiting.MandateID+`/approve"`, `href="/holder/mandates/`+m.ID+`/receipt"`,
		`action="/holder/mandates/`+other.ID+`/end"`)
	if strings.Contains(page, `action="/holder/mandates/`+m.ID+`/end"`) || strings.Contains(page, `action="/holder/mandates/`+waiting.MandateID+`/end"`) {
		t.Error("an ended mandate or a request shows a stop button")
	}
	resp, _ = marie.post("/holder/mandates/"+other.ID+"/end", url.Values{"from": {"list"}})
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates?done=stopped" {
		t.Fatalf("end from the list: %d %s", resp.StatusCode, location(resp))
	}
	if now := e.mandate(other.ID); now.State != mandate.StateEnded || now.EndReason != mandate.EndedByHolder {
		t.Fatalf("after end from the list: %s", now.State)
	}
	_, page = marie.get(location(resp))
	mustContain(t, text(page), "L'accès est arrêté.")
	// Stopping again (a second tap): said plainly, nothing else changes.
	resp, _ = marie.post("/holder/mandates/"+other.ID+"/end", url.Values{"from": {"list"}})
	if location(resp) != "/holder/mandates?done=already" {
		t.Errorf("second stop: %d %s", resp.StatusCode, location(resp))
	}
}

var receiptHash = regexp.MustCompile(`<code id="receipt-hash">([0-9a-f]{64})</code>`)

func TestReceiptShowsTheConsentTextAndAHashTheAuditLogConfirms(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(true)
	resp, page := marie.get("/holder/mandates/" + m.ID + "/receipt")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("receipt: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Reçu de votre accord", "Marie Dupont", "marie.dupont@example.org", "Agent Durand, de Mairie de Trifouillis",
		"Texte de l'accord (version "+m.ConsentVersion+")", "Vous autorisez une personne à agir sur votre boîte mail.",
		"Voir aussi les messages marqués « personnel »", "Le journal d'audit de mandated garde cette empreinte")
	mustContain(t, page, `<img class="qr" src="data:image/png;base64,`)
	got := receiptHash.FindStringSubmatch(page)
	if got == nil || got[1] != m.ConsentHash {
		t.Fatalf("receipt hash %v, want %s", got, m.ConsentHash)
	}
	// The canonical data shown hashes to the receipt's hash.
	data := regexp.MustCompile(`(?s)<details class="noprint">.*?<code>(.*?)</code>`).FindStringSubmatch(page)
	if data == nil {
		t.Fatal("no receipt data on the page")
	}
	sum := sha256.Sum256([]byte(html.UnescapeString(data[1])))
	if hex.EncodeToString(sum[:]) != m.ConsentHash {
		t.Errorf("the receipt data shown does not hash to %s", m.ConsentHash)
	}
	// The audit log holds the same hash in the approval's target.
	events, err := e.log.Log.Query(t.Context(), audit.Filter{MandateID: m.ID, Action: audit.ActionMandateApproved})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Events) != 1 || events.Events[0].Target != "receipt:"+m.ConsentHash {
		t.Fatalf("approval events: %+v", events.Events)
	}
	// In English too.
	_, page = marie.get("/holder/mandates/" + m.ID + "/receipt?lang=en")
	mustContain(t, text(page), "Receipt of your approval", "You allow someone to act on your mailbox.")
}

func TestLivePageStreamSaysAtOnceWhenTheMediatorEnds(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(false)

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+"/holder/mandates/"+m.ID+"/events", nil)
	resp, err := marie.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := bufio.NewScanner(resp.Body)
	next := func() map[string]any {
		t.Helper()
		for events.Scan() {
			if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				var v map[string]any
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("the stream closed: %v", events.Err())
		return nil
	}
	if first := next(); first["state"] != "approved" || first["live"] != true {
		t.Fatalf("first event: %v", first)
	}
	if _, err := e.svc.End(t.Context(), m.ID, mandate.EndedByDelegate, mandate.Actor{Kind: mandate.ActorStaff, ID: e.staff.ID}, ""); err != nil {
		t.Fatal(err)
	}
	if ended := next(); ended["state"] != "ended" || ended["live"] != false {
		t.Fatalf("after the mediator ended it: %v", ended)
	}
	for events.Scan() { // the server closes the stream: Scan ends
		if strings.HasPrefix(events.Text(), "data:") {
			t.Errorf("the stream goes on after the end: %q", events.Text())
		}
	}
}

func TestDelegationCardShowsTheAbsenceWindowInBothLanguages(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	from := time.Date(2030, 3, 11, 8, 0, 0, 0, time.UTC)
	m, err := e.svc.Request(t.Context(), mandate.Request{Kind: mandate.KindDelegation, StructureID: e.staff.StructureID,
		HolderID: marie.holder.ID, DelegateID: e.staff.ID, Scopes: []string{mandate.ScopeMailRead}, Purpose: "Congés",
		PurposeCategory: mandate.PurposeAbsence, Presence: mandate.PresenceRequired, NotBefore: from, NotAfter: from.Add(5 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_, page := marie.get("/holder/mandates/" + m.ID + "/approve")
	mustContain(t, text(page), "Du 11 mars 2030 à 09:00 au 16 mars 2030 à 09:00.", "Remplacement pendant une absence", "Congés")
	_, page = marie.get("/holder/mandates/" + m.ID + "/approve?lang=en")
	mustContain(t, text(page), "Agent Durand asks for access to your mailbox", "From 11 March 2030 at 09:00 to 16 March 2030 at 09:00.",
		"Cover during an absence", "Read messages", "Allow", "Refuse")
	_, page = marie.get("/holder/mandates?lang=en")
	mustContain(t, text(page), "My access", "Waiting for your answer", "See the request and answer")
}

// delegation asks, as the env's mediator, for a colleague's delegation on
// holderID's mailbox that needs the holder's presence, for from..to.
func (e *mandateEnv) delegation(holderID string, from, to time.Time) mandate.Mandate {
	e.t.Helper()
	m, err := e.svc.Request(e.t.Context(), mandate.Request{Kind: mandate.KindDelegation, StructureID: e.staff.StructureID,
		HolderID: holderID, DelegateID: e.staff.ID, ClientID: e.client, Scopes: []string{mandate.ScopeMailRead}, Purpose: "Congés",
		PurposeCategory: mandate.PurposeAbsence, Presence: mandate.PresenceRequired, NotBefore: from, NotAfter: to})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// signInAgain gives b a fresh session (after the clock moved past the
// last one's lifetime).
func (b *holderBrowser) signInAgain() {
	b.e.t.Helper()
	cookie, _, err := b.e.people.StartSession(b.e.t.Context(), people.HolderPrincipal(b.holder))
	if err != nil {
		b.e.t.Fatal(err)
	}
	u, _ := url.Parse(b.e.url)
	b.jar.SetCookies(u, []*http.Cookie{{Name: ui.DefaultCookieName, Value: cookie, Path: "/"}})
}

func (e *mandateEnv) sweep() {
	e.t.Helper()
	if n, err := e.svc.Sweep(e.t.Context()); err != nil || n != 0 {
		e.t.Fatalf("sweep moved %d mandates (%v), want none", n, err)
	}
}

// events counts the audit events of a mandate with an action.
func (e *mandateEnv) events(id string, action audit.Action) int {
	e.t.Helper()
	page, err := e.log.Log.Query(e.t.Context(), audit.Filter{MandateID: id, Action: action})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(page.Events)
}

// TestDelegationLivesForItsWindowAndPresenceOnlyGatesItsTokens: a
// colleague's delegation that needs the holder's presence, approved ahead
// of its window, shows when it starts; inside its window it waits for "Je
// suis disponible", beats while the page is open, pauses when the page
// closes or the heartbeats stop — without ending — and ends only when the
// holder presses "Arrêter maintenant".
func TestDelegationLivesForItsWindowAndPresenceOnlyGatesItsTokens(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	from := e.clock.Now().Add(24 * time.Hour)
	m := e.delegation(marie.holder.ID, from, from.Add(5*24*time.Hour))
	base := "/holder/mandates/" + m.ID
	marie.get(base + "/approve")
	resp, _ := marie.post(base+"/approve", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != base+"/live" {
		t.Fatalf("approve: %d %s", resp.StatusCode, location(resp))
	}
	if got := e.mandate(m.ID); got.State != mandate.StateApproved || !got.LeaseUntil.IsZero() {
		t.Fatalf("approved ahead of its window: %+v", got)
	}

	// Ahead of its window: when it starts, and the stop button.
	_, page := marie.get(base + "/live")
	mustContain(t, text(page), "Délégation prévue", "Agent Durand (Mairie de Trifouillis) peut agir sur votre boîte mail.",
		"La délégation commence le 5 mars 2030 à 11:00 et se termine le 10 mars 2030 à 11:00.",
		"revenez sur cette page quand vous êtes disponible", "Arrêter maintenant")
	if strings.Contains(page, base+"/presence") || strings.Contains(page, "data-heartbeat") {
		t.Error("a delegation ahead of its window offers to start presence or beats")
	}
	_, page = marie.get(base + "/live?lang=en")
	mustContain(t, text(page), "Delegation planned", "The delegation starts on 5 March 2030 at 11:00 and ends on 10 March 2030 at 11:00.")
	marie.get(base + "/live?lang=fr") // the language sticks: back to French

	// Inside its window, nobody present: it goes on, paused; no token works.
	e.clock.Advance(24 * time.Hour)
	marie.signInAgain()
	e.sweep()
	if got := e.mandate(m.ID); got.State != mandate.StateApproved || got.Live(e.clock.Now()) {
		t.Fatalf("inside its window before any presence: %+v", got)
	}
	_, page = marie.get(base + "/live")
	mustContain(t, text(page), "Délégation en cours", "L'accès est suspendu : votre présence est demandée.", "Je suis disponible", "Arrêter maintenant")
	mustContain(t, page, `action="`+base+`/presence"`, `data-kind="delegation"`, `data-paused="1"`, `<div id="presence-running" hidden>`,
		`<div id="presence-paused">`, `<script src="/static/presence-`, `action="`+base+`/end"`)
	_, page = marie.get("/holder/mandates")
	mustContain(t, page, `href="`+base+`/live"`)

	// "Je suis disponible": the lease starts, the page beats.
	resp, _ = marie.post(base+"/presence", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != base+"/live" {
		t.Fatalf("presence: %d %s", resp.StatusCode, location(resp))
	}
	if got := e.mandate(m.ID); !got.LeaseUntil.Equal(e.clock.Now().Add(15*time.Second)) || !got.Live(e.clock.Now()) {
		t.Fatalf("after \"Je suis disponible\": %+v", got)
	}
	_, page = marie.get(base + "/live")
	mustContain(t, text(page), "Délégation en cours", "Temps restant", "Gardez cette page ouverte tant que vous êtes disponible.")
	mustContain(t, page, `data-heartbeat="`+base+`/heartbeat"`, `<div id="presence-paused" hidden>`, `<div id="presence-running">`)
	if strings.Contains(page, `data-paused="1"`) {
		t.Error("a present delegation's page starts paused")
	}
	e.clock.Advance(5 * time.Second)
	if resp, doc := marie.script(base + "/heartbeat"); resp.StatusCode != http.StatusOK {
		t.Fatalf("heartbeat: %d %v", resp.StatusCode, doc)
	}

	// The page closes: only the lease ends.
	resp, doc := marie.script(base + "/leave")
	if resp.StatusCode != http.StatusOK || doc["lease_until"] != e.clock.Now().UTC().Format(time.RFC3339) {
		t.Fatalf("leave: %d %v", resp.StatusCode, doc)
	}
	if got := e.mandate(m.ID); got.State != mandate.StateApproved || got.EndReason != "" || got.Live(e.clock.Now()) {
		t.Fatalf("after leaving: %+v", got)
	}
	if resp, _ := marie.script(base + "/heartbeat"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("heartbeat after leaving: %d", resp.StatusCode)
	}
	_, page = marie.get(base + "/live")
	mustContain(t, page, `data-paused="1"`, "Je suis disponible")

	// Heartbeats stop: paused, not ended, whatever the sweep does.
	marie.post(base+"/presence", nil)
	e.clock.Advance(16 * time.Second)
	e.sweep()
	if got := e.mandate(m.ID); got.State != mandate.StateApproved || got.Live(e.clock.Now()) {
		t.Fatalf("after missed heartbeats: %+v", got)
	}
	if resp, _ := marie.script(base + "/heartbeat"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("heartbeat after the lapse: %d", resp.StatusCode)
	}
	_, page = marie.get(base + "/live")
	mustContain(t, page, `data-paused="1"`, "Je suis disponible")
	if n, ended := e.events(m.ID, audit.ActionMandatePresence), e.events(m.ID, audit.ActionMandatePresenceEnded); n != 2 || ended != 1 {
		t.Fatalf("presence events: %d started, %d ended; want 2 and 1", n, ended)
	}

	// "Arrêter maintenant" ends the whole delegation.
	resp, _ = marie.post(base+"/end", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != base+"/live" {
		t.Fatalf("end: %d %s", resp.StatusCode, location(resp))
	}
	ended := e.mandate(m.ID)
	if ended.State != mandate.StateEnded || ended.EndReason != mandate.EndedByHolder {
		t.Fatalf("after stop: %+v", ended)
	}
	_, page = marie.get(base + "/live")
	mustContain(t, text(page), "La session est terminée", "Vous l'avez arrêté.")
	if strings.Contains(page, base+"/presence") {
		t.Error("an ended delegation offers to start presence")
	}
	// Too late to be available: the page says how it is, nothing changes.
	resp, _ = marie.post(base+"/presence", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != base+"/live" {
		t.Fatalf("presence after the end: %d %s", resp.StatusCode, location(resp))
	}
	if got := e.mandate(m.ID); got.Version != ended.Version {
		t.Fatalf("presence after the end wrote: %+v", got)
	}
}

func TestDelegationApprovedInsideItsWindowGoesLiveAtOnce(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := e.delegation(marie.holder.ID, e.clock.Now(), e.clock.Now().Add(48*time.Hour))
	base := "/holder/mandates/" + m.ID
	marie.get(base + "/approve")
	if resp, _ := marie.post(base+"/approve", nil); location(resp) != base+"/live" {
		t.Fatalf("approve: %d %s", resp.StatusCode, location(resp))
	}
	if got := e.mandate(m.ID); !got.Live(e.clock.Now()) {
		t.Fatalf("approved inside its window: %+v", got)
	}
	_, page := marie.get(base + "/live")
	mustContain(t, text(page), "Délégation en cours", "Temps restant : 48:00:00", "Arrêter maintenant")
	mustContain(t, page, `data-heartbeat="`+base+`/heartbeat"`, `data-kind="delegation"`, `<div id="presence-paused" hidden>`)
}

func TestPresenceButtonNeedsTheHolderTheTokenAndADelegation(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	jean := e.holder("jean.martin@example.org", "Jean Martin")
	m := e.delegation(marie.holder.ID, e.clock.Now(), e.clock.Now().Add(48*time.Hour))
	base := "/holder/mandates/" + m.ID
	marie.get(base + "/approve")
	marie.post(base+"/approve", nil)
	marie.script(base + "/leave")
	paused := e.mandate(m.ID)
	if paused.Live(e.clock.Now()) {
		t.Fatalf("not paused: %+v", paused)
	}

	jean.get("/holder/mandates")
	if resp, page := jean.post(base+"/presence", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another holder's presence: %d", resp.StatusCode)
	} else {
		mustContain(t, text(page), "Demande introuvable")
	}
	marie.get(base + "/live")
	if resp, _ := marie.post(base+"/presence", url.Values{"_csrf": {"not-the-token"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("presence with a wrong token: %d", resp.StatusCode)
	}
	if got := e.mandate(m.ID); got.Version != paused.Version || !got.LeaseUntil.Equal(paused.LeaseUntil) {
		t.Fatalf("refused presence requests changed the delegation: %+v", got)
	}

	// A session's lease never starts again: its lapse ends it.
	s := marie.approved(false)
	e.clock.Advance(16 * time.Second)
	marie.get("/holder/mandates/" + s.ID + "/live")
	resp, _ := marie.post("/holder/mandates/"+s.ID+"/presence", nil)
	if resp.StatusCode != http.StatusSeeOther || location(resp) != "/holder/mandates/"+s.ID+"/live" {
		t.Fatalf("presence on a session: %d %s", resp.StatusCode, location(resp))
	}
	if got := e.mandate(s.ID); got.Version != s.Version || got.Live(e.clock.Now()) {
		t.Fatalf("a lapsed session started again: %+v", got)
	}
}

func TestDelegationStreamPausesAndResumesUntilItIsOver(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := e.delegation(marie.holder.ID, e.clock.Now(), e.clock.Now().Add(48*time.Hour))
	base := "/holder/mandates/" + m.ID
	marie.get(base + "/approve")
	marie.post(base+"/approve", nil)
	marie.script(base + "/leave")

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+base+"/events", nil)
	resp, err := marie.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	next := func() map[string]any {
		t.Helper()
		for events.Scan() {
			if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				var v map[string]any
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("the stream closed: %v", events.Err())
		return nil
	}
	want := func(what string, live, over bool) {
		t.Helper()
		if v := next(); v["live"] != live || v["over"] != over {
			t.Fatalf("%s: event %v, want live %v, over %v", what, v, live, over)
		}
	}
	want("paused", false, false)
	if _, err := e.svc.StartPresence(t.Context(), marie.holder.ID, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	want("present", true, false)
	if _, err := e.svc.Leave(t.Context(), marie.holder.ID, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	want("left", false, false)
	if _, err := e.svc.End(t.Context(), m.ID, mandate.EndedByDelegate, mandate.Actor{Kind: mandate.ActorStaff, ID: e.staff.ID}, ""); err != nil {
		t.Fatal(err)
	}
	want("ended", false, true)
	for events.Scan() {
		if strings.HasPrefix(events.Text(), "data:") {
			t.Errorf("the stream goes on after the end: %q", events.Text())
		}
	}
}

var receiptFacts = regexp.MustCompile(`(?s)<dl class="facts receipt">.*?</dl>`)

// TestReceiptShowsWhatWasApprovedAfterRenames: the receipt page shows the
// bytes stored at approval — the names of then, the same hash — and says
// so plainly when the stored bytes no longer match the hash.
func TestReceiptShowsWhatWasApprovedAfterRenames(t *testing.T) {
	e := newMandateEnv(t)
	ctx := t.Context()
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(false)
	if err := e.store.UpdateHolder(ctx, marie.holder.ID, func(h *people.Holder) error { h.DisplayName = "Marie Leroy"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateStaff(ctx, e.staff.ID, func(s *people.Staff) error { s.DisplayName = "Agent Martin"; return nil }); err != nil {
		t.Fatal(err)
	}
	resp, page := marie.get("/holder/mandates/" + m.ID + "/receipt")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("receipt: %d", resp.StatusCode)
	}
	facts := text(receiptFacts.FindString(page))
	mustContain(t, facts, "Marie Dupont", "Agent Durand, de Mairie de Trifouillis", "Lire les messages", "Envoyer des messages")
	if strings.Contains(facts, "Marie Leroy") || strings.Contains(facts, "Agent Martin") {
		t.Errorf("the receipt shows today's names: %s", facts)
	}
	if got := receiptHash.FindStringSubmatch(page); got == nil || got[1] != m.ConsentHash {
		t.Fatalf("receipt hash %v, want %s", got, m.ConsentHash)
	}
	data := regexp.MustCompile(`(?s)<details class="noprint">.*?<code>(.*?)</code>`).FindStringSubmatch(page)
	if data == nil {
		t.Fatal("no receipt data on the page")
	}
	if got := html.UnescapeString(data[1]); got != string(m.ConsentReceipt) {
		t.Fatalf("receipt data %s\nwant the stored bytes %s", got, m.ConsentReceipt)
	}
	if strings.Contains(page, "ne correspondent pas") {
		t.Error("a sound receipt is said not to match")
	}

	// Stored bytes that no longer match the hash are not shown as the receipt.
	if _, err := e.store.UpdateMandate(ctx, m.ID, func(m *mandate.Mandate) error {
		m.ConsentReceipt = bytes.Replace(m.ConsentReceipt, []byte("Marie Dupont"), []byte("Marie Dupond"), 1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, page = marie.get("/holder/mandates/" + m.ID + "/receipt")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("receipt with altered bytes: %d", resp.StatusCode)
	}
	mustContain(t, text(page), "Les données enregistrées de ce reçu ne correspondent pas à son empreinte.")
	if strings.Contains(page, `<details class="noprint">`) || strings.Contains(page, "Marie Dupond") {
		t.Error("altered receipt bytes are shown as the receipt")
	}
	if got := receiptHash.FindStringSubmatch(page); got == nil || got[1] != m.ConsentHash {
		t.Fatalf("receipt hash %v, want %s", got, m.ConsentHash)
	}
}

// exchange polls the token endpoint once with a device code, as the
// mediator's client does, and returns the status.
func (e *mandateEnv) exchange(deviceCode string) int {
	e.t.Helper()
	form := url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {deviceCode}}
	req, _ := http.NewRequest(http.MethodPost, e.token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.client), url.QueryEscape(e.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// askDelegation is the mediator's device authorization request for a
// colleague's delegation on holderID's mailbox, from now for two days.
func (e *mandateEnv) askDelegation(holderID string) authz.DeviceResponse {
	e.t.Helper()
	now := e.clock.Now()
	resp, err := e.authz.AuthorizeDevice(e.t.Context(), authz.DeviceRequest{
		ClientID: e.client, Scopes: []string{mandate.ScopeMailRead}, HolderID: holderID, Kind: mandate.KindDelegation,
		NotBefore: now, NotAfter: now.Add(48 * time.Hour), Purpose: "Congés", PurposeCategory: mandate.PurposeAbsence,
		ActorStaffID: e.staff.ID, ActorStructure: e.staff.StructureID,
	})
	if err != nil {
		e.t.Fatalf("device authorization: %v", err)
	}
	return resp
}

var accessesSection = regexp.MustCompile(`(?s)<section aria-labelledby="accesses-title">.*?</section>`)

// TestListShowsTheLatestAccessesOfDelegations: the holder's list has a
// "Derniers accès" section once they have a delegation: the colleague's
// tokens and what the mail server reported, newest first, in the history's
// words, with a link to the whole history — and nothing of sessions, where
// the holder was there, nor of anyone else's mailbox.
func TestListShowsTheLatestAccessesOfDelegations(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	jean := e.holder("jean.martin@example.org", "Jean Martin")

	// A session first: no section yet.
	marie.approved(false)
	_, page := marie.get("/holder/mandates")
	if strings.Contains(page, "accesses-title") {
		t.Error("a holder with no delegation has a latest-accesses section")
	}

	// A delegation, approved and exchanged, not used yet.
	d := e.askDelegation(marie.holder.ID)
	base := "/holder/mandates/" + d.MandateID
	marie.get(base + "/approve")
	if resp, _ := marie.post(base+"/approve", nil); location(resp) != base+"/live" {
		t.Fatalf("approve: %d %s", resp.StatusCode, location(resp))
	}
	_, page = marie.get("/holder/mandates")
	section := text(accessesSection.FindString(page))
	if !strings.Contains(section, "Derniers accès") || !strings.Contains(section, "Aucun accès pour l'instant.") {
		t.Errorf("before any access: %q", section)
	}

	e.clock.Advance(time.Minute)
	if status := e.exchange(d.DeviceCode); status != http.StatusOK {
		t.Fatalf("device code exchange: %d", status)
	}
	e.clock.Advance(time.Minute)
	// The mail server reports a read under the delegation, and one on Jean's mailbox.
	for _, ev := range []audit.Event{
		{Actor: audit.Actor{Kind: audit.ActorStaff, ID: e.staff.ID}, Holder: marie.holder.ID, MandateID: d.MandateID,
			ClientID: e.client, Action: audit.ActionMailboxRead, Target: "message", Outcome: audit.OutcomeSuccess},
		{Actor: audit.Actor{Kind: audit.ActorStaff, ID: e.staff.ID}, Holder: jean.holder.ID, MandateID: d.MandateID,
			ClientID: e.client, Action: audit.ActionMailboxDelete, Target: "message", Outcome: audit.OutcomeSuccess},
	} {
		if _, err := e.log.Log.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// The session's token too (after the delegation's, so it is newest).
	sd := e.ask(marie.holder.ID, false)
	marie.get("/holder/mandates/" + sd.MandateID + "/approve")
	marie.post("/holder/mandates/"+sd.MandateID+"/approve", nil)
	if status := e.exchange(sd.DeviceCode); status != http.StatusOK {
		t.Fatalf("session exchange: %d", status)
	}

	_, page = marie.get("/holder/mandates")
	raw := accessesSection.FindString(page)
	section = text(raw)
	read := strings.Index(section, "Agent Durand (Mairie de Trifouillis) a lu un message.")
	issued := strings.Index(section, "Agent Durand (Mairie de Trifouillis) a obtenu l'accès.")
	if read < 0 || issued < 0 || read > issued {
		t.Errorf("latest accesses, newest first: %q", section)
	}
	if n := strings.Count(section, "a obtenu l'accès"); n != 1 {
		t.Errorf("%d token accesses listed, want the delegation's only: %q", n, section)
	}
	if strings.Contains(section, "supprimé") {
		t.Errorf("another holder's event is listed: %q", section)
	}
	mustContain(t, section, "Le 4 mars 2030 à 11:0")
	mustContain(t, raw, `href="/holder/history"`, `<time datetime="`)

	// In English; and Jean, who has no delegation, has no such section.
	_, page = marie.get("/holder/mandates?lang=en")
	mustContain(t, text(accessesSection.FindString(page)), "Latest accesses", "Agent Durand (Mairie de Trifouillis) got access.",
		"read a message", "See the whole history")
	if _, page := jean.get("/holder/mandates"); strings.Contains(page, "accesses-title") {
		t.Error("a holder with no delegation has a latest-accesses section")
	}
}

var receiptJWS = regexp.MustCompile(`<code id="receipt-jws">([A-Za-z0-9_.-]+)</code>`)

// TestReceiptIsSignedForAnyoneToCheck: the receipt page shows a compact
// JWS of the stored receipt bytes, signed by the server's current key;
// it verifies with the published keys and gives back exactly those bytes,
// and the page says where the keys are, on screen and in its print copy.
func TestReceiptIsSignedForAnyoneToCheck(t *testing.T) {
	e := newMandateEnv(t)
	marie := e.holder("marie.dupont@example.org", "Marie Dupont")
	m := marie.approved(false)
	_, page := marie.get("/holder/mandates/" + m.ID + "/receipt")
	got := receiptJWS.FindStringSubmatch(page)
	if got == nil {
		t.Fatal("no signature on the receipt page")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.authz.Keys().JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(got[1], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != authz.ReceiptJWSType {
		t.Errorf("typ = %v", h.ExtraHeaders[jose.HeaderType])
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the signing key %q is not published", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("the receipt's signature does not verify: %v", err)
	}
	if !bytes.Equal(payload, m.ConsentReceipt) {
		t.Errorf("signed payload %s\nwant the stored receipt %s", payload, m.ConsentReceipt)
	}
	mustContain(t, page, `<details class="signature">`, `<div class="signature-print" hidden>`)
	mustContain(t, text(page), "Signature électronique du reçu",
		"Un contrôleur vérifie cette signature avec les clés publiques du service, publiées à l'adresse https://id.example.org/oauth2/jwks.json")
	if n := strings.Count(page, got[1]); n != 2 {
		t.Errorf("the signature appears %d times, want 2 (screen and print)", n)
	}
	_, page = marie.get("/holder/mandates/" + m.ID + "/receipt?lang=en")
	mustContain(t, text(page), "Electronic signature of the receipt", "An auditor checks this signature")

	// Stored bytes that no longer match their hash are never signed.
	if _, err := e.store.UpdateMandate(t.Context(), m.ID, func(x *mandate.Mandate) error {
		x.ConsentReceipt = bytes.Replace(x.ConsentReceipt, []byte("Marie Dupont"), []byte("Marie Dupond"), 1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, page = marie.get("/holder/mandates/" + m.ID + "/receipt"); receiptJWS.MatchString(page) {
		t.Error("altered receipt bytes were signed")
	}
}
