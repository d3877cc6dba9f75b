package ui_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/people"
)

func TestConsentsPageListsAndWithdraws(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	secret := e.enrolled("marie@mairie.fr")
	staff, err := e.store.FindStaffByEmail(ctx, "marie@mairie.fr")
	if err != nil {
		t.Fatal(err)
	}
	subject := people.StaffSubject(staff.ID)
	client := &authz.Client{ID: "webmail", Name: "Webmail de la mairie", SecretHash: []byte("h"),
		RedirectURIs: []string{"https://webmail.example/cb"}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"mail.read", "mail.send"}, AuthMethod: authz.AuthMethodSecretBasic, CreatedAt: e.clock.Now()}
	if err := e.store.CreateClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	if err := e.authz.RememberConsent(ctx, subject, "webmail", []string{"mail.read", "mail.send"}); err != nil {
		t.Fatal(err)
	}

	resp, _ := e.get("/account/consents")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?return_to=%2Faccount%2Fconsents" {
		t.Fatalf("not signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := e.signIn("marie@mairie.fr", testPassword, e.code(secret), "/account/consents"); resp.Header.Get("Location") != "/account/consents" {
		t.Fatalf("sign-in did not come back: %s", resp.Header.Get("Location"))
	}
	resp, body := e.get("/account/consents")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consents page: %d", resp.StatusCode)
	}
	mustContain(t, body, "Webmail de la mairie", "Lire les messages", "Envoyer des messages", "Autorisée le 4 mars 2030",
		`name="client_id" value="webmail"`, `aria-label="Retirer l&#39;autorisation de Webmail de la mairie"`)

	resp, _ = e.post("/account/consents/withdraw", url.Values{"client_id": {"webmail"}})
	if resp.StatusCode == http.StatusSeeOther {
		t.Fatal("withdrawal without CSRF token accepted")
	}
	resp, _ = e.post("/account/consents/withdraw", url.Values{"_csrf": {e.csrf(body)}, "client_id": {"webmail"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/consents?withdrawn=1" {
		t.Fatalf("withdraw: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = e.get("/account/consents?withdrawn=1")
	mustContain(t, body, `role="status"`, "L&#39;autorisation a été retirée.", "Vous n&#39;avez autorisé aucune application.")
	if list, err := e.authz.ListConsents(ctx, subject); err != nil || len(list) != 0 {
		t.Fatalf("consents after withdrawal = %v, %v", list, err)
	}
}
