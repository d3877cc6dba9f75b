package browser_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// withAccount wires the account pages (session list, password reset),
// sending reset emails to smtp.
func withAccount(smtp *notifytest.SMTPServer) serverOption {
	return func(s *server) {
		acc := people.NewAccount(s.people, s.store, people.AccountConfig{
			Notifier: notifytest.SMTPNotifier(s.t, smtp),
			ResetURL: func(token string) string { return ui.ResetURL(s.url, token) },
		})
		s.t.Cleanup(acc.Wait)
		ui.NewAccount(s.pages, acc).Register(s.echo)
	}
}

var resetLinkInMail = regexp.MustCompile(`http://[^\s]+/account/reset/confirm\?token=[A-Za-z0-9_-]+`)

func TestAccountStaffResetsForgottenPasswordByEmailThenSignsIn(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	srv := newServer(t, withAccount(smtp))
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	b := newTab(t, phone, "fr-FR,fr;q=0.9")

	b.open(srv.url + "/signin")
	b.press(`a[href="/account/reset"]`)
	if p := b.path(); p != "/account/reset" {
		t.Fatalf("the sign-in page's link leads to %s", p)
	}
	b.mustSee("h1", "Mot de passe oublié")
	b.checkPage("password reset request")
	b.typeInto("email", "marie@trifouillis.fr")
	b.press(`form[action="/account/reset"] button[type="submit"]`)
	if p := b.path(); p != "/account/reset?sent=1" {
		t.Fatalf("after asking, the browser is at %s: %s", p, b.text("main"))
	}
	b.mustSee("[role=status]", "Si un compte actif utilise cette adresse")
	b.checkPage("password reset requested")

	mail := smtp.WaitFor(t, "marie@trifouillis.fr")
	link := resetLinkInMail.FindString(mail.Text)
	if link == "" || !strings.HasPrefix(link, srv.url+"/") {
		t.Fatalf("the email has no reset link to this server:\n%s", mail.Text)
	}
	b.open(link)
	b.mustSee("h1", "Choisir un nouveau mot de passe")
	b.mustSee("main", "marie@trifouillis.fr")
	b.checkPage("new password")

	const newPassword = "un tout nouveau mot de passe"
	b.typeInto("password", newPassword)
	b.typeInto("code", "000000")
	if status := b.press(`form[action="/account/reset/confirm"] button[type="submit"]`); status != http.StatusUnprocessableEntity {
		t.Errorf("a wrong code answered %d", status)
	}
	b.mustSee("[role=alert]", "Le code n'est pas bon")
	b.checkPage("new password, wrong code")

	b.typeInto("password", newPassword)
	b.typeInto("code", srv.code(secret))
	b.press(`form[action="/account/reset/confirm"] button[type="submit"]`)
	if p := b.path(); p != "/account/reset/done" {
		t.Fatalf("after the reset the browser is at %s: %s", p, b.text("main"))
	}
	b.mustSee("[role=status]", "Toutes vos sessions ont été terminées")
	b.checkPage("password changed")

	b.press(`main a[href="/signin"]`)
	srv.signIn(b, "marie@trifouillis.fr", newPassword, secret)
	if p := b.path(); p != "/" {
		t.Fatalf("signing in with the new password leads to %s: %s", p, b.text("main"))
	}
	b.mustSee("h1", "Bonjour Marie Dupont")
}

func TestAccountSessionsPageEndsTheOtherBrowserThenSignsOutEverywhere(t *testing.T) {
	srv := newServer(t, withAccount(notifytest.StartSMTP(t)))
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	office := newTab(t, desktop, "fr-FR,fr;q=0.9")
	phoneTab := newTab(t, phone, "fr-FR,fr;q=0.9")
	for _, b := range []*tab{office, phoneTab} {
		b.open(srv.url + "/account/sessions")
		srv.signIn(b, "marie@trifouillis.fr", password, secret)
		if p := b.path(); p != "/account/sessions" {
			t.Fatalf("after signing in the browser is at %s", p)
		}
	}

	b := phoneTab
	b.mustSee("h1", "Vos sessions")
	if n := eval[int](b, `document.querySelectorAll('main li.card').length`); n != 2 {
		t.Fatalf("the list shows %d sessions, want 2", n)
	}
	if n := eval[int](b, `document.querySelectorAll('main li.card.current').length`); n != 1 {
		t.Errorf("%d sessions marked as this device, want 1", n)
	}
	b.mustSee("li.card.current h2", "cet appareil")
	b.mustSee("li.card.current", "127.0.0.1", "Connexion", "Dernière activité")
	b.checkPage("sessions")

	// From the phone, end the office's session (the one not marked current).
	b.press(`li.card:not(.current) form[action="/account/sessions/end"] button`)
	if p := b.path(); p != "/account/sessions?ended=1" {
		t.Fatalf("after ending a session the phone is at %s: %s", p, b.text("main"))
	}
	b.mustSee("[role=status]", "La session est terminée")
	b.checkPage("sessions, one ended")
	office.open(srv.url + "/account/sessions")
	if p := office.path(); !strings.HasPrefix(p, "/signin") {
		t.Fatalf("the office's ended session still opens %s", p)
	}

	// The office signs in again, then signs out everywhere: both end.
	srv.signIn(office, "marie@trifouillis.fr", password, secret)
	office.mustSee("h1", "Vos sessions")
	office.checkPage("sessions (desktop)")
	office.press(`form[action="/account/sessions/end-all"] button`)
	if p := office.path(); p != "/signin?signedout=1" {
		t.Fatalf("after signing out everywhere the office is at %s", p)
	}
	b.open(srv.url + "/account/sessions")
	if p := b.path(); !strings.HasPrefix(p, "/signin") {
		t.Errorf("the phone's session survived signing out everywhere: at %s", p)
	}
}

func TestAccountPagesInEnglish(t *testing.T) {
	srv := newServer(t, withAccount(notifytest.StartSMTP(t)))
	b := newTab(t, phone, "en-GB,en;q=0.9")
	b.open(srv.url + "/account/reset")
	b.mustSee("h1", "Forgotten password")
	b.checkPage("password reset request (en)")
	b.open(srv.url + "/account/reset/confirm?token=made-up")
	b.mustSee("h1", "This link no longer works")
	b.checkPage("invalid reset link (en)")
}
