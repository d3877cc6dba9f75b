package browser_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// withAdmin wires structure administration as `mandated serve` does:
// invitations sent over SMTP to smtp, deactivation ending the person's
// tokens and consents through the authorization server.
func withAdmin(smtp *notifytest.SMTPServer) serverOption {
	return func(s *server) {
		adm := people.NewAdmin(s.people, s.store, people.AdminConfig{
			Notifier:     notifytest.SMTPNotifier(s.t, smtp),
			EnrolmentURL: func(token string) string { return ui.EnrolmentURL(s.url, token) },
			AccessEnders: []people.AccessEnder{s.authz},
		})
		ui.NewAdminPages(s.pages, adm).Register(s.echo)
		api.RegisterAdmin(s.echo, adm, s.pages.CurrentPrincipal)
	}
}

// enrolled creates an account with role and enrols it through the service,
// returning the TOTP secret.
func (s *server) enrolled(email, name, role, structure string, platform bool) string {
	s.t.Helper()
	ctx := s.t.Context()
	_, token, err := s.people.CreateStaff(ctx, email, role, structure, platform)
	if err != nil {
		s.t.Fatal(err)
	}
	view, err := s.people.BeginEnrolment(ctx, token)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.people.CompleteEnrolment(ctx, token, name, password, s.code(view.TOTP.Secret)); err != nil {
		s.t.Fatal(err)
	}
	return view.TOTP.Secret
}

// introspect asks the server about token as the app (a confidential client).
func (s *server) introspect(a *oauthApp, token string) map[string]any {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+authz.PathIntrospect, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.conf.ClientID), url.QueryEscape(a.conf.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		s.t.Fatal(err)
	}
	return body
}

var enrolLink = regexp.MustCompile(`http://[^\s]+/enrol\?token=[A-Za-z0-9_-]+`)

func TestAdminInvitesAMediatorByEmailThenDeactivatesThemAndTheirTokenDiesAtOnce(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	srv := newServer(t, withAdmin(smtp))
	adminSecret := srv.enrolled("chef@trifouillis.fr", "Claire Martin", "admin", "Mairie de Trifouillis", false)
	admin := newTab(t, phone, "fr-FR,fr;q=0.9")

	// The admin signs in and opens the administration.
	admin.open(srv.url + "/signin?return_to=/admin")
	srv.signIn(admin, "chef@trifouillis.fr", password, adminSecret)
	if p := admin.path(); p != "/admin" {
		t.Fatalf("after signing in the admin is at %s: %s", p, admin.text("main"))
	}
	admin.mustSee("h1", "Administration", "Mairie de Trifouillis")
	admin.checkPage("admin home")

	// Invitation form.
	admin.press(`a[href^="/admin/invite"]`)
	admin.mustSee("h1", "Inviter une personne")
	admin.checkPage("invitation form")
	admin.press(`form[action="/admin/invite"] button[type="submit"]`) // empty: refused, nothing sent
	admin.mustSee(".error-summary", "Entrez une adresse e-mail valide")
	admin.checkPage("invitation form with an error")
	admin.typeInto("name", "Marie Dupont")
	admin.typeInto("email", "marie@trifouillis.fr")
	admin.press(`form[action="/admin/invite"] button[type="submit"]`)
	if p := admin.path(); !strings.HasPrefix(p, "/admin?") {
		t.Fatalf("after inviting the admin is at %s: %s", p, admin.text("main"))
	}
	admin.mustSee("[role=status]", "L'invitation est partie")
	admin.mustSee("main", "marie@trifouillis.fr", "Invitation envoyée")

	// The mediator receives the email and enrols with its link.
	mail := smtp.WaitFor(t, "marie@trifouillis.fr")
	link := enrolLink.FindString(mail.Text)
	if link == "" || !strings.HasPrefix(mail.Text, "Bonjour Marie Dupont") {
		t.Fatalf("invitation email without link or not in French first:\n%s", mail.Text)
	}
	med := newTab(t, phone, "fr-FR,fr;q=0.9")
	med.open(link)
	med.mustSee("h1", "Créer votre accès")
	secret := strings.ReplaceAll(eval[string](med, `document.querySelector('.secret code').textContent`), " ", "")
	med.typeInto("display_name", "Marie Dupont")
	med.typeInto("password", password)
	med.typeInto("code", srv.code(secret))
	med.press(`form[action^="/enrol"] button[type="submit"]`)
	if p := med.path(); p != "/signin?enrolled=1" {
		t.Fatalf("after enrolment the mediator is at %s: %s", p, med.text("main"))
	}
	// The link does not work twice.
	med.open(link)
	med.mustSee("h1", "Ce lien ne fonctionne plus")

	// The mediator signs in and lets an app act for them: a token.
	app := registerApp(t, srv, "Messagerie de la Mairie")
	med.open(app.authorizeURL())
	srv.signIn(med, "marie@trifouillis.fr", password, secret)
	med.press(`button[name="decision"][value="allow"]`)
	tok, err := app.conf.Exchange(t.Context(), app.last(t).Get("code"), oauth2.VerifierOption(app.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if got := srv.introspect(app, tok.AccessToken); got["active"] != true {
		t.Fatalf("the mediator's token before deactivation: %v", got)
	}

	// The admin deactivates them, after a confirmation step.
	admin.open(srv.url + "/admin")
	admin.mustSee("main", "Marie Dupont")
	admin.press(`a[href*="/deactivate"]`)
	admin.mustSee("h1", "Désactiver le compte de Marie Dupont ?")
	admin.checkPage("deactivation confirmation")
	admin.press(`form[action$="/deactivate"] button[type="submit"]`)
	admin.mustSee("[role=status]", "Le compte est désactivé")
	admin.mustSee("main", "Désactivé")
	admin.checkPage("admin home after deactivation")

	// At once: the token introspects inactive, the refresh token is refused,
	// the session is over.
	if got := srv.introspect(app, tok.AccessToken); got["active"] != false || len(got) != 1 {
		t.Fatalf("the deactivated mediator's token introspects %v, want {active:false}", got)
	}
	if got := srv.introspect(app, tok.RefreshToken); got["active"] != false {
		t.Fatalf("the deactivated mediator's refresh token introspects %v", got)
	}
	med.open(srv.url + "/")
	if p := med.path(); p != "/signin" {
		t.Fatalf("the deactivated mediator's session still shows %s", p)
	}
	// With the right password and code, sign-in says the account is deactivated.
	srv.signIn(med, "marie@trifouillis.fr", password, secret)
	med.mustSee(".error-summary", "désactivé")

	// Reactivation page, then the banner form.
	admin.press(`a[href*="/reactivate"]`)
	admin.mustSee("h1", "Réactiver le compte de Marie Dupont ?")
	admin.checkPage("reactivation confirmation")
	admin.press(`form[action$="/reactivate"] button[type="submit"]`)
	admin.mustSee("[role=status]", "Le compte est réactivé")
	admin.press(`a[href^="/admin/banners/new"]`)
	admin.mustSee("h1", "Publier un message")
	admin.checkPage("banner form")
	admin.typeInto("text_fr", "La permanence est fermée lundi.")
	admin.press(`form[action="/admin/banners/new"] button[type="submit"]`)
	admin.mustSee("[role=status]", "Le message est publié")
	admin.mustSee("main", "La permanence est fermée lundi.")
	admin.checkPage("admin home with a banner")
}

func TestPlatformAdminPagesAreAccessibleAndWorkOnASmallPhone(t *testing.T) {
	smtp := notifytest.StartSMTP(t)
	srv := newServer(t, withAdmin(smtp))
	rootSecret := srv.enrolled("root@plateforme.fr", "Admin Plateforme", "admin", "", true)
	b := newTab(t, phone, "en-GB,en;q=0.9")
	b.open(srv.url + "/signin?return_to=/admin/structures")
	srv.signIn(b, "root@plateforme.fr", password, rootSecret)
	b.mustSee("h1", "Organisations")
	b.checkPage("structures (en)")
	b.typeInto("name", "CCAS de Brive")
	b.press(`form[action="/admin/structures"] button[type="submit"]`)
	b.mustSee("[role=status]", "The organisation is created")
	b.mustSee("h1", "CCAS de Brive")
	b.checkPage("admin home of a new structure (en)")
	b.open(srv.url + "/admin/banners/new?structure=platform")
	b.mustSee("p", "in every organisation")
	b.checkPage("platform banner form (en)")

	// A mediator reaching the admin pages gets a plain refusal.
	medSecret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	m := newTab(t, phone, "fr")
	m.open(srv.url + "/signin?return_to=/admin")
	if status := srv.signIn(m, "marie@trifouillis.fr", password, medSecret); status != http.StatusForbidden {
		t.Errorf("a mediator on /admin: %d", status)
	}
	m.mustSee("h1", "Cette page n'est pas pour vous")
	m.checkPage("admin refusal")
}
