package ui_test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// auditorEnv is the UI with the auditor page over a real audit log on the
// same SQLite store, with events of two structures.
type auditorEnv struct {
	*env
	log        *storetest.AuditLog
	lyon, caf  string // structure ids
	lyonEvents int
}

func newAuditorEnv(t *testing.T) *auditorEnv {
	t.Helper()
	e := newEnv(t)
	log := storetest.StartAuditLog(t, e.store, e.clock)
	ui.NewAuditor(e.ui, log.Log).Register(e.echo)
	a := &auditorEnv{env: e, log: log}
	a.lyon = a.structure("Mairie de Lyon")
	a.caf = a.structure("CAF du Rhône")
	// 30 events of Lyon (mailbox reads, every third a send, every fifth
	// refused), then 3 of the CAF.
	for i := range 30 {
		ev := audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: "staff-lyon", Name: "Marie Dupont"},
			Holder: "holder-1", Structure: a.lyon, Action: audit.ActionMailboxRead, Target: fmt.Sprintf("lyon-message-%02d", i),
			ClientID: "webmail", MandateID: "mandate-1", Outcome: audit.OutcomeSuccess}
		if i%3 == 0 {
			ev.Action = audit.ActionMailboxSend
		}
		if i%5 == 0 {
			ev.Outcome = audit.OutcomeDenied
		}
		a.record(ev)
	}
	a.lyonEvents = 30
	for i := range 3 {
		a.record(audit.Event{Actor: audit.Actor{Kind: audit.ActorStaff, ID: "staff-caf", Name: "Paul Martin"},
			Holder: "holder-2", Structure: a.caf, Action: audit.ActionMailboxDelete, Target: fmt.Sprintf("caf-message-%d", i),
			ClientID: "mobile", Outcome: audit.OutcomeSuccess})
	}
	return a
}

func (a *auditorEnv) record(ev audit.Event) {
	a.t.Helper()
	if _, err := a.log.Record(a.t.Context(), ev); err != nil {
		a.t.Fatal(err)
	}
}

// structure creates a structure (through a throwaway staff account) and
// returns its id.
func (a *auditorEnv) structure(name string) string {
	a.t.Helper()
	st, _, err := a.people.CreateStaff(a.t.Context(), "admin@"+strings.ReplaceAll(strings.ToLower(name), " ", "-")+".fr", "admin", name, false)
	if err != nil {
		a.t.Fatal(err)
	}
	return st.StructureID
}

// signedIn creates, enrols and signs in a staff member in a fresh browser
// (cookie jar), which becomes the env's client.
func (a *auditorEnv) signedIn(email, role, structure string, platform bool) {
	a.t.Helper()
	ctx := a.t.Context()
	_, token, err := a.people.CreateStaff(ctx, email, role, structure, platform)
	if err != nil {
		a.t.Fatal(err)
	}
	view, err := a.people.BeginEnrolment(ctx, token)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.people.CompleteEnrolment(ctx, token, "Agent "+role, testPassword, a.code(view.TOTP.Secret)); err != nil {
		a.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	a.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, _ := a.signIn(email, testPassword, a.code(view.TOTP.Secret), ""); resp.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("sign-in of %s: %d", email, resp.StatusCode)
	}
}

var targetCell = regexp.MustCompile(`(lyon|caf)-message-\d+`)

// targets lists the event targets a page shows, in order.
func targets(body string) []string { return targetCell.FindAllString(body, -1) }

var hrefOf = func(label string) *regexp.Regexp {
	return regexp.MustCompile(`<a href="([^"]+)"[^>]*>` + regexp.QuoteMeta(label) + `</a>`)
}

func link(t *testing.T, body, label string) string {
	t.Helper()
	m := hrefOf(label).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestAuditorPageShowsStructureStaffOnlyTheirEvents(t *testing.T) {
	a := newAuditorEnv(t)
	a.signedIn("auditrice@lyon.fr", "auditor", "Mairie de Lyon", false)

	resp, body := a.get("/audit")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/audit: %d\n%s", resp.StatusCode, body)
	}
	mustContain(t, body, "Journal d&#39;audit", "Message lu", "Message envoyé", "Refusé", "Marie Dupont", "holder-1",
		`href="/audit/key"`, `href="/audit/checkpoint"`, `<select id="action" name="action"`, "Connexion réussie", "Jeton émis")
	got := targets(body)
	if len(got) != 25 || got[0] != "lyon-message-29" || got[24] != "lyon-message-05" {
		t.Fatalf("first page shows %v", got)
	}
	if strings.Contains(body, "caf-message") || strings.Contains(body, `id="structure"`) {
		t.Fatal("a structure's auditor sees another structure's events or the structure filter")
	}
	if link(t, body, "Plus récents") != "" {
		t.Error("the first page links to newer events")
	}
	older := link(t, body, "Plus anciens")
	if older == "" {
		t.Fatal("no link to older events")
	}
	_, body = a.get(older)
	if got := targets(body); len(got) != 5 || got[0] != "lyon-message-04" || got[4] != "lyon-message-00" {
		t.Fatalf("second page shows %v", got)
	}
	if link(t, body, "Plus anciens") != "" {
		t.Error("the last page links to older events")
	}
	newer := link(t, body, "Plus récents")
	if newer == "" {
		t.Fatal("no link back to newer events")
	}
	if _, body = a.get(newer); len(targets(body)) != 25 || targets(body)[0] != "lyon-message-29" {
		t.Fatalf("newer page shows %v", targets(body))
	}

	// Asking for another structure: as if it did not exist.
	resp, body = a.get("/audit?structure=" + url.QueryEscape(a.caf))
	if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "caf-message") {
		t.Fatalf("another structure: %d", resp.StatusCode)
	}
	mustContain(t, body, "Page introuvable")

	// The exports of the selection: the auditor API's URLs with the same filters.
	_, body = a.get("/audit?action=mailbox.send&outcome=denied&from=2030-03-01&to=2030-03-04")
	got = targets(body)
	for _, g := range got {
		if g != "lyon-message-15" && g != "lyon-message-00" {
			t.Errorf("filter shows %s", g)
		}
	}
	if len(got) != 2 {
		t.Errorf("send+denied shows %v, want messages 15 and 0", got)
	}
	mustContain(t, body, `<option value="mailbox.send" selected>`, `<option value="denied" selected>`, `value="2030-03-01"`)
	jsonl := link(t, body, "Au format JSON Lines (pour les outils de vérification)")
	csv := link(t, body, "Au format CSV (pour un tableur)")
	wantQuery := "action=mailbox.send&outcome=denied&since=2030-03-01T00%3A00%3A00Z&until=2030-03-05T00%3A00%3A00Z"
	if jsonl != "/api/audit/events.jsonl?"+wantQuery || csv != "/api/audit/events.csv?"+wantQuery {
		t.Errorf("export links %q, %q", jsonl, csv)
	}

	// English second.
	_, body = a.get("/audit?lang=en")
	mustContain(t, body, "Audit log", "Message read", "Older", "Download this selection", "Search the log")
}

func TestAuditorPageShowsPlatformStaffEveryStructure(t *testing.T) {
	a := newAuditorEnv(t)
	a.signedIn("audit@plateforme.fr", "auditor", "", true)
	_, body := a.get("/audit")
	got := targets(body)
	if len(got) != 25 || got[0] != "caf-message-2" || got[3] != "lyon-message-29" {
		t.Fatalf("platform first page shows %v", got)
	}
	mustContain(t, body, `id="structure"`, a.caf)
	_, body = a.get("/audit?structure=" + url.QueryEscape(a.caf))
	if got := targets(body); len(got) != 3 || !strings.HasPrefix(got[0], "caf-") {
		t.Fatalf("platform filtered on the CAF sees %v", got)
	}
	if jsonl := link(t, body, "Au format JSON Lines (pour les outils de vérification)"); jsonl != "/api/audit/events.jsonl?structure="+url.QueryEscape(a.caf) {
		t.Errorf("export link %q", jsonl)
	}
}

func TestAuditorPageRefusals(t *testing.T) {
	a := newAuditorEnv(t)
	resp, _ := a.get("/audit")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Fatalf("not signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	a.signedIn("mediatrice@lyon.fr", "mediator", "Mairie de Lyon", false)
	resp, body := a.get("/audit")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "lyon-message") {
		t.Fatalf("mediator: %d", resp.StatusCode)
	}
	mustContain(t, body, "Accès refusé", "Seuls les auditeurs et les administrateurs")

	// A platform mediator is refused too (the role, not the scope, lacks it).
	a.signedIn("mediateur@plateforme.fr", "mediator", "", true)
	if resp, _ := a.get("/audit"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("platform mediator: %d", resp.StatusCode)
	}

	// Bad filters: the form again, with the mistakes, and no events.
	a.signedIn("admin2@lyon.fr", "admin", "Mairie de Lyon", false)
	tests := []struct{ name, query, field, message string }{
		{"bad date", "from=03/01/2030", "from", "Entrez une date au format AAAA-MM-JJ"},
		{"end before start", "from=2030-03-04&to=2030-03-01", "to", "La date de fin doit venir après la date de début."},
		{"unknown action", "action=mailbox.burn", "action", "Choisissez une action de la liste."},
		{"unknown outcome", "outcome=maybe", "outcome", "Choisissez un résultat de la liste."},
		{"too long", "holder=" + strings.Repeat("h", 300), "holder", "Cet identifiant est trop long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := a.get("/audit?" + tt.query)
			if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "lyon-message") {
				t.Fatalf("%s: %d", tt.query, resp.StatusCode)
			}
			mustContain(t, body, `role="alert"`, `href="#`+tt.field+`"`, `id="`+tt.field+`-error"`, `aria-invalid="true"`,
				html.EscapeString(tt.message))
		})
	}
	// Nothing matches: said in words.
	_, body = a.get("/audit?from=2031-01-01")
	mustContain(t, body, "Aucun événement ne correspond à cette recherche.")
}
