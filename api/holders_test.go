package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// holdersFixture is the holders API over a real SQLite store and audit log,
// with structures A and B; the session function hands out the principal the
// X-Test-Who header names.
type holdersFixture struct {
	e    *echo.Echo
	csrf *http.Cookie
}

var holderPrincipals = map[string]people.Principal{
	"mediator-a": {Kind: "staff", ID: "m1", Role: people.RoleMediator, StructureID: "A"},
	"admin-a":    {Kind: "staff", ID: "a1", Role: people.RoleAdmin, StructureID: "A"},
	"mediator-b": {Kind: "staff", ID: "m2", Role: people.RoleMediator, StructureID: "B"},
	"auditor-a":  {Kind: "staff", ID: "u1", Role: people.RoleAuditor, StructureID: "A"},
	"platform":   {Kind: "staff", ID: "p1", Role: people.RoleAdmin, Platform: true, StructureID: "P"},
	"holder":     {Kind: "holder", ID: "h1"},
}

func newHoldersFixture(t *testing.T) *holdersFixture {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	for _, s := range []string{"A", "B", "P"} {
		if err := st.CreateStructure(t.Context(), people.Structure{ID: s, Name: s}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: bytes.Repeat([]byte{1}, 32),
		Recorder: storetest.StartAuditLog(t, st, clock), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEcho(Config{}, Deps{Logger: quiet})
	RegisterHolders(e, h, func(c echo.Context) (people.Principal, bool) {
		p, ok := holderPrincipals[c.Request().Header.Get("X-Test-Who")]
		return p, ok
	})
	f := &holdersFixture{e: e}
	// A first GET gives the CSRF cookie that unsafe requests echo as _csrf.
	rec := f.do(t, "mediator-a", http.MethodGet, "/api/holders", "", "")
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

// do sends a request; unsafe ones carry the CSRF cookie and token.
func (f *holdersFixture) do(t *testing.T, who, method, path, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	if method != http.MethodGet && f.csrf != nil {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "_csrf=" + url.QueryEscape(f.csrf.Value)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if who != "" {
		req.Header.Set("X-Test-Who", who)
	}
	if f.csrf != nil {
		req.AddCookie(f.csrf)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec
}

func decodeJSON[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func wantHolderProblem(t *testing.T, rec *httptest.ResponseRecorder, status int) holderProblem {
	t.Helper()
	if rec.Code != status || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want a %d problem", rec.Code, rec.Header().Get("Content-Type"), rec.Body, status)
	}
	p := decodeJSON[holderProblem](t, rec)
	if p.Status != status || p.Title == "" {
		t.Errorf("problem %+v", p)
	}
	return p
}

func (f *holdersFixture) createHolder(t *testing.T, who, body string) (HolderJSON, int) {
	t.Helper()
	rec := f.do(t, who, http.MethodPost, "/api/holders", "application/json", body)
	if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
		t.Fatalf("create as %s: %d %s", who, rec.Code, rec.Body)
	}
	return decodeJSON[createHolderResponse](t, rec).Holder, rec.Code
}

func TestHoldersAPICreateGetList(t *testing.T) {
	f := newHoldersFixture(t)
	h, code := f.createHolder(t, "mediator-a", `{"mailbox":"Marie@Example.org","display_name":"Marie Dupont","phone":"06 12 34 56 78"}`)
	if code != http.StatusCreated || h.Mailbox != "marie@example.org" || h.PhoneMasked != "+33 ••••••• 78" || h.EmailMasked != "" ||
		h.Language != "fr" || h.ContactConfirmed {
		t.Fatalf("created %d %+v", code, h)
	}
	// The same mailbox from B: linked, contacts unchanged.
	linked, code := f.createHolder(t, "mediator-b", `{"mailbox":"marie@example.org","display_name":"Autre","email":"x@example.net"}`)
	if code != http.StatusOK || linked.ID != h.ID || linked.DisplayName != "Marie Dupont" || linked.EmailMasked != "" {
		t.Fatalf("linked %d %+v", code, linked)
	}
	for _, who := range []string{"mediator-a", "admin-a", "mediator-b"} {
		rec := f.do(t, who, http.MethodGet, "/api/holders/"+h.ID, "", "")
		if rec.Code != http.StatusOK || decodeJSON[HolderJSON](t, rec).ID != h.ID {
			t.Errorf("%s: %d %s", who, rec.Code, rec.Body)
		}
	}
	f.createHolder(t, "mediator-a", `{"mailbox":"jean@example.org","display_name":"Jean","email":"jean@example.net","language":"en"}`)
	f.createHolder(t, "mediator-a", `{"mailbox":"zoe@example.org","display_name":"Zoé","email":"zoe@example.net"}`)
	rec := f.do(t, "mediator-a", http.MethodGet, "/api/holders?limit=2", "", "")
	list := decodeJSON[holderListResponse](t, rec)
	if rec.Code != http.StatusOK || len(list.Holders) != 2 || list.Next != "marie@example.org" || list.Total != 3 {
		t.Fatalf("page 1: %d %+v", rec.Code, list)
	}
	list = decodeJSON[holderListResponse](t, f.do(t, "mediator-a", http.MethodGet, "/api/holders?limit=2&after="+url.QueryEscape(list.Next), "", ""))
	if len(list.Holders) != 1 || list.Holders[0].Mailbox != "zoe@example.org" || list.Next != "" {
		t.Fatalf("page 2: %+v", list)
	}
	list = decodeJSON[holderListResponse](t, f.do(t, "mediator-a", http.MethodGet, "/api/holders?q=DUPONT", "", ""))
	if len(list.Holders) != 1 || list.Holders[0].ID != h.ID {
		t.Fatalf("search: %+v", list)
	}
	list = decodeJSON[holderListResponse](t, f.do(t, "mediator-b", http.MethodGet, "/api/holders", "", ""))
	if len(list.Holders) != 1 || list.Total != 1 {
		t.Fatalf("B lists %+v", list)
	}
	// Platform staff name the structure.
	list = decodeJSON[holderListResponse](t, f.do(t, "platform", http.MethodGet, "/api/holders?structure_id=A", "", ""))
	if list.Total != 3 {
		t.Fatalf("platform on A lists %+v", list)
	}
}

func TestHoldersAPIRefusesOtherStructuresAndBadInput(t *testing.T) {
	f := newHoldersFixture(t)
	a, _ := f.createHolder(t, "mediator-a", `{"mailbox":"a@example.org","display_name":"A","email":"a@example.net"}`)

	// Another structure's holder is 404 on every route, like an unknown one.
	for _, path := range []string{"/api/holders/" + a.ID, "/api/holders/unknown"} {
		p := wantHolderProblem(t, f.do(t, "mediator-b", http.MethodGet, path, "", ""), http.StatusNotFound)
		if p.Detail != "no such holder" {
			t.Errorf("%s: %+v", path, p)
		}
	}
	list := decodeJSON[holderListResponse](t, f.do(t, "mediator-b", http.MethodGet, "/api/holders?q=a%40example", "", ""))
	if len(list.Holders) != 0 || list.Total != 0 {
		t.Errorf("B finds A's holder: %+v", list)
	}
	// Naming another structure: refused unless platform staff.
	wantHolderProblem(t, f.do(t, "mediator-b", http.MethodGet, "/api/holders/"+a.ID+"?structure_id=A", "", ""), http.StatusForbidden)
	wantHolderProblem(t, f.do(t, "mediator-b", http.MethodGet, "/api/holders?structure_id=A", "", ""), http.StatusForbidden)
	wantHolderProblem(t, f.do(t, "mediator-b", http.MethodPost, "/api/holders", "application/json",
		`{"mailbox":"b@example.org","display_name":"B","email":"b@example.net","structure_id":"A"}`), http.StatusForbidden)
	if rec := f.do(t, "platform", http.MethodGet, "/api/holders/"+a.ID+"?structure_id=A", "", ""); rec.Code != http.StatusOK {
		t.Errorf("platform admin: %d", rec.Code)
	}
	// Who may not use the API at all.
	wantHolderProblem(t, f.do(t, "", http.MethodGet, "/api/holders", "", ""), http.StatusUnauthorized)
	wantHolderProblem(t, f.do(t, "holder", http.MethodGet, "/api/holders", "", ""), http.StatusUnauthorized)
	wantHolderProblem(t, f.do(t, "auditor-a", http.MethodGet, "/api/holders/"+a.ID, "", ""), http.StatusForbidden)

	// Bad input.
	p := wantHolderProblem(t, f.do(t, "mediator-a", http.MethodPost, "/api/holders", "application/json",
		`{"mailbox":"nope","display_name":"","phone":"12"}`), http.StatusUnprocessableEntity)
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	if strings.Join(fields, ",") != "mailbox,display_name,phone" {
		t.Errorf("invalid fields %v", p.Errors)
	}
	wantHolderProblem(t, f.do(t, "mediator-a", http.MethodPost, "/api/holders", "application/json", `{"mailbox":`), http.StatusBadRequest)
	wantHolderProblem(t, f.do(t, "mediator-a", http.MethodPost, "/api/holders", "application/json", `{"mailbox":"a@b.fr","age":3}`), http.StatusBadRequest)
	wantHolderProblem(t, f.do(t, "mediator-a", http.MethodPost, "/api/holders", "text/plain", `{}`), http.StatusUnsupportedMediaType)
	wantHolderProblem(t, f.do(t, "mediator-a", http.MethodGet, "/api/holders?limit=0", "", ""), http.StatusBadRequest)
	// Without the CSRF token, no change.
	saved := f.csrf
	f.csrf = nil
	rec := f.do(t, "mediator-a", http.MethodPost, "/api/holders", "application/json", `{"mailbox":"c@example.org","display_name":"C","email":"c@example.net"}`)
	f.csrf = saved
	if rec.Code != http.StatusBadRequest && rec.Code != http.StatusForbidden {
		t.Errorf("without CSRF token: %d", rec.Code)
	}
	if list := decodeJSON[holderListResponse](t, f.do(t, "mediator-a", http.MethodGet, "/api/holders", "", "")); list.Total != 1 {
		t.Errorf("%d holders after refused requests", list.Total)
	}
}

func TestHoldersAPIImport(t *testing.T) {
	f := newHoldersFixture(t)
	good := "mailbox;display_name;phone\nun@example.org;Un;0612345678\ndeux@example.org;Deux;0612345679\n"
	bad := good + "trois;Trois;\n"

	rec := f.do(t, "admin-a", http.MethodPost, "/api/holders/import?dry_run=true", "text/csv; charset=utf-8", bad)
	report := decodeJSON[importJSON](t, rec)
	if rec.Code != http.StatusOK || !report.DryRun || report.Imported || report.Created != 2 || report.BadRows != 1 || len(report.Errors) != 2 ||
		report.Errors[0].Line != 4 || report.Errors[0].Field != "mailbox" {
		t.Fatalf("dry run: %d %+v", rec.Code, report)
	}
	p := wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import", "text/csv", bad), http.StatusUnprocessableEntity)
	if p.Report == nil || p.Report.Imported || p.Report.BadRows != 1 {
		t.Fatalf("stop on errors: %+v", p)
	}
	if list := decodeJSON[holderListResponse](t, f.do(t, "admin-a", http.MethodGet, "/api/holders", "", "")); list.Total != 0 {
		t.Fatalf("a refused import wrote %d holders", list.Total)
	}
	rec = f.do(t, "admin-a", http.MethodPost, "/api/holders/import?keep_going=true", "text/csv", bad)
	if report := decodeJSON[importJSON](t, rec); rec.Code != http.StatusOK || !report.Imported || report.Created != 2 {
		t.Fatalf("keep going: %d %s", rec.Code, rec.Body)
	}
	// Mediators may not import; admins not into another structure.
	wantHolderProblem(t, f.do(t, "mediator-a", http.MethodPost, "/api/holders/import", "text/csv", good), http.StatusForbidden)
	wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import?structure_id=B", "text/csv", good), http.StatusForbidden)
	// Unreadable files.
	p = wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import", "text/csv", "mailbox,name\n"), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Line != 1 {
		t.Errorf("bad header: %+v", p)
	}
	wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import", "text/csv", "mailbox,display_name,email\n\xe9,\xe9,\xe9\n"), http.StatusUnprocessableEntity)
	wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import", "application/json", good), http.StatusUnsupportedMediaType)
	wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import?dry_run=maybe", "text/csv", good), http.StatusBadRequest)
	big := "mailbox,display_name,email\n" + strings.Repeat("x@example.org,X,x@example.net\n", 3000)
	wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import", "text/csv", big), http.StatusRequestEntityTooLarge)
}
