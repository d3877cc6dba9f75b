package ui_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

func TestSignInPageSpeaksFrenchOrEnglish(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, accept, query, wantLang, wantTitle string
	}{
		{"no preference", "", "", "fr", "Se connecter"},
		{"French browser", "fr-FR,fr;q=0.9,en;q=0.5", "", "fr", "Se connecter"},
		{"English browser", "en-GB,en;q=0.9,fr;q=0.5", "", "en", "Sign in"},
		{"German browser", "de-DE,de;q=0.9", "", "fr", "Se connecter"},
		{"override to French", "en-US", "?lang=fr", "fr", "Se connecter"},
		{"override to English", "fr-FR", "?lang=en", "en", "Sign in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.client.Jar, _ = cookiejar.New(nil) // no remembered language between cases
			resp, body := e.get("/signin"+tt.query, "Accept-Language", tt.accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			mustContain(t, body, `<html lang="`+tt.wantLang+`">`, "<h1>"+tt.wantTitle+"</h1>")
			if got := resp.Header.Get("Content-Language"); got != tt.wantLang {
				t.Errorf("Content-Language = %q", got)
			}
		})
	}
}

func TestLanguageChoiceIsRemembered(t *testing.T) {
	e := newEnv(t)
	e.get("/signin?lang=en", "Accept-Language", "fr")
	_, body := e.get("/signin", "Accept-Language", "fr")
	mustContain(t, body, `<html lang="en">`)
}

func TestSignInPageIsAccessibleAndScriptFree(t *testing.T) {
	e := newEnv(t)
	_, body := e.get("/signin")
	mustContain(t, body,
		`<meta name="viewport"`, `<a class="skip" href="#main">`, `<main id="main"`,
		`<label for="email">`, `id="email" name="email" type="email" autocomplete="username"`,
		`<label for="password">`, `autocomplete="current-password"`,
		`<label for="code">`, `inputmode="numeric" autocomplete="one-time-code"`, `aria-describedby="code-hint"`,
		`name="_csrf"`)
	for _, banned := range []string{"<script", "style=", "<style", "http://", "https://"} {
		if strings.Contains(body, banned) {
			t.Errorf("page contains %q", banned)
		}
	}
}

func TestStylesheetIsServedWithLongCache(t *testing.T) {
	e := newEnv(t)
	_, body := e.get("/signin")
	i := strings.Index(body, `<link rel="stylesheet" href="`)
	if i < 0 {
		t.Fatal("no stylesheet link")
	}
	href := body[i+len(`<link rel="stylesheet" href="`):]
	href = href[:strings.IndexByte(href, '"')]
	resp, css := e.get(href)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=31536000") || !strings.Contains(css, ":focus-visible") {
		t.Fatalf("stylesheet %s: %d %v", href, resp.StatusCode, resp.Header)
	}
	if resp, _ := e.get("/static/other.css"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown static file: %d", resp.StatusCode)
	}
}

func TestStaffSignsInSeesHomeAndSignsOut(t *testing.T) {
	e := newEnv(t)
	secret := e.enrolled("marie@mairie.fr")
	if resp, _ := e.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("home before sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ := e.signIn("Marie@Mairie.fr", testPassword, e.code(secret), "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	c := sessionCookie(resp)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 0 {
		t.Fatalf("session cookie = %+v", c)
	}
	resp, body := e.get("/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("home: %d", resp.StatusCode)
	}
	mustContain(t, body, "Bonjour Marie Dupont", "marie@mairie.fr", "Mairie de Trifouillis", "Médiation numérique",
		`href="/account/consents"`, `action="/signout"`)

	resp, _ = e.post("/signout", url.Values{"_csrf": {e.csrf(body)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp, _ := e.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("home after sign-out: %d", resp.StatusCode)
	}
	if _, _, err := e.people.LookupSession(t.Context(), c.Value); err == nil {
		t.Fatal("the session outlived sign-out")
	}
}

func TestFailedSignInShowsOnePlainErrorAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	secret := e.enrolled("marie@mairie.fr")
	resp, body := e.signIn("marie@mairie.fr", "not the password", e.code(secret), "/account/consents")
	if resp.StatusCode != http.StatusUnprocessableEntity || sessionCookie(resp) != nil {
		t.Fatalf("failed sign-in: %d, cookie %v", resp.StatusCode, sessionCookie(resp))
	}
	mustContain(t, body, `role="alert"`, "Vérifiez et réessayez", `value="marie@mairie.fr"`,
		`aria-describedby="form-error"`, `id="form-error"`, `name="return_to" value="/account/consents"`)
	if strings.Contains(body, "not the password") {
		t.Error("the page echoes the password")
	}
	_, unknown := e.signIn("nobody@mairie.fr", testPassword, e.code(secret), "")
	if !strings.Contains(unknown, "Vérifiez et réessayez") {
		t.Error("unknown email is not answered with the same words")
	}
}

func TestReturnToOnlyLeadsToThisSite(t *testing.T) {
	e := newEnv(t)
	secret := e.enrolled("marie@mairie.fr")
	tests := []struct{ returnTo, want string }{
		{"/account/consents", "/account/consents"},
		{"//evil.example/x", "/"},
		{"https://evil.example/x", "/"},
		{`/\evil.example`, "/"},
		{"/\t/evil.example", "/"},
	}
	for _, tt := range tests {
		resp, _ := e.signIn("marie@mairie.fr", testPassword, e.code(secret), tt.returnTo)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.want {
			t.Errorf("return_to %q: %d → %q, want %q", tt.returnTo, resp.StatusCode, resp.Header.Get("Location"), tt.want)
		}
	}
	// Already signed in: the sign-in page sends local paths on, others home.
	for _, tt := range tests {
		resp, _ := e.get("/signin?return_to=" + url.QueryEscape(tt.returnTo))
		if resp.Header.Get("Location") != tt.want {
			t.Errorf("signed in, return_to %q → %q, want %q", tt.returnTo, resp.Header.Get("Location"), tt.want)
		}
	}
}

func TestFormsWithoutCSRFTokenAreRefused(t *testing.T) {
	e := newEnv(t)
	secret := e.enrolled("marie@mairie.fr")
	e.get("/signin") // gets the CSRF cookie, but the form lacks the token
	resp, _ := e.post("/signin", url.Values{"email": {"marie@mairie.fr"}, "password": {testPassword}, "code": {e.code(secret)}})
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF token: %d", resp.StatusCode)
	}
	if sessionCookie(resp) != nil {
		t.Fatal("sign-in without CSRF token set a session")
	}
	resp, _ = e.post("/signin", url.Values{"_csrf": {"forged"}, "email": {"marie@mairie.fr"}, "password": {testPassword}, "code": {e.code(secret)}})
	if resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != nil {
		t.Fatalf("sign-in with a forged CSRF token: %d", resp.StatusCode)
	}
}

func TestThrottledSignInSays429(t *testing.T) {
	e := newEnv(t)
	secret := e.enrolled("marie@mairie.fr")
	for range 5 {
		e.signIn("marie@mairie.fr", "not the password", e.code(secret), "")
	}
	resp, body := e.signIn("marie@mairie.fr", testPassword, e.code(secret), "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "900" || sessionCookie(resp) != nil {
		t.Fatalf("throttled sign-in: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	mustContain(t, body, "Attendez 15 minutes")
}
