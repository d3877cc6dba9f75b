package browser_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// withAuditor wires the auditor page (and the public audit endpoints it
// links to) over a real audit log on the server's store.
func withAuditor(log **storetest.AuditLog) serverOption {
	return func(s *server) {
		l := storetest.StartAuditLog(s.t, s.store, s.clock)
		api.RegisterAudit(s.echo, l.Log)
		api.RegisterAuditor(s.echo, l.Log, s.pages.CurrentPrincipal)
		ui.NewAuditor(s.pages, l.Log).Register(s.echo)
		*log = l
	}
}

// auditor creates and enrols an auditor of the Mairie de Trifouillis and
// returns the TOTP secret and the structure's id.
func (s *server) auditor(email, name string) (secret, structure string) {
	s.t.Helper()
	ctx := s.t.Context()
	st, token, err := s.people.CreateStaff(ctx, email, "auditor", "Mairie de Trifouillis", false)
	if err != nil {
		s.t.Fatal(err)
	}
	view, err := s.people.BeginEnrolment(ctx, token)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.people.CompleteEnrolment(ctx, token, name, password, s.code(view.TOTP.Secret)); err != nil {
		s.t.Fatal(err)
	}
	return view.TOTP.Secret, st.StructureID
}

func TestAuditorPageOnAPhoneWithTheKeyboard(t *testing.T) {
	var log *storetest.AuditLog
	srv := newServer(t, withAuditor(&log))
	secret, structure := srv.auditor("audit@trifouillis.fr", "Agnès Audit")
	for i := range 30 {
		ev := audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Marie Dupont"},
			Holder: "holder-1", Structure: structure, Action: audit.ActionMailboxRead,
			Target:   fmt.Sprintf("INBOX/un-identifiant-de-message-assez-long-%02d@mail.example.org", i),
			ClientID: "webmail", MandateID: "mandate-1", Outcome: audit.OutcomeSuccess, Reason: "reported by imap-gateway"}
		if i%4 == 0 {
			ev.Action, ev.Outcome = audit.ActionMailboxSend, audit.OutcomeDenied
		}
		if _, err := log.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}

	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(srv.url + "/audit")
	if p := b.path(); !strings.HasPrefix(p, "/signin") {
		t.Fatalf("not signed in, /audit leads to %s", p)
	}
	if status := srv.signIn(b, "audit@trifouillis.fr", password, secret); status != http.StatusOK {
		t.Fatalf("sign-in answered %d", status)
	}
	if p := b.path(); p != "/audit" {
		t.Fatalf("after signing in the browser is at %s, want /audit", p)
	}
	b.mustSee("h1", "Journal d'audit")
	b.mustSee("table", "Message lu", "Message envoyé", "Refusé", "Marie Dupont")
	b.checkPage("auditor")

	// The filter form, with the keyboard only: Tab reaches every field in
	// order, a choice in the action list is made with the arrow keys, and
	// Enter on the button sends the form.
	focused := func() string {
		return eval[string](b, `(e => e.id || (e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')))(document.activeElement)`)
	}
	tab := func() string {
		t.Helper()
		if err := b.key(kb.Tab); err != nil {
			t.Fatal(err)
		}
		return focused()
	}
	var before []string
	for range 12 {
		if f := tab(); f == "holder" {
			break
		} else {
			before = append(before, f)
		}
	}
	if focused() != "holder" {
		t.Fatalf("Tab never reached the first filter; it went through %v", before)
	}
	for _, want := range []string{"actor", "mandate", "client", "action", "outcome", "from"} {
		if got := tab(); got != want {
			t.Fatalf("Tab reached %q, want %q", got, want)
		}
	}
	// Back to the action list; pick the next entries with the arrow keys.
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.ID("action"))); err != nil {
		t.Fatal(err)
	}
	want := "mailbox.send"
	for range 40 {
		if eval[string](b, `document.getElementById('action').value`) == want {
			break
		}
		if err := b.key(kb.ArrowDown); err != nil {
			t.Fatal(err)
		}
	}
	if v := eval[string](b, `document.getElementById('action').value`); v != want {
		t.Fatalf("the arrow keys left the action list at %q", v)
	}
	if err := chromedp.Do(b.ctx, chromedp.Focus(chromedp.CSS(".audit-filters button[type=submit]"))); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(b.ctx, chromedp.KeyEvent(kb.Enter))
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("Enter on the search button: %v %v", resp, err)
	}
	u, err := url.Parse(b.location())
	if err != nil || u.Path != "/audit" || u.Query().Get("action") != want {
		t.Fatalf("the form went to %s", b.location())
	}
	b.mustSee("table", "Message envoyé")
	if strings.Contains(b.text("table tbody"), "Message lu") {
		t.Error("filtered on sends, the table still shows reads")
	}
	b.checkPage("auditor filtered")

	// An empty result and a field mistake, in words.
	b.open(srv.url + "/audit?from=2020-13-45")
	b.mustSee("[role=alert]", "Entrez une date au format AAAA-MM-JJ")
	b.checkPage("auditor with a mistake")

	// Older events, on a wide screen too.
	d := newTab(t, desktop, "en")
	d.open(srv.url + "/signin")
	srv.signIn(d, "audit@trifouillis.fr", password, secret)
	d.open(srv.url + "/audit?lang=en")
	d.mustSee("h1", "Audit log")
	d.checkPage("auditor desktop")
	if status := d.press(`a[rel="next"]`); status != http.StatusOK {
		t.Fatalf("older events: %d", status)
	}
	d.mustSee("nav.pager", "Newer")
	d.checkPage("auditor older")
}
