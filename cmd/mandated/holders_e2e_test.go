package main

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
)

var (
	csrfField  = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	mailedCode = regexp.MustCompile(`\b(\d{8})\b`)
)

// TestHolderSignsInWithACodeThroughTheBinary runs `mandated serve` with an
// SMTP server, and a holder signs in with the one-time code it receives.
func TestHolderSignsInWithACodeThroughTheBinary(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	in := newSQLiteInstance(t)
	in.extra = []string{"--smtp-host", smtp.Host(), "--smtp-port", strconv.Itoa(smtp.Port()), "--smtp-tls", "none",
		"--smtp-from", "mandated@example.org"}
	stop, _ := in.serve()
	defer stop()

	// A mediator recorded the holder (straight into the database here).
	st, err := store.Open(t.Context(), in.dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	if err := st.CreateStructure(ctx, people.Structure{ID: "s1", Name: "France Services Trifouillis"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateHolder(ctx, people.Holder{ID: "h1", Mailbox: "marie@example.org", DisplayName: "Marie Dupont",
		Email: "marie.perso@example.net", Language: "fr"}, "s1"); err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	page := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	csrf := func(body string) string {
		t.Helper()
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF field in %s", body)
		}
		return html.UnescapeString(m[1])
	}

	status, body := page(client.Get(in.base + "/holder/signin"))
	if status != http.StatusOK || !strings.Contains(body, "passkey") {
		t.Fatalf("sign-in page: %d", status)
	}
	status, body = page(client.PostForm(in.base+"/holder/signin", url.Values{"_csrf": {csrf(body)}, "mailbox": {"Marie@Example.org"}}))
	if status != http.StatusOK || !strings.Contains(body, "Si cette adresse est connue") {
		t.Fatalf("step one: %d %s", status, body)
	}
	mail := smtp.WaitFor(t, "marie.perso@example.net")
	m := mailedCode.FindStringSubmatch(mail.Text)
	if m == nil {
		t.Fatalf("no 8-digit code in %q", mail.Text)
	}
	wrong := "00000000"
	if m[1] == wrong {
		wrong = "11111111"
	}
	token := csrf(body)
	status, _ = page(client.PostForm(in.base+"/holder/signin/code", url.Values{"_csrf": {token}, "mailbox": {"marie@example.org"}, "code": {wrong}}))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code: %d", status)
	}
	status, body = page(client.PostForm(in.base+"/holder/signin/code", url.Values{"_csrf": {token}, "mailbox": {"marie@example.org"}, "code": {m[1]}}))
	if status != http.StatusOK || !strings.Contains(body, "Bonjour Marie Dupont") || !strings.Contains(body, "marie@example.org") {
		t.Fatalf("after the code: %d %s", status, body)
	}
	// The holders API wants staff: a holder's session is refused.
	status, _ = page(client.Get(in.base + "/api/holders"))
	if status != http.StatusUnauthorized {
		t.Errorf("holder on the staff API: %d", status)
	}
}
