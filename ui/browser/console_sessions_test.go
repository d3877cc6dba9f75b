package browser_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// waitFor waits until the page's JavaScript expression is true; the
// deadline guards against a hang and is not a timing assertion.
func (b *tab) waitFor(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		b.t.Fatalf("never: %s (%v); the page shows: %s", what, err, b.text("main"))
	}
}

// jwtClaims decodes a JWT's payload (its signature is the server's
// business: introspection below checks it is live).
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
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

var sessionPath = regexp.MustCompile(`^/console/sessions/([A-Za-z0-9_-]+)$`)

func TestMediatorOpensASessionOnAPhoneThatTurnsLiveWhenTheHolderApproves(t *testing.T) {
	mediatorOpensASession(t, phone)
}

func TestMediatorOpensASessionOnADesktopThatTurnsLiveWhenTheHolderApproves(t *testing.T) {
	mediatorOpensASession(t, desktop)
}

func mediatorOpensASession(t *testing.T, vp viewport) {
	var (
		hf holdersFeature
		mf holderMandatesFeature
		cf consoleFeature
	)
	srv := newServer(t, withHolders(&hf), withHolderMandates(&mf, &hf, time.Second), withConsole(&cf, &mf, &hf))
	ctx := t.Context()
	agent, secret := srv.mediator("agent@trifouillis.fr", "Agent Durand")
	marie := hf.createHolder(t, agent, people.HolderInput{
		Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net",
	})

	b := newTab(t, vp, "fr-FR,fr;q=0.9")
	b.open(srv.url + "/")
	srv.signIn(b, "agent@trifouillis.fr", password, secret)
	b.press(`a[href="/console/sessions"]`)
	b.mustSee("h1", "Mes sessions accompagnées")
	b.mustSee("main", "Aucune session pour l'instant.")
	b.checkPage("console sessions, empty")
	b.press(`a[href="/console/sessions/new"]`)
	b.mustSee("h1", "Ouvrir une session accompagnée")
	b.checkPage("console new session")

	// A mistake first: no holder chosen, no reason given.
	if status := b.press(`form[action="/console/sessions/new"] button[type="submit"]`); status != http.StatusUnprocessableEntity {
		t.Fatalf("empty form answered %d", status)
	}
	b.mustSee(".error-summary", "Choisissez la personne dans la liste", "Choisissez le type de démarche", "Écrivez pourquoi")
	if got := eval[string](b, `document.getElementById('holder').getAttribute('aria-invalid')`); got != "true" {
		t.Errorf("the holder field is not marked invalid: %q", got)
	}
	b.checkPage("console new session with mistakes")
	if list, err := mf.svc.List(ctx, mandate.Query{DelegateID: agent.ID}); err != nil || len(list) != 0 {
		t.Fatalf("a refused form created %d sessions (%v)", len(list), err)
	}

	// By keyboard: choose Marie, the reason, tick "send", and submit.
	if err := chromedp.Do(b.ctx,
		chromedp.SetValue(chromedp.ID("holder"), marie.ID),
		chromedp.SetValue(chromedp.ID("category"), string(mandate.PurposeSocial)),
		chromedp.SetValue(chromedp.ID("duration"), "45"),
	); err != nil {
		t.Fatal(err)
	}
	b.typeInto("purpose", "Retrouver le courrier de la CAF")
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.ID("scope-1"))); err != nil {
		t.Fatal(err)
	}
	if err := b.key(" "); err != nil { // ticks "Envoyer des messages"
		t.Fatal(err)
	}
	if !eval[bool](b, `document.getElementById('scope-0').checked && document.getElementById('scope-1').checked`) {
		t.Fatal("the scopes are not ticked")
	}
	// Enter in the purpose box is a new line: Enter on the button submits.
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.CSS(`form[action="/console/sessions/new"] button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(b.ctx, chromedp.KeyEvent("\r"))
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("the form answered %v, %v: %s", resp, err, b.text("main"))
	}
	m := sessionPath.FindStringSubmatch(b.path())
	if m == nil {
		t.Fatalf("after the form the browser is at %s", b.path())
	}
	id := m[1]
	session, err := mf.svc.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if session.HolderID != marie.ID || session.Duration != 45*time.Minute || strings.Join(session.Scopes, " ") != "mail.read mail.send" {
		t.Fatalf("mandate %+v", session)
	}

	// The QR code and the user code beside it, in big letters.
	b.mustSee("#session-state", "Demandée")
	code := b.text("#user-code")
	if !regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(code) {
		t.Fatalf("user code %q", code)
	}
	b.mustSee("#device", "Sur son téléphone, la personne scanne ce code QR ou va sur", srv.url+"/device", "et tape ce code")
	if !eval[bool](b, `document.querySelector('#device img.qr').naturalWidth > 100`) {
		t.Error("the QR code image does not load")
	}
	if px := eval[float64](b, `parseFloat(getComputedStyle(document.getElementById('user-code')).fontSize)`); px < 30 {
		t.Errorf("the user code is %v px high", px)
	}
	looked, err := mf.authz.LookupUserCode(ctx, code, "192.0.2.7")
	if err != nil || looked.ID != id {
		t.Fatalf("the code shown finds %+v, %v", looked, err)
	}
	b.checkPage("console session requested")

	// The holder approves on their phone (their page is another test's):
	// the console flips without a reload, and its script gets the token.
	marker := eval[float64](b, `window.__noReload = Math.random()`)
	srv.clock.Advance(10 * time.Second) // past the polling interval of a poll made meanwhile
	if _, err := mf.svc.Approve(ctx, marie.ID, id, mandate.Approval{}); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the session turns live", `/Autorisée|En cours/.test(document.getElementById('session-state').textContent)`)
	b.waitFor("the token arrives", `!document.getElementById('token').hidden`)
	b.waitFor("the session is in progress", `document.getElementById('session-state').textContent === 'En cours'`)
	if got := eval[float64](b, `window.__noReload`); got != marker {
		t.Fatal("the page reloaded")
	}
	b.mustSee("#token", "Session ouverte")
	b.mustSee("#countdown", "Temps restant : 4")
	if !eval[bool](b, `document.getElementById('device').hidden`) {
		t.Error("the QR code is still shown during the session")
	}
	b.checkPage("console session open")

	// The token: only in the page's memory; the copy button hands it over
	// (here by the fallback the page offers when the clipboard is refused).
	if !eval[bool](b, `localStorage.length === 0 && sessionStorage.length === 0`) {
		t.Error("the page stored something")
	}
	eval[bool](b, `(Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true}), true)`)
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID("copy-token"))); err != nil {
		t.Fatal(err)
	}
	token := eval[string](b, `document.getElementById('token-value').value`)
	claims := jwtClaims(t, token)
	act, _ := claims["act"].(map[string]any)
	if claims["sub"] != people.HolderSubject(marie.ID) || act["sub"] != people.StaffSubject(agent.ID) || claims["mandate_id"] != id {
		t.Errorf("token claims %v", claims)
	}
	if got, _ := mf.svc.Get(ctx, id); got.State != mandate.StateActive || got.GrantID == "" {
		t.Fatalf("after the token: %s grant %q", got.State, got.GrantID)
	}
	b.checkPage("console session open, token shown")

	// The mediator ends it: the token is forgotten, the page says so.
	if status := b.press("#end-session"); status != http.StatusOK {
		t.Fatalf("end answered %d", status)
	}
	b.mustSee("[role=status]", "La session est terminée")
	b.mustSee("#session-state", "Terminée")
	b.mustSee("#session-end", "La session a été terminée par le médiateur.")
	if got, _ := mf.svc.Get(ctx, id); got.State != mandate.StateEnded || got.EndReason != mandate.EndedByDelegate {
		t.Fatalf("after the end: %s %s", got.State, got.EndReason)
	}
	b.checkPage("console session ended")
	// The list follows the sessions still open: the holder refuses a
	// second request and the list says so without a reload.
	second, err := mf.authz.AuthorizeDevice(ctx, authz.DeviceRequest{ClientID: ui.ConsoleClientID, Scopes: []string{mandate.ScopeMailRead},
		HolderID: marie.ID, Duration: 15 * time.Minute, Purpose: "Déclaration d'impôts", PurposeCategory: mandate.PurposeTax,
		ActorStaffID: agent.ID, ActorStructure: agent.StructureID})
	if err != nil {
		t.Fatal(err)
	}
	b.press(`a[href="/console/sessions"]`)
	b.mustSee("main", "marie.dupont@example.org", "Terminée", "Demandée", "Impôts")
	b.checkPage("console sessions")
	marker = eval[float64](b, `window.__noReload = Math.random()`)
	if _, err := mf.svc.Refuse(ctx, marie.ID, second.MandateID, ""); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the list shows the refusal", `document.querySelector('[data-state-of="`+second.MandateID+`"]').textContent === 'Refusée par la personne'`)
	if got := eval[float64](b, `window.__noReload`); got != marker {
		t.Fatal("the list reloaded")
	}
}

func TestAdminSetsTheStructurePolicyAndEndsASessionOnAPhone(t *testing.T) {
	var (
		hf holdersFeature
		mf holderMandatesFeature
		cf consoleFeature
	)
	srv := newServer(t, withHolders(&hf), withHolderMandates(&mf, &hf, time.Second), withConsole(&cf, &mf, &hf))
	ctx := t.Context()
	agent, _ := srv.mediator("agent@trifouillis.fr", "Agent Durand")
	secret := srv.enrolStaff("chef@trifouillis.fr", "Chef Martin", "admin", "Mairie de Trifouillis")
	marie := hf.createHolder(t, agent, people.HolderInput{
		Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net",
	})
	d, err := mf.authz.AuthorizeDevice(ctx, authz.DeviceRequest{ClientID: ui.ConsoleClientID, Scopes: []string{mandate.ScopeMailRead},
		HolderID: marie.ID, Duration: 30 * time.Minute, Purpose: "Dossier logement", PurposeCategory: mandate.PurposeHousing,
		ActorStaffID: agent.ID, ActorStructure: agent.StructureID})
	if err != nil {
		t.Fatal(err)
	}

	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(srv.url + "/console/sessions")
	srv.signIn(b, "chef@trifouillis.fr", password, secret)
	b.mustSee("h1", "Les sessions de la structure")
	b.mustSee("main", "marie.dupont@example.org", "Demandée", "Logement")
	b.checkPage("console structure sessions")
	if status := b.press(`form[data-end-of="` + d.MandateID + `"] button`); status != http.StatusOK {
		t.Fatalf("end answered %d", status)
	}
	b.mustSee("[role=status]", "La session est terminée")
	if m, _ := mf.svc.Get(ctx, d.MandateID); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByAdmin {
		t.Fatalf("after the admin's end: %s %s", m.State, m.EndReason)
	}

	b.press(`a[href="/admin/policy"]`)
	b.mustSee("h1", "Règles des sessions et remplacements")
	b.checkPage("admin policy")
	// Untick every action: refused, in plain words.
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](
		`document.querySelectorAll('input[name=scope]').forEach(c => { c.checked = false })`)); err != nil {
		t.Fatal(err)
	}
	if status := b.press(`form[action="/admin/policy"] button[type="submit"]`); status != http.StatusUnprocessableEntity {
		t.Fatalf("no action answered %d", status)
	}
	b.mustSee(".error-summary", "Cochez au moins une action.")
	b.checkPage("admin policy with a mistake")
	if err := chromedp.Do(b.ctx,
		chromedp.Click(chromedp.ID("scope-0")),
		chromedp.SetValue(chromedp.ID("max_session"), "45"),
		chromedp.Click(chromedp.ID("relaxed")),
	); err != nil {
		t.Fatal(err)
	}
	if status := b.press(`form[action="/admin/policy"] button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("save answered %d: %s", status, b.text("main"))
	}
	b.mustSee("[role=status]", "Les règles sont enregistrées")
	b.checkPage("admin policy saved")
	p, err := mf.svc.Policy(ctx, agent.StructureID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.AllowedScopes, " ") != mandate.ScopeMailRead || p.MaxSessionDuration != 45*time.Minute || !p.AllowRelaxedPresence {
		t.Fatalf("stored %+v", p)
	}
}
