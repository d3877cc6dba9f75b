package browser_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// eventually polls cond until it holds; the deadline guards against a hang
// and is not a timing assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pressKey sends keys to the focused element and waits for the page they
// lead to; it returns its HTTP status.
func (b *tab) pressKey(keys string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.KeyEvent(keys))
	if err != nil {
		b.t.Fatalf("press %q: %v", keys, err)
	}
	return resp.Status
}

func TestHolderApprovesOnAPhoneKeepsTheSessionAliveAndEndsIt(t *testing.T) {
	var (
		hf holdersFeature
		mf holderMandatesFeature
	)
	srv := newServer(t, withHolders(&hf), withHolderMandates(&mf, &hf, 200*time.Millisecond))
	ctx := t.Context()
	agent, _ := srv.mediator("agent@trifouillis.fr", "Agent Durand")
	holder := hf.createHolder(t, agent, people.HolderInput{
		Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net",
	})
	get := func(id string) mandate.Mandate {
		t.Helper()
		m, err := mf.svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// The holder scans the QR code: the verification page, after signing
	// in with a one-time code.
	d := mf.ask(t, agent, holder.ID)
	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(d.VerificationURIComplete)
	if p := b.path(); !strings.HasPrefix(p, "/holder/signin?return_to=") {
		t.Fatalf("the QR code's link without a session leads to %s", p)
	}
	before := len(hf.smtp.Messages())
	if status := b.submitByKeyboard("mailbox", "marie.dupont@example.org"); status != http.StatusOK {
		t.Fatalf("sign-in step one: %d", status)
	}
	if status := b.submitByKeyboard("code", hf.code(t, "marie.perso@example.net", before)); status != http.StatusOK {
		t.Fatalf("sign-in code: %d: %s", status, b.text("main"))
	}
	if p := b.path(); p != "/device?user_code="+url.QueryEscape(d.UserCode) {
		t.Fatalf("after signing in the browser is at %s", p)
	}
	b.mustSee("h1", "Entrer le code")
	if got := eval[string](b, `document.getElementById('user_code').value`); got != d.UserCode {
		t.Errorf("the code field holds %q, want %s", got, d.UserCode)
	}
	b.checkPage("device code")
	// A mistyped code first.
	eval[bool](b, `(document.getElementById('user_code').value = '') === ''`)
	if status := b.submitByKeyboard("user_code", "bcdf ghjk"); status != http.StatusUnprocessableEntity {
		t.Fatalf("a wrong code answered %d", status)
	}
	b.mustSee(".error-summary", "Ce code n'est pas bon ou il a expiré.")
	b.checkPage("device code refused")
	eval[bool](b, `(document.getElementById('user_code').value = '') === ''`)
	if status := b.submitByKeyboard("user_code", strings.ToLower(d.UserCode)); status != http.StatusOK {
		t.Fatalf("the right code answered %d", status)
	}

	// One card: who, what, for how long, why.
	if p := b.path(); p != "/holder/mandates/"+d.MandateID+"/approve" {
		t.Fatalf("the code leads to %s", p)
	}
	b.mustSee("h1", "Agent Durand vous demande l'accès à votre boîte mail")
	b.mustSee("main", "Agent Durand, de Mairie de Trifouillis", "Lire les messages", "Envoyer des messages",
		"30 minutes à partir de votre accord.", "Aides sociales", "Dossier de prime d'activité",
		"L'accès s'arrête dès que vous fermez cette page")
	if eval[bool](b, `document.getElementById('include_personal').checked`) {
		t.Error("personal messages are included by default")
	}
	b.checkPage("approval card")
	// With the keyboard: Tab to "Autoriser", Enter.
	b.focusByTab("allow")
	if status := b.pressKey("\r"); status != http.StatusOK {
		t.Fatalf("approving answered %d", status)
	}

	// The live page beats: the lease follows the server's clock.
	if p := b.path(); p != "/holder/mandates/"+d.MandateID+"/live" {
		t.Fatalf("after approving the browser is at %s", p)
	}
	b.mustSee("h1", "Session en cours")
	b.mustSee("main", "Agent Durand (Mairie de Trifouillis) peut agir sur votre boîte mail.", "Temps restant", "Arrêter maintenant")
	b.checkPage("live session")
	m := get(d.MandateID)
	if m.State != mandate.StateApproved {
		t.Fatalf("after approving: %s", m.State)
	}
	srv.clock.Advance(10 * time.Second)
	eventually(t, "a heartbeat moves the lease past the server's new time", func() bool {
		return get(d.MandateID).LeaseUntil.After(srv.clock.Now().Add(10 * time.Second))
	})
	first := b.text("#countdown")
	eventually(t, "the countdown counts down", func() bool { return b.text("#countdown") != first })

	// "Arrêter maintenant": a real form.
	if status := b.press("#stop"); status != http.StatusOK {
		t.Fatalf("stop answered %d", status)
	}
	b.mustSee("h1", "La session est terminée")
	b.mustSee("[role=status]", "Plus personne ne peut accéder à votre boîte mail", "Vous l'avez arrêté.")
	b.checkPage("live session stopped")
	if m := get(d.MandateID); m.State != mandate.StateEnded || m.EndReason != mandate.EndedByHolder {
		t.Fatalf("after stop: %s %s", m.State, m.EndReason)
	}

	// The mediator ends the next one: the page says so at once.
	d2 := mf.ask(t, agent, holder.ID)
	b.open(d2.VerificationURIComplete)
	b.press(`form[action="/device"] button[type="submit"]`)
	b.press("#allow")
	b.mustSee("h1", "Session en cours")
	if _, err := mf.svc.End(ctx, d2.MandateID, mandate.EndedByDelegate, mandate.Actor{Kind: mandate.ActorStaff, ID: agent.ID}, ""); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("#presence-status.status"))); err != nil {
		t.Fatal(err)
	}
	b.mustSee("#presence-status", "La session est terminée.")
	b.mustSee("h1", "La session est terminée")
	if eval[bool](b, `!document.getElementById('stop-form').hidden`) {
		t.Error("the stop button stays after the end")
	}
	b.checkPage("live session ended by the mediator")

	// The list: one tap to the receipt.
	b.open(srv.url + "/holder/mandates")
	b.mustSee("h1", "Mes accès")
	b.mustSee("main", "Terminés", "Vous l'avez arrêté.", "La personne qui vous aidait l'a arrêté.")
	b.checkPage("holder's mandates")
	b.press(`a[href="/holder/mandates/` + d.MandateID + `/receipt"]`)
	b.mustSee("h1", "Reçu de votre accord")
	b.mustSee("#receipt-hash", get(d.MandateID).ConsentHash)
	// The signature, folded: opened with the keyboard, it shows the JWS.
	b.mustSee("details.signature summary", "Signature électronique du reçu")
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.CSS("details.signature summary"))); err != nil {
		t.Fatal(err)
	}
	if err := b.key(kb.Enter); err != nil {
		t.Fatal(err)
	}
	if !eval[bool](b, `document.querySelector('details.signature').open && document.getElementById('receipt-jws').textContent.split('.').length === 3`) {
		t.Error("the receipt's signature does not open as a compact JWS")
	}
	if !eval[bool](b, `document.querySelector('img.qr').complete && document.querySelector('img.qr').naturalWidth > 0`) {
		t.Error("the receipt's QR code did not load")
	}
	b.checkPage("receipt")

	// Closing the live page ends the session by itself.
	d3 := mf.ask(t, agent, holder.ID)
	b.open(d3.VerificationURIComplete)
	b.press(`form[action="/device"] button[type="submit"]`)
	b.press("#allow")
	b.mustSee("h1", "Session en cours")
	if m := get(d3.MandateID); m.State != mandate.StateApproved {
		t.Fatalf("third session: %s", m.State)
	}
	if _, err := chromedp.Call(b.ctx, page.Close, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "closing the page ends the session", func() bool {
		m := get(d3.MandateID)
		return m.State == mandate.StateEnded && m.EndReason == mandate.EndedByPresence
	})
}

// TestDelegationPausesWhenThePhoneLeavesAndResumesOnIAmAvailable: a
// colleague's delegation that needs the holder's presence beats while its
// page is open; when presence lapses elsewhere the page pauses (no token
// works) without ending; "Je suis disponible" starts it again; closing
// the page ends only the lease.
func TestDelegationPausesWhenThePhoneLeavesAndResumesOnIAmAvailable(t *testing.T) {
	var (
		hf holdersFeature
		mf holderMandatesFeature
	)
	srv := newServer(t, withHolders(&hf), withHolderMandates(&mf, &hf, 200*time.Millisecond))
	ctx := t.Context()
	colleague, _ := srv.mediator("collegue@trifouillis.fr", "Paul Collègue")
	holder := hf.createHolder(t, colleague, people.HolderInput{
		Mailbox: "claire.martin@trifouillis.fr", DisplayName: "Claire Martin", Email: "claire.perso@example.net",
	})
	now := srv.clock.Now()
	m, err := mf.svc.Request(ctx, mandate.Request{Kind: mandate.KindDelegation, StructureID: colleague.StructureID,
		HolderID: holder.ID, DelegateID: colleague.ID, ClientID: mf.client, Scopes: []string{mandate.ScopeMailRead},
		Purpose: "Congés d'été", PurposeCategory: mandate.PurposeAbsence, Presence: mandate.PresenceRequired,
		NotBefore: now, NotAfter: now.Add(7 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	get := func() mandate.Mandate {
		t.Helper()
		got, err := mf.svc.Get(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	base := srv.url + "/holder/mandates/" + m.ID

	// The holder signs in on the phone and approves inside the window.
	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(base + "/approve")
	before := len(hf.smtp.Messages())
	if status := b.submitByKeyboard("mailbox", "claire.martin@trifouillis.fr"); status != http.StatusOK {
		t.Fatalf("sign-in step one: %d", status)
	}
	if status := b.submitByKeyboard("code", hf.code(t, "claire.perso@example.net", before)); status != http.StatusOK {
		t.Fatalf("sign-in code: %d: %s", status, b.text("main"))
	}
	b.mustSee("main", "Du ", "Remplacement pendant une absence", "Congés d'été")
	if status := b.press("#allow"); status != http.StatusOK {
		t.Fatalf("approving answered %d", status)
	}
	b.mustSee("h1", "Délégation en cours")
	b.mustSee("main", "Paul Collègue", "Gardez cette page ouverte tant que vous êtes disponible.", "Arrêter maintenant")
	b.checkPage("delegation live")
	srv.clock.Advance(10 * time.Second)
	eventually(t, "a heartbeat moves the lease past the server's new time", func() bool {
		return get().LeaseUntil.After(srv.clock.Now().Add(10 * time.Second))
	})

	// Presence ends elsewhere (another page of the holder closed): the
	// page pauses, the delegation goes on.
	if _, err := mf.svc.Leave(ctx, holder.ID, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("#start"))); err != nil {
		t.Fatal(err)
	}
	b.mustSee("#presence-status", "Votre présence n'est plus confirmée")
	b.mustSee("#presence-paused", "L'accès est suspendu", "Je suis disponible")
	b.mustSee("h1", "Délégation en cours")
	if eval[bool](b, `!document.getElementById('presence-running').hidden`) {
		t.Error("the countdown stays while paused")
	}
	b.checkPage("delegation paused")
	if got := get(); got.State != mandate.StateApproved || got.Live(srv.clock.Now()) {
		t.Fatalf("paused: %+v", got)
	}

	// "Je suis disponible": a real form; the page beats again.
	if status := b.press("#start"); status != http.StatusOK {
		t.Fatalf("\"Je suis disponible\" answered %d", status)
	}
	if !eval[bool](b, `document.getElementById('presence-paused').hidden && !document.getElementById('presence-running').hidden`) {
		t.Error("the page did not resume")
	}
	srv.clock.Advance(10 * time.Second)
	eventually(t, "heartbeats resume", func() bool {
		return get().LeaseUntil.After(srv.clock.Now().Add(10 * time.Second))
	})

	// The holder's list tells of the colleague's accesses: a mail server
	// reported a message read under the delegation.
	if _, err := hf.log.Log.Record(ctx, audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: colleague.ID, Name: colleague.DisplayName},
		Holder: holder.ID, Structure: colleague.StructureID, Action: audit.ActionMailboxRead, Target: "message:42",
		MandateID: m.ID, ClientID: mf.client, Outcome: audit.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	list := b.sibling("fr-FR,fr;q=0.9")
	list.open(srv.url + "/holder/mandates")
	list.mustSee("#accesses-title", "Derniers accès")
	list.mustSee("section[aria-labelledby=accesses-title] ol", "Paul Collègue")
	list.checkPage("holder's mandates with the latest accesses")

	// Closing the page ends the lease, not the delegation.
	if _, err := chromedp.Call(b.ctx, page.Close, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "closing the page ends the lease", func() bool {
		return !get().Present(srv.clock.Now())
	})
	if got := get(); got.State != mandate.StateApproved || got.EndReason != "" {
		t.Fatalf("after closing the page: %+v", got)
	}
}
