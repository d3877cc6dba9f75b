package browser_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

const e2eLang = "fr-FR,fr;q=0.9"

// story is the end-to-end test's cast: one server, the mediator's desk,
// the holder's phone and the clients that are not a browser.
type story struct {
	t     *testing.T
	srv   *server
	hf    *holdersFeature
	mf    *holderMandatesFeature
	ms    *mailServers
	base  string // http://localhost:<port>, the issuer
	desk  *tab   // the mediator's desktop browser, signed in
	phone *tab   // the holder's phone: its first tab
}

// consoleSession is what the console's page shows for a new session.
type consoleSession struct {
	id, userCode, uriComplete string
}

func (s *story) get(id string) mandate.Mandate {
	s.t.Helper()
	m, err := s.mf.svc.Get(s.t.Context(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

var sessionCountdown = regexp.MustCompile(`^(\d+:)?\d\d:\d\d$`)

// TestMandatesEndToEnd is issue 5's "Done when" in a real browser, on one
// server (SQLite; cmd/mandated's TestRevocationReachesEveryReplica covers
// the replicas): a mediator opens a session at the desk, the holder signs
// in with a passkey on a 360×640 phone and approves it, the console's
// script gets a token whose claims and signature are right, the mail
// server's introspection follows the session to its end — "Arrêter
// maintenant", a closed page, lost heartbeats — a colleague's delegation
// works inside its window only, and each step is in the holder's history
// and in an audit export that verifies.
func TestMandatesEndToEnd(t *testing.T) {
	var (
		hf holdersFeature
		pk passkeyEnv
		mf holderMandatesFeature
		ms mailServers
		cf consoleFeature
	)
	srv := newServer(t, onLocalhost(), withHolders(&hf), withPasskeys(&pk, &hf),
		withHolderMandates(&mf, &hf, 200*time.Millisecond), withMailServers(&ms, &mf), withConsole(&cf, &mf, &hf))
	ctx := t.Context()
	if pk.base != srv.url {
		t.Fatalf("the passkeys' origin %s is not the issuer %s", pk.base, srv.url)
	}
	secret := srv.staff("agent@trifouillis.fr", "Agent Durand")
	agent, err := srv.store.FindStaffByEmail(ctx, "agent@trifouillis.fr")
	if err != nil {
		t.Fatal(err)
	}
	srv.staff("paul@trifouillis.fr", "Paul Collègue")
	paul, err := srv.store.FindStaffByEmail(ctx, "paul@trifouillis.fr")
	if err != nil {
		t.Fatal(err)
	}
	res, err := hf.h.Create(ctx, people.Principal{Kind: "staff", ID: agent.ID, Role: people.RoleMediator, StructureID: agent.StructureID},
		agent.StructureID, people.HolderInput{Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net"})
	if err != nil {
		t.Fatal(err)
	}
	marie := res.Holder
	s := &story{t: t, srv: srv, hf: &hf, mf: &mf, ms: &ms, base: srv.url}

	// The mediator signs in at the desk; Marie's phone gets a passkey from
	// the desk's QR code (as TestPasskeyHolderIsEnrolledFromTheConsoleQRCodeAndSignsInWithIt).
	s.desk = newLongTab(t, desktop, e2eLang)
	s.desk.open(s.base + "/signin")
	srv.signIn(s.desk, "agent@trifouillis.fr", password, secret)
	s.phone = newLongTab(t, smallPhone, e2eLang)
	s.enrolPasskey(marie.ID, "marie.perso@example.net")

	// 1. The mediator opens a session from the console: holder, actions,
	// duration, purpose; the page shows the QR code and the user code.
	stopClock := followWallClock(srv.clock)
	defer stopClock()
	s1 := s.openSession(marie.ID, "Retrouver le courrier de la CAF", true, true)

	// 2. On the phone, the QR code's link; sign-in with the passkey; the
	// code page, then one card; "Autoriser"; the live page counts down.
	s.phone.open(s1.uriComplete)
	if p := s.phone.path(); !strings.HasPrefix(p, "/holder/signin?return_to=") {
		t.Fatalf("the QR code's link without a session leads to %s", p)
	}
	s.phone.checkPage("holder sign-in from the QR code")
	s.phone.press(`a[href^="/holder/signin/passkey"]`)
	s.phone.mustSee("h1", "Se connecter avec une clé d'accès")
	s.phone.checkPage("holder passkey sign-in")
	s.phone.focusByTab("passkey-signin")
	if err := s.phone.key("\r"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(s.phone.ctx, chromedp.WaitVisible(chromedp.ID("user_code"))); err != nil {
		t.Fatalf("not signed in with the passkey (at %s: %s): %v", s.phone.path(), s.phone.text("main"), err)
	}
	if p := s.phone.path(); p != "/device?user_code="+url.QueryEscape(s1.userCode) {
		t.Fatalf("after the passkey the phone is at %s", p)
	}
	if keys, err := pk.keys.List(ctx, people.HolderSubject(marie.ID)); err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil {
		t.Fatalf("the passkey was not used to sign in: %+v, %v", keys, err)
	}
	s.phone.mustSee("h1", "Entrer le code")
	if got := eval[string](s.phone, `document.getElementById('user_code').value`); got != s1.userCode {
		t.Errorf("the code field holds %q, want %s", got, s1.userCode)
	}
	s.phone.checkPage("device code, prefilled")
	if status := s.phone.submitByKeyboard("user_code", ""); status != http.StatusOK {
		t.Fatalf("the code answered %d: %s", status, s.phone.text("main"))
	}
	if p := s.phone.path(); p != "/holder/mandates/"+s1.id+"/approve" {
		t.Fatalf("the code leads to %s", p)
	}
	s.phone.mustSee("h1", "Agent Durand vous demande l'accès à votre boîte mail")
	s.phone.mustSee("main", "Agent Durand, de Mairie de Trifouillis", "marie.dupont@example.org", // who, whose
		"Lire les messages", "Envoyer des messages", // what
		"45 minutes à partir de votre accord.",              // how long
		"Aides sociales", "Retrouver le courrier de la CAF", // why
		"L'accès s'arrête dès que vous fermez cette page")
	s.phone.checkPage("approval card")
	s.approve(s.phone, s1.id)
	s.phone.mustSee("h1", "Session en cours")
	s.phone.mustSee("main", "Agent Durand (Mairie de Trifouillis) peut agir sur votre boîte mail.", "Temps restant", "Arrêter maintenant")
	first := s.phone.text("#countdown")
	if !sessionCountdown.MatchString(first) || !strings.HasPrefix(first, "4") {
		t.Errorf("the countdown shows %q, want about 45 minutes", first)
	}
	eventually(t, "the countdown counts down", func() bool { return s.phone.text("#countdown") != first })
	s.phone.checkPage("live session")

	// 3. The console flips to "En cours" by itself; its script holds the
	// token: signed with a published key, with the right claims.
	token1 := s.consoleToken(true)
	stopClock()
	m1 := s.get(s1.id)
	if m1.State != mandate.StateActive {
		t.Fatalf("after the token the session is %s", m1.State)
	}
	claims := ms.verifiedClaims(t, token1)
	act, _ := claims["act"].(map[string]any)
	if claims["iss"] != s.base || claims["sub"] != people.HolderSubject(marie.ID) || act["sub"] != people.StaffSubject(agent.ID) ||
		claims["mandate_id"] != s1.id || claims["client_id"] != authz.ConsoleClientID || claims["scope"] != "mail.read mail.send" ||
		!slices.Contains(jsonStrings(claims["aud"]), ms.rsID) {
		t.Errorf("token claims %v", claims)
	}
	exp, now := jsonInt(claims["exp"]), srv.clock.Now()
	if exp <= now.Unix() || exp > now.Add(authz.DefaultAccessTokenLifetime).Unix() || exp > m1.NotAfter.Unix() || jsonInt(claims["iat"]) > exp {
		t.Errorf("exp %d (iat %v) at %d: want at most %s ahead, never past the session's end %d",
			exp, claims["iat"], now.Unix(), authz.DefaultAccessTokenLifetime, m1.NotAfter.Unix())
	}
	s.wantDetails("token", claims["authorization_details"], s1.id, "mailto:marie.dupont@example.org", []string{"mail.read", "mail.send"}, []string{"personal"})

	// 4. The mail server introspects it: active, with the flat members
	// mail servers read. A client the token is not meant for sees nothing.
	in := ms.introspect(t, token1)
	inAct, _ := in.body["act"].(map[string]any)
	if in.body["active"] != true || in.str("username") != "marie.dupont@example.org" || in.str("act_sub") != people.StaffSubject(agent.ID) ||
		in.str("rights") != "mail.read mail.send" || in.str("mandate_id") != s1.id || in.str("presence") != "present" ||
		in.str("sub") != people.HolderSubject(marie.ID) || inAct["sub"] != people.StaffSubject(agent.ID) {
		t.Errorf("introspection by the mail server: %s", in.raw)
	}
	s.wantDetails("introspection", in.body["authorization_details"], s1.id, "mailto:marie.dupont@example.org", []string{"mail.read", "mail.send"}, []string{"personal"})
	if r := ms.post(t, authz.PathIntrospect, url.Values{"token": {token1}}, ms.otherID, ms.otherSecret); r.body["active"] != false || len(r.body) != 1 {
		t.Errorf("introspection by a client the token is not meant for: %s", r.raw)
	}

	// 5. "Arrêter maintenant" (by keyboard): the token dies, the console
	// says who ended it.
	s.phone.focusByTab("stop")
	if status := s.phone.pressKey("\r"); status != http.StatusOK {
		t.Fatalf("stop answered %d", status)
	}
	s.phone.mustSee("h1", "La session est terminée")
	s.phone.mustSee("[role=status]", "Plus personne ne peut accéder à votre boîte mail", "Vous l'avez arrêté.")
	s.phone.checkPage("live session stopped")
	if m := s.get(s1.id); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByHolder {
		t.Fatalf("after stop: %s %s", m.State, m.EndReason)
	}
	ms.wantInactive(t, "after \"Arrêter maintenant\"", token1)
	s.consoleEnded("La personne a arrêté la session.", "console: ended by the holder")

	// 7a. The holder's history says each step in plain French.
	s.phone.open(s.base + "/holder/history")
	s.phone.mustSee("h1", "Qui a accédé à ma boîte mail")
	s.phone.checkPage("holder history")
	rows := eval[[]string](s.phone, `Array.from(document.querySelectorAll('ol.cards > li')).map(li => li.textContent.replace(/\s+/g, ' ').trim())`)
	var ofS1 []string
	for _, r := range rows {
		if strings.Contains(r, "Mandat n° "+s1.id) {
			ofS1 = append(ofS1, r)
		}
	}
	wantInOrder(t, "the history of the first session (newest first)", ofS1,
		"Vous avez arrêté un accès à votre messagerie.",
		"Agent Durand (Mairie de Trifouillis) a commencé à utiliser l'accès que vous avez donné.",
		"Vous avez autorisé un accès à votre messagerie.",
		"Agent Durand (Mairie de Trifouillis) a demandé à accéder à votre messagerie.")

	// 6a. A second session; the holder closes the phone's page: the
	// session ends by itself (the page's beacon) and so does its token.
	stopClock = followWallClock(srv.clock)
	s2 := s.openSession(marie.ID, "Déclarer un changement de situation", false, false)
	p2 := s.phone.sibling(e2eLang)
	s.approveFromLink(p2, s2)
	token2 := s.consoleToken(false)
	stopClock()
	if r := ms.introspect(t, token2); r.body["active"] != true || r.str("presence") != "present" {
		t.Fatalf("second session: %s", r.raw)
	}
	if _, err := chromedp.Call(p2.ctx, page.Close, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "closing the phone's page ends the session", func() bool {
		m := s.get(s2.id)
		return m.State == mandate.StateEnded && m.EndReason == mandate.EndedByPresence
	})
	ms.wantInactive(t, "after the phone's page was closed", token2)
	s.consoleEnded("La personne a quitté la page ou perdu la connexion.", "console: the holder closed the page")

	// 6b. A third: the heartbeats stop (the phone's network is lost, the
	// page stays). The lease lapses on the server's clock: introspection
	// says inactive at once, and the sweep ends the session.
	stopClock = followWallClock(srv.clock)
	s3 := s.openSession(marie.ID, "Prendre rendez-vous à la CPAM", false, false)
	p3 := s.phone.sibling(e2eLang)
	s.approveFromLink(p3, s3)
	token3 := s.consoleToken(false)
	stopClock()
	if r := ms.introspect(t, token3); r.body["active"] != true {
		t.Fatalf("third session: %s", r.raw)
	}
	p3.blockHeartbeats(true)
	p3.waitFor("the page says the connection is lost", `document.getElementById('presence-status').textContent.indexOf('La connexion est coupée') >= 0`)
	p3.checkPage("live session, connection lost")
	srv.clock.Advance(mf.svc.Config().LeaseLapse + time.Second)
	ms.wantInactive(t, "lease lapsed, before any sweep", token3)
	if m := s.get(s3.id); m.State != mandate.StateActive {
		t.Fatalf("the lapse alone moved the session to %s", m.State)
	}
	if n, err := mf.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep moved %d (%v), want the lapsed session", n, err)
	}
	if m := s.get(s3.id); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByPresence {
		t.Fatalf("after the sweep: %s %s", m.State, m.EndReason)
	}
	ms.wantInactive(t, "after the sweep", token3)
	p3.waitFor("the phone's page says the session ended", `document.getElementById('presence-status').textContent.indexOf('La session est terminée') >= 0`)
	p3.mustSee("h1", "La session est terminée")
	p3.checkPage("live session ended by the sweep")
	s.consoleEnded("La personne a quitté la page ou perdu la connexion.", "console: heartbeats lost")
	p3.blockHeartbeats(false)

	// 8. A colleague's delegation, approved ahead of its window: usable
	// inside it while the holder is present, not before, not after. (The
	// window opens a minute ahead: fosite dates a refreshed token's expiry
	// by the wall clock, so the server's clock must stay near it.)
	from := srv.clock.Now().Add(time.Minute).Truncate(time.Second)
	to := from.Add(mandate.MinDelegationDuration)
	d, err := mf.authz.AuthorizeDevice(ctx, authz.DeviceRequest{ClientID: ms.mailID, Scopes: []string{mandate.ScopeMailRead},
		Kind: mandate.KindDelegation, HolderID: marie.ID, NotBefore: from, NotAfter: to, Presence: mandate.PresenceRequired,
		Purpose: "Congés : suivre les réponses de la CAF", PurposeCategory: mandate.PurposeAbsence,
		ActorStaffID: paul.ID, ActorStructure: paul.StructureID})
	if err != nil {
		t.Fatalf("delegation request: %v", err)
	}
	pd := s.phone.sibling(e2eLang)
	pd.open(d.VerificationURIComplete)
	pd.mustSee("h1", "Entrer le code")
	if status := pd.submitByKeyboard("user_code", ""); status != http.StatusOK {
		t.Fatalf("the delegation's code answered %d", status)
	}
	pd.mustSee("h1", "Paul Collègue vous demande l'accès à votre boîte mail")
	pd.mustSee("main", "Paul Collègue, de Mairie de Trifouillis", "Du ", " au ", "Lire les messages",
		"Remplacement pendant une absence", "Congés : suivre les réponses de la CAF")
	pd.checkPage("delegation card")
	s.approve(pd, d.MandateID)
	pd.mustSee("h1", "Délégation prévue")
	pd.mustSee("main", "La délégation commence le")
	pd.checkPage("delegation planned")

	// Before the window: the colleague's client takes its grant at once;
	// nothing it holds works yet.
	tok := ms.pollDevice(t, d.DeviceCode)
	if tok.status != http.StatusOK || tok.str("access_token") == "" || tok.str("refresh_token") == "" {
		t.Fatalf("the colleague's client after the approval: %d %s", tok.status, tok.raw)
	}
	dc := ms.verifiedClaims(t, tok.str("access_token"))
	dAct, _ := dc["act"].(map[string]any)
	if jsonInt(dc["nbf"]) != from.Unix() || dc["sub"] != people.HolderSubject(marie.ID) || dAct["sub"] != people.StaffSubject(paul.ID) || dc["mandate_id"] != d.MandateID {
		t.Errorf("delegation token claims %v (window from %d)", dc, from.Unix())
	}
	s.wantDetails("delegation token", dc["authorization_details"], d.MandateID, "mailto:marie.dupont@example.org", []string{"mail.read"}, []string{"personal"})
	ms.wantInactive(t, "delegation before its window", tok.str("access_token"))
	wantOAuthError(t, "refresh before the window", ms.refresh(t, tok.str("refresh_token")), "invalid_grant")

	// Inside the window: the page offers "Je suis disponible"; once
	// pressed, a refresh gives a token the mail server accepts.
	srv.clock.Advance(from.Sub(srv.clock.Now()) + time.Second)
	if ahead := srv.clock.Now().Sub(time.Now()); ahead > authz.DefaultAccessTokenLifetime-time.Minute {
		t.Fatalf("the server's clock is %s ahead of the wall clock: refreshed tokens would be born expired", ahead)
	}
	live := s.base + "/holder/mandates/" + d.MandateID + "/live"
	pd.open(live)
	pd.mustSee("h1", "Délégation en cours")
	pd.mustSee("#presence-paused", "L'accès est suspendu", "Je suis disponible")
	pd.checkPage("delegation, holder not present yet")
	wantOAuthError(t, "refresh inside the window, holder absent", ms.refresh(t, tok.str("refresh_token")), "invalid_grant")
	if status := pd.press("#start"); status != http.StatusOK {
		t.Fatalf("\"Je suis disponible\" answered %d", status)
	}
	pd.waitFor("the page beats", `!document.getElementById('presence-running').hidden`)
	r := ms.refresh(t, tok.str("refresh_token"))
	if r.status != http.StatusOK {
		t.Fatalf("refresh inside the window, holder present: %d %s", r.status, r.raw)
	}
	access, refresh := r.str("access_token"), r.str("refresh_token")
	if in := ms.introspect(t, access); in.body["active"] != true || in.str("presence") != "present" || in.str("act_sub") != people.StaffSubject(paul.ID) ||
		in.str("username") != "marie.dupont@example.org" || in.str("rights") != "mail.read" || in.str("mandate_id") != d.MandateID {
		t.Errorf("delegation inside its window, holder present: %s", in.raw)
	}

	// The holder closes the page: the delegation goes on, its tokens stop.
	if _, err := chromedp.Call(pd.ctx, page.Close, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "closing the page ends the lease", func() bool { return !s.get(d.MandateID).Present(srv.clock.Now()) })
	if m := s.get(d.MandateID); m.State != mandate.StateActive || m.EndReason != "" {
		t.Fatalf("after closing the page the delegation is %s %s", m.State, m.EndReason)
	}
	ms.wantInactive(t, "delegation, page closed", access)
	wantOAuthError(t, "refresh with the page closed", ms.refresh(t, refresh), "invalid_grant")

	// Available again, then the window's end: nothing works after it.
	pe := s.phone.sibling(e2eLang)
	pe.open(live)
	if status := pe.press("#start"); status != http.StatusOK {
		t.Fatalf("\"Je suis disponible\" again answered %d", status)
	}
	r = ms.refresh(t, refresh)
	if r.status != http.StatusOK {
		t.Fatalf("refresh, holder back: %d %s", r.status, r.raw)
	}
	access, refresh = r.str("access_token"), r.str("refresh_token")
	if in := ms.introspect(t, access); in.body["active"] != true {
		t.Fatalf("delegation, holder back: %s", in.raw)
	}
	srv.clock.Advance(to.Sub(srv.clock.Now()) + time.Second)
	ms.wantInactive(t, "delegation after its window", access)
	wantOAuthError(t, "refresh after the window", ms.refresh(t, refresh), "invalid_grant")
	if n, err := mf.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the window moved %d (%v)", n, err)
	}
	if m := s.get(d.MandateID); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByExpiry {
		t.Fatalf("after the window: %s %s", m.State, m.EndReason)
	}
	pe.waitFor("the page says the delegation is over", `document.getElementById('presence-status').textContent.indexOf('La session est terminée') >= 0`)
	pe.checkPage("delegation over")

	// 7b. An export of the audit log verifies offline and tells each
	// mandate's story; a rewritten step no longer verifies.
	var export bytes.Buffer
	if err := hf.log.Export(ctx, time.Time{}, time.Time{}, &export); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExport(bytes.NewReader(export.Bytes()), hf.log.VerifierKey())
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("the export does not verify: %v %v", err, rep.Problems)
	}
	steps := mandateSteps(t, export.Bytes())
	wantInOrder(t, "audit of the first session", steps[s1.id],
		"mandate.requested", "mandate.approved receipt:"+m1.ConsentHash, "mandate.activated", "mandate.ended ended by holder")
	for _, id := range []string{s2.id, s3.id} {
		wantInOrder(t, "audit of a session that lost its holder", steps[id],
			"mandate.requested", "mandate.approved", "mandate.activated", "mandate.ended ended by presence_lost")
	}
	wantInOrder(t, "audit of the delegation", steps[d.MandateID],
		"mandate.requested", "mandate.approved", "mandate.activated", "mandate.presence_started", "mandate.presence_ended",
		"mandate.presence_started", "mandate.ended ended by expiry")
	tampered := rewriteReason(t, export.Bytes(), s1.id, "ended by holder", "ended by expiry")
	if rep, err := audit.VerifyExport(bytes.NewReader(tampered), hf.log.VerifierKey()); err == nil {
		t.Errorf("an export whose first session's end was rewritten verifies: %+v", rep)
	}
}

// enrolPasskey: the mediator starts a passkey enrolment for the holder at
// the desk; the phone opens its link, types the code mailed to the holder
// and creates the passkey (the tab's virtual authenticator). The phone is
// not signed in afterwards.
func (s *story) enrolPasskey(holderID, email string) {
	t := s.t
	s.desk.open(s.base + "/console/holders/" + holderID + "/passkey")
	s.desk.press("#start-enrolment")
	s.desk.mustSee("[role=status]", "Le lien est prêt")
	link := s.desk.text("#enrol-url")
	if !strings.HasPrefix(link, s.base+"/holder/enrol?token=") {
		t.Fatalf("the enrolment link is %q", link)
	}
	auth := s.phone.authenticator()
	s.phone.open(link)
	before := len(s.hf.smtp.Messages())
	s.phone.press("#send-code")
	s.phone.typeInto("code", mailedCodeTo(t, s.hf, email, before))
	s.phone.press("#verify-code")
	s.phone.mustSee("[role=status]", "Code validé")
	s.phone.clickAndWait("#create-passkey", "#go-signin")
	if creds := s.phone.credentials(auth); len(creds) != 1 || !creds[0].IsResidentCredential {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential", creds)
	}
}

// mailedCodeTo waits for the next mail to address and returns its code.
func mailedCodeTo(t *testing.T, hf *holdersFeature, address string, before int) string {
	t.Helper()
	eventually(t, "a code is mailed", func() bool { return len(hf.smtp.Messages()) > before })
	msgs := hf.smtp.Messages()
	m := msgs[len(msgs)-1]
	code := mailedCode.FindString(m.Text)
	if len(m.To) != 1 || m.To[0] != address || code == "" {
		t.Fatalf("mail to %v: %q", m.To, m.Text)
	}
	return code
}

// openSession fills the console's form for a new session (by keyboard
// where a person would) and reads the code page: the user code, the
// verification URI, and the QR code, which must draw that URI with the
// code (verification_uri_complete).
func (s *story) openSession(holderID, purpose string, send, check bool) consoleSession {
	t, desk := s.t, s.desk
	desk.open(s.base + "/console/sessions")
	desk.press(`a[href="/console/sessions/new"]`)
	desk.mustSee("h1", "Ouvrir une session accompagnée")
	if err := chromedp.Do(desk.ctx,
		chromedp.SetValue(chromedp.ID("holder"), holderID),
		chromedp.SetValue(chromedp.ID("category"), string(mandate.PurposeSocial)),
		chromedp.SetValue(chromedp.ID("duration"), "45"),
	); err != nil {
		t.Fatal(err)
	}
	desk.typeInto("purpose", purpose)
	if send {
		if err := chromedp.Do(desk.ctx, chromedp.Focus(chromedp.ID("scope-1"))); err != nil {
			t.Fatal(err)
		}
		if err := desk.key(" "); err != nil { // ticks "Envoyer des messages"
			t.Fatal(err)
		}
	}
	if !eval[bool](desk, `document.getElementById('scope-0').checked`) ||
		eval[bool](desk, `document.getElementById('scope-1').checked`) != send {
		t.Fatal("the actions are not ticked as wanted")
	}
	if check {
		desk.checkPage("console: new session, filled in")
	}
	if err := chromedp.Do(desk.ctx, chromedp.Focus(chromedp.CSS(`form[action="/console/sessions/new"] button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	if status := desk.pressKey("\r"); status != http.StatusOK {
		t.Fatalf("the new session form answered %d: %s", status, desk.text("main"))
	}
	m := sessionPath.FindStringSubmatch(desk.path())
	if m == nil {
		t.Fatalf("after the form the desk is at %s", desk.path())
	}
	cs := consoleSession{id: m[1], userCode: desk.text("#user-code")}
	desk.mustSee("#session-state", "Demandée")
	uri := desk.text("#device .uri")
	if uri != s.base+authz.PathDeviceVerification {
		t.Fatalf("the page names %q as the verification URI", uri)
	}
	cs.uriComplete = uri + "?" + url.Values{"user_code": {cs.userCode}}.Encode()
	if src := eval[string](desk, `document.querySelector('#device img.qr').getAttribute('src')`); !qrSays(t, src, cs.uriComplete) {
		t.Fatalf("the QR code does not say %s", cs.uriComplete)
	}
	if check {
		desk.checkPage("console: session requested, QR code")
	}
	if got := s.get(cs.id); got.HolderID != holderID || got.Purpose != purpose || got.Duration != 45*time.Minute || got.State != mandate.StateRequested {
		t.Fatalf("the console created %+v", got)
	}
	return cs
}

// approveFromLink: the signed-in phone opens the QR code's link, confirms
// the code and approves.
func (s *story) approveFromLink(p *tab, cs consoleSession) {
	s.t.Helper()
	p.open(cs.uriComplete)
	p.mustSee("h1", "Entrer le code")
	if status := p.submitByKeyboard("user_code", ""); status != http.StatusOK {
		s.t.Fatalf("the code answered %d", status)
	}
	s.approve(p, cs.id)
	p.mustSee("h1", "Session en cours")
}

// approve presses "Autoriser" on the approval card, by keyboard.
func (s *story) approve(p *tab, id string) {
	s.t.Helper()
	if path := p.path(); path != "/holder/mandates/"+id+"/approve" {
		s.t.Fatalf("the phone is at %s, not the approval card", path)
	}
	p.focusByTab("allow")
	if status := p.pressKey("\r"); status != http.StatusOK {
		s.t.Fatalf("approving answered %d", status)
	}
	if path := p.path(); path != "/holder/mandates/"+id+"/live" {
		s.t.Fatalf("after approving the phone is at %s", path)
	}
}

// consoleToken waits for the console's page to turn live by itself and
// returns the token its script got (through the copy button's fallback).
func (s *story) consoleToken(check bool) string {
	desk := s.desk
	marker := eval[float64](desk, `window.__noReload = Math.random()`)
	desk.waitFor("the console shows the token", `!document.getElementById('token').hidden`)
	desk.waitFor("the console says En cours", `document.getElementById('session-state').textContent === 'En cours'`)
	if got := eval[float64](desk, `window.__noReload`); got != marker {
		s.t.Fatal("the console's page reloaded")
	}
	desk.mustSee("#token", "Session ouverte")
	desk.mustSee("#countdown", "Temps restant : 4")
	if !eval[bool](desk, `document.getElementById('device').hidden`) {
		s.t.Error("the QR code is still shown during the session")
	}
	eval[bool](desk, `(Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true}), true)`)
	if err := chromedp.Do(desk.ctx, chromedp.Click(chromedp.ID("copy-token"))); err != nil {
		s.t.Fatal(err)
	}
	token := eval[string](desk, `document.getElementById('token-value').value`)
	if strings.Count(token, ".") != 2 {
		s.t.Fatalf("the console's token is %q", token)
	}
	if check {
		desk.checkPage("console: session in progress, token")
	}
	return token
}

// consoleEnded waits for the console's page to say the session ended, and
// why, without a reload; the token is gone from the page.
func (s *story) consoleEnded(why, name string) {
	desk := s.desk
	desk.waitFor("the console says Terminée", `document.getElementById('session-state').textContent === 'Terminée'`)
	desk.mustSee("#session-end", why)
	if !eval[bool](desk, `document.getElementById('token').hidden && document.getElementById('token-value').value === ''`) {
		s.t.Errorf("%s: the token is still in the page", name)
	}
	desk.checkPage(name)
}

// wantDetails checks one RFC 9396 authorization detail of our type.
func (s *story) wantDetails(what string, v any, mandateID, location string, actions, exclusions []string) {
	s.t.Helper()
	list, _ := v.([]any)
	if len(list) != 1 {
		s.t.Errorf("%s: authorization_details %v", what, v)
		return
	}
	d, _ := list[0].(map[string]any)
	if d["type"] != authz.AuthorizationDetailsType || d["mandate_id"] != mandateID || !slices.Equal(jsonStrings(d["locations"]), []string{location}) ||
		!slices.Equal(jsonStrings(d["actions"]), actions) || !slices.Equal(jsonStrings(d["exclusions"]), exclusions) {
		s.t.Errorf("%s: authorization_details %v", what, d)
	}
}

// jsonStrings reads a JSON string or array of strings.
func jsonStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func jsonInt(v any) int64 { f, _ := v.(float64); return int64(f) }

func wantOAuthError(t *testing.T, what string, r oauthReply, code string) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.str("error") != code || r.str("access_token") != "" {
		t.Errorf("%s: %d %s, want %s", what, r.status, r.raw, code)
	}
}

// wantInOrder checks that got holds each of want, in that order (each a
// prefix of its item), other items between them allowed.
func wantInOrder(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s: missing %q in order; got %q", what, want[i], got)
	}
}

// mandateSteps reads an audit export: for each mandate, its events in log
// order as "action[ target][ reason]" (the target in clear or opened).
func mandateSteps(t *testing.T, export []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(export))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var e audit.ExportEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Leaf == nil {
			continue // the trailer
		}
		leaf, err := audit.ParseLeaf(e.Leaf)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		id := leaf["mandate_id"]
		if id == "" || !strings.HasPrefix(leaf["action"], "mandate.") {
			continue
		}
		step := leaf["action"]
		target := leaf["target"]
		if o, ok := e.Open["target"]; ok {
			target = o.Value
		}
		if strings.HasPrefix(target, "receipt:") {
			step += " " + target
		}
		if leaf["reason"] != "" {
			step += " " + leaf["reason"]
		}
		out[id] = append(out[id], step)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rewriteReason changes the reason of a mandate's event in an export,
// leaving everything else as it was.
func rewriteReason(t *testing.T, export []byte, mandateID, from, to string) []byte {
	t.Helper()
	var out bytes.Buffer
	done := false
	for line := range bytes.Lines(export) {
		var e audit.ExportEntry
		if !done && json.Unmarshal(line, &e) == nil && e.Leaf != nil &&
			bytes.Contains(e.Leaf, []byte(`"mandate_id":"`+mandateID+`"`)) && bytes.Contains(e.Leaf, []byte(`"reason":"`+from+`"`)) {
			e.Leaf = bytes.Replace(e.Leaf, []byte(`"reason":"`+from+`"`), []byte(`"reason":"`+to+`"`), 1)
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(append(b, '\n'))
			done = true
			continue
		}
		out.Write(line)
	}
	if !done {
		t.Fatalf("no event of %s with reason %q in the export", mandateID, from)
	}
	return out.Bytes()
}
