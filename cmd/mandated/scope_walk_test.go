package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// walkStructure is one structure of the walk: its people and records, made
// through the services serve uses.
type walkStructure struct {
	structure                people.Structure
	admin, mediator, auditor people.Staff
	holder                   people.Holder
	banner                   people.Banner
	session, delegation      string   // mandate ids: approved session, pending delegation
	userCode                 string   // the pending delegation's device user code
	tag                      string   // in every name, address, text and purpose of the structure
	ids                      []string // every id a route could take
	// signed-in users by role: admin, mediator, auditor, holder
	users map[string]people.Principal
}

// seedWalkStructure creates a structure whose names all contain tag (so
// that they can be looked for in any answer), with an admin, a mediator, an
// auditor, a holder, a banner, an approved session and a pending delegation.
func seedWalkStructure(t *testing.T, a *app, id, name, tag string, clientID string) *walkStructure {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := a.clock.Now()
	w := &walkStructure{structure: people.Structure{ID: id, Name: name, CreatedAt: now}}
	must(a.store.CreateStructure(ctx, w.structure))
	staff := func(role people.Role, first string) people.Staff {
		st := people.Staff{ID: id + "-" + string(role), Email: strings.ToLower(first) + "@" + tag + ".example", DisplayName: first + " " + tag,
			Role: role, StructureID: id, Status: people.StaffActive, CreatedAt: now}
		must(a.store.CreateStaff(ctx, st))
		return st
	}
	w.admin = staff(people.RoleAdmin, "Admin")
	w.mediator = staff(people.RoleMediator, "Mediator")
	w.auditor = staff(people.RoleAuditor, "Auditor")
	// The mailbox is sent by the walk (a device flow's holder_hint): it is
	// not a secret, and does not hold the tag.
	w.holder = people.Holder{ID: id + "-holder", Mailbox: "holder@mail-" + id + ".example", DisplayName: "Holder " + tag,
		Phone: "+33612345678", Email: "holder.perso@" + tag + ".example", Language: "fr", CreatedAt: now}
	must(a.store.CreateHolder(ctx, w.holder, id))
	var err error
	w.banner, err = a.newAdmin().PostBanner(ctx, people.Principal{Kind: "staff", ID: w.admin.ID, Role: people.RoleAdmin, StructureID: id},
		id, people.BannerInput{Audience: "staff", TextFR: "Banner " + tag, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(48 * time.Hour)})
	must(err)
	ask := func(kind mandate.Kind) string {
		req := authz.DeviceRequest{ClientID: clientID, Scopes: []string{mandate.ScopeMailRead}, HolderID: w.holder.ID, Kind: kind,
			Purpose: "Purpose " + tag, PurposeCategory: mandate.PurposeSocial, ActorStaffID: w.mediator.ID, ActorStructure: id}
		if kind == mandate.KindDelegation {
			req.NotBefore, req.NotAfter, req.PurposeCategory = now.Add(time.Hour), now.Add(49*time.Hour), mandate.PurposeAbsence
		} else {
			req.Duration = 30 * time.Minute
		}
		d, err := a.authz.AuthorizeDevice(ctx, req)
		must(err)
		w.userCode = d.UserCode
		return d.MandateID
	}
	w.session, w.delegation = ask(mandate.KindSession), ask(mandate.KindDelegation)
	_, err = a.mandates.Approve(ctx, w.holder.ID, w.session, mandate.Approval{})
	must(err)

	w.tag = tag
	w.ids = []string{id, w.admin.ID, w.mediator.ID, w.auditor.ID, w.holder.ID, w.banner.ID, w.session, w.delegation, w.userCode}
	principal := func(st people.Staff) people.Principal {
		return people.Principal{Subject: people.StaffSubject(st.ID), Kind: "staff", ID: st.ID, Role: st.Role,
			StructureID: st.StructureID, DisplayName: st.DisplayName, Email: st.Email}
	}
	w.users = map[string]people.Principal{"admin": principal(w.admin), "mediator": principal(w.mediator), "auditor": principal(w.auditor),
		"holder": people.HolderPrincipal(w.holder)}
	return w
}

// signIn returns the cookie of a new session of p: each request of the walk
// has its own, as a route may end the session it came with (signing out).
func signIn(t *testing.T, a *app, p *people.Principal) *http.Cookie {
	t.Helper()
	if p == nil {
		return nil
	}
	c, _, err := a.people.StartSession(t.Context(), *p)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: ui.DefaultCookieName, Value: c}
}

// TestNoRouteShowsOrChangesAnotherStructure walks every route `serve`
// serves (a.newEcho) as each kind of user of one structure (admin,
// mediator, auditor, holder) and as nobody, with the ids of another
// structure's records in the path, the query and the body. No answer may
// name the other structure's people, texts or purposes, and none of its
// rows may change. The same walk as the other structure's own users (reads
// only) must show each of those records: the walk reaches the pages that
// would leak them.
func TestNoRouteShowsOrChangesAnotherStructure(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "walk.db")
		walkEveryRoute(t, "sqlite://"+path, func() (*sql.DB, error) { return sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)") })
	})
	t.Run("Postgres", func(t *testing.T) {
		dsn := storetest.PostgresSchema(t)
		walkEveryRoute(t, dsn, func() (*sql.DB, error) { return sql.Open("pgx", dsn) })
	})
}

func walkEveryRoute(t *testing.T, databaseURL string, openDB func() (*sql.DB, error)) {
	ctx := t.Context()
	a, err := openApp(ctx, serveConfig(t, "--database-url", databaseURL, "--data-dir", t.TempDir(),
		"--secret-key", replicaSecretKey, "--issuer", "https://mandated.test", "--log-level", "error"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e, err := a.newEcho(nil)
	if err != nil {
		t.Fatal(err)
	}
	client, _, err := a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Poste de l'accueil",
		GrantTypes: []string{authz.GrantTypeDeviceCode}, Scopes: []string{mandate.ScopeMailRead}})
	if err != nil {
		t.Fatal(err)
	}
	own := seedWalkStructure(t, a, "tulle", "Mairie de Tulle", "tullezz", client.ID)
	other := seedWalkStructure(t, a, "brive", "CCAS de Brive", "brivezz", client.ID)

	routes := walkRoutes(e)
	if len(routes) < 60 {
		t.Fatalf("only %d routes to walk: %v", len(routes), routes)
	}
	before := rowsNaming(t, openDB, other.ids)

	requests, served := 0, map[string]int{}
	for _, name := range []string{"admin", "mediator", "auditor", "holder", "nobody"} {
		var who *people.Principal
		if p, ok := own.users[name]; ok {
			who = &p
		}
		for _, r := range routes {
			for _, target := range fillRoute(r.Path, other.ids) {
				status, body := walkRequest(t, e, r.Method, target, other, signIn(t, a, who))
				if status < 300 {
					served[name]++
				}
				requests++
				if i := strings.Index(strings.ToLower(body), other.tag); i >= 0 {
					t.Errorf("%s of %s: %s %s answered %d naming %s's records: …%s…",
						name, own.structure.Name, r.Method, target, status, other.structure.Name, body[max(0, i-200):min(len(body), i+100)])
				}
			}
		}
	}
	after := rowsNaming(t, openDB, other.ids)
	for _, row := range before {
		if !slices.Contains(after, row) {
			t.Errorf("the walk changed or removed a row of %s: %s", other.structure.Name, row)
		}
	}
	for _, row := range after {
		if !slices.Contains(before, row) {
			t.Errorf("the walk added or changed a row naming %s's records: %s", other.structure.Name, row)
		}
	}

	// The control: the other structure's own users, reading, do see them.
	seen := map[string]bool{}
	for _, p := range other.users {
		for _, r := range routes {
			if r.Method != http.MethodGet {
				continue
			}
			for _, target := range fillRoute(r.Path, other.ids) {
				_, body := walkRequest(t, e, r.Method, target, other, signIn(t, a, &p))
				for _, s := range []string{other.holder.DisplayName, other.mediator.DisplayName, other.banner.TextFR, "Purpose " + other.tag} {
					if strings.Contains(body, s) {
						seen[s] = true
					}
				}
			}
		}
	}
	if len(seen) < 4 {
		t.Errorf("the structure's own users saw only %v of its holder, mediator, banner and purpose: the walk misses the pages that show them", seen)
	}
	t.Logf("%d routes, %d requests from another structure; answered < 300 by role: %v", len(routes), requests, served)
}

// walkRoutes lists the routes to walk: every method and path but the
// static files.
func walkRoutes(e *echo.Echo) []*echo.Route {
	var out []*echo.Route
	for _, r := range e.Routes() {
		if strings.Contains(r.Path, "*") || r.Method == echo.RouteNotFound {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *echo.Route) int { return strings.Compare(a.Path+a.Method, b.Path+b.Method) })
	return out
}

// fillRoute returns path with each :param replaced by each of ids (every
// param by the same id when there are several).
func fillRoute(path string, ids []string) []string {
	if !strings.Contains(path, ":") {
		return []string{path}
	}
	var out []string
	for _, id := range ids {
		parts := strings.Split(path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = url.PathEscape(id)
			}
		}
		out = append(out, strings.Join(parts, "/"))
	}
	return out
}

// walkRequest sends one same-origin request for other's records (in the
// query and, for writes, the body: JSON on /api, a form elsewhere) and
// returns the status and at most 1 MB of the answer. Streams are cut after
// 100 ms.
func walkRequest(t *testing.T, e *echo.Echo, method, target string, other *walkStructure, cookie *http.Cookie) (int, string) {
	t.Helper()
	fields := map[string]string{
		"structure": other.structure.ID, "structure_id": other.structure.ID, "holder": other.holder.ID, "holder_id": other.holder.ID,
		"mandate": other.session, "mandate_id": other.session, "staff": other.mediator.ID, "staff_id": other.mediator.ID,
		"actor": other.mediator.ID, "id": other.session, "banner": other.banner.ID, "mailbox": other.holder.Mailbox,
		"holder_hint": other.holder.Mailbox, "user_code": other.userCode,
	}
	q := url.Values{}
	for k, v := range fields {
		q.Set(k, v)
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	var body io.Reader
	contentType := ""
	if method != http.MethodGet && method != http.MethodHead {
		if strings.HasPrefix(target, "/api/") {
			b, _ := json.Marshal(fields)
			body, contentType = strings.NewReader(string(b)), "application/json"
		} else {
			body, contentType = strings.NewReader(q.Encode()), "application/x-www-form-urlencoded"
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, target+sep+q.Encode(), body)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Accept-Language", "fr")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	out := rec.Body.String()
	if len(out) > 1<<20 {
		out = out[:1<<20]
	}
	return rec.Code, out
}

// rowsNaming returns, as text, every row of every table but the audit log's
// and the sessions' that holds one of ids, sorted.
func rowsNaming(t *testing.T, open func() (*sql.DB, error), ids []string) []string {
	t.Helper()
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil { // PostgreSQL: the tables of the schema the URL selects
		tables, err = db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			t.Fatal(err)
		}
		// The log grows with every refusal, sessions with every request;
		// anyone may ask for a holder's sign-in code (rate limited).
		if !strings.HasPrefix(n, "audit_") && !slices.Contains([]string{"web_sessions", "goose_db_version", "one_time_codes", "sign_in_failures"}, n) {
			names = append(names, n)
		}
	}
	tables.Close()
	var out []string
	for _, n := range names {
		rows, err := db.Query(`SELECT * FROM "` + n + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := n + fmt.Sprint(vals)
			for _, id := range ids {
				if strings.Contains(row, id) {
					out = append(out, row)
					break
				}
			}
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}
