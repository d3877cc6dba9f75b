package api_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
	"github.com/mandated/mandated/ui"
)

// testClock starts at the wall clock (fosite stamps expiries with it) and
// moves forward only when a test says so.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// testPages stands for the browser UI: a cookie "signed_in" means the fixed
// principal is signed in; /test/signin sets it. The consent page is JSON.
type testPages struct{}

var testPrincipal = people.Principal{Subject: people.StaffSubject("alice"), Kind: "staff", ID: "alice", DisplayName: "Alice"}

func (testPages) CurrentPrincipal(c echo.Context) (people.Principal, bool) {
	if ck, err := c.Cookie("signed_in"); err == nil && ck.Value == "1" {
		return testPrincipal, true
	}
	return people.Principal{}, false
}

func (testPages) SignInRedirect(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/test/signin?next="+url.QueryEscape(c.Request().RequestURI))
}

type consentPage struct {
	View ui.ConsentView `json:"view"`
	CSRF string         `json:"csrf"`
}

func (testPages) RenderConsent(c echo.Context, v ui.ConsentView) error {
	tok, _ := c.Get(middleware.DefaultCSRFConfig.ContextKey).(string)
	return c.JSON(http.StatusOK, consentPage{View: v, CSRF: tok})
}

func (testPages) RenderError(c echo.Context, status int, p ui.Problem) error {
	return c.JSON(status, p)
}

type harness struct {
	t      testing.TB
	ctx    context.Context
	st     *store.Store
	srv    *authz.Server
	keys   *authz.KeyManager
	clock  *testClock
	echo   *echo.Echo
	ts     *httptest.Server
	issuer string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessRecording(t, storetest.OpenSQLite(t), nil)
}

// newHarnessRecording is newHarness over st, recording into rec (built on st
// and the harness clock; nil records nothing).
func newHarnessRecording(t testing.TB, st *store.Store, rec func(*store.Store, mandate.Clock) authz.Recorder) *harness {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{}
	var recorder authz.Recorder = authz.NopRecorder{}
	if rec != nil {
		recorder = rec(st, clock)
	}
	sealer, err := seal.New(randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Recorder: recorder})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := authz.New(authz.Config{Issuer: issuer, HMACSecret: randomBytes(t, 32)}, st, keys,
		authz.WithClock(clock), authz.WithJWKSHTTPClient(&http.Client{Timeout: 2 * time.Second}), authz.WithRecorder(recorder))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{Skipper: api.OAuthCSRFSkipper, TokenLookup: "form:_csrf"}))
	api.RegisterOAuth(e, srv, testPages{})
	e.GET("/test/signin", func(c echo.Context) error {
		c.SetCookie(&http.Cookie{Name: "signed_in", Value: "1", Path: "/"})
		return c.Redirect(http.StatusSeeOther, c.QueryParam("next"))
	})
	ts.Config.Handler = e
	ts.Start()
	t.Cleanup(ts.Close)
	return &harness{t: t, ctx: ctx, st: st, srv: srv, keys: keys, clock: clock, echo: e, ts: ts, issuer: issuer}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) register(spec authz.ClientSpec) (*authz.Client, string) {
	h.t.Helper()
	c, secret, err := h.srv.RegisterClient(h.ctx, spec)
	if err != nil {
		h.t.Fatalf("register %s: %v", spec.Name, err)
	}
	return c, secret
}

// reply is a decoded JSON answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// post sends a form to path; with id != "" it authenticates with HTTP Basic.
func (h *harness) post(path string, form url.Values, id, secret string) reply {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) reply {
	h.t.Helper()
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw), body: map[string]any{}}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) introspect(token, id, secret string) reply {
	h.t.Helper()
	return h.post(authz.PathIntrospect, url.Values{"token": {token}}, id, secret)
}

// browser is a user agent with cookies that does not follow redirects.
type browser struct {
	h      *harness
	client *http.Client
}

func (h *harness) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{h: h, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// visit GETs (or POSTs) u and follows redirects within the server. It returns
// the final response and, when it left for another host, that location.
func (b *browser) visit(method, u string, form url.Values) (reply, *url.URL) {
	b.h.t.Helper()
	for i := 0; i < 5; i++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.h.t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw), body: map[string]any{}}
		_ = json.Unmarshal(raw, &r.body)
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
			return r, nil
		}
		loc, err := resp.Location()
		if err != nil {
			b.h.t.Fatal(err)
		}
		if "http://"+loc.Host != b.h.ts.URL {
			return r, loc
		}
		method, u, form = http.MethodGet, loc.String(), nil
	}
	b.h.t.Fatal("too many redirects")
	return reply{}, nil
}

// consent reads the consent page and posts decision.
func (b *browser) decide(page reply, decision string) (reply, *url.URL) {
	b.h.t.Helper()
	var cp consentPage
	if err := json.Unmarshal([]byte(page.raw), &cp); err != nil || cp.View.FormAction == "" {
		b.h.t.Fatalf("not a consent page (%d): %s", page.status, page.raw)
	}
	form := url.Values{"decision": {decision}, "_csrf": {cp.CSRF}}
	for k, v := range cp.View.Hidden {
		form.Set(k, v)
	}
	return b.visit(http.MethodPost, b.h.ts.URL+cp.View.FormAction, form)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func splitJWT(s string) []string { return strings.SplitN(s, ".", 3) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
