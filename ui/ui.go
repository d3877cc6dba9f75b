// Package ui serves mandated's pages: sign-in, enrolment, the signed-in home,
// the list of remembered consents, and the consent and error pages the OAuth2
// handlers show. Templates, messages (French first, English when the browser
// prefers it) and one stylesheet are embedded. Pages carry no inline script or
// style, so a strict Content-Security-Policy holds. It is an adapter over
// package people; it stores nothing itself.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

//go:embed templates/*.html static/*.css
var assets embed.FS

// DefaultCookieName is the session cookie's name when Deps leaves it empty.
const DefaultCookieName = "mandated_session"

// Deps are the UI's collaborators and cookie settings.
type Deps struct {
	People *people.Service
	// Consents lists and withdraws remembered consents; when nil the
	// consents pages are not served.
	Consents ConsentManager
	Logger   *slog.Logger
	// SecureCookies marks cookies Secure; true whenever the issuer is https.
	SecureCookies bool
	CookieName    string
	// Methods are the sign-in methods offered; the staff password + TOTP
	// method when empty.
	Methods []SignInMethod
}

// UI is the set of pages. Build it with New and add it to echo with Register.
type UI struct {
	people     *people.Service
	consents   ConsentManager
	log        *slog.Logger
	secure     bool
	cookieName string
	methods    []SignInMethod

	pages   map[string]map[string]*template.Template // lang → page → template
	css     []byte
	cssPath string
}

// New builds the UI. It panics if an embedded template does not parse, which
// is a programming error caught by any test.
func New(d Deps) *UI {
	u := &UI{
		people: d.People, consents: d.Consents, log: d.Logger, secure: d.SecureCookies,
		cookieName: d.CookieName, methods: d.Methods,
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.cookieName == "" {
		u.cookieName = DefaultCookieName
	}
	if len(u.methods) == 0 {
		u.methods = []SignInMethod{StaffSignIn(d.People)}
	}
	css, err := assets.ReadFile("static/mandated.css")
	if err != nil {
		panic(fmt.Sprintf("ui: %v", err))
	}
	sum := sha256.Sum256(css)
	u.css, u.cssPath = css, "/static/mandated-"+hex.EncodeToString(sum[:6])+".css"
	u.pages = parsePages(u.methods)
	return u
}

// Register adds the pages' routes to e.
func (u *UI) Register(e *echo.Echo) {
	e.GET("/static/:name", u.static)
	e.GET("/", u.home)
	e.GET("/signin", u.signInPage)
	e.POST("/signin", u.signIn)
	e.POST("/signout", u.signOut)
	e.GET("/enrol", u.enrolPage)
	e.POST("/enrol", u.enrol)
	if u.consents != nil {
		e.GET("/account/consents", u.consentsPage)
		e.POST("/account/consents/withdraw", u.withdrawConsent)
	}
}

// EnrolmentURL is the link an enrolment token is sent as.
func EnrolmentURL(issuer, token string) string {
	return issuer + "/enrol?token=" + token
}

// static serves the stylesheet under a content-hashed name, cached for a year.
func (u *UI) static(c echo.Context) error {
	if "/static/"+c.Param("name") != u.cssPath {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", u.css)
}
