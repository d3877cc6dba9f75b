package browser_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/labstack/echo/v4"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// Environment variables the tests read.
const (
	envChromium       = "MANDATED_CHROMIUM"        // path of the browser; /usr/bin/chromium or the PATH otherwise
	envAxe            = "MANDATED_AXE_JS"          // path of axe.min.js
	envRequireBrowser = "MANDATED_REQUIRE_BROWSER" // "1": a missing browser or axe fails instead of skipping
	envArtifacts      = "MANDATED_BROWSER_ARTIFACTS"
)

const defaultAxe = "testdata/node_modules/axe-core/axe.min.js"

// shared is the one Chromium of the package, started by TestMain. Each test
// opens its own tab in its own browser context (separate cookies).
var shared struct {
	browser context.Context
	axe     string // axe-core's source
	missing string // why the tests cannot run, when they cannot
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	bin, axePath := findChromium(), os.Getenv(envAxe)
	if axePath == "" {
		axePath = defaultAxe
	}
	src, axeErr := os.ReadFile(axePath)
	switch {
	case bin == "":
		shared.missing = "Chromium not found: apt-get install chromium, or set " + envChromium
	case axeErr != nil:
		shared.missing = fmt.Sprintf("axe-core not found (%v): npm install --no-save --prefix ui/browser/testdata axe-core@4, or set %s", axeErr, envAxe)
	}
	if shared.missing != "" {
		return m.Run()
	}
	shared.axe = string(src)

	profile, err := os.MkdirTemp("", "mandated-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		shared.missing = fmt.Sprintf("start %s: %v", bin, err)
	}
	shared.browser = browser
	return m.Run()
}

func findChromium() string {
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireBrowser skips the test when Chromium or axe is missing, or fails it
// when MANDATED_REQUIRE_BROWSER=1.
func requireBrowser(t *testing.T) {
	t.Helper()
	if shared.missing == "" {
		return
	}
	if os.Getenv(envRequireBrowser) == "1" {
		t.Fatalf("%s, but %s=1: the browser tests must run", shared.missing, envRequireBrowser)
	}
	t.Skipf("browser tests skipped: %s", shared.missing)
}

// Viewports: the holder/staff pages are checked on a small phone.
type viewport struct {
	w, h   int64
	mobile bool
}

var (
	phone   = viewport{360, 740, true}
	desktop = viewport{1280, 800, false}
)

// tab is one browser tab, in a browser context of its own, that sends the
// given Accept-Language.
type tab struct {
	t   *testing.T
	ctx context.Context
	vp  viewport
}

func newTab(t *testing.T, vp viewport, lang string) *tab {
	t.Helper()
	return newTabWithin(t, vp, lang, 90*time.Second)
}

// newTabWithin is newTab whose browser calls are bounded by guard.
func newTabWithin(t *testing.T, vp viewport, lang string, guard time.Duration) *tab {
	t.Helper()
	requireBrowser(t)
	ctx, cancel := chromedp.NewContext(shared.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return startTab(t, ctx, vp, lang, guard)
}

// startTab opens the tab of ctx, with the viewport and Accept-Language.
// guard bounds its browser calls: a guard against a hung browser, not a
// timed assertion.
func startTab(t *testing.T, ctx context.Context, vp viewport, lang string, guard time.Duration) *tab {
	t.Helper()
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatalf("open a tab: %v", err)
	}
	ctx, stop := context.WithTimeout(ctx, guard)
	t.Cleanup(stop)
	var opts []chromedp.EmulateViewportOption
	if vp.mobile {
		opts = append(opts, chromedp.EmulatePortrait, chromedp.EmulateMobile)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, opts...)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": lang},
	}); err != nil {
		t.Fatalf("Accept-Language: %v", err)
	}
	return &tab{t: t, ctx: ctx, vp: vp}
}

// open navigates to url and waits for the page to load.
func (b *tab) open(url string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
}

// press clicks the element (a submit button, a link) and waits for the page
// it leads to; it returns that page's HTTP status.
func (b *tab) press(css string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
	return resp.Status
}

// typeInto focuses the field and types text, as a person would.
func (b *tab) typeInto(id, text string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.ID(id), text)); err != nil {
		b.t.Fatalf("type into #%s: %v", id, err)
	}
}

// text is the visible text of the first element matching css.
func (b *tab) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// path is the current page's path and query.
func (b *tab) path() string {
	b.t.Helper()
	u, err := url.Parse(b.location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

func (b *tab) mustSee(css string, want ...string) {
	b.t.Helper()
	got := b.text(css)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s on %s shows %q, lacking %q", css, b.path(), got, w)
		}
	}
}

// axeViolation is what the test reports of one axe-core violation.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeRun runs axe-core's WCAG 2.x A and AA rules.
const axeRun = `axe.run(document, {
	runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']},
	resultTypes: ['violations'],
}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || '', help: v.help,
	nodes: v.nodes.map(n => n.target.map(String).join(' ')),
})))`

// checkPage runs axe-core on the current page and fails on any serious or
// critical violation (lesser ones are logged), then checks the page does
// not scroll sideways at the tab's width. With MANDATED_BROWSER_ARTIFACTS
// set it also keeps a screenshot of the page there.
func (b *tab) checkPage(name string) {
	b.t.Helper()
	for _, v := range b.axe(name) {
		msg := fmt.Sprintf("%s (%s): axe %s [%s]: %s; nodes: %s", name, b.path(), v.ID, v.Impact, v.Help, strings.Join(v.Nodes, " | "))
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(msg)
		} else {
			b.t.Log(msg)
		}
	}
	// A mobile browser zooms out to fit content wider than the screen, so
	// innerWidth grows with it: compare with the screen's width as well.
	if w := b.widths(); w.Scroll > w.Inner || w.Scroll > b.vp.w {
		b.t.Errorf("%s: page scrolls sideways on a %d px screen: content is %d px wide (window %d px)", name, b.vp.w, w.Scroll, w.Inner)
	}
	if os.Getenv(envArtifacts) != "" {
		file := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(b.t.Name() + "-" + name + ".png")
		b.screenshot(file)
	}
}

// axe injects axe-core into the current page and returns its WCAG 2.x A
// and AA violations.
func (b *tab) axe(name string) []axeViolation {
	b.t.Helper()
	// The page's CSP (script-src 'self') does not apply to DevTools'
	// Runtime.evaluate, so axe can be injected as source.
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](shared.axe+"\n;void 0")); err != nil {
		b.t.Fatalf("%s: inject axe-core: %v", name, err)
	}
	if !eval[bool](b, `typeof axe === 'object' && typeof axe.run === 'function'`) {
		b.t.Fatalf("%s: axe-core did not load in the page", name)
	}
	violations, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: run axe-core: %v", name, err)
	}
	return violations
}

type widths struct{ Scroll, Inner int64 }

// widths are the page's content width and the window's.
func (b *tab) widths() widths {
	b.t.Helper()
	return eval[widths](b, `({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth})`)
}

// screenshot saves a full-page PNG into the test's temp dir (and into
// MANDATED_BROWSER_ARTIFACTS when set) and returns its path.
func (b *tab) screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(b.t.TempDir(), name)
	if dir := os.Getenv(envArtifacts); dir != "" {
		path = filepath.Join(dir, name)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// server is mandated wired as `mandated serve` wires it, on SQLite, with a
// clock the test moves.
type server struct {
	t      *testing.T
	clock  *storetest.Clock
	people *people.Service
	authz  *authz.Server
	url    string // the issuer

	// Set for the options to wire more features before the server starts.
	store  *store.Store
	sealer *seal.Sealer
	echo   *echo.Echo
	pages  *ui.UI
	quiet  *slog.Logger
}

// serverOption wires one more feature (its routes, pages and services) into
// the server, before it starts; each feature's test file defines its own.
type serverOption func(*server)

func newServer(t *testing.T, opts ...serverOption) *server {
	t.Helper()
	requireBrowser(t)
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	clock := storetest.NewClock(time.Now().UTC().Truncate(time.Minute))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	sealer, err := seal.New(randomBytes(t, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := authz.New(authz.Config{Issuer: issuer, HMACSecret: randomBytes(t, 32)}, st, keys,
		authz.WithClock(clock), authz.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	svc := people.NewService(st, sealer, clock, quiet, people.Config{Holders: st})
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet, Ready: st.Ping})
	pages := ui.New(ui.Deps{People: svc, Consents: srv, Logger: quiet})
	pages.Register(e)
	api.RegisterOAuth(e, srv, pages)
	s := &server{t: t, clock: clock, people: svc, authz: srv, url: issuer,
		store: st, sealer: sealer, echo: e, pages: pages, quiet: quiet}
	for _, opt := range opts {
		opt(s)
	}
	ts.Config.Handler = e
	ts.Start()
	t.Cleanup(ts.Close)
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

const password = "une phrase de passe assez longue"

// code moves the clock to the next TOTP step and returns that step's code,
// so no code is refused as a replay of the previous one.
func (s *server) code(secret string) string {
	s.t.Helper()
	s.clock.Advance(30 * time.Second)
	c, err := totp.GenerateCode(secret, s.clock.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// staff creates a mediator and enrols them through the service (not the
// browser), returning the TOTP secret.
func (s *server) staff(email, name string) string {
	s.t.Helper()
	ctx := s.t.Context()
	_, token, err := s.people.CreateStaff(ctx, email, "mediator", "Mairie de Trifouillis", false)
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

// signIn fills the sign-in form the tab shows and submits it.
func (s *server) signIn(b *tab, email, pass, secret string) int64 {
	s.t.Helper()
	if p := b.path(); !strings.HasPrefix(p, "/signin") {
		s.t.Fatalf("expected the sign-in page, the browser is at %s", p)
	}
	b.typeInto("email", email)
	b.typeInto("password", pass)
	b.typeInto("code", s.code(secret))
	return b.press(`form[action="/signin"] button[type="submit"]`)
}

// app is a small OAuth2 client: a web server whose callback records the
// queries it receives.
type app struct {
	mu      sync.Mutex
	queries []url.Values
	url     string
}

func newApp(t *testing.T) *app {
	a := &app{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // the browser also asks for /favicon.ico
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		a.queries = append(a.queries, r.URL.Query())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html lang="fr"><title>Application</title><h1>Retour à l'application</h1>`)
	}))
	t.Cleanup(ts.Close)
	a.url = ts.URL
	return a
}

// last is the query of the callback's last request.
func (a *app) last(t *testing.T) url.Values {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queries) == 0 {
		t.Fatal("the application's callback received no request")
	}
	return a.queries[len(a.queries)-1]
}

func (a *app) callback() string { return a.url + "/callback" }

// key sends key presses to the focused element, as a keyboard would.
func (b *tab) key(keys string) error {
	return chromedp.Do(b.ctx, chromedp.KeyEvent(keys))
}
