package browser_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// holdersFeature is the holders' service, pages and API wired into a test
// server, codes going by email to a real SMTP listener.
type holdersFeature struct {
	h     *people.Holders
	smtp  *notifytest.SMTPServer
	log   *storetest.AuditLog
	admin *people.Admin // posts the banners the holder's home shows
}

func withHolders(f *holdersFeature) serverOption {
	return func(s *server) {
		f.smtp = notifytest.StartSMTP(s.t)
		f.log = storetest.StartAuditLog(s.t, s.store, s.clock)
		h, err := people.NewHolders(people.HoldersConfig{
			Store: s.store, Notifier: notify.Router{notify.Email: notifytest.SMTPNotifier(s.t, f.smtp)},
			CodeKey: bytes.Repeat([]byte{9}, 32), Recorder: f.log, Clock: s.clock, Logger: s.quiet,
		})
		if err != nil {
			s.t.Fatal(err)
		}
		f.h = h
		f.admin = people.NewAdmin(s.people, s.store, people.AdminConfig{})
		ui.NewHolderPages(s.pages, h).WithBanners(f.admin, s.store).Register(s.echo)
		ui.NewHolderHistory(s.pages, f.log.Log, s.store).Register(s.echo)
		api.RegisterHolders(s.echo, h, s.pages.CurrentPrincipal)
	}
}

var eightDigits = regexp.MustCompile(`\b(\d{8})\b`)

// code waits for the next code mailed to address.
func (f *holdersFeature) code(t *testing.T, address string, before int) string {
	t.Helper()
	deadline := time.Now().Add(notifytest.WaitTimeout) // a guard against a hang, not a timing assertion
	for time.Now().Before(deadline) {
		if msgs := f.smtp.Messages(); len(msgs) > before {
			m := msgs[len(msgs)-1]
			if len(m.To) != 1 || m.To[0] != address {
				t.Fatalf("code mailed to %v, want %s", m.To, address)
			}
			c := eightDigits.FindStringSubmatch(m.Text)
			if c == nil {
				t.Fatalf("no code in %q", m.Text)
			}
			return c[1]
		}
		f.smtp.WaitFor(t, address)
	}
	t.Fatal("no code arrived")
	return ""
}

// submitByKeyboard types text and Enter into a field, as a keyboard would,
// and waits for the page the form leads to; it returns its status.
func (b *tab) submitByKeyboard(id, text string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.SendKeys(chromedp.ID(id), text+"\r"))
	if err != nil {
		b.t.Fatalf("type into #%s and press Enter: %v", id, err)
	}
	return resp.Status
}

func TestHolderSignsInWithACodeReceivedOverSMTPOnAPhone(t *testing.T) {
	var f holdersFeature
	srv := newServer(t, withHolders(&f))
	ctx := t.Context()
	if _, secret := srv.staff("agent@trifouillis.fr", "Agent"), ""; secret != "" {
		t.Fatal()
	}
	agent, err := srv.store.FindStaffByEmail(ctx, "agent@trifouillis.fr")
	if err != nil {
		t.Fatal(err)
	}
	by := people.Principal{Kind: "staff", ID: agent.ID, Role: people.RoleMediator, StructureID: agent.StructureID}
	if _, err := f.h.Create(ctx, by, agent.StructureID, people.HolderInput{
		Mailbox: "marie.dupont@example.org", DisplayName: "Marie Dupont", Email: "marie.perso@example.net",
	}); err != nil {
		t.Fatal(err)
	}
	// The structure's admin posts a banner for the holders it serves.
	chef, _, err := srv.people.CreateStaff(ctx, "chef@trifouillis.fr", "admin", "Mairie de Trifouillis", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.PostBanner(ctx, people.Principal{Kind: "staff", ID: chef.ID, Role: people.RoleAdmin, StructureID: chef.StructureID},
		chef.StructureID, people.BannerInput{Audience: "holders", TextFR: "Permanence fermée lundi", TextEN: "Closed on Monday",
			StartsAt: srv.clock.Now().Add(-time.Hour), EndsAt: srv.clock.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(srv.url + "/holder/signin?return_to=%2Fholder")
	b.mustSee("h1", "Me connecter")
	if href := eval[string](b, `document.querySelector('a[href^="/holder/signin/passkey"]').getAttribute('href')`); href != "/holder/signin/passkey?return_to=%2fholder" {
		t.Errorf("passkey link = %q", href)
	}
	b.checkPage("holder sign-in")

	// An unknown mailbox gets the same answer, and nothing is sent.
	if status := b.submitByKeyboard("mailbox", "personne@example.org"); status != http.StatusOK {
		t.Fatalf("unknown mailbox: %d", status)
	}
	unknownAnswer := b.text("main")
	b.open(srv.url + "/holder/signin?return_to=%2Fholder")

	before := len(f.smtp.Messages())
	if status := b.submitByKeyboard("mailbox", "Marie.Dupont@example.org"); status != http.StatusOK {
		t.Fatalf("step one answered %d: %s", status, b.text("main"))
	}
	b.mustSee("[role=status]", "Si cette adresse est connue, un code a été envoyé")
	if got := strings.ReplaceAll(b.text("main"), "Marie.Dupont@example.org", "personne@example.org"); got != unknownAnswer {
		t.Errorf("known and unknown mailboxes are answered differently:\n%s\n%s", got, unknownAnswer)
	}
	b.checkPage("holder code")
	code := f.code(t, "marie.perso@example.net", before)
	if n := len(f.smtp.Messages()); n != before+1 {
		t.Errorf("%d messages for one known and one unknown mailbox", n-before)
	}

	wrong := "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	if status := b.submitByKeyboard("code", wrong); status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code answered %d", status)
	}
	b.mustSee(".error-summary", "Ce code n'est pas bon")
	if got := eval[string](b, `document.getElementById('code').getAttribute('aria-invalid')`); got != "true" {
		t.Errorf("the code field is not marked invalid: %q", got)
	}
	b.checkPage("holder code refused")

	if status := b.submitByKeyboard("code", code[:4]+" "+code[4:]); status != http.StatusOK {
		t.Fatalf("right code answered %d: %s", status, b.text("main"))
	}
	if p := b.path(); p != "/holder" {
		t.Fatalf("after the code the browser is at %s", p)
	}
	b.mustSee("h1", "Bonjour Marie Dupont")
	b.mustSee(".facts", "marie.dupont@example.org")
	b.mustSee(`[role=note][lang=fr]`, "Permanence fermée lundi")
	b.checkPage("holder home")

	// Who accessed my mailbox: the sign-in just made, in plain French, and
	// a read under a mandate (its long id must fit a phone's width).
	if _, err := f.log.Record(ctx, audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: agent.ID, Name: "Agent"},
		Holder: holderID(t, srv, "marie.dupont@example.org"), Structure: agent.StructureID, Action: audit.ActionMailboxRead,
		MandateID: "0f8c3a52-6d1e-4b7a-9c2f-5e8d7b6a4c31", ClientID: "messagerie-de-la-mairie-de-trifouillis",
		Outcome: audit.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	b.press(`a[href="/holder/history"]`)
	if p := b.path(); p != "/holder/history" {
		t.Fatalf("the history link leads to %s", p)
	}
	b.mustSee("h1", "Qui a accédé à ma boîte mail")
	b.mustSee("main ol", "Vous vous êtes connecté(e).", "Le service vous a envoyé un code de connexion",
		"Une personne non identifiée a saisi un code faux ou expiré.", "Refusé", "Agent (Mairie de Trifouillis) vous a inscrit(e).",
		"Agent (Mairie de Trifouillis) a lu un message.", "Mandat n° 0f8c3a52-6d1e-4b7a-9c2f-5e8d7b6a4c31")
	b.checkPage("holder history")
	b.press(`a[href="/holder"]`)

	// The code is single use: signing out and replaying it fails.
	b.press(`form[action="/holder/signout"] button`)
	if p := b.path(); p != "/holder/signin?signedout=1" {
		t.Fatalf("after signing out: %s", p)
	}
	b.typeInto("mailbox", "marie.dupont@example.org")
	b.press(`form[action="/holder/signin"] button[type="submit"]`)
	f.code(t, "marie.perso@example.net", before+1) // a new code supersedes the old one
	if status := b.submitByKeyboard("code", code); status != http.StatusUnprocessableEntity {
		t.Errorf("replayed code answered %d", status)
	}
	b.open(srv.url + "/holder")
	if p := b.path(); !strings.HasPrefix(p, "/holder/signin") {
		t.Errorf("the holder's home without a session shows %s", p)
	}
}

// enrolStaff creates and enrols a staff member through the service and
// returns the TOTP secret.
func (s *server) enrolStaff(email, name, role, structure string) string {
	s.t.Helper()
	ctx := s.t.Context()
	_, token, err := s.people.CreateStaff(ctx, email, role, structure, false)
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
	return view.TOTP.Secret
}

func TestMediatorAddsAHolderAndAdminImportsOnAPhone(t *testing.T) {
	var f holdersFeature
	srv := newServer(t, withHolders(&f))
	ctx := t.Context()
	medSecret := srv.enrolStaff("agent@trifouillis.fr", "Agent Durand", "mediator", "Mairie de Trifouillis")
	adminSecret := srv.enrolStaff("chef@trifouillis.fr", "Chef Martin", "admin", "Mairie de Trifouillis")
	srv.enrolStaff("autre@ailleurs.fr", "Autre", "mediator", "CCAS d'Ailleurs")
	other, _ := srv.store.FindStaffByEmail(ctx, "autre@ailleurs.fr")
	elsewhere, err := f.h.Create(ctx, people.Principal{Kind: "staff", ID: other.ID, Role: people.RoleMediator, StructureID: other.StructureID},
		other.StructureID, people.HolderInput{Mailbox: "ailleurs@example.org", DisplayName: "Ailleurs", Email: "a@example.net"})
	if err != nil {
		t.Fatal(err)
	}

	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	b.open(srv.url + "/console/holders/new")
	srv.signIn(b, "agent@trifouillis.fr", password, medSecret)
	if p := b.path(); p != "/console/holders/new" {
		t.Fatalf("after sign-in: %s", p)
	}
	b.mustSee("h1", "Ajouter une personne")
	b.checkPage("console new holder")
	b.typeInto("mailbox", "jean.martin@example.org")
	b.typeInto("display_name", "Jean Martin")
	b.typeInto("phone", "12 34")
	if status := b.press(`form[action="/console/holders/new"] button[type="submit"]`); status != http.StatusUnprocessableEntity {
		t.Fatalf("bad phone answered %d", status)
	}
	b.mustSee(".error-summary", "Ce numéro n'est pas valide")
	b.checkPage("console new holder with a mistake")
	eval[bool](b, `(document.getElementById('phone').value = '') === ''`)
	b.typeInto("phone", "06 12 34 56 78")
	if status := b.press(`form[action="/console/holders/new"] button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("creation answered %d: %s", status, b.text("main"))
	}
	if p := b.path(); !strings.HasPrefix(p, "/console/holders/") || !strings.HasSuffix(p, "?done=created") {
		t.Fatalf("after creation: %s", p)
	}
	b.mustSee("[role=status]", "La personne est enregistrée")
	b.mustSee(".facts", "jean.martin@example.org", "+33 ••••••• 78")
	b.checkPage("console holder")

	b.open(srv.url + "/console/holders?q=jean")
	b.mustSee("main", "Jean Martin", "1 personne")
	b.checkPage("console holders")

	// Another structure's holder: a plain "not found" page.
	b.open(srv.url + "/console/holders/" + elsewhere.Holder.ID)
	b.mustSee("h1", "Personne introuvable")
	b.checkPage("console holder of another structure")
	// A mediator may not import.
	b.open(srv.url + "/admin/holders/import")
	b.mustSee("h1", "Accès refusé")

	// The admin imports a French spreadsheet's CSV: a dry run first.
	a := newTab(t, phone, "fr-FR,fr;q=0.9")
	a.open(srv.url + "/admin/holders/import")
	srv.signIn(a, "chef@trifouillis.fr", password, adminSecret)
	a.mustSee("h1", "Importer des personnes")
	a.checkPage("admin import")
	file := filepath.Join(t.TempDir(), "personnes.csv")
	csv := "\ufeffmailbox;display_name;phone;email;language\r\n" +
		"lea@example.org;Léa Petit;07 11 22 33 44;;\r\n" +
		"pas-une-adresse;Sans Adresse;06 12 34 56 78;;\r\n" +
		"jean.martin@example.org;Jean Martin;;;\r\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(a.ctx, chromedp.SetUploadFiles(chromedp.ID("file"), []string{file})); err != nil {
		t.Fatal(err)
	}
	if status := a.press(`form[action="/admin/holders/import"] button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("dry run answered %d: %s", status, a.text("main"))
	}
	a.mustSee("[role=status]", "Essai à blanc : rien n'a été importé")
	a.mustSee("table", "3", "Boîte mail", "Adresse de boîte mail non valide", "4", "Donnez un téléphone portable")
	a.checkPage("admin import dry run")
	n, _ := f.h.Count(ctx, people.Principal{Kind: "staff", Role: people.RoleAdmin, StructureID: other.StructureID, Platform: true}, agentStructure(t, srv))
	if n != 1 {
		t.Errorf("%d holders after a dry run, want 1", n)
	}
	// Then for real, good rows only.
	if err := chromedp.Do(a.ctx,
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Click(chromedp.ID("dry_run")),
		chromedp.Click(chromedp.ID("on_error-keep")),
	); err != nil {
		t.Fatal(err)
	}
	if status := a.press(`form[action="/admin/holders/import"] button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("import answered %d: %s", status, a.text("main"))
	}
	a.mustSee("[role=status]", "Import terminé")
	a.checkPage("admin import done")
	n, _ = f.h.Count(ctx, people.Principal{Kind: "staff", Role: people.RoleAdmin, Platform: true}, agentStructure(t, srv))
	if n != 2 {
		t.Errorf("%d holders after the import, want 2", n)
	}
}

func holderID(t *testing.T, srv *server, mailbox string) string {
	t.Helper()
	h, err := srv.store.FindHolderByMailbox(t.Context(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return h.ID
}

func agentStructure(t *testing.T, srv *server) string {
	t.Helper()
	st, err := srv.store.FindStaffByEmail(t.Context(), "agent@trifouillis.fr")
	if err != nil {
		t.Fatal(err)
	}
	return st.StructureID
}
