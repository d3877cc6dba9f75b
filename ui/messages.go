package ui

// msg is one message in French and English. Arguments follow fmt verbs.
type msg struct{ fr, en string }

// catalogues are the message catalogues, one per group of pages, each in
// its own file; a key belongs to exactly one (TestMessageKeysAreUnique).
var catalogues = []map[string]msg{messages, auditorMessages, holderMessages, passkeyMessages, adminMessages, accountMessages, holderMandateMessages, consoleMessages}

func lookupMessage(key string) (msg, bool) {
	for _, c := range catalogues {
		if m, ok := c[key]; ok {
			return m, true
		}
	}
	return msg{}, false
}

// messages is the pages' catalogue. Templates use {{t "key" args...}};
// an unknown key fails the page (and the tests).
var messages = map[string]msg{
	"skip":           {"Aller au contenu", "Skip to content"},
	"nav.label":      {"Menu", "Menu"},
	"nav.home":       {"Retour à l'accueil", "Back to home"},
	"nav.signout":    {"Se déconnecter", "Sign out"},
	"lang.other":     {"English", "Français"},
	"errors.summary": {"Il y a un problème", "There is a problem"},

	"signin.title":       {"Se connecter", "Sign in"},
	"signin.intro":       {"Entrez votre adresse e-mail, votre mot de passe et le code à 6 chiffres de votre application d'authentification.", "Enter your email address, your password and the 6-digit code from your authenticator app."},
	"signin.email":       {"Adresse e-mail", "Email address"},
	"signin.password":    {"Mot de passe", "Password"},
	"signin.code":        {"Code à 6 chiffres", "6-digit code"},
	"signin.code.hint":   {"Le code affiché en ce moment dans votre application d'authentification.", "The code your authenticator app shows right now."},
	"signin.submit":      {"Se connecter", "Sign in"},
	"signin.failed":      {"L'adresse e-mail, le mot de passe ou le code n'est pas bon. Vérifiez et réessayez.", "The email address, password or code is not right. Check them and try again."},
	"signin.throttled":   {"Trop d'essais sans succès. Attendez 15 minutes, puis réessayez.", "Too many unsuccessful tries. Wait 15 minutes, then try again."},
	"signin.deactivated": {"Ce compte a été désactivé. Adressez-vous à l'administrateur de votre structure.", "This account has been deactivated. Ask your structure's administrator."},
	"signin.enrolled":    {"Votre compte est prêt. Vous pouvez vous connecter.", "Your account is ready. You can sign in."},
	"signin.signedout":   {"Vous êtes déconnecté.", "You are signed out."},

	"enrol.title":          {"Créer votre accès", "Set up your account"},
	"enrol.intro":          {"Ce lien est pour %s. Il ne sert qu'une fois.", "This link is for %s. It works only once."},
	"enrol.step1":          {"1. Votre nom et votre mot de passe", "1. Your name and password"},
	"enrol.name":           {"Votre nom", "Your name"},
	"enrol.name.hint":      {"Il est montré aux personnes que vous aidez.", "It is shown to the people you help."},
	"enrol.password":       {"Choisissez un mot de passe", "Choose a password"},
	"enrol.password.hint":  {"Au moins 12 caractères. Une phrase de quelques mots est facile à retenir.", "At least 12 characters. A sentence of a few words is easy to remember."},
	"enrol.step2":          {"2. Votre application d'authentification", "2. Your authenticator app"},
	"enrol.qr.hint":        {"Ouvrez votre application d'authentification (par exemple FreeOTP, Aegis, Google Authenticator ou Microsoft Authenticator) et scannez ce code.", "Open your authenticator app (for example FreeOTP, Aegis, Google Authenticator or Microsoft Authenticator) and scan this code."},
	"enrol.qr.alt":         {"Code QR à scanner avec votre application d'authentification", "QR code to scan with your authenticator app"},
	"enrol.secret.open":    {"Sur ce téléphone : ouvrir dans l'application", "On this phone: open in the app"},
	"enrol.secret.summary": {"Impossible de scanner ? Entrez la clé à la main", "Cannot scan? Type the key in by hand"},
	"enrol.secret.text":    {"Dans l'application, choisissez « saisir une clé » et recopiez :", "In the app, choose \"enter a setup key\" and copy:"},
	"enrol.step3":          {"3. Le premier code", "3. The first code"},
	"enrol.code":           {"Code à 6 chiffres affiché par l'application", "6-digit code shown by the app"},
	"enrol.submit":         {"Terminer", "Finish"},
	"enrol.err.name":       {"Entrez votre nom (100 caractères au plus).", "Enter your name (at most 100 characters)."},
	"enrol.err.short":      {"Le mot de passe doit avoir au moins 12 caractères.", "The password must have at least 12 characters."},
	"enrol.err.long":       {"Le mot de passe doit avoir au plus 128 caractères.", "The password must have at most 128 characters."},
	"enrol.err.email":      {"Le mot de passe ne doit pas être votre adresse e-mail.", "The password must not be your email address."},
	"enrol.err.code":       {"Ce code n'est pas bon. Attendez le code suivant dans l'application et entrez-le.", "This code is not right. Wait for the next code in the app and enter it."},
	"enrol.invalid.title":  {"Ce lien ne fonctionne plus", "This link no longer works"},
	"enrol.invalid.detail": {"Il a déjà servi ou il a expiré. Demandez un nouveau lien à l'administrateur de votre structure.", "It was already used or it has expired. Ask your structure's administrator for a new link."},

	"home.title":         {"Accueil", "Home"},
	"home.hello":         {"Bonjour %s", "Hello %s"},
	"home.email":         {"Adresse e-mail", "Email address"},
	"home.structure":     {"Structure", "Organisation"},
	"home.role":          {"Rôle", "Role"},
	"home.platform":      {"toutes les structures", "every organisation"},
	"home.link.holders":  {"Les personnes accompagnées", "The people you help"},
	"home.link.admin":    {"Administrer la structure", "Manage the organisation"},
	"home.link.import":   {"Importer des personnes (CSV)", "Import people (CSV)"},
	"home.link.passkeys": {"Mes clés d'accès", "My passkeys"},
	"home.link.sessions": {"Mes connexions en cours", "My signed-in devices"},
	"home.link.mailbox":  {"Ma boîte professionnelle", "My work mailbox"},
	"role.admin":         {"Administration de la structure", "Organisation administrator"},
	"role.mediator":      {"Médiation numérique", "Digital mediator"},
	"role.auditor":       {"Contrôle du journal", "Auditor"},

	"consents.title":          {"Mes autorisations", "My authorisations"},
	"consents.intro":          {"Les applications que vous avez autorisées. Si vous retirez une autorisation, l'application ne peut plus rien faire pour vous.", "The apps you have authorised. If you withdraw an authorisation, the app can no longer do anything for you."},
	"consents.none":           {"Vous n'avez autorisé aucune application.", "You have not authorised any app."},
	"consents.granted":        {"Autorisée le %s", "Authorised on %s"},
	"consents.scopes":         {"Elle peut :", "It may:"},
	"consents.withdraw":       {"Retirer", "Withdraw"},
	"consents.withdraw.label": {"Retirer l'autorisation de %s", "Withdraw the authorisation of %s"},
	"consents.withdrawn":      {"L'autorisation a été retirée.", "The authorisation was withdrawn."},

	"consent.title": {"%s demande votre autorisation", "%s asks for your authorisation"},
	"consent.who":   {"Vous êtes connecté en tant que %s (%s).", "You are signed in as %s (%s)."},
	"consent.intro": {"Si vous acceptez, cette application pourra :", "If you agree, this app will be able to:"},
	"consent.later": {"Vous pourrez retirer cette autorisation à tout moment dans « Mes autorisations ».", "You can withdraw this authorisation at any time in \"My authorisations\"."},
	"consent.allow": {"Autoriser", "Allow"},
	"consent.deny":  {"Refuser", "Refuse"},

	"error.home":              {"Retour à l'accueil", "Back to home"},
	"error.internal.title":    {"Une erreur est survenue", "Something went wrong"},
	"error.internal.detail":   {"Le problème vient de chez nous. Réessayez dans un moment.", "The problem is on our side. Try again in a moment."},
	"error.notfound.title":    {"Page introuvable", "Page not found"},
	"error.notfound.detail":   {"Cette adresse ne mène à rien. Vérifiez le lien.", "This address leads nowhere. Check the link."},
	"error.forbidden.title":   {"Accès refusé", "Access refused"},
	"error.forbidden.detail":  {"Vous n'avez pas le droit de voir cette page.", "You may not see this page."},
	"error.badrequest.title":  {"Demande incorrecte", "Incorrect request"},
	"error.badrequest.detail": {"Rien n'a été changé. Revenez en arrière et réessayez.", "Nothing was changed. Go back and try again."},
}
