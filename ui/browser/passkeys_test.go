package browser_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// passkeyEnv is what withPasskeys wires: the passkey service on the relying
// party "localhost" (browsers refuse WebAuthn on an IP address, so the
// tests browse http://localhost:<port>), the holders service whose codes go
// to a real SMTP server.
type passkeyEnv struct {
	base    string // http://localhost:<port>
	keys    *people.Passkeys
	holders *people.Holders
	smtp    *notifytest.SMTPServer
}

// withPasskeys wires the passkey pages. With hf (wired before, by
// withHolders) the codes go through the holders feature's service and SMTP
// server; else through a holders service of its own.
func withPasskeys(pk *passkeyEnv, hf *holdersFeature) serverOption {
	return func(s *server) {
		u, err := url.Parse(s.url)
		if err != nil {
			s.t.Fatal(err)
		}
		pk.base = "http://localhost:" + u.Port()
		if hf != nil {
			pk.holders, pk.smtp = hf.h, hf.smtp
		} else {
			pk.smtp = notifytest.StartSMTP(s.t)
			pk.holders, err = people.NewHolders(people.HoldersConfig{
				Store: s.store, Notifier: notifytest.SMTPNotifier(s.t, pk.smtp), CodeKey: randomBytes(s.t, 32),
				Clock: s.clock, Logger: s.quiet,
			})
			if err != nil {
				s.t.Fatal(err)
			}
		}
		cfg, err := people.PasskeyDefaults(people.PasskeyConfig{}, pk.base)
		if err != nil {
			s.t.Fatal(err)
		}
		pk.keys, err = people.NewPasskeys(s.people, s.store, s.store, pk.holders, cfg)
		if err != nil {
			s.t.Fatal(err)
		}
		ui.NewPasskeyPages(s.pages, pk.keys, pk.holders).Register(s.echo)
	}
}

// authenticator gives the tab a platform authenticator that keeps
// discoverable credentials and verifies its user (as a phone with a
// fingerprint would), through the DevTools WebAuthn domain.
func (b *tab) authenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.t.Fatalf("add a virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// credentials are the passkeys the tab's authenticator holds.
func (b *tab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Credentials
}

// clickAndWait clicks css (a button whose script ends in a page load) and
// waits until the page shows want.
func (b *tab) clickAndWait(css, want string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(css)), chromedp.WaitVisible(chromedp.CSS(want))); err != nil {
		b.t.Fatalf("click %s and wait for %s (at %s): %v", css, want, b.path(), err)
	}
}

// focusByTab presses Tab until the element with id has the focus.
func (b *tab) focusByTab(id string) {
	b.t.Helper()
	var seen []string
	for range 30 {
		if err := b.key("\t"); err != nil {
			b.t.Fatal(err)
		}
		got := eval[string](b, `document.activeElement.id || document.activeElement.tagName`)
		if got == id {
			return
		}
		seen = append(seen, got)
	}
	b.t.Fatalf("Tab never reached #%s on %s; it went through %v", id, b.path(), seen)
}

var mailedCode = regexp.MustCompile(`\b[0-9]{6,8}\b`)

func TestPasskeyHolderIsEnrolledFromTheConsoleQRCodeAndSignsInWithIt(t *testing.T) {
	var (
		hf holdersFeature
		pk passkeyEnv
	)
	srv := newServer(t, withHolders(&hf), withPasskeys(&pk, &hf))
	ctx := t.Context()
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	mediator, err := srv.people.SignInStaff(ctx, "marie@trifouillis.fr", password, srv.code(secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pk.holders.Create(ctx, mediator, mediator.StructureID, people.HolderInput{
		Mailbox: "jeanne.martin@mail.example", DisplayName: "Jeanne Martin",
		Email: "jeanne.contact@example.net", Language: "fr",
	})
	if err != nil {
		t.Fatal(err)
	}
	holder := res.Holder

	// At the desk: the mediator shows the QR code.
	desk := newTab(t, desktop, "fr-FR,fr;q=0.9")
	desk.open(pk.base + "/signin")
	srv.signIn(desk, "marie@trifouillis.fr", password, secret)
	// From the holder's record in the console, to the passkey enrolment.
	desk.open(pk.base + "/console/holders/" + holder.ID)
	desk.press(`main a[href$="/passkey"]`)
	if p := desk.path(); p != "/console/holders/"+holder.ID+"/passkey" {
		t.Fatalf("the record's passkey link leads to %s", p)
	}
	desk.mustSee("main", "Jeanne Martin")
	desk.checkPage("mediator: start an enrolment")
	desk.press("#start-enrolment")
	desk.mustSee("[role=status]", "Le lien est prêt")
	if !eval[bool](desk, `document.querySelector('img.qr').complete && document.querySelector('img.qr').naturalWidth > 0`) {
		t.Error("the QR code image did not load")
	}
	desk.checkPage("mediator: QR code")
	link := desk.text("#enrol-url")
	if !strings.HasPrefix(link, pk.base+"/holder/enrol?token=") {
		t.Fatalf("the enrolment link is %q", link)
	}

	// On the holder's own phone: the link, the code from their own mailbox,
	// then the passkey.
	phoneTab := newTab(t, phone, "fr-FR,fr;q=0.9")
	auth := phoneTab.authenticator()
	phoneTab.open(link)
	phoneTab.mustSee("h1", "Créer votre clé d'accès")
	phoneTab.checkPage("holder: enrolment link")
	phoneTab.press("#send-code")
	phoneTab.mustSee("[role=status]", "Un code a été envoyé à votre adresse e-mail")
	phoneTab.checkPage("holder: type the code")
	mail := pk.smtp.WaitFor(t, "jeanne.contact@example.net")
	code := mailedCode.FindString(mail.Text)
	if code == "" {
		t.Fatalf("no code in the mail: %q", mail.Text)
	}
	phoneTab.typeInto("code", "00000000")
	phoneTab.press("#verify-code")
	phoneTab.mustSee(".error-summary", "Le code n'est pas bon")
	phoneTab.checkPage("holder: wrong code")
	phoneTab.typeInto("code", code)
	phoneTab.press("#verify-code")
	phoneTab.mustSee("[role=status]", "Code validé")
	phoneTab.checkPage("holder: create the passkey")
	// With the keyboard: Tab to the button, Enter.
	phoneTab.focusByTab("create-passkey")
	if err := phoneTab.key("\r"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(phoneTab.ctx, chromedp.WaitVisible(chromedp.CSS("#go-signin"))); err != nil {
		t.Fatalf("no confirmation after creating the passkey (at %s: %s): %v", phoneTab.path(), phoneTab.text("main"), err)
	}
	phoneTab.mustSee("h1", "Votre clé d'accès est prête")
	phoneTab.checkPage("holder: passkey ready")
	if creds := phoneTab.credentials(auth); len(creds) != 1 || !creds[0].IsResidentCredential {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential", creds)
	}
	// The link was single use.
	phoneTab.open(link)
	phoneTab.mustSee("h1", "Ce lien ne fonctionne plus")

	// Sign in with the passkey, and find it in the holder's list.
	phoneTab.open(pk.base + "/holder/signin/passkey?return_to=" + url.QueryEscape("/holder/passkeys"))
	phoneTab.mustSee("h1", "Se connecter avec une clé d'accès")
	phoneTab.checkPage("holder: sign in with a passkey")
	phoneTab.focusByTab("passkey-signin")
	if err := phoneTab.key("\r"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(phoneTab.ctx, chromedp.WaitVisible(chromedp.CSS(".card"))); err != nil {
		t.Fatalf("not signed in (at %s: %s): %v", phoneTab.path(), phoneTab.text("main"), err)
	}
	if p := phoneTab.path(); p != "/holder/passkeys" {
		t.Fatalf("after signing in the phone is at %s", p)
	}
	phoneTab.mustSee(".card", "Mon téléphone")
	phoneTab.checkPage("holder: my passkeys")
	list, err := pk.keys.List(ctx, people.HolderSubject(holder.ID))
	if err != nil || len(list) != 1 || list[0].SignCount == 0 || list[0].LastUsedAt == nil {
		t.Fatalf("the holder's passkeys after signing in: %+v, %v", list, err)
	}

	// "Supprimer" removes it; the phone can no longer sign in with it.
	phoneTab.press(`.card button.danger`)
	phoneTab.mustSee("[role=status]", "La clé d'accès a été supprimée")
	phoneTab.mustSee("main", "Aucune clé d'accès")
	phoneTab.checkPage("holder: passkey removed")
}

func TestPasskeyStaffUsesAPasskeyInsteadOfTheTOTPCode(t *testing.T) {
	var pk passkeyEnv
	srv := newServer(t, withPasskeys(&pk, nil))
	secret := srv.staff("marie@trifouillis.fr", "Marie Dupont")
	b := newTab(t, phone, "fr-FR,fr;q=0.9")
	auth := b.authenticator()

	// Signed in with the TOTP code, Marie adds a passkey.
	b.open(pk.base + "/signin")
	srv.signIn(b, "marie@trifouillis.fr", password, secret)
	b.open(pk.base + "/account/passkeys")
	b.mustSee("h1", "Mes clés d'accès")
	b.checkPage("staff: my passkeys (none)")
	eval[string](b, `document.getElementById('name').value = ''`)
	b.typeInto("name", "Clé du bureau")
	b.clickAndWait("#add-passkey", ".card")
	b.mustSee("[role=status]", "La clé d'accès a été ajoutée")
	b.mustSee(".card", "Clé du bureau")
	b.checkPage("staff: my passkeys")
	if n := len(b.credentials(auth)); n != 1 {
		t.Fatalf("the authenticator holds %d credentials", n)
	}
	b.press(`form[action="/signout"] button`)

	// Email and password, then the passkey instead of the code.
	b.open(pk.base + "/signin")
	b.typeInto("email", "marie@trifouillis.fr")
	b.typeInto("password", "not her password at all")
	b.press("#signin-passkey")
	b.mustSee(".error-summary", "L'adresse e-mail, le mot de passe ou le code n'est pas bon")
	b.typeInto("password", password)
	b.press("#signin-passkey")
	b.mustSee("h1", "Confirmer avec votre clé d'accès")
	b.checkPage("staff: confirm with a passkey")
	b.clickAndWait("#use-passkey", ".facts")
	if p := b.path(); p != "/" {
		t.Fatalf("after the passkey the browser is at %s: %s", p, b.text("main"))
	}
	b.mustSee("h1", "Bonjour Marie Dupont")

}
