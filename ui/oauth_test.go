package ui_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/ui"
)

func TestPagesForTheOAuthHandlers(t *testing.T) {
	e := newEnv(t)
	read, _ := mandate.LookupScope("mail.read")
	del, _ := mandate.LookupScope("mail.delete")
	e.echo.GET("/oauth2/authorize", func(c echo.Context) error {
		if _, ok := e.ui.CurrentPrincipal(c); !ok {
			return e.ui.SignInRedirect(c)
		}
		return e.ui.RenderConsent(c, ui.ConsentView{ClientID: "webmail", ClientName: "Webmail de la mairie",
			Scopes: []mandate.Scope{read, del}, FormAction: "/oauth2/authorize",
			Hidden: map[string]string{"client_id": "webmail", "state": `"><x`}})
	})
	e.echo.GET("/test/problem", func(c echo.Context) error {
		return e.ui.RenderError(c, http.StatusBadRequest, ui.Problem{TitleFR: "Demande refusée", TitleEN: "Request refused",
			DetailFR: "L'adresse de retour n'est pas enregistrée.", DetailEN: "The return address is not registered."})
	})
	e.echo.GET("/test/notfound", func(c echo.Context) error { return e.ui.RenderError(c, http.StatusNotFound, ui.Problem{}) })

	resp, _ := e.get("/oauth2/authorize?client_id=webmail&state=xyz")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?return_to=%2Foauth2%2Fauthorize%3Fclient_id%3Dwebmail%26state%3Dxyz" {
		t.Fatalf("not signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	secret := e.enrolled("marie@mairie.fr")
	e.signIn("marie@mairie.fr", testPassword, e.code(secret), "")
	resp, body := e.get("/oauth2/authorize?client_id=webmail")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d", resp.StatusCode)
	}
	mustContain(t, body, "<h1>Webmail de la mairie demande votre autorisation</h1>", "Marie Dupont",
		read.LabelFR, read.DescriptionFR, del.LabelFR, `action="/oauth2/authorize"`,
		`name="client_id" value="webmail"`, `name="state" value="&#34;&gt;&lt;x"`, `name="_csrf"`,
		`name="decision" value="allow"`, `name="decision" value="deny"`, ">Autoriser<", ">Refuser<")

	_, body = e.get("/oauth2/authorize?client_id=webmail", "Accept-Language", "en")
	mustContain(t, body, read.LabelEN, read.DescriptionEN, ">Allow<", ">Refuse<")

	resp, body = e.get("/test/problem")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("problem status %d", resp.StatusCode)
	}
	mustContain(t, body, "<h1>Demande refusée</h1>", "L&#39;adresse de retour n&#39;est pas enregistrée.")
	_, body = e.get("/test/problem?lang=en")
	mustContain(t, body, "<h1>Request refused</h1>")
	resp, body = e.get("/test/notfound?lang=fr")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Page introuvable") {
		t.Fatalf("generic 404: %d", resp.StatusCode)
	}
}
