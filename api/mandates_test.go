package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// mandatesFixture is the mandates API over a real SQLite store, the real
// mandate service, audit log and authorization server (the revoker), with
// two structures: Trifouillis (two mediators, an admin, an auditor, a
// holder) and Ailleurs (a mediator, an admin, a holder), and a platform
// admin. X-Test-Who names the principal of a request (holdersFixture.do).
type mandatesFixture struct {
	holdersFixture
	t       *testing.T
	clock   *storetest.Clock
	svc     *mandate.Service
	who     map[string]people.Principal
	holders map[string]people.Holder // "a", "b"
}

func newMandatesFixture(t *testing.T) *mandatesFixture {
	t.Helper()
	ctx := t.Context()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ppl := people.NewService(st, sealer, clock, quiet, people.Config{})
	f := &mandatesFixture{t: t, clock: clock, who: map[string]people.Principal{}, holders: map[string]people.Holder{}}
	staff := []struct{ key, role, structure string }{
		{"mediator-a", "mediator", "Trifouillis"}, {"mediator-a2", "mediator", "Trifouillis"},
		{"admin-a", "admin", "Trifouillis"}, {"auditor-a", "auditor", "Trifouillis"},
		{"mediator-b", "mediator", "Ailleurs"}, {"admin-b", "admin", "Ailleurs"},
		{"platform", "admin", ""},
	}
	for _, s := range staff {
		created, token, err := ppl.CreateStaff(ctx, s.key+"@example.fr", s.role, s.structure, s.structure == "")
		if err != nil {
			t.Fatal(err)
		}
		view, err := ppl.BeginEnrolment(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		code, err := totp.GenerateCode(view.TOTP.Secret, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := ppl.CompleteEnrolment(ctx, token, "Agent "+s.key, "une phrase de passe assez longue", code); err != nil {
			t.Fatal(err)
		}
		f.who[s.key] = people.Principal{Subject: people.StaffSubject(created.ID), Kind: "staff", ID: created.ID,
			DisplayName: "Agent " + s.key, Email: created.Email, Role: created.Role, StructureID: created.StructureID, Platform: created.Platform}
	}
	log := storetest.StartAuditLog(t, st, clock)
	h, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: bytes.Repeat([]byte{1}, 32), Recorder: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	for key, by := range map[string]string{"a": "mediator-a", "b": "mediator-b"} {
		p := f.who[by]
		res, err := h.Create(ctx, p, p.StructureID, people.HolderInput{Mailbox: "personne-" + key + "@example.org",
			DisplayName: "Personne " + key, Email: "contact-" + key + "@example.net"})
		if err != nil {
			t.Fatal(err)
		}
		f.holders[key] = res.Holder
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := authz.New(authz.Config{Issuer: "http://127.0.0.1", HMACSecret: bytes.Repeat([]byte{3}, 32)}, st, keys,
		authz.WithClock(clock), authz.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	// The console's client, whose tokens mandates are asked for.
	if err := srv.EnsureConsoleClient(ctx); err != nil {
		t.Fatal(err)
	}
	f.svc, err = mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: srv,
		Recorder: audit.MandateRecorder(log.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEcho(Config{}, Deps{Logger: quiet})
	RegisterMandates(e, f.svc, clock, func(c echo.Context) (people.Principal, bool) {
		p, ok := f.who[c.Request().Header.Get("X-Test-Who")]
		return p, ok
	})
	f.e = e
	rec := f.do(t, "mediator-a", http.MethodGet, "/api/mandates", "", "")
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "mandated_csrf" {
			f.csrf = ck
		}
	}
	if f.csrf == nil {
		t.Fatal("no CSRF cookie")
	}
	return f
}

// request asks for a session of holder ("a" or "b") as delegate.
func (f *mandatesFixture) request(delegate, holder string) mandate.Mandate {
	f.t.Helper()
	p := f.who[delegate]
	m, err := f.svc.Request(f.t.Context(), mandate.Request{Kind: mandate.KindSession, StructureID: p.StructureID,
		HolderID: f.holders[holder].ID, DelegateID: p.ID, ClientID: "mandated-console", Scopes: []string{mandate.ScopeMailRead},
		Purpose: "Retrouver le courrier de la CAF", PurposeCategory: mandate.PurposeSocial, Presence: mandate.PresenceRequired,
		Duration: 30 * time.Minute})
	if err != nil {
		f.t.Fatal(err)
	}
	f.clock.Advance(time.Second) // distinct creation times, newest first
	return m
}

func TestMandatesAPIListsWhatEachCallerMaySee(t *testing.T) {
	f := newMandatesFixture(t)
	a1 := f.request("mediator-a", "a")
	a2 := f.request("mediator-a2", "a")
	b1 := f.request("mediator-b", "b")

	ids := func(who, query string) []string {
		t.Helper()
		rec := f.do(t, who, http.MethodGet, "/api/mandates"+query, "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", who, query, rec.Code, rec.Body)
		}
		var out []string
		for _, m := range decodeJSON[mandateListResponse](t, rec).Mandates {
			out = append(out, m.ID)
		}
		return out
	}
	same := func(got []string, want ...string) bool { return strings.Join(got, ",") == strings.Join(want, ",") }
	for _, tt := range []struct {
		who, query string
		want       []string
	}{
		{"mediator-a", "", []string{a1.ID}}, // a mediator's own only
		{"mediator-a2", "", []string{a2.ID}},
		{"admin-a", "", []string{a2.ID, a1.ID}}, // the structure's, newest first
		{"auditor-a", "", []string{a2.ID, a1.ID}},
		{"admin-a", "?delegate=" + f.who["mediator-a"].ID, []string{a1.ID}},
		{"admin-a", "?holder=" + f.holders["b"].ID, nil}, // another structure's holder: nothing
		{"admin-b", "", []string{b1.ID}},
		{"platform", "?structure_id=" + f.who["admin-a"].StructureID, []string{a2.ID, a1.ID}},
		{"admin-a", "?state=requested,active", []string{a2.ID, a1.ID}},
		{"admin-a", "?state=ended", nil},
	} {
		if got := ids(tt.who, tt.query); !same(got, tt.want...) {
			t.Errorf("%s %s: %v, want %v", tt.who, tt.query, got, tt.want)
		}
	}
	// Another structure's list: 404, as for a structure that does not exist.
	rec := f.do(t, "admin-a", http.MethodGet, "/api/mandates?structure_id="+f.who["admin-b"].StructureID, "", "")
	wantHolderProblem(t, rec, http.StatusNotFound)
	rec = f.do(t, "mediator-a", http.MethodGet, "/api/mandates?structure_id="+f.who["admin-b"].StructureID, "", "")
	wantHolderProblem(t, rec, http.StatusNotFound)
	// A mediator may not list a colleague's.
	rec = f.do(t, "mediator-a", http.MethodGet, "/api/mandates?delegate="+f.who["mediator-a2"].ID, "", "")
	wantHolderProblem(t, rec, http.StatusForbidden)
	for _, q := range []string{"?state=nope", "?limit=0", "?limit=201", "?before=%21%21"} {
		rec := f.do(t, "admin-a", http.MethodGet, "/api/mandates"+q, "", "")
		wantHolderProblem(t, rec, http.StatusBadRequest)
	}
	rec = f.do(t, "", http.MethodGet, "/api/mandates", "", "")
	wantHolderProblem(t, rec, http.StatusUnauthorized)
}

func TestMandatesAPIPagesWithACursor(t *testing.T) {
	f := newMandatesFixture(t)
	var want []string
	for range 5 {
		want = append([]string{f.request("mediator-a", "a").ID}, want...)
	}
	var got []string
	next := ""
	for pages := 0; pages < 10; pages++ {
		q := "?limit=2"
		if next != "" {
			q += "&before=" + next
		}
		rec := f.do(t, "admin-a", http.MethodGet, "/api/mandates"+q, "", "")
		page := decodeJSON[mandateListResponse](t, rec)
		if len(page.Mandates) > 2 {
			t.Fatalf("page of %d", len(page.Mandates))
		}
		for _, m := range page.Mandates {
			got = append(got, m.ID)
		}
		if next = page.Next; next == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pages gave %v, want %v", got, want)
	}
}

func TestMandatesAPIGetAndEndAreScopedToTheStructure(t *testing.T) {
	f := newMandatesFixture(t)
	a1 := f.request("mediator-a", "a")
	a2 := f.request("mediator-a2", "a")
	b1 := f.request("mediator-b", "b")

	rec := f.do(t, "mediator-a", http.MethodGet, "/api/mandates/"+a1.ID, "", "")
	got := decodeJSON[MandateJSON](t, rec)
	if rec.Code != http.StatusOK || got.ID != a1.ID || got.State != "requested" || got.HolderID != f.holders["a"].ID ||
		got.Mailbox != "personne-a@example.org" || strings.Join(got.Scopes, " ") != "mail.read" ||
		strings.Join(got.Exclusions, " ") != "personal" || got.PurposeCategory != "social" || got.DurationSeconds != 1800 ||
		got.Present || got.AnswerBy == "" {
		t.Fatalf("get: %d %+v", rec.Code, got)
	}
	for _, tt := range []struct {
		who, id string
		status  int
	}{
		{"mediator-a", a2.ID, http.StatusNotFound}, // a colleague's
		{"mediator-b", a1.ID, http.StatusNotFound}, // another structure's
		{"admin-b", a1.ID, http.StatusNotFound},
		{"admin-a", b1.ID, http.StatusNotFound},
		{"auditor-a", a1.ID, http.StatusOK},
		{"platform", b1.ID, http.StatusOK},
		{"admin-a", "nope", http.StatusNotFound},
	} {
		rec := f.do(t, tt.who, http.MethodGet, "/api/mandates/"+tt.id, "", "")
		if rec.Code != tt.status {
			t.Errorf("%s get %s: %d %s, want %d", tt.who, tt.id, rec.Code, rec.Body, tt.status)
		}
	}

	// Ending: nobody but the delegate or an admin of the structure.
	for _, tt := range []struct {
		who, id string
		status  int
	}{
		{"mediator-b", a1.ID, http.StatusNotFound},
		{"admin-b", a1.ID, http.StatusNotFound},
		{"mediator-a2", a1.ID, http.StatusNotFound},
		{"auditor-a", a1.ID, http.StatusForbidden},
	} {
		rec := f.do(t, tt.who, http.MethodPost, "/api/mandates/"+tt.id+"/end", "", "")
		wantHolderProblem(t, rec, tt.status)
	}
	if m, _ := f.svc.Get(t.Context(), a1.ID); m.State != mandate.StateRequested {
		t.Fatalf("refused ends changed the mandate: %s", m.State)
	}
	// Without the CSRF token, nothing happens.
	forged := httptest.NewRequest(http.MethodPost, "/api/mandates/"+a1.ID+"/end", nil)
	forged.Header.Set("X-Test-Who", "mediator-a")
	forged.Header.Set("X-CSRF-Token", "forged")
	forged.AddCookie(f.csrf)
	rec = httptest.NewRecorder()
	f.e.ServeHTTP(rec, forged)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("end without CSRF: %d %s", rec.Code, rec.Body)
	}
	if m, _ := f.svc.Get(t.Context(), a1.ID); m.State != mandate.StateRequested {
		t.Fatalf("an end without CSRF changed the mandate: %s", m.State)
	}

	rec = f.do(t, "mediator-a", http.MethodPost, "/api/mandates/"+a1.ID+"/end", "", "")
	if got := decodeJSON[MandateJSON](t, rec); rec.Code != http.StatusOK || got.State != "ended" || got.EndReason != "delegate" ||
		got.EndedBy != f.who["mediator-a"].ID || got.EndedAt == "" {
		t.Fatalf("end by delegate: %d %+v", rec.Code, got)
	}
	rec = f.do(t, "mediator-a", http.MethodPost, "/api/mandates/"+a1.ID+"/end", "", "")
	wantHolderProblem(t, rec, http.StatusConflict)

	rec = f.do(t, "admin-a", http.MethodPost, "/api/mandates/"+a2.ID+"/end", "", "")
	if got := decodeJSON[MandateJSON](t, rec); rec.Code != http.StatusOK || got.EndReason != "admin" || got.EndedBy != f.who["admin-a"].ID {
		t.Fatalf("end by admin: %d %+v", rec.Code, got)
	}
}

func TestMandatesAPIPolicy(t *testing.T) {
	f := newMandatesFixture(t)
	sa, sb := f.who["admin-a"].StructureID, f.who["admin-b"].StructureID
	rec := f.do(t, "mediator-a", http.MethodGet, "/api/structures/"+sa+"/policy", "", "")
	pol := decodeJSON[PolicyJSON](t, rec)
	if rec.Code != http.StatusOK || !pol.Default || pol.MaxSessionSeconds != 3600 || len(pol.AllowedScopes) != 4 || pol.AllowRelaxedPresence {
		t.Fatalf("default policy: %d %+v", rec.Code, pol)
	}
	for _, who := range []string{"mediator-b", "admin-b"} {
		rec := f.do(t, who, http.MethodGet, "/api/structures/"+sa+"/policy", "", "")
		wantHolderProblem(t, rec, http.StatusNotFound)
		rec = f.do(t, who, http.MethodPut, "/api/structures/"+sa+"/policy", "application/json",
			`{"allowed_scopes":["mail.read"],"max_session_seconds":900,"max_delegation_seconds":86400}`)
		wantHolderProblem(t, rec, http.StatusNotFound)
	}
	body := `{"allowed_scopes":["mail.read","mail.send"],"max_session_seconds":900,"max_delegation_seconds":172800,"allow_relaxed_presence":true}`
	rec = f.do(t, "mediator-a", http.MethodPut, "/api/structures/"+sa+"/policy", "application/json", body)
	wantHolderProblem(t, rec, http.StatusForbidden)
	for _, bad := range []string{
		`{"allowed_scopes":[],"max_session_seconds":900,"max_delegation_seconds":172800}`,
		`{"allowed_scopes":["audit.write"],"max_session_seconds":900,"max_delegation_seconds":172800}`,
		`{"allowed_scopes":["mail.read"],"max_session_seconds":60,"max_delegation_seconds":172800}`,
		`{"allowed_scopes":["mail.read"],"max_session_seconds":900,"max_delegation_seconds":-1}`,
	} {
		rec := f.do(t, "admin-a", http.MethodPut, "/api/structures/"+sa+"/policy", "application/json", bad)
		wantHolderProblem(t, rec, http.StatusUnprocessableEntity)
	}
	for _, bad := range []string{`{"allowed_scopes":"mail.read"}`, `{"surprise":1}`, `not json`} {
		rec := f.do(t, "admin-a", http.MethodPut, "/api/structures/"+sa+"/policy", "application/json", bad)
		wantHolderProblem(t, rec, http.StatusBadRequest)
	}
	rec = f.do(t, "admin-a", http.MethodPut, "/api/structures/"+sa+"/policy", "text/plain", body)
	wantHolderProblem(t, rec, http.StatusUnsupportedMediaType)
	if got, _ := f.svc.Policy(t.Context(), sa); got.UpdatedBy != "" {
		t.Fatalf("refused changes stored a policy: %+v", got)
	}

	rec = f.do(t, "admin-a", http.MethodPut, "/api/structures/"+sa+"/policy", "application/json", body)
	pol = decodeJSON[PolicyJSON](t, rec)
	if rec.Code != http.StatusOK || pol.Default || pol.MaxSessionSeconds != 900 || strings.Join(pol.AllowedScopes, " ") != "mail.read mail.send" ||
		!pol.AllowRelaxedPresence || pol.UpdatedBy != f.who["admin-a"].ID {
		t.Fatalf("put: %d %+v", rec.Code, pol)
	}
	if got, _ := f.svc.Policy(t.Context(), sa); got.MaxSessionDuration != 15*time.Minute {
		t.Errorf("stored policy %+v", got)
	}
	// The other structure's policy did not move; its platform admin may set it.
	if got, _ := f.svc.Policy(t.Context(), sb); got.MaxSessionDuration != time.Hour {
		t.Errorf("structure B's policy moved: %+v", got)
	}
	rec = f.do(t, "platform", http.MethodPut, "/api/structures/"+sb+"/policy", "application/json", body)
	if rec.Code != http.StatusOK {
		t.Errorf("platform admin: %d %s", rec.Code, rec.Body)
	}
}
