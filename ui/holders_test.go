package ui_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

var mailedCode = regexp.MustCompile(`\b(\d{8})\b`)

// newHolderEnv is newEnv with holder sessions (people.Config.Holders).
func newHolderEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	sealer, err := seal.New(randomBytes(t, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	e.people = people.NewService(e.store, sealer, e.clock, nil, people.Config{Holders: e.store})
	e.ui = ui.New(ui.Deps{People: e.people, Consents: e.authz})
	e.echo = echo.New()
	e.echo.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{TokenLookup: "form:_csrf"}))
	e.ui.Register(e.echo)
	ts := httptest.NewServer(e.echo)
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// withHolders adds the holders' pages to the env, codes going to a real
// SMTP listener.
func (e *env) withHolders() (*people.Holders, *notifytest.SMTPServer) {
	e.t.Helper()
	srv := notifytest.StartSMTP(e.t)
	h, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: bytes.Repeat([]byte{3}, 32),
		Notifier: notify.Router{notify.Email: notifytest.SMTPNotifier(e.t, srv)}, Clock: e.clock})
	if err != nil {
		e.t.Fatal(err)
	}
	ui.NewHolderPages(e.ui, h).Register(e.echo)
	return h, srv
}

// holderOf creates a holder served by the structure of staff email.
func (e *env) holderOf(h *people.Holders, staffEmail, mailbox, contact string) people.Holder {
	e.t.Helper()
	st, err := e.store.FindStaffByEmail(e.t.Context(), staffEmail)
	if err != nil {
		e.t.Fatal(err)
	}
	by := people.Principal{Kind: "staff", ID: st.ID, Role: st.Role, StructureID: st.StructureID}
	res, err := h.Create(e.t.Context(), by, st.StructureID, people.HolderInput{Mailbox: mailbox, DisplayName: "Personne " + mailbox, Email: contact})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Holder
}

// holderSignIn runs both steps of the code sign-in with return_to and
// returns the last answer.
func (e *env) holderSignIn(srv *notifytest.SMTPServer, mailbox, contact, returnTo string) *http.Response {
	e.t.Helper()
	_, page := e.get("/holder/signin?return_to=" + url.QueryEscape(returnTo))
	resp, page := e.post("/holder/signin", url.Values{"_csrf": {e.csrf(page)}, "mailbox": {mailbox}, "return_to": {returnTo}})
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("step one: %d", resp.StatusCode)
	}
	m := mailedCode.FindStringSubmatch(srv.WaitFor(e.t, contact).Text)
	if m == nil {
		e.t.Fatal("no code mailed")
	}
	form := url.Values{"_csrf": {e.csrf(page)}, "mailbox": {mailbox}, "code": {m[1]}}
	if rt := regexp.MustCompile(`name="return_to" value="([^"]*)"`).FindStringSubmatch(page); rt != nil {
		form.Set("return_to", rt[1])
	}
	resp, _ = e.post("/holder/signin/code", form)
	return resp
}

func TestHolderSignInGoesBackOnlyToThisSite(t *testing.T) {
	for _, tt := range []struct{ returnTo, want string }{
		{"/account/consents", "/account/consents"},
		{"", "/holder"},
		{"//evil.example/x", "/holder"},
		{"https://evil.example/", "/holder"},
		{"/\\evil.example", "/holder"},
	} {
		e := newHolderEnv(t)
		h, srv := e.withHolders()
		e.enrolled("agent@trifouillis.fr")
		e.holderOf(h, "agent@trifouillis.fr", "marie@example.org", "marie@example.net")
		resp := e.holderSignIn(srv, "marie@example.org", "marie@example.net", tt.returnTo)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.want {
			t.Errorf("return_to %q: %d to %q, want %q", tt.returnTo, resp.StatusCode, resp.Header.Get("Location"), tt.want)
		}
		if sessionCookie(resp) == nil {
			t.Errorf("return_to %q: no session cookie", tt.returnTo)
		}
		resp, page := e.get("/holder")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("holder home: %d", resp.StatusCode)
		}
		mustContain(t, page, "Bonjour Personne marie@example.org", "marie@example.org")
		// A signed-in holder is sent on from the sign-in page; holders hold no staff page.
		if resp, _ := e.get("/holder/signin"); resp.Header.Get("Location") != "/holder" {
			t.Errorf("sign-in page when signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, page := e.get("/console/holders"); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Accès refusé") {
			t.Errorf("holder on the console: %d", resp.StatusCode)
		}
	}
}

func TestHolderPagesAnswerEveryoneInPlainWords(t *testing.T) {
	e := newHolderEnv(t)
	h, _ := e.withHolders()
	// Not signed in.
	for path, want := range map[string]string{
		"/console/holders":      "/signin?return_to=%2Fconsole%2Fholders",
		"/console/holders/new":  "/signin?return_to=%2Fconsole%2Fholders%2Fnew",
		"/admin/holders/import": "/signin?return_to=%2Fadmin%2Fholders%2Fimport",
		"/holder":               "/holder/signin?return_to=%2Fholder",
	} {
		if resp, _ := e.get(path); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d to %s, want %s", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	// A mediator of one structure; a holder of another.
	secret := e.enrolled("agent@trifouillis.fr")
	if _, _, err := e.people.CreateStaff(t.Context(), "autre@ailleurs.fr", "mediator", "CCAS d'Ailleurs", false); err != nil {
		t.Fatal(err)
	}
	other, _ := e.store.FindStaffByEmail(t.Context(), "autre@ailleurs.fr")
	elsewhere, err := h.Create(t.Context(), people.Principal{Kind: "staff", ID: other.ID, Role: people.RoleMediator, StructureID: other.StructureID},
		other.StructureID, people.HolderInput{Mailbox: "ailleurs@example.org", DisplayName: "Ailleurs", Phone: "0612345678"})
	if err != nil {
		t.Fatal(err)
	}
	mine := e.holderOf(h, "agent@trifouillis.fr", "ici@example.org", "ici@example.net")
	if resp, _ := e.signIn("agent@trifouillis.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("staff sign-in: %d", resp.StatusCode)
	}
	resp, page := e.get("/console/holders/" + elsewhere.Holder.ID)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "Personne introuvable") || strings.Contains(page, "ailleurs@example.org") {
		t.Errorf("another structure's holder: %d", resp.StatusCode)
	}
	resp, page = e.get("/console/holders/" + mine.ID + "?lang=en")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("own holder: %d", resp.StatusCode)
	}
	mustContain(t, page, "ici@example.org", "i•••@example.net", "/holders/"+mine.ID+"/passkey", "Contacts are masked")
	if strings.Contains(page, "ici@example.net") {
		t.Error("the contact email is shown in full")
	}
	_, page = e.get("/console/holders?lang=fr")
	if !strings.Contains(page, "ici@example.org") || strings.Contains(page, "ailleurs@example.org") {
		t.Errorf("the list shows another structure's holder, or not ours")
	}
	if resp, page := e.get("/admin/holders/import"); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Accès refusé") {
		t.Errorf("mediator on the import page: %d", resp.StatusCode)
	}
	if resp, _ := e.get("/holder"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("staff on the holder's home: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Creating with mistakes shows them, field by field, and keeps the values.
	_, page = e.get("/console/holders/new")
	resp, page = e.post("/console/holders/new", url.Values{"_csrf": {e.csrf(page)}, "mailbox": {"jean@example.org"},
		"display_name": {"Jean"}, "phone": {"12"}, "language": {"fr"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad phone: %d", resp.StatusCode)
	}
	mustContain(t, page, `href="#phone"`, `id="phone-error"`, `value="jean@example.org"`, `aria-invalid="true"`)
}

// BenchmarkHolderSignInPages measures the server time of the holder's two
// sign-in pages (step one, and step two after an unknown mailbox, which
// sends nothing), CSRF middleware included.
func BenchmarkHolderSignInPages(b *testing.B) {
	st := storetest.OpenSQLite(b)
	svc := people.NewService(st, nil, nil, nil, people.Config{Holders: st})
	h, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: bytes.Repeat([]byte{3}, 32), MaxIPCodeRequests: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	u := ui.New(ui.Deps{People: svc})
	e := echo.New()
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{TokenLookup: "form:_csrf"}))
	u.Register(e)
	ui.NewHolderPages(u, h).Register(e)
	b.Run("step-one", func(b *testing.B) {
		for b.Loop() {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/holder/signin", nil))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("step-two", func(b *testing.B) {
		const token = "benchmark-csrf-token-0123456789abcdef"
		form := url.Values{"_csrf": {token}, "mailbox": {"personne@example.org"}}.Encode()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/holder/signin", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "_csrf", Value: token})
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body)
			}
		}
	})
}
