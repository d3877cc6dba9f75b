package browser_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/ui"
)

const submitSignIn = `form[action="/signin"] button[type="submit"]`

func TestStaffEnrolsInTheBrowserWithTOTPThenSignsOutAndBackIn(t *testing.T) {
	srv := newServer(t)
	_, token, err := srv.people.CreateStaff(t.Context(), "marie@trifouillis.fr", "mediator", "Mairie de Trifouillis", false)
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, phone, "fr-FR,fr;q=0.9")

	b.open(ui.EnrolmentURL(srv.url, token))
	b.mustSee("h1", "Créer votre accès") // the enrolment title
	b.checkPage("enrolment")
	if !eval[bool](b, `document.querySelector('img.qr').complete && document.querySelector('img.qr').naturalWidth > 0`) {
		t.Error("the QR code image did not load (CSP img-src?)")
	}
	// The secret is in a closed <details>: what someone without a camera reads.
	secret := strings.ReplaceAll(eval[string](b, `document.querySelector('.secret code').textContent`), " ", "")
	if secret == "" {
		t.Fatal("the enrolment page shows no TOTP secret")
	}
	b.typeInto("display_name", "Marie Dupont")
	b.typeInto("password", password)
	b.typeInto("code", srv.code(secret))
	if status := b.press(`form[action^="/enrol"] button[type="submit"]`); status != http.StatusOK {
		t.Fatalf("enrolment answered %d at %s: %s", status, b.path(), b.text("main"))
	}
	if p := b.path(); p != "/signin?enrolled=1" {
		t.Fatalf("after enrolment the browser is at %s, want the sign-in page", p)
	}
	b.mustSee("[role=status]", "Votre compte est prêt")
	b.checkPage("sign-in")

	srv.signIn(b, "marie@trifouillis.fr", password, secret)
	if p := b.path(); p != "/" {
		t.Fatalf("after signing in the browser is at %s, want home: %s", p, b.text("main"))
	}
	b.mustSee("h1", "Bonjour Marie Dupont")
	b.mustSee(".facts", "marie@trifouillis.fr", "Mairie de Trifouillis", "Médiation numérique")
	b.checkPage("home")

	b.press(`form[action="/signout"] button`)
	if p := b.path(); p != "/signin?signedout=1" {
		t.Fatalf("after signing out the browser is at %s", p)
	}
	b.mustSee("[role=status]", "Vous êtes déconnecté")
	b.open(srv.url + "/")
	if p := b.path(); p != "/signin" {
		t.Fatalf("home after signing out shows %s, want the sign-in page", p)
	}

	srv.signIn(b, "marie@trifouillis.fr", password, secret) // srv.code moved to a fresh step
	if p := b.path(); p != "/" {
		t.Fatalf("signing in again leads to %s: %s", p, b.text("main"))
	}
	b.mustSee("h1", "Bonjour Marie Dupont")
}

// oauthApp is a registered client and its PKCE verifier and state for one
// authorization request.
type oauthApp struct {
	*app
	conf     *oauth2.Config
	verifier string
	state    string
}

func registerApp(t *testing.T, srv *server, name string) *oauthApp {
	t.Helper()
	a := newApp(t)
	scopes := []string{"mail.read", "mail.send"}
	c, secret, err := srv.authz.RegisterClient(t.Context(), authz.ClientSpec{
		Name:         name,
		GrantTypes:   []string{authz.GrantAuthorizationCode, authz.GrantRefreshToken},
		Scopes:       scopes,
		RedirectURIs: []string{a.callback()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &oauthApp{
		app: a,
		conf: &oauth2.Config{
			ClientID: c.ID, ClientSecret: secret, RedirectURL: a.callback(), Scopes: scopes,
			Endpoint: oauth2.Endpoint{
				AuthURL: srv.url + authz.PathAuthorize, TokenURL: srv.url + authz.PathToken,
				AuthStyle: oauth2.AuthStyleInHeader,
			},
		},
		verifier: oauth2.GenerateVerifier(),
		state:    oauth2.GenerateVerifier()[:22],
	}
}

func (a *oauthApp) authorizeURL() string {
	return a.conf.AuthCodeURL(a.state, oauth2.S256ChallengeOption(a.verifier))
}

// toConsent sends the tab to the app's authorization request, signs in on
// the way, and checks it arrives on the consent page.
func toConsent(t *testing.T, srv *server, b *tab, a *oauthApp, secret string) {
	t.Helper()
	b.open(a.authorizeURL())
	if p := b.path(); !strings.HasPrefix(p, "/signin?return_to=") {
		t.Fatalf("an authorization request without a session leads to %s, want sign-in", p)
	}
	srv.signIn(b, "marie@trifouillis.fr", password, secret)
	if p := b.path(); !strings.HasPrefix(p, authz.PathAuthorize+"?") {
		t.Fatalf("after signing in the browser is at %s, want back at the authorization request: %s", p, b.text("main"))
	}
}

func TestAppGetsATokenAfterThePersonAllowsOnTheConsentPage(t *testing.T) {
	srv := newServer(t)
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	a := registerApp(t, srv, "Messagerie de la Mairie")
	b := newTab(t, phone, "fr-FR,fr;q=0.9")

	toConsent(t, srv, b, a, secret)
	b.mustSee("h1", "Messagerie de la Mairie demande votre autorisation")
	b.mustSee(".scopes", "Lire les messages", "Envoyer des messages")
	b.mustSee(".decision", "Autoriser", "Refuser")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "fr" {
		t.Errorf("consent page lang=%q, want fr", lang)
	}
	b.checkPage("consent")
	t.Logf("consent page at 360 px: %s", b.screenshot("consent-360.png"))

	b.press(`button[name="decision"][value="allow"]`)
	if loc := b.location(); !strings.HasPrefix(loc, a.callback()+"?") {
		t.Fatalf("after allowing the browser is at %s, want the app's callback", loc)
	}
	q := a.last(t)
	if q.Get("state") != a.state || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("the app received %v, want a code and state %q", q, a.state)
	}
	tok, err := a.conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" && tok.TokenType != "Bearer" {
		t.Errorf("token = %+v, want access and refresh tokens of type bearer", tok)
	}
}

func TestAppGetsAccessDeniedWhenThePersonRefuses(t *testing.T) {
	srv := newServer(t)
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	a := registerApp(t, srv, "Messagerie de la Mairie")
	b := newTab(t, desktop, "fr")

	toConsent(t, srv, b, a, secret)
	b.checkPage("consent (desktop)")
	b.press(`button[name="decision"][value="deny"]`)
	q := a.last(t)
	if q.Get("error") != "access_denied" || q.Get("state") != a.state || q.Get("code") != "" {
		t.Fatalf("the app received %v, want error=access_denied and state %q", q, a.state)
	}
}

func TestConsentPageSpeaksEnglishWhenTheBrowserPrefersIt(t *testing.T) {
	srv := newServer(t)
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	a := registerApp(t, srv, "Town Hall Mail")
	b := newTab(t, phone, "en-GB,en;q=0.9")

	b.open(a.authorizeURL())
	b.mustSee("h1", "Sign in")
	b.checkPage("sign-in (en)")
	srv.signIn(b, "marie@trifouillis.fr", password, secret)
	b.mustSee("h1", "Town Hall Mail asks for your authorisation")
	b.mustSee(".scopes", "Read messages", "Send messages")
	b.mustSee(".decision", "Allow", "Refuse")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "en" {
		t.Errorf("consent page lang=%q, want en", lang)
	}
	b.checkPage("consent (en)")
}

func TestPersonWithdrawsConsentOnTheAccountPage(t *testing.T) {
	srv := newServer(t)
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	a := registerApp(t, srv, "Messagerie de la Mairie")
	b := newTab(t, phone, "fr")

	toConsent(t, srv, b, a, secret)
	b.press(`button[name="decision"][value="allow"]`)
	tok, err := a.conf.Exchange(t.Context(), a.last(t).Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}

	b.open(srv.url + "/")
	b.press(`a[href="/account/consents"]`)
	b.mustSee("h1", "Mes autorisations")
	b.mustSee(".card", "Messagerie de la Mairie", "Lire les messages", "Envoyer des messages")
	label := eval[string](b, `document.querySelector('.card button.danger').getAttribute('aria-label')`)
	if label != "Retirer l'autorisation de Messagerie de la Mairie" {
		t.Errorf("withdraw button's accessible name = %q", label)
	}
	b.checkPage("consents")

	b.press(`.card button.danger`)
	if p := b.path(); p != "/account/consents?withdrawn=1" {
		t.Fatalf("after withdrawing the browser is at %s", p)
	}
	b.mustSee("[role=status]", "L'autorisation a été retirée")
	b.mustSee(".empty", "Vous n'avez autorisé aucune application")
	b.checkPage("consents (empty)")

	_, err = a.conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err == nil {
		t.Error("the refresh token still works after the consent was withdrawn")
	}
}

func TestWrongPasswordShowsAnErrorLinkedToTheFieldsAndStaysOnSignIn(t *testing.T) {
	srv := newServer(t)
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	b := newTab(t, phone, "fr")

	b.open(srv.url + "/signin")
	if status := srv.signIn(b, "marie@trifouillis.fr", "pas le bon mot de passe", secret); status != http.StatusUnprocessableEntity {
		t.Errorf("a wrong password answers %d, want 422", status)
	}
	if p := b.path(); p != "/signin" {
		t.Fatalf("after a wrong password the browser is at %s, want the sign-in page", p)
	}
	b.mustSee(`.error-summary[role="alert"]`, "Il y a un problème", "le mot de passe ou le code n'est pas bon")
	for _, id := range []string{"email", "password", "code"} {
		described := eval[string](b, `document.getElementById('`+id+`').getAttribute('aria-describedby') || ''`)
		if !strings.Contains(" "+described+" ", " form-error ") {
			t.Errorf("#%s aria-describedby=%q, want it to name the error", id, described)
		}
		if inv := eval[string](b, `document.getElementById('`+id+`').getAttribute('aria-invalid') || ''`); inv != "true" {
			t.Errorf("#%s aria-invalid=%q, want true", id, inv)
		}
	}
	if msg := b.text("#form-error"); !strings.Contains(msg, "n'est pas bon") {
		t.Errorf("#form-error says %q", msg)
	}
	if v := eval[string](b, `document.getElementById('email').value`); v != "marie@trifouillis.fr" {
		t.Errorf("the email field lost what was typed: %q", v)
	}
	if v := eval[string](b, `document.getElementById('password').value`); v != "" {
		t.Errorf("the password field was refilled: %q", v)
	}
	b.checkPage("sign-in with an error")
}

func TestUnknownApplicationShowsAPlainErrorPage(t *testing.T) {
	srv := newServer(t)
	b := newTab(t, phone, "fr")
	q := url.Values{"client_id": {"inconnue"}, "response_type": {"code"}, "state": {"0123456789abcdef"},
		"redirect_uri": {"http://127.0.0.1:1/callback"}, "scope": {"mail.read"}}
	b.open(srv.url + authz.PathAuthorize + "?" + q.Encode())
	b.mustSee("h1", "Application inconnue")
	b.mustSee("main", "Retour à l'accueil")
	b.checkPage("error page")
}

func TestSignInFormIsReachedInOrderWithTheTabKey(t *testing.T) {
	srv := newServer(t)
	b := newTab(t, phone, "fr")
	b.open(srv.url + "/signin")

	focused := func() string {
		return eval[string](b, `(e => e.id || (e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')))(document.activeElement)`)
	}
	tab := func() string {
		t.Helper()
		if err := b.key("\t"); err != nil {
			t.Fatal(err)
		}
		return focused()
	}
	if first := tab(); first != "a.skip" {
		t.Errorf("the first Tab stop is %q, want the skip link", first)
	}
	var before []string
	for i := 0; i < 5; i++ {
		if f := tab(); f == "email" {
			break
		} else {
			before = append(before, f)
		}
	}
	if f := focused(); f != "email" {
		t.Fatalf("Tab never reached the email field; it went through %v", before)
	}
	for _, want := range []string{"password", "code", "button.primary"} {
		if got := tab(); got != want {
			t.Fatalf("after the email field Tab reached %q, want %q", got, want)
		}
	}
}

// The checks above can fail: axe-core, injected despite the page's CSP,
// reports an image without a text alternative and a bad label, and the width
// check sees content wider than a phone.
func TestPageChecksCatchAnInaccessibleAndTooWidePage(t *testing.T) {
	srv := newServer(t)
	b := newTab(t, phone, "fr")
	b.open(srv.url + "/signin")
	if got := b.axe("sign-in"); len(got) != 0 {
		t.Fatalf("the sign-in page has axe violations: %+v", got)
	}
	if w := b.widths(); w.Scroll > phone.w || w.Inner != phone.w {
		t.Fatalf("the sign-in page is %d px wide in a %d px window on a %d px screen", w.Scroll, w.Inner, phone.w)
	}

	eval[chromedp.Void](b, `(() => {
		const img = document.createElement('img');
		img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
		document.querySelector('main').append(img);
		document.querySelector('label[for="email"]').remove();
		const wide = document.createElement('div');
		wide.style.width = '600px';
		wide.textContent = 'large';
		document.querySelector('main').append(wide);
	})()`)
	ids := map[string]string{}
	for _, v := range b.axe("sign-in, broken on purpose") {
		ids[v.ID] = v.Impact
	}
	if ids["image-alt"] != "critical" || ids["label"] != "critical" {
		t.Errorf("axe found %v, want image-alt and label as critical", ids)
	}
	if w := b.widths(); w.Scroll <= phone.w {
		t.Errorf("a 600 px wide block leaves the page %d px wide on a %d px screen", w.Scroll, phone.w)
	}
}
