package main

import (
	"flag"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/notify/notifytest"
)

func TestAccountSettings(t *testing.T) {
	parse := func(args ...string) (accountConfig, error) {
		var c accountConfig
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.register(fs)
		return c, fs.Parse(args)
	}
	c, err := parse()
	if err != nil || c.SessionIdleTimeout != 30*time.Minute || c.ResetTTL != 30*time.Minute || c.check() != nil {
		t.Errorf("defaults: %+v %v %v", c, err, c.check())
	}
	t.Setenv("MANDATED_SESSION_IDLE_TIMEOUT", "10m")
	t.Setenv("MANDATED_PASSWORD_RESET_TTL", "1h")
	if c, _ := parse(); c.SessionIdleTimeout != 10*time.Minute || c.ResetTTL != time.Hour {
		t.Errorf("from the environment: %+v", c)
	}
	for _, args := range [][]string{
		{"--session-idle-timeout", "30s"}, {"--session-idle-timeout", "13h"},
		{"--password-reset-ttl", "1m"}, {"--password-reset-ttl", "48h"},
	} {
		c, err := parse(args...)
		if err != nil {
			t.Fatal(err)
		}
		if c.check() == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

var (
	enrolSecret = regexp.MustCompile(`<p class="secret"><code>([A-Z2-7]+)</code>`)
	csrfInPage  = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	resetInMail = regexp.MustCompile(`/account/reset/confirm\?token=([A-Za-z0-9_-]+)`)
)

// browserClient keeps cookies and does not follow redirects.
type browserClient struct {
	t *testing.T
	c *http.Client
}

func (b browserClient) do(method, rawURL string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(page)
}

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfInPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in:\n%s", page)
	}
	return m[1]
}

// TestServeResetsAStaffPasswordByEmail runs `mandated serve` with email
// going to a real SMTP server: a staff member enrolled through the pages
// asks for a reset, receives the link and sets a new password.
func TestServeResetsAStaffPasswordByEmail(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	in := newSQLiteInstance(t)
	in.extra = []string{"--smtp-host", smtp.Host(), "--smtp-port", strconv.Itoa(smtp.Port()), "--smtp-tls", "none", "--smtp-from", "mandated@example.org"}
	t.Setenv("MANDATED_SESSION_IDLE_TIMEOUT", "15m")
	stop, _ := in.serve()
	defer stop()
	out := in.cli("staff", "create", "--email", "marie@trifouillis.fr", "--role", "mediator", "--structure", "Mairie de Trifouillis", "--issuer", in.issuer)
	link := regexp.MustCompile(`http://\S+/enrol\?token=\S+`).FindString(out)
	if link == "" {
		t.Fatalf("staff create printed no enrolment link:\n%s", out)
	}
	jar, _ := cookiejar.New(nil)
	b := browserClient{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	_, _, page := b.do(http.MethodGet, link, nil)
	m := enrolSecret.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no TOTP secret on the enrolment page:\n%s", page)
	}
	secret := m[1]
	now := time.Now()
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	u, _ := url.Parse(link)
	status, loc, _ := b.do(http.MethodPost, in.base+"/enrol?"+u.RawQuery, url.Values{"_csrf": {csrfOf(t, page)},
		"display_name": {"Marie Dupont"}, "password": {"une phrase de passe assez longue"}, "code": {code(now)}})
	if status != http.StatusSeeOther || loc != "/signin?enrolled=1" {
		t.Fatalf("enrolment: %d → %s", status, loc)
	}

	if status, loc, _ := b.do(http.MethodGet, in.base+"/account/sessions", nil); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
		t.Errorf("/account/sessions signed out: %d → %s", status, loc)
	}
	// « Ma boîte professionnelle » is served too (wire_account.go).
	if status, loc, _ := b.do(http.MethodGet, in.base+"/account/mailbox", nil); status != http.StatusSeeOther || loc != "/signin?return_to=/account/mailbox" {
		t.Errorf("/account/mailbox signed out: %d → %s", status, loc)
	}
	if status, _, body := b.do(http.MethodGet, in.base+"/api/me/mailbox", nil); status != http.StatusUnauthorized || !strings.Contains(body, "sign in as staff") {
		t.Errorf("/api/me/mailbox signed out: %d %s", status, body)
	}
	_, _, page = b.do(http.MethodGet, in.base+"/account/reset", nil)
	status, loc, _ = b.do(http.MethodPost, in.base+"/account/reset", url.Values{"_csrf": {csrfOf(t, page)}, "email": {"marie@trifouillis.fr"}})
	if status != http.StatusSeeOther || loc != "/account/reset?sent=1" {
		t.Fatalf("reset request: %d → %s", status, loc)
	}
	mail := smtp.WaitFor(t, "marie@trifouillis.fr")
	m = resetInMail.FindStringSubmatch(mail.Text)
	if m == nil || !strings.Contains(mail.Text, in.issuer+"/account/reset/confirm?token=") {
		t.Fatalf("no reset link to this server in the email:\n%s", mail.Text)
	}
	_, _, page = b.do(http.MethodGet, in.base+"/account/reset/confirm?token="+m[1], nil)
	if !strings.Contains(html.UnescapeString(page), "marie@trifouillis.fr") {
		t.Fatalf("the reset page does not name the account:\n%s", page)
	}
	// The next TOTP step: the enrolment used this one.
	status, loc, _ = b.do(http.MethodPost, in.base+"/account/reset/confirm", url.Values{"_csrf": {csrfOf(t, page)},
		"token": {m[1]}, "password": {"un tout nouveau mot de passe"}, "code": {code(now.Add(30 * time.Second))}})
	if status != http.StatusSeeOther || loc != "/account/reset/done" {
		t.Fatalf("reset: %d → %s", status, loc)
	}
}
