package ui_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

const firefoxAndroid = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"

// accountEnv is env with the account pages wired, sending reset emails to a
// real SMTP server.
type accountEnv struct {
	*env
	acc  *people.Account
	smtp *notifytest.SMTPServer
}

func newAccountEnv(t *testing.T) accountEnv {
	t.Helper()
	e := newEnv(t)
	srv := notifytest.StartSMTP(t)
	acc := people.NewAccount(e.people, e.store, people.AccountConfig{
		Notifier: notifytest.SMTPNotifier(t, srv),
		ResetURL: func(token string) string { return ui.ResetURL(e.url, token) },
	})
	t.Cleanup(acc.Wait)
	ui.NewAccount(e.ui, acc).Register(e.echo)
	return accountEnv{env: e, acc: acc, smtp: srv}
}

// otherBrowser is a second browser (its own cookies and User-Agent).
type otherBrowser struct {
	t      *testing.T
	base   string
	ua     string
	client *http.Client
}

func (e accountEnv) otherBrowser(ua string) *otherBrowser {
	jar, _ := cookiejar.New(nil)
	return &otherBrowser{t: e.t, base: e.url, ua: ua, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *otherBrowser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("User-Agent", b.ua)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp, string(page)
}

func (b *otherBrowser) signIn(e accountEnv, email, secret string) {
	b.t.Helper()
	_, page := b.do(http.MethodGet, "/signin", nil)
	resp, _ := b.do(http.MethodPost, "/signin", url.Values{"_csrf": {e.csrf(page)}, "email": {email}, "password": {testPassword}, "code": {e.code(secret)}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("second browser's sign-in answered %d", resp.StatusCode)
	}
}

var sessionHandle = regexp.MustCompile(`name="session" value="([^"]+)"`)

// handles returns the session handles of a sessions page, in order.
func handles(page string) []string {
	var out []string
	for _, m := range sessionHandle.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSessionsPageListsEndsOneAndSignsOutEverywhere(t *testing.T) {
	e := newAccountEnv(t)
	secret := e.enrolled("marie@trifouillis.fr")
	if resp, _ := e.get("/account/sessions"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?return_to=") {
		t.Fatalf("signed out, /account/sessions answered %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.signIn("marie@trifouillis.fr", testPassword, e.code(secret), "")
	phone := e.otherBrowser(firefoxAndroid)
	phone.signIn(e, "marie@trifouillis.fr", secret)

	resp, page := e.get("/account/sessions")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sessions page: %d", resp.StatusCode)
	}
	mustContain(t, page, "Vos sessions", "Firefox sur Android", "(cet appareil)", "127.0.0.1", "Se déconnecter partout", "Dernière activité")
	hs := handles(page)
	if len(hs) != 2 {
		t.Fatalf("sessions page lists %d sessions, want 2", len(hs))
	}
	// The phone signed in last: it comes first; this device second.
	if strings.Index(page, "Firefox sur Android") > strings.Index(page, "(cet appareil)") {
		t.Error("the most recently used session is not first")
	}

	// Another person's session: refused, nothing changed.
	paulSecret := e.enrolled("paul@trifouillis.fr")
	paul := e.otherBrowser(firefoxAndroid)
	paul.signIn(e, "paul@trifouillis.fr", paulSecret)
	_, paulsPage := paul.do(http.MethodGet, "/account/sessions", nil)
	paulsHandles := handles(paulsPage)
	if len(paulsHandles) != 1 {
		t.Fatalf("Paul's page lists %d sessions", len(paulsHandles))
	}
	resp, body := e.post("/account/sessions/end", url.Values{"_csrf": {e.csrf(page)}, "session": {paulsHandles[0]}})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("ending Paul's session answered %d", resp.StatusCode)
	}
	mustContain(t, body, "Session introuvable", "Rien n&#39;a été changé")
	if resp, _ := paul.do(http.MethodGet, "/account/sessions", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("Paul's session ended: %d", resp.StatusCode)
	}

	// End the phone's session from here.
	resp, _ = e.post("/account/sessions/end", url.Values{"_csrf": {e.csrf(page)}, "session": {hs[0]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/sessions?ended=1" {
		t.Fatalf("ending the phone's session: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := phone.do(http.MethodGet, "/account/sessions", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the phone is still signed in: %d", resp.StatusCode)
	}
	_, page = e.get("/account/sessions?ended=1")
	mustContain(t, page, "La session est terminée.")
	if n := len(handles(page)); n != 1 {
		t.Errorf("after ending the phone's, %d sessions listed", n)
	}

	// Sign out everywhere: this one too.
	phone.signIn(e, "marie@trifouillis.fr", secret)
	resp, _ = e.post("/account/sessions/end-all", url.Values{"_csrf": {e.csrf(page)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?signedout=1" {
		t.Fatalf("sign out everywhere: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := e.get("/account/sessions"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("this browser is still signed in: %d", resp.StatusCode)
	}
	if resp, _ := phone.do(http.MethodGet, "/account/sessions", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the phone is still signed in: %d", resp.StatusCode)
	}
	if resp, _ := paul.do(http.MethodGet, "/account/sessions", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("Paul was signed out with Marie: %d", resp.StatusCode)
	}
}

func TestSessionsPageInEnglish(t *testing.T) {
	e := newAccountEnv(t)
	secret := e.enrolled("marie@trifouillis.fr")
	e.signIn("marie@trifouillis.fr", testPassword, e.code(secret), "")
	_, page := e.get("/account/sessions?lang=en")
	mustContain(t, page, `lang="en"`, "Your sessions", "(this device)", "Sign out everywhere", "Last active")
}

func TestEndingACurrentSessionFromTheListSignsOut(t *testing.T) {
	e := newAccountEnv(t)
	secret := e.enrolled("marie@trifouillis.fr")
	e.signIn("marie@trifouillis.fr", testPassword, e.code(secret), "")
	_, page := e.get("/account/sessions")
	resp, _ := e.post("/account/sessions/end", url.Values{"_csrf": {e.csrf(page)}, "session": {handles(page)[0]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?signedout=1" {
		t.Fatalf("ending this session: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c := sessionCookie(resp); c != nil {
		t.Error("the cookie of the ended session was kept")
	}
}

var resetLinkIn = regexp.MustCompile(`/account/reset/confirm\?token=([A-Za-z0-9_-]+)`)

func TestPasswordResetByEmailOverHTTP(t *testing.T) {
	e := newAccountEnv(t)
	secret := e.enrolled("marie@trifouillis.fr")

	_, signin := e.get("/signin")
	mustContain(t, signin, `href="/account/reset"`, "Mot de passe oublié ?")
	resp, page := e.get("/account/reset")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reset page: %d", resp.StatusCode)
	}
	mustContain(t, page, "Mot de passe oublié", `name="email"`, `autocomplete="username"`)

	resp, body := e.post("/account/reset", url.Values{"_csrf": {e.csrf(page)}, "email": {"pas une adresse"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad address answered %d", resp.StatusCode)
	}
	mustContain(t, body, `aria-invalid="true"`, "Entrez une adresse e-mail", `value="pas une adresse"`)

	// Known and unknown addresses get the same answer.
	var answers []string
	for _, email := range []string{"nobody@trifouillis.fr", "marie@trifouillis.fr"} {
		resp, _ := e.post("/account/reset", url.Values{"_csrf": {e.csrf(page)}, "email": {email}})
		answers = append(answers, resp.Status+" "+resp.Header.Get("Location"))
	}
	if answers[0] != answers[1] || answers[0] != "303 See Other /account/reset?sent=1" {
		t.Errorf("answers differ or are wrong: %q", answers)
	}
	_, sent := e.get("/account/reset?sent=1")
	mustContain(t, sent, `role="status"`, "Si un compte actif utilise cette adresse", "30 minutes")

	mail := e.smtp.WaitFor(t, "marie@trifouillis.fr")
	m := resetLinkIn.FindStringSubmatch(mail.Text)
	if m == nil || !strings.Contains(mail.Text, e.url+"/account/reset/confirm?token=") {
		t.Fatalf("no reset link on this server in the email:\n%s", mail.Text)
	}
	token := m[1]
	e.acc.Wait()
	if n := len(e.smtp.Messages()); n != 1 {
		t.Errorf("%d emails sent, want 1 (none to the unknown address)", n)
	}

	resp, page = e.get("/account/reset/confirm?token=" + token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm page: %d", resp.StatusCode)
	}
	mustContain(t, page, "Choisir un nouveau mot de passe", "marie@trifouillis.fr", `autocomplete="new-password"`, `autocomplete="one-time-code"`)
	form := func(password, code string) url.Values {
		return url.Values{"_csrf": {e.csrf(page)}, "token": {token}, "password": {password}, "code": {code}}
	}
	const newPassword = "un tout nouveau mot de passe"
	resp, body = e.post("/account/reset/confirm", form("court", e.code(secret)))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("short password answered %d", resp.StatusCode)
	}
	mustContain(t, body, "au moins 12 caractères", `id="password-error"`)
	resp, body = e.post("/account/reset/confirm", form(newPassword, "000000"))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("wrong code answered %d", resp.StatusCode)
	}
	mustContain(t, body, `id="code-error"`, "Attendez le code suivant")
	resp, _ = e.post("/account/reset/confirm", form(newPassword, e.code(secret)))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/reset/done" {
		t.Fatalf("reset answered %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, done := e.get("/account/reset/done")
	mustContain(t, done, "Mot de passe changé", "Toutes vos sessions ont été terminées")

	// The link is used up.
	resp, body = e.get("/account/reset/confirm?token=" + token)
	if resp.StatusCode != http.StatusGone {
		t.Errorf("used link answered %d", resp.StatusCode)
	}
	mustContain(t, body, "Ce lien ne fonctionne plus")
	resp, _ = e.post("/account/reset/confirm", form("encore un autre mot de passe", e.code(secret)))
	if resp.StatusCode != http.StatusGone {
		t.Errorf("used link, posted: %d", resp.StatusCode)
	}

	if resp, _ := e.signIn("marie@trifouillis.fr", newPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Errorf("sign-in with the new password: %d", resp.StatusCode)
	}
}

func TestResetRequestsAreThrottledWith429(t *testing.T) {
	e := newAccountEnv(t)
	_, page := e.get("/account/reset")
	for i := range 3 {
		if resp, _ := e.post("/account/reset", url.Values{"_csrf": {e.csrf(page)}, "email": {"nobody@trifouillis.fr"}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, body := e.post("/account/reset", url.Values{"_csrf": {e.csrf(page)}, "email": {"nobody@trifouillis.fr"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("4th request: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	mustContain(t, body, "Trop de demandes", `role="alert"`)
}

func TestBadResetLinksArePlainPages(t *testing.T) {
	e := newAccountEnv(t)
	for _, path := range []string{"/account/reset/confirm", "/account/reset/confirm?token=made-up", "/account/reset/confirm?token=" + strings.Repeat("x", 300)} {
		resp, body := e.get(path)
		if resp.StatusCode != http.StatusGone {
			t.Errorf("%s answered %d", path, resp.StatusCode)
		}
		mustContain(t, body, "Ce lien ne fonctionne plus")
	}
}

func TestResetPagesWithoutEmailDeliverySayItIsUnavailable(t *testing.T) {
	e := newEnv(t)
	ui.NewAccount(e.ui, people.NewAccount(e.people, e.store, people.AccountConfig{})).Register(e.echo)
	resp, body := e.get("/account/reset")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("reset page without a notifier: %d", resp.StatusCode)
	}
	mustContain(t, body, "Réinitialisation indisponible")
}
