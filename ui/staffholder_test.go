package ui_test

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

var mailboxCodeInMail = regexp.MustCompile(`: (\d{8})\n`)

func TestMailboxPageDeclaresTheStaffMembersOwnMailbox(t *testing.T) {
	e := newEnv(t)
	smtp := notifytest.StartSMTP(t)
	h, err := people.NewHolders(people.HoldersConfig{Store: e.store, Notifier: notifytest.SMTPNotifier(t, smtp),
		CodeKey: bytes.Repeat([]byte{3}, 32), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	ui.NewMailboxPages(e.ui, people.NewStaffMailboxes(e.people, h)).Register(e.echo)

	if resp, _ := e.get("/account/mailbox"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?return_to=/account/mailbox" {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	secret := e.enrolled("marie@mairie.fr")
	if resp, _ := e.signIn("marie@mairie.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	resp, body := e.get("/account/mailbox")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	mustContain(t, body, "<h1>Ma boîte professionnelle</h1>", "marie@mairie.fr", `action="/account/mailbox/code"`, "Recevoir un code dans cette boîte")

	resp, body = e.post("/account/mailbox/code", url.Values{"_csrf": {e.csrf(body)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send code: %d %s", resp.StatusCode, body)
	}
	mustContain(t, body, `role="status"`, "Un code vient de partir", `name="challenge"`, `<label for="code">`, `autocomplete="one-time-code"`)
	mail := smtp.WaitFor(t, "marie@mairie.fr")
	code := mailboxCodeInMail.FindStringSubmatch(mail.Text)
	if code == nil {
		t.Fatalf("no code in the email:\n%s", mail.Text)
	}
	challenge := regexp.MustCompile(`name="challenge" value="([^"]+)"`).FindStringSubmatch(body)[1]

	resp, body = e.post("/account/mailbox", url.Values{"_csrf": {e.csrf(body)}, "challenge": {challenge}, "code": {"12345678"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code: %d", resp.StatusCode)
	}
	mustContain(t, body, `role="alert"`, `href="#code"`, `id="code-error"`, `aria-invalid="true"`, "Vérifiez-le, ou demandez-en un nouveau", `name="challenge"`)
	if _, err := e.store.FindHolderByMailbox(t.Context(), "marie@mairie.fr"); err == nil {
		t.Fatal("a wrong code created the holder")
	}

	resp, _ = e.post("/account/mailbox", url.Values{"_csrf": {e.csrf(body)}, "challenge": {challenge}, "code": {code[1]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/mailbox?declared=1" {
		t.Fatalf("right code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = e.get("/account/mailbox?declared=1&lang=en")
	mustContain(t, body, "Done: your professional mailbox is declared.", "This mailbox is declared as yours")
	holder, err := e.store.FindHolderByMailbox(t.Context(), "marie@mairie.fr")
	if err != nil || holder.StaffID == "" || holder.Language != "fr" {
		t.Fatalf("holder %+v, %v", holder, err)
	}
	// Declared: asking for a code again only shows the page.
	if resp, _ := e.post("/account/mailbox/code", url.Values{"_csrf": {e.csrf(body)}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("code for a declared mailbox: %d", resp.StatusCode)
	}
}
