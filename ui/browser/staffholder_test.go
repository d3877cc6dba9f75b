package browser_test

import (
	"bytes"
	"net/http"
	"regexp"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// withMailbox wires « Ma boîte professionnelle », sending codes to smtp.
func withMailbox(smtp *notifytest.SMTPServer) serverOption {
	return func(s *server) {
		h, err := people.NewHolders(people.HoldersConfig{Store: s.store, Notifier: notifytest.SMTPNotifier(s.t, smtp),
			CodeKey: bytes.Repeat([]byte{4}, 32), Clock: s.clock, Logger: s.quiet})
		if err != nil {
			s.t.Fatal(err)
		}
		ui.NewMailboxPages(s.pages, people.NewStaffMailboxes(s.people, h)).Register(s.echo)
	}
}

var mailboxCodeInMail = regexp.MustCompile(`: (\d{8})\n`)

func TestStaffMailboxDeclaredWithACodeOnAPhone(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	srv := newServer(t, withMailbox(smtp))
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	b := newTab(t, phone, "fr-FR,fr;q=0.9")

	b.open(srv.url + "/account/mailbox")
	srv.signIn(b, "marie@trifouillis.fr", password, secret)
	if p := b.path(); p != "/account/mailbox" {
		t.Fatalf("after signing in the browser is at %s", p)
	}
	b.mustSee("h1", "Ma boîte professionnelle")
	b.mustSee("main", "marie@trifouillis.fr")
	b.checkPage("mailbox")

	b.press(`form[action="/account/mailbox/code"] button[type="submit"]`)
	b.mustSee("[role=status]", "Un code vient de partir")
	b.checkPage("mailbox, code sent")
	mail := smtp.WaitFor(t, "marie@trifouillis.fr")
	code := mailboxCodeInMail.FindStringSubmatch(mail.Text)
	if code == nil {
		t.Fatalf("no code in the email:\n%s", mail.Text)
	}

	b.typeInto("code", "12345678")
	if status := b.press(`form[action="/account/mailbox"] button[type="submit"]`); status != http.StatusUnprocessableEntity {
		t.Errorf("a wrong code answered %d", status)
	}
	b.mustSee("[role=alert]", "Le code n'est pas bon")
	b.checkPage("mailbox, wrong code")

	b.typeInto("code", code[1])
	b.press(`form[action="/account/mailbox"] button[type="submit"]`)
	if p := b.path(); p != "/account/mailbox?declared=1" {
		t.Fatalf("after the right code the browser is at %s: %s", p, b.text("main"))
	}
	b.mustSee("[role=status]", "votre boîte professionnelle est déclarée")
	b.checkPage("mailbox declared")
	if h, err := srv.store.FindHolderByMailbox(t.Context(), "marie@trifouillis.fr"); err != nil || h.StaffID == "" {
		t.Errorf("holder %+v, %v", h, err)
	}
}
