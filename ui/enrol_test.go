package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestEnrolmentPageSetsUpTheAccountOnce(t *testing.T) {
	e := newEnv(t)
	_, token, err := e.people.CreateStaff(t.Context(), "paul@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	path := "/enrol?token=" + url.QueryEscape(token)
	resp, body := e.get(path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrolment page: %d", resp.StatusCode)
	}
	view, err := e.people.BeginEnrolment(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, body, "paul@mairie.fr", `src="data:image/png;base64,`, view.TOTP.Secret, `href="otpauth://totp/`,
		`<label for="display_name">`, `autocomplete="new-password"`, `autocomplete="one-time-code"`, `inputmode="numeric"`)

	resp, body = e.post(path, url.Values{"_csrf": {e.csrf(body)}, "display_name": {"Paul Martin"}, "password": {"court"}, "code": {e.code(view.TOTP.Secret)}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("short password: %d", resp.StatusCode)
	}
	mustContain(t, body, `role="alert"`, `href="#password"`, `id="password-error"`, "au moins 12 caractères",
		`aria-describedby="password-hint password-error"`, `aria-invalid="true"`, `value="Paul Martin"`, view.TOTP.Secret)
	if strings.Contains(body, `value="court"`) {
		t.Error("the page echoes the password")
	}

	resp, _ = e.post(path, url.Values{"_csrf": {e.csrf(body)}, "display_name": {"Paul Martin"}, "password": {testPassword}, "code": {e.code(view.TOTP.Secret)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?enrolled=1" {
		t.Fatalf("enrolment: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = e.get("/signin?enrolled=1")
	mustContain(t, body, `role="status"`, "Votre compte est prêt")

	resp, body = e.get(path)
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("used link: %d", resp.StatusCode)
	}
	mustContain(t, body, "Ce lien ne fonctionne plus")
	if resp, _ := e.get("/enrol?token=nope"); resp.StatusCode != http.StatusGone {
		t.Fatalf("unknown link: %d", resp.StatusCode)
	}
}
