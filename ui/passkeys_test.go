package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// withPasskeys wires the passkey pages on the relying party "localhost"
// and returns a holder served by structure "Mairie de Trifouillis".
func withPasskeys(t *testing.T, e *env) people.Holder {
	t.Helper()
	holders, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: randomBytes(t, 32), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := people.PasskeyDefaults(people.PasskeyConfig{}, "http://localhost")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := people.NewPasskeys(e.people, e.store, e.store, holders, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ui.NewPasskeyPages(e.ui, keys, holders).Register(e.echo)

	staff, token, err := e.people.CreateStaff(t.Context(), "admin@trifouillis.fr", "admin", "Mairie de Trifouillis", false)
	if err != nil || token == "" {
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

// enrolledIn creates and enrols a mediator of structure, returning the TOTP secret.
func (e *env) enrolledIn(email, structure string) string {
	e.t.Helper()
	ctx := e.t.Context()
	_, token, err := e.people.CreateStaff(ctx, email, "mediator", structure, false)
	if err != nil {
		e.t.Fatal(err)
	}
	view, err := e.people.BeginEnrolment(ctx, token)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.people.CompleteEnrolment(ctx, token, "Paul Durand", testPassword, e.code(view.TOTP.Secret)); err != nil {
		e.t.Fatal(err)
	}
	return view.TOTP.Secret
}

func TestPasskeyEnrolmentPageRefusesAnotherStructuresHolder(t *testing.T) {
	e := newEnv(t)
	h := withPasskeys(t, e)
	path := "/console/holders/" + h.ID + "/passkey"

	// The holder page's link leads to the console page.
	resp, _ := e.get("/holders/" + h.ID + "/passkey")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path {
		t.Errorf("old link: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Not signed in: to the sign-in page, nothing shown.
	resp, _ = e.get(path)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?return_to=") {
		t.Fatalf("anonymous: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Another structure's mediator: the same page as for a holder that does not exist.
	secret := e.enrolledIn("paul@ccas-grenoble.fr", "CCAS de Grenoble")
	if resp, _ := e.signIn("paul@ccas-grenoble.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	for _, p := range []string{path, "/console/holders/no-such-holder/passkey"} {
		resp, page := e.get(p)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(page, "Jeanne") {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		mustContain(t, page, "Personne introuvable")
		resp, page = e.post(p, url.Values{"_csrf": {e.csrf(page)}})
		if resp.StatusCode != http.StatusNotFound || strings.Contains(page, "/holder/enrol?token=") {
			t.Errorf("POST %s: %d %s", p, resp.StatusCode, page)
		}
	}

	// The holder's own structure: the QR code and the link.
	e.client.Jar.SetCookies(mustURL(t, e.url), []*http.Cookie{{Name: ui.DefaultCookieName, Value: "", MaxAge: -1}})
	secret = e.enrolledIn("marie@trifouillis.fr", "Mairie de Trifouillis")
	if resp, _ := e.signIn("marie@trifouillis.fr", testPassword, e.code(secret), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	resp, page := e.get(path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("own holder: %d", resp.StatusCode)
	}
	mustContain(t, page, "Jeanne Martin", "jeanne.martin@mail.example")
	resp, page = e.post(path, url.Values{"_csrf": {e.csrf(page)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	mustContain(t, page, `src="data:image/png;base64,`, "http://localhost/holder/enrol?token=")
}

func TestPasskeyPagesRefuseBadLinksAndStrangers(t *testing.T) {
	e := newEnv(t)
	withPasskeys(t, e)

	resp, page := e.get("/holder/enrol?token=not-a-real-token")
	if resp.StatusCode != http.StatusGone {
		t.Errorf("unknown enrolment link: %d", resp.StatusCode)
	}
	mustContain(t, page, "Ce lien ne fonctionne plus")

	resp, page = e.get("/holder/signin/passkey")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in page: %d", resp.StatusCode)
	}
	csrf := e.csrf(page)
	// A response for no ceremony at all: refused, plain message, no session.
	resp, page = e.post("/holder/signin/passkey", url.Values{"_csrf": {csrf}, "ceremony": {"made-up"}, "credential": {`{"id":"x"}`}})
	if resp.StatusCode != http.StatusUnprocessableEntity || sessionCookie(resp) != nil {
		t.Errorf("made-up ceremony: %d", resp.StatusCode)
	}
	mustContain(t, page, "pas pu être utilisée")
	// Begin answers the options as JSON.
	resp, page = e.post("/holder/signin/passkey/begin", url.Values{"_csrf": {csrf}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `"ceremony":`) || !strings.Contains(page, `"userVerification":"required"`) {
		t.Errorf("begin: %d %s", resp.StatusCode, page)
	}
	// Without the CSRF token, nothing begins.
	if resp, _ := e.post("/holder/signin/passkey/begin", url.Values{}); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Errorf("begin without CSRF: %d", resp.StatusCode)
	}

	for path, want := range map[string]string{
		"/holder/passkeys":  "/holder/signin/passkey?return_to=",
		"/account/passkeys": "/signin?return_to=",
	} {
		resp, _ := e.get(path)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), want) {
			t.Errorf("anonymous %s: %d %s", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// English when asked.
	resp, page = e.get("/holder/signin/passkey?lang=en")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("English sign-in page: %d", resp.StatusCode)
	}
	mustContain(t, page, `lang="en"`, "Sign in with my passkey", "No passkey on this phone?")

	// The script is served under its content-hashed name, cached for good.
	js := e.ui.ScriptPath("passkeys.js")
	resp, body := e.get(js)
	if js == "" || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.Contains(body, "navigator.credentials") {
		t.Errorf("script %q: %d %v", js, resp.StatusCode, resp.Header)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
