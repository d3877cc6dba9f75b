package ui_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// withLimitedPasskeys wires the passkey pages with at most maxBegins holder
// sign-ins begun per address, and returns a holder served by "Mairie de
// Trifouillis".
func withLimitedPasskeys(t *testing.T, e *env, maxBegins int) people.Holder {
	t.Helper()
	holders, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: randomBytes(t, 32), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := people.PasskeyDefaults(people.PasskeyConfig{MaxBeginsPerIP: maxBegins}, "http://localhost")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := people.NewPasskeys(e.people, e.store, e.store, holders, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ui.NewPasskeyPages(e.ui, keys, holders).Register(e.echo)
	staff, _, err := e.people.CreateStaff(t.Context(), "admin@trifouillis.fr", "admin", "Mairie de Trifouillis", false)
	if err != nil {
		t.Fatal(err)
	}
	admin := people.Principal{Kind: "staff", ID: staff.ID, Role: people.RoleAdmin, StructureID: staff.StructureID, Subject: people.StaffSubject(staff.ID)}
	res, err := holders.Create(t.Context(), admin, staff.StructureID, people.HolderInput{
		Mailbox: "jeanne.martin@mail.example", DisplayName: "Jeanne Martin", Email: "jeanne@example.net", Language: "fr",
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Holder
}

// TestHolderPasskeySignInBeginsAreLimitedPerAddress: past the limit the
// begin step answers 429 (with Retry-After), and the form the script then
// posts says plainly, in French and in English, to wait.
func TestHolderPasskeySignInBeginsAreLimitedPerAddress(t *testing.T) {
	e := newEnv(t)
	withLimitedPasskeys(t, e, 2)
	_, page := e.get("/holder/signin/passkey")
	token := e.csrf(page)
	begin := func() (*http.Response, map[string]string) {
		resp, body := e.post("/holder/signin/passkey/begin", url.Values{"_csrf": {token}})
		var got map[string]string
		_ = json.Unmarshal([]byte(body), &got)
		return resp, got
	}
	for i := range 2 {
		resp, body := e.post("/holder/signin/passkey/begin", url.Values{"_csrf": {token}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ceremony":"`) {
			t.Fatalf("begin %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, got := begin()
	if resp.StatusCode != http.StatusTooManyRequests || got["error"] != "Too Many Requests" || resp.Header.Get("Retry-After") != "900" {
		t.Fatalf("begin past the limit: %d %v Retry-After=%q", resp.StatusCode, got, resp.Header.Get("Retry-After"))
	}
	for _, lang := range []struct{ accept, want string }{
		{"fr", "Trop d'essais sans succès. Attendez 15 minutes, puis réessayez."},
		{"en", "Too many unsuccessful tries. Wait 15 minutes, then try again."},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/holder/signin/passkey", strings.NewReader(url.Values{"_csrf": {token}, "ceremony": {""}, "credential": {""}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept-Language", lang.accept)
		resp, page := e.do(req)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(html.UnescapeString(page), lang.want) {
			t.Errorf("%s: the form after a refused begin: %d, page lacks %q", lang.accept, resp.StatusCode, lang.want)
		}
	}
	e.clock.Advance(e.people.Config().ThrottleWindow + time.Second)
	if resp, _ := begin(); resp.StatusCode != http.StatusOK {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
}

// TestPlatformMediatorStartsAnotherStructuresHolderEnrolment: the console
// page serves platform staff for a holder of any structure.
func TestPlatformMediatorStartsAnotherStructuresHolderEnrolment(t *testing.T) {
	e := newEnv(t)
	h := withLimitedPasskeys(t, e, 0)
	ctx := t.Context()
	_, token, err := e.people.CreateStaff(ctx, "claire@plateforme.example", "mediator", "", true)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.people.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.people.CompleteEnrolment(ctx, token, "Claire Plateforme", testPassword, e.code(view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.signIn("claire@plateforme.example", testPassword, e.code(view.TOTP.Secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	path := "/console/holders/" + h.ID + "/passkey"
	resp, page := e.get(path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	mustContain(t, page, "Jeanne Martin", "jeanne.martin@mail.example")
	resp, page = e.post(path, url.Values{"_csrf": {e.csrf(page)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	mustContain(t, page, `src="data:image/png;base64,`, "http://localhost/holder/enrol?token=")
	// A holder that does not exist is still "not found".
	if resp, _ := e.get("/console/holders/no-such-holder/passkey"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown holder: %d", resp.StatusCode)
	}
}
