package ui_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// historyEnv is the holders' pages with the history and the home banners,
// over a real audit log (which the holders service records into) and a
// real SMTP listener for the codes, on the env's SQLite store.
type historyEnv struct {
	*env
	h     *people.Holders
	smtp  *notifytest.SMTPServer
	log   *storetest.AuditLog
	admin *people.Admin
}

func newHistoryEnv(t *testing.T) *historyEnv {
	t.Helper()
	e := newHolderEnv(t)
	log := storetest.StartAuditLog(t, e.store, e.clock)
	srv := notifytest.StartSMTP(t)
	h, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: bytes.Repeat([]byte{3}, 32),
		Notifier: notify.Router{notify.Email: notifytest.SMTPNotifier(t, srv)}, Clock: e.clock, Recorder: log.Log})
	if err != nil {
		t.Fatal(err)
	}
	adm := people.NewAdmin(e.people, e.store, people.AdminConfig{})
	ui.NewHolderPages(e.ui, h).WithBanners(adm, e.store).Register(e.echo)
	ui.NewHolderHistory(e.ui, log.Log, e.store).Register(e.echo)
	return &historyEnv{env: e, h: h, smtp: srv, log: log, admin: adm}
}

func (e *historyEnv) record(ev audit.Event) {
	e.t.Helper()
	if _, err := e.log.Record(e.t.Context(), ev); err != nil {
		e.t.Fatal(err)
	}
}

// staffOf returns the staff member of email (created by enrolled).
func (e *historyEnv) staffOf(email string) people.Staff {
	e.t.Helper()
	st, err := e.store.FindStaffByEmail(e.t.Context(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// signedInHolder creates marie (served by Mairie de Trifouillis) and paul,
// signs marie in and returns both.
func (e *historyEnv) signedInHolder() (marie, paul people.Holder) {
	e.t.Helper()
	e.enrolled("agent@trifouillis.fr")
	marie = e.holderOf(e.h, "agent@trifouillis.fr", "marie@example.org", "marie@example.net")
	paul = e.holderOf(e.h, "agent@trifouillis.fr", "paul@example.org", "paul@example.net")
	if resp := e.holderSignIn(e.smtp, "marie@example.org", "marie@example.net", ""); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("holder sign-in: %d", resp.StatusCode)
	}
	return marie, paul
}

func TestHolderHistoryShowsOnlyTheirOwnEventsInPlainWords(t *testing.T) {
	e := newHistoryEnv(t)
	marie, paul := e.signedInHolder()
	agent := e.staffOf("agent@trifouillis.fr")
	e.clock.Advance(time.Minute)
	// A mediator reads marie's mailbox under a mandate; a send is refused.
	e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: agent.ID, Name: "Marie Dupont"}, Holder: marie.ID,
		Structure: agent.StructureID, Action: audit.ActionMailboxRead, Target: "message-marie", MandateID: "mandat-42",
		ClientID: "webmail", Outcome: audit.OutcomeSuccess})
	// Reported by a mail client: the staff member's id only, no structure.
	e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: agent.ID}, Holder: marie.ID,
		Action: audit.ActionMailboxSend, Target: "message-2", ClientID: "webmail", Outcome: audit.OutcomeDenied})
	// Paul's events never show on marie's page.
	e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: agent.ID, Name: "Agent secret"}, Holder: paul.ID,
		Structure: agent.StructureID, Action: audit.ActionMailboxDelete, Target: "message-paul", MandateID: "mandat-paul",
		Outcome: audit.OutcomeSuccess})

	resp, page := e.get("/holder/history")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("history: %d", resp.StatusCode)
	}
	mustContain(t, page,
		"Qui a accédé à ma boîte mail",
		"Marie Dupont (Mairie de Trifouillis) a envoyé un message.", "Refusé",
		"Marie Dupont (Mairie de Trifouillis) a lu un message.", "Mandat n° mandat-42", "Par l&#39;application : webmail",
		"Vous vous êtes connecté(e).", "Vous avez saisi le bon code.",
		"Le service vous a envoyé un code de connexion (code envoyé).",
		"Marie Dupont (Mairie de Trifouillis) vous a inscrit(e).",
		// 10:00 UTC on 4 March 2030 is 11:00 in Paris (winter time).
		"Le 4 mars 2030 à 11:0", `datetime="2030-03-04T10:0`)
	for _, leak := range []string{"Agent secret", "a supprimé un message", "mandat-paul", "message-paul", "message-marie", paul.ID} {
		if strings.Contains(page, leak) {
			t.Errorf("marie's history shows %q", leak)
		}
	}
	// Newest first.
	if i, j := strings.Index(page, "a envoyé un message"), strings.Index(page, "Vous vous êtes connecté(e)"); i < 0 || j < 0 || i > j {
		t.Errorf("not newest first: send at %d, sign-in at %d", i, j)
	}
	// A holder filter in the query changes nothing.
	if _, other := e.get("/holder/history?holder=" + paul.ID); strings.Contains(other, "Agent secret") {
		t.Error("the holder query parameter shows someone else's events")
	}

	// English second.
	_, en := e.get("/holder/history?lang=en")
	mustContain(t, en, "Who accessed my mailbox", "Marie Dupont (Mairie de Trifouillis) read a message.", "Refused",
		"You signed in.", "Mandate mandat-42", "On 4 March 2030 at 11:0")
}

func TestHolderHistoryPagesNewestFirst(t *testing.T) {
	e := newHistoryEnv(t)
	marie, _ := e.signedInHolder()
	const n = 45
	for i := range n {
		e.clock.Advance(time.Second)
		e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorClient, ID: "webmail"}, Holder: marie.ID,
			Action: audit.ActionMailboxRead, MandateID: fmt.Sprintf("m-%02d", i), ClientID: "webmail", Outcome: audit.OutcomeSuccess})
	}
	mandate := regexp.MustCompile(`Mandat n° (m-\d\d)`)
	var seen []string
	path, pages := "/holder/history", 0
	for path != "" {
		pages++
		if pages > 10 {
			t.Fatal("pages never end")
		}
		resp, page := e.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		for _, m := range mandate.FindAllStringSubmatch(page, -1) {
			seen = append(seen, m[1])
		}
		if pages > 1 && link(t, page, "Revenir aux plus récents") != "/holder/history" {
			t.Errorf("page %d has no link back to the newest", pages)
		}
		path = link(t, page, "Voir les plus anciens")
	}
	if len(seen) != n {
		t.Fatalf("saw %d events over %d pages, want %d", len(seen), pages, n)
	}
	for i, m := range seen {
		if want := fmt.Sprintf("m-%02d", n-1-i); m != want {
			t.Fatalf("event %d is %s, want %s (newest first, each once)", i, m, want)
		}
	}
	if _, page := e.get("/holder/history"); !strings.Contains(page, "L&#39;application webmail a lu un message.") {
		t.Error("a client's read is not said plainly")
	}
	// A bad cursor starts from the newest.
	if resp, page := e.get("/holder/history?before=nonsense"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "m-44") {
		t.Errorf("bad cursor: %d", resp.StatusCode)
	}
}

func TestHolderHistorySaysEveryActionAndErasedPeople(t *testing.T) {
	e := newHistoryEnv(t)
	marie, _ := e.signedInHolder()
	agent := e.staffOf("agent@trifouillis.fr")
	// Every action that can name a holder has its own words, said of a
	// mediator and, when the holder can do it, of the holder.
	byStaff := []audit.Action{
		audit.ActionSignInSucceeded, audit.ActionSignInFailed, audit.ActionSessionEnded,
		audit.ActionHolderCreated, audit.ActionHolderLinked, audit.ActionHoldersImported,
		audit.ActionCodeSent, audit.ActionCodeVerified, audit.ActionCodeRefused,
		audit.ActionPasskeyAdded, audit.ActionPasskeyRemoved, audit.ActionPasskeyRefused, audit.ActionPasskeyEnrolment,
		audit.ActionConsentGranted, audit.ActionConsentWithdrawn,
		audit.ActionTokenIssued, audit.ActionTokenRefreshed, audit.ActionTokenRevoked, audit.ActionRequestRefused,
		audit.ActionMailboxRead, audit.ActionMailboxSend, audit.ActionMailboxMove, audit.ActionMailboxDelete,
		audit.ActionMandateRequested, audit.ActionMandateRequestDenied, audit.ActionMandateApproved, audit.ActionMandateRefused,
		audit.ActionMandateUnanswered, audit.ActionMandateActivated, audit.ActionMandateEnded,
	}
	byHolder := map[audit.Action]bool{ // what a holder does themselves
		audit.ActionSignInSucceeded: true, audit.ActionSignInFailed: true, audit.ActionSessionEnded: true,
		audit.ActionCodeVerified: true, audit.ActionPasskeyAdded: true, audit.ActionPasskeyRemoved: true,
		audit.ActionPasskeyRefused: true, audit.ActionConsentGranted: true, audit.ActionConsentWithdrawn: true,
		audit.ActionTokenIssued: true, audit.ActionTokenRefreshed: true, audit.ActionTokenRevoked: true,
		audit.ActionRequestRefused: true, audit.ActionMailboxRead: true, audit.ActionMailboxSend: true,
		audit.ActionMailboxMove: true, audit.ActionMailboxDelete: true,
		audit.ActionMandateApproved: true, audit.ActionMandateRefused: true, audit.ActionMandateEnded: true,
		audit.ActionMandateRequestDenied: true,
	}
	for _, lang := range []string{"fr", "en"} {
		for _, a := range byStaff {
			actors := []audit.Actor{{Kind: audit.ActorStaff, ID: agent.ID, Name: "Marie Dupont"}}
			if byHolder[a] {
				actors = append(actors, audit.Actor{Kind: audit.ActorHolder, ID: marie.ID})
			}
			for _, actor := range actors {
				e.record(audit.Event{Actor: actor, Holder: marie.ID, Action: a, Outcome: audit.OutcomeSuccess})
				_, page := e.get("/holder/history?lang=" + lang)
				first := page[strings.Index(page, `<li class="card">`):]
				first = first[:strings.Index(first, "</li>")]
				if strings.Contains(first, "a fait une action") || strings.Contains(first, "did something") ||
					strings.Contains(first, "Vous avez fait une action") {
					t.Errorf("%s by %s (%s): generic sentence: %s", a, actor.Kind, lang, first)
				}
			}
		}
	}
	// An action with no words of its own still gets a sentence.
	e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: agent.ID, Name: "Marie Dupont"}, Holder: marie.ID,
		Action: audit.ActionKeyRotated, Outcome: audit.OutcomeError})
	_, page := e.get("/holder/history?lang=fr")
	mustContain(t, page, "Marie Dupont (Mairie de Trifouillis) a fait une action (key.rotated).", "N&#39;a pas abouti")

	// Retention erased the mediator: the event stays, without their name.
	e.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: "staff-gone", Name: "Jean Oublié"}, Holder: marie.ID,
		Structure: agent.StructureID, Action: audit.ActionMailboxRead, Outcome: audit.OutcomeSuccess})
	if err := e.log.ErasePerson(t.Context(), "staff-gone"); err != nil {
		t.Fatal(err)
	}
	_, page = e.get("/holder/history")
	mustContain(t, page, "Une personne effacée du journal a lu un message.")
	if strings.Contains(page, "Jean Oublié") {
		t.Error("an erased person's name shows")
	}
}

func TestHolderHistoryAnswersOthersPlainly(t *testing.T) {
	e := newHistoryEnv(t)
	if resp, _ := e.get("/holder/history"); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/holder/signin?return_to=%2Fholder%2Fhistory" {
		t.Errorf("not signed in: %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	secret := e.enrolled("agent@trifouillis.fr")
	if resp, _ := e.signIn("agent@trifouillis.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("staff sign-in: %d", resp.StatusCode)
	}
	if resp, _ := e.get("/holder/history"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("staff: %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHolderHomeShowsBannersOfTheirStructuresAndLinks(t *testing.T) {
	e := newHistoryEnv(t)
	ctx := t.Context()
	adminOf := func(email, structure string) people.Principal {
		st, _, err := e.people.CreateStaff(ctx, email, "admin", structure, false)
		if err != nil {
			t.Fatal(err)
		}
		return people.Principal{Kind: "staff", Subject: people.StaffSubject(st.ID), ID: st.ID, Role: st.Role, StructureID: st.StructureID}
	}
	lyon := adminOf("admin@lyon.fr", "Mairie de Lyon")
	caf := adminOf("admin@caf.fr", "CAF du Rhône")
	other := adminOf("admin@ailleurs.fr", "Ailleurs")
	// marie is served by Lyon and the CAF.
	for _, by := range []people.Principal{lyon, caf} {
		if _, err := e.h.Create(ctx, by, by.StructureID, people.HolderInput{Mailbox: "marie@example.org",
			DisplayName: "Marie", Email: "marie@example.net"}); err != nil {
			t.Fatal(err)
		}
	}
	now := e.clock.Now()
	post := func(by people.Principal, audience, fr, en string, from time.Time) {
		if _, err := e.admin.PostBanner(ctx, by, by.StructureID, people.BannerInput{Audience: audience, TextFR: fr, TextEN: en,
			StartsAt: from, EndsAt: now.Add(48 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	post(lyon, "holders", "Fermé lundi", "Closed on Monday", now.Add(-time.Hour))
	post(caf, "holders", "Permanence jeudi", "", now.Add(-time.Hour))
	post(caf, "staff", "Réunion d'équipe", "", now.Add(-time.Hour))
	post(other, "holders", "Bannière d'ailleurs", "", now.Add(-time.Hour))
	post(lyon, "holders", "Pas encore", "", now.Add(time.Hour))

	if resp := e.holderSignIn(e.smtp, "marie@example.org", "marie@example.net", ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("holder sign-in: %d", resp.StatusCode)
	}
	_, page := e.get("/holder")
	mustContain(t, page,
		`<div class="status" role="note" lang="fr"><p>Fermé lundi</p></div>`,
		`<div class="status" role="note" lang="fr"><p>Permanence jeudi</p></div>`,
		`<a href="/holder/history">Qui a accédé à ma boîte mail</a>`,
		`<a href="/holder/passkeys">`, `<a href="/account/sessions">`)
	for _, not := range []string{"Réunion d", "Bannière d", "Pas encore"} {
		if strings.Contains(page, not) {
			t.Errorf("the holder's home shows %q", not)
		}
	}
	_, en := e.get("/holder?lang=en")
	mustContain(t, en,
		`<div class="status" role="note" lang="en"><p>Closed on Monday</p></div>`,
		`<div class="status" role="note" lang="fr"><p>Permanence jeudi</p></div>`,
		`<a href="/holder/history">Who accessed my mailbox</a>`)
}
