package ui_test

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

const testPassword = "une phrase de passe assez longue"

// The real authorization server is the consent manager.
var _ ui.ConsentManager = (*authz.Server)(nil)

// env is the UI over real people and authz services on SQLite, behind echo
// with the CSRF middleware, reached over HTTP by a browser-like client.
type env struct {
	t      *testing.T
	clock  *storetest.Clock
	store  *store.Store
	people *people.Service
	authz  *authz.Server
	ui     *ui.UI
	echo   *echo.Echo
	url    string
	client *http.Client
}

// newEnv builds the env; opts may add collaborators to the UI's Deps.
func newEnv(t *testing.T, opts ...func(*env, *ui.Deps)) *env {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock})
	sealer, err := seal.New(randomBytes(t, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	svc := people.NewService(st, sealer, clock, nil, people.Config{})
	keys, err := authz.NewKeyManager(t.Context(), authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := authz.New(authz.Config{Issuer: "http://127.0.0.1", HMACSecret: randomBytes(t, 32)}, st, keys, authz.WithClock(clock), authz.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	deps := ui.Deps{People: svc, Consents: srv}
	partial := &env{t: t, clock: clock, store: st, people: svc, authz: srv}
	for _, opt := range opts {
		opt(partial, &deps)
	}
	u := ui.New(deps)
	e := echo.New()
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{TokenLookup: "form:_csrf"}))
	u.Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &env{t: t, clock: clock, store: st, people: svc, authz: srv, ui: u, echo: e, url: ts.URL, client: client}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// get fetches path with optional header pairs ("Accept-Language", "en").
func (e *env) get(path string, header ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

func (e *env) post(path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

func (e *env) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page's form.
func (e *env) csrf(body string) string {
	e.t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no CSRF field in page:\n%s", body)
	}
	return m[1]
}

// enrolled creates and enrols a mediator, returning the TOTP secret.
func (e *env) enrolled(email string) string {
	e.t.Helper()
	ctx := e.t.Context()
	_, token, err := e.people.CreateStaff(ctx, email, "mediator", "Mairie de Trifouillis", false)
	if err != nil {
		e.t.Fatal(err)
	}
	view, err := e.people.BeginEnrolment(ctx, token)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.people.CompleteEnrolment(ctx, token, "Marie Dupont", testPassword, e.code(view.TOTP.Secret)); err != nil {
		e.t.Fatal(err)
	}
	return view.TOTP.Secret
}

// code moves to the next TOTP step and returns its code.
func (e *env) code(secret string) string {
	e.t.Helper()
	e.clock.Advance(30 * time.Second)
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// signIn posts the sign-in form, with return_to when given.
func (e *env) signIn(email, password, code, returnTo string) (*http.Response, string) {
	e.t.Helper()
	resp, page := e.get("/signin")
	if resp.StatusCode == http.StatusSeeOther { // signed in already: take the token from home
		_, page = e.get("/")
	}
	form := url.Values{"_csrf": {e.csrf(page)}, "email": {email}, "password": {password}, "code": {code}}
	if returnTo != "" {
		form.Set("return_to", returnTo)
	}
	return e.post("/signin", form)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == ui.DefaultCookieName && c.Value != "" {
			return c
		}
	}
	return nil
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}
