package api_test

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// adminServer is the admin API and pages as `mandated serve` wires them,
// over a real SQLite store, with real sessions and a real SMTP listener.
type adminServer struct {
	t      *testing.T
	st     *store.Store
	svc    *people.Service
	adm    *people.Admin
	smtp   *notifytest.SMTPServer
	echo   *echo.Echo
	ts     *httptest.Server
	clock  *storetest.Clock
	people map[string]people.Staff // by name
	// structures by name
	structures map[string]people.Structure
}

func newAdminServer(t *testing.T, st *store.Store, clock *storetest.Clock, enders ...people.AccessEnder) *adminServer {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	svc := people.NewService(st, sealer, clock, quiet, people.Config{Recorder: storetest.StartAuditLog(t, st, clock)})
	smtp := notifytest.StartSMTP(t)
	adm := people.NewAdmin(svc, st, people.AdminConfig{Notifier: notifytest.SMTPNotifier(t, smtp), AccessEnders: enders})
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet, Ready: st.Ping})
	pages := ui.New(ui.Deps{People: svc, Logger: quiet})
	pages.Register(e)
	ui.NewAdminPages(pages, adm).Register(e)
	api.RegisterAdmin(e, adm, pages.CurrentPrincipal)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return &adminServer{t: t, st: st, svc: svc, adm: adm, smtp: smtp, echo: e, ts: ts, clock: clock,
		people: map[string]people.Staff{}, structures: map[string]people.Structure{}}
}

// staff creates an active account directly in the store (no enrolment
// needed to hold a session).
func (s *adminServer) staff(name, email, role, structure string, platform bool) people.Staff {
	s.t.Helper()
	ctx := s.t.Context()
	st, _, err := s.svc.CreateStaff(ctx, email, role, structure, platform)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.st.UpdateStaff(ctx, st.ID, func(x *people.Staff) error {
		x.Status, x.DisplayName = people.StaffActive, name
		return nil
	}); err != nil {
		s.t.Fatal(err)
	}
	st, _ = s.st.GetStaff(ctx, st.ID)
	s.people[name] = st
	if structure != "" {
		s.structures[structure], _ = s.st.GetStructure(ctx, st.StructureID)
	}
	return st
}

// session returns a session cookie for a staff member.
func (s *adminServer) session(st people.Staff) *http.Cookie {
	s.t.Helper()
	p := people.Principal{Subject: people.StaffSubject(st.ID), Kind: "staff", ID: st.ID, Role: st.Role,
		StructureID: st.StructureID, Platform: st.Platform, DisplayName: st.DisplayName, Email: st.Email}
	cookie, _, err := s.svc.StartSession(s.t.Context(), p)
	if err != nil {
		s.t.Fatal(err)
	}
	return &http.Cookie{Name: ui.DefaultCookieName, Value: cookie}
}

// call sends a same-origin request (as a browser's fetch or form would:
// the CSRF middleware accepts Sec-Fetch-Site: same-origin) without
// following redirects.
func (s *adminServer) call(method, path, contentType, body string, cookie *http.Cookie) (int, string, http.Header) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// TestEveryAdminRouteAndPageRefusesOtherStructuresAndOtherRoles walks every
// route the admin API and pages register (read from echo, so a new route
// is walked too) with: an admin of another structure (404 for the
// structure's records, 403 for what only platform admins may do), the
// structure's own mediator and auditor (403: the route is not for their
// role), nobody signed in (401 / the sign-in page), an admin reaching
// another structure's record through their own structure (404), and the
// structure's own admin (served). Nothing may change on the way.
func TestEveryAdminRouteAndPageRefusesOtherStructuresAndOtherRoles(t *testing.T) {
	clock := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	s := newAdminServer(t, storetest.OpenSQLiteWith(t, store.Options{Clock: clock}), clock)
	ctx := t.Context()
	adminA := s.staff("adminA", "chef@tulle.fr", "admin", "Mairie de Tulle", false)
	adminB := s.staff("adminB", "chef@brive.fr", "admin", "CCAS de Brive", false)
	medB := s.staff("medB", "paul@brive.fr", "mediator", "CCAS de Brive", false)
	audB := s.staff("audB", "audit@brive.fr", "auditor", "CCAS de Brive", false)
	medA := s.staff("medA", "marie@tulle.fr", "mediator", "Mairie de Tulle", false)
	platformAuditor := s.staff("pAud", "audit@plateforme.fr", "auditor", "", true)
	b := s.structures["CCAS de Brive"]
	a := s.structures["Mairie de Tulle"]
	bannerB, err := s.adm.PostBanner(ctx, people.Principal{Kind: "staff", ID: adminB.ID, Role: people.RoleAdmin, StructureID: b.ID},
		b.ID, people.BannerInput{Audience: "staff", TextFR: "Fermé", StartsAt: clock.Now(), EndsAt: clock.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	// fill puts the target records in a route: structure B, B's mediator, B's banner.
	fill := func(path, structure, staffID string) string {
		r := strings.NewReplacer(":id/staff", structure+"/staff", ":id/inactive", structure+"/inactive",
			":id/banners", structure+"/banners", ":staffID", staffID, ":bannerID", bannerB.ID)
		path = r.Replace(path)
		switch {
		case strings.HasPrefix(path, "/admin/staff/:id"):
			path = strings.Replace(path, ":id", staffID, 1)
		case strings.HasPrefix(path, "/admin/banners/:id"):
			path = strings.Replace(path, ":id", bannerB.ID, 1)
		}
		if strings.HasPrefix(path, "/admin") {
			path += "?structure=" + structure
		}
		return path
	}
	// platformOnly are the routes whose use itself is for platform admins.
	platformOnly := func(path string) bool {
		return path == "/api/structures" || strings.HasPrefix(path, "/api/banners") || path == "/admin/structures"
	}
	bodies := map[string]string{ // valid bodies: refusals must not depend on validation
		"/api/structures/:id/staff":             `{"email":"new@brive.fr","name":"Nouveau","role":"mediator"}`,
		"/api/structures":                       `{"name":"Nouvelle structure"}`,
		"/api/structures/:id/banners":           `{"audience":"staff","text_fr":"Bonjour","starts_at":"` + clock.Now().Format(time.RFC3339) + `","ends_at":"` + clock.Now().Add(time.Hour).Format(time.RFC3339) + `"}`,
		"/api/structures/:id/banners/:bannerID": `{"audience":"holders","text_fr":"Changé","starts_at":"` + clock.Now().Format(time.RFC3339) + `","ends_at":"` + clock.Now().Add(time.Hour).Format(time.RFC3339) + `"}`,
	}
	bodies["/api/banners"] = bodies["/api/structures/:id/banners"]
	bodies["/api/banners/:bannerID"] = bodies["/api/structures/:id/banners/:bannerID"]
	pageForms := map[string]string{
		"/admin/invite":      "email=new%40brive.fr&name=Nouveau&role=mediator",
		"/admin/banners/new": "audience=staff&text_fr=Bonjour&start=" + clock.Now().Format(time.DateOnly) + "&end=" + clock.Now().AddDate(0, 0, 1).Format(time.DateOnly),
		"/admin/structures":  "name=Nouvelle+structure",
	}

	type caller struct {
		name      string
		cookie    *http.Cookie
		structure string // the structure in the path
		staffID   string
		want      func(path string) int // expected status of a refused request
	}
	notFoundUnlessPlatform := func(path string) int {
		if platformOnly(path) {
			return http.StatusForbidden
		}
		return http.StatusNotFound
	}
	forbidden := func(string) int { return http.StatusForbidden }
	callers := []caller{
		{"admin of another structure", s.session(adminA), b.ID, medB.ID, notFoundUnlessPlatform},
		{"admin of another structure, own structure in the path", s.session(adminA), a.ID, medB.ID, func(path string) int {
			if strings.Contains(path, "staffID") || strings.Contains(path, "bannerID") || strings.HasPrefix(path, "/admin/staff/") ||
				strings.HasPrefix(path, "/admin/banners/:id") || platformOnly(path) {
				return notFoundUnlessPlatform(path)
			}
			return 0 // served: their own structure
		}},
		{"mediator of the structure", s.session(medB), b.ID, medB.ID, forbidden},
		{"auditor of the structure", s.session(audB), b.ID, medA.ID, forbidden},
		{"platform auditor", s.session(platformAuditor), b.ID, medB.ID, forbidden},
		{"nobody signed in", nil, b.ID, medB.ID, func(path string) int {
			if strings.HasPrefix(path, "/api/") {
				return http.StatusUnauthorized
			}
			return http.StatusSeeOther // to the sign-in page
		}},
	}

	var routes []*echo.Route
	for _, r := range s.echo.Routes() {
		if strings.HasPrefix(r.Path, "/admin") || strings.HasPrefix(r.Path, "/api/structures") || strings.HasPrefix(r.Path, "/api/banners") {
			routes = append(routes, r)
		}
	}
	if len(routes) < len(api.AdminRoutes)+len(ui.AdminPagePaths) {
		t.Fatalf("only %d admin routes registered", len(routes))
	}
	for _, c := range callers {
		for _, r := range routes {
			want := c.want(r.Path)
			if want == 0 {
				continue
			}
			path := fill(r.Path, c.structure, c.staffID)
			t.Run(c.name+"/"+r.Method+" "+r.Path, func(t *testing.T) {
				ct, body := "", ""
				if r.Method != http.MethodGet && r.Method != http.MethodDelete {
					if strings.HasPrefix(r.Path, "/api/") {
						ct, body = "application/json", bodies[r.Path]
					} else {
						ct, body = "application/x-www-form-urlencoded", pageForms[r.Path]+"&structure="+c.structure
					}
				}
				status, raw, h := s.call(r.Method, path, ct, body, c.cookie)
				if status != want {
					t.Fatalf("%s %s answered %d, want %d: %.300s", r.Method, path, status, want, raw)
				}
				switch {
				case strings.HasPrefix(r.Path, "/api/"):
					if h.Get("Content-Type") != "application/problem+json" {
						t.Errorf("refusal is %s, want application/problem+json", h.Get("Content-Type"))
					}
				case want == http.StatusSeeOther:
					if !strings.HasPrefix(h.Get("Location"), "/signin") {
						t.Errorf("redirected to %s, want the sign-in page", h.Get("Location"))
					}
				default:
					if !strings.Contains(raw, "<h1>") || strings.Contains(raw, "paul@brive.fr") || strings.Contains(raw, "Fermé") {
						t.Errorf("refusal page is not a plain page or leaks B's records: %.500s", raw)
					}
				}
			})
		}
	}

	// The structure's own admin is served on every reading route.
	owner := s.session(adminB)
	for _, r := range routes {
		if r.Method != http.MethodGet || platformOnly(r.Path) {
			continue
		}
		path := fill(r.Path, b.ID, medB.ID)
		if status, raw, _ := s.call(r.Method, path, "", "", owner); status != http.StatusOK {
			t.Errorf("the structure's admin: GET %s answered %d: %.300s", path, status, raw)
		}
	}

	// Nothing changed.
	for _, st := range []people.Staff{adminA, adminB, medB, audB, medA} {
		got, _ := s.st.GetStaff(ctx, st.ID)
		if got.Status != people.StaffActive {
			t.Errorf("%s is now %s", st.Email, got.Status)
		}
	}
	if _, err := s.st.FindStaffByEmail(ctx, "new@brive.fr"); err == nil {
		t.Error("a refused invitation created an account")
	}
	if _, err := s.st.FindStructureByName(ctx, "Nouvelle structure"); err == nil {
		t.Error("a refused request created a structure")
	}
	if got, err := s.st.GetBanner(ctx, bannerB.ID); err != nil || got.TextFR != "Fermé" {
		t.Errorf("B's banner after the walk: %+v, %v", got, err)
	}
	if list, _ := s.st.ListBanners(ctx, b.ID); len(list) != 1 {
		t.Errorf("B has %d banners, want 1", len(list))
	}
	if n := len(s.smtp.Messages()); n != 0 {
		t.Errorf("%d invitations sent by refused requests", n)
	}
}

// TestAdminAPIInvitesDeactivatesAndReactivates runs the API as a structure
// admin would use it, with JSON bodies and problem answers.
func TestAdminAPIInvitesDeactivatesAndReactivates(t *testing.T) {
	clock := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	s := newAdminServer(t, storetest.OpenSQLiteWith(t, store.Options{Clock: clock}), clock)
	admin := s.staff("admin", "chef@tulle.fr", "admin", "Mairie de Tulle", false)
	root := s.staff("root", "root@plateforme.fr", "admin", "", true)
	sid := admin.StructureID
	ck := s.session(admin)

	status, raw, _ := s.call(http.MethodPost, "/api/structures/"+sid+"/staff", "application/json",
		`{"email":"marie@tulle.fr","name":"Marie Dupont","role":"mediator"}`, ck)
	if status != http.StatusCreated || !strings.Contains(raw, `"status":"pending"`) {
		t.Fatalf("invite: %d %s", status, raw)
	}
	mail := s.smtp.WaitFor(t, "marie@tulle.fr")
	if !strings.Contains(mail.Text, "/enrol?token=") {
		t.Errorf("invitation without link: %s", mail.Text)
	}
	st, err := s.st.FindStaffByEmail(t.Context(), "marie@tulle.fr")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		want                     int
		contains                 string
	}{
		{"bad JSON", http.MethodPost, "/api/structures/" + sid + "/staff", `{"email":`, http.StatusBadRequest, "Bad Request"},
		{"bad email", http.MethodPost, "/api/structures/" + sid + "/staff", `{"email":"nope","name":"X","role":"mediator"}`, http.StatusBadRequest, "email"},
		{"admin role by a structure admin", http.MethodPost, "/api/structures/" + sid + "/staff", `{"email":"x@tulle.fr","name":"X","role":"admin"}`, http.StatusForbidden, "role"},
		{"taken", http.MethodPost, "/api/structures/" + sid + "/staff", `{"email":"root@plateforme.fr","name":"X","role":"mediator"}`, http.StatusConflict, "already"},
		{"list", http.MethodGet, "/api/structures/" + sid + "/staff", "", http.StatusOK, "marie@tulle.fr"},
		{"deactivate", http.MethodPost, "/api/structures/" + sid + "/staff/" + st.ID + "/deactivate", "", http.StatusOK, `"status":"deactivated"`},
		{"deactivate self", http.MethodPost, "/api/structures/" + sid + "/staff/" + admin.ID + "/deactivate", "", http.StatusForbidden, "own account"},
		{"reactivate", http.MethodPost, "/api/structures/" + sid + "/staff/" + st.ID + "/reactivate", "", http.StatusOK, `"status":"pending"`},
		{"reactivate twice", http.MethodPost, "/api/structures/" + sid + "/staff/" + st.ID + "/reactivate", "", http.StatusConflict, "not deactivated"},
		{"inactivity report", http.MethodGet, "/api/structures/" + sid + "/inactive", "", http.StatusOK, `"days":90`},
		{"banner with bad dates", http.MethodPost, "/api/structures/" + sid + "/banners", `{"audience":"staff","text_fr":"x","starts_at":"demain","ends_at":"x"}`, http.StatusBadRequest, "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, raw, h := s.call(tt.method, tt.path, "application/json", tt.body, ck)
			if status != tt.want || !strings.Contains(raw, tt.contains) {
				t.Fatalf("%d %s, want %d containing %q", status, raw, tt.want, tt.contains)
			}
			if status >= 400 && h.Get("Content-Type") != "application/problem+json" {
				t.Errorf("error as %s", h.Get("Content-Type"))
			}
		})
	}

	// Platform admin: structures and platform-wide banners.
	rk := s.session(root)
	if status, raw, _ := s.call(http.MethodPost, "/api/structures", "application/json", `{"name":"CCAS de Brive"}`, rk); status != http.StatusCreated {
		t.Fatalf("create structure: %d %s", status, raw)
	}
	if status, raw, _ := s.call(http.MethodGet, "/api/structures", "", "", rk); status != http.StatusOK || !strings.Contains(raw, "CCAS de Brive") {
		t.Fatalf("list structures: %d %s", status, raw)
	}
	now := clock.Now()
	body := `{"audience":"holders","text_fr":"Maintenance","text_en":"Maintenance","starts_at":"` + now.Format(time.RFC3339) + `","ends_at":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`
	status, raw, _ = s.call(http.MethodPost, "/api/banners", "application/json", body, rk)
	if status != http.StatusCreated || !strings.Contains(raw, `"structure_id":null`) {
		t.Fatalf("platform banner: %d %s", status, raw)
	}
	// Without Sec-Fetch-Site and without the token, the CSRF middleware refuses.
	req, _ := http.NewRequest(http.MethodPost, s.ts.URL+"/api/banners", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(rk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without CSRF proof answered %d", resp.StatusCode)
	}
}
