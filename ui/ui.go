// Package ui serves mandated's pages: sign-in, enrolment, the signed-in home,
// the list of remembered consents, and the consent and error pages the OAuth2
// handlers show. Templates, messages (French first, English when the browser
// prefers it) and one stylesheet are embedded. Pages carry no inline script or
// style, so a strict Content-Security-Policy holds. It is an adapter over
// package people; it stores nothing itself.
package ui

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

//go:embed templates/*.html static/*.css static/*.js
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
	// Banners gives the staff home page the banners admins posted; none
	// are shown when nil.
	Banners BannerSource
}

// BannerSource lists the banners live now for an audience in structures
// (*people.Admin).
type BannerSource interface {
	BannersFor(ctx context.Context, audience people.Audience, structureIDs ...string) ([]people.Banner, error)
}

// UI is the set of pages. Build it with New and add it to echo with Register.
type UI struct {
	people     *people.Service
	consents   ConsentManager
	log        *slog.Logger
	secure     bool
	cookieName string
	methods    []SignInMethod
	banners    BannerSource

	pages   map[string]map[string]*template.Template // lang → page → template
	css     []byte
	cssPath string
	scripts map[string][]byte // content-hashed path → script (static/*.js)
	jsPaths map[string]string // file name → content-hashed path
}

// New builds the UI. It panics if an embedded template does not parse, which
// is a programming error caught by any test.
func New(d Deps) *UI {
	u := &UI{
		people: d.People, consents: d.Consents, log: d.Logger, secure: d.SecureCookies,
		cookieName: d.CookieName, methods: d.Methods, banners: d.Banners,
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
	u.scripts, u.jsPaths = map[string][]byte{}, map[string]string{}
	scripts, _ := fs.Glob(assets, "static/*.js")
	for _, f := range scripts {
		js, _ := assets.ReadFile(f)
		sum := sha256.Sum256(js)
		name := strings.TrimSuffix(path.Base(f), ".js")
		u.jsPaths[name+".js"] = "/static/" + name + "-" + hex.EncodeToString(sum[:6]) + ".js"
		u.scripts[u.jsPaths[name+".js"]] = js
	}
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

// ScriptPath is the content-hashed path of a script under static/ ("" if none).
func (u *UI) ScriptPath(file string) string { return u.jsPaths[file] }

// static serves the stylesheet and the scripts under content-hashed names,
// cached for a year.
func (u *UI) static(c echo.Context) error {
	if js, ok := u.scripts["/static/"+c.Param("name")]; ok {
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", js)
	}
	if "/static/"+c.Param("name") != u.cssPath {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", u.css)
}
