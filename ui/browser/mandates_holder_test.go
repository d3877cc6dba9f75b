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
	srv.staff("agent@trifouillis.fr", "Agent Durand")
	agent, err := srv.store.FindStaffByEmail(ctx, "agent@trifouillis.fr")
	if err != nil {
		t.Fatal(err)
	}
	by := people.Principal{Kind: "staff", ID: agent.ID, Role: people.RoleMediator, StructureID: agent.StructureID}
	res, err := hf.h.Create(ctx, by, agent.StructureID, people.HolderInput{
		Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net",
	})
	if err != nil {
		t.Fatal(err)
	}
	holder := res.Holder
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
