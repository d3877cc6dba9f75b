package ui

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the session list shows Paris time on any host

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// Account is the pages of a person's own account: the list of their
// sessions (any signed-in person, staff or holder), and the staff password
// reset by email. Build it with NewAccount and add it with Register.
type Account struct {
	ui  *UI
	svc *people.Account
	loc *time.Location
}

// NewAccount returns the account pages over u (rendering, sessions) and svc.
func NewAccount(u *UI, svc *people.Account) *Account {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		loc = time.UTC
	}
	return &Account{ui: u, svc: svc, loc: loc}
}

// Register adds the account pages' routes to e, and a middleware that hands
// every request's client (IP after the trusted-proxy rule, User-Agent) to
// package people, which records it with the sessions started.
func (a *Account) Register(e *echo.Echo) {
	e.Use(recordClient)
	e.GET("/account/sessions", a.sessionsPage)
	e.POST("/account/sessions/end", a.endSession)
	e.POST("/account/sessions/end-all", a.endEverywhere)
	e.GET("/account/reset", a.resetPage)
	e.POST("/account/reset", a.requestReset)
	e.GET("/account/reset/confirm", a.confirmPage)
	e.POST("/account/reset/confirm", a.confirmReset)
	e.GET("/account/reset/done", a.resetDone)
}

// ResetURL is the link a password-reset token is sent as.
func ResetURL(issuer, token string) string {
	return issuer + "/account/reset/confirm?token=" + token
}

func recordClient(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := people.WithClient(r.Context(), people.Client{IP: c.RealIP(), UserAgent: r.UserAgent()})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// sessionItem is one session as the list shows it.
type sessionItem struct {
	Handle   string
	Current  bool
	Device   string
	IP       template.HTML // escaped, with break opportunities in IPv6 addresses
	Started  string
	LastSeen string
}

type sessionsData struct{ Sessions []sessionItem }

func (a *Account) cookie(c echo.Context) string {
	if ck, err := c.Cookie(a.ui.cookieName); err == nil {
		return ck.Value
	}
	return ""
}

func (a *Account) sessionsPage(c echo.Context) error {
	pr, ok := a.ui.CurrentPrincipal(c)
	if !ok {
		return a.ui.SignInRedirect(c)
	}
	list, err := a.svc.Sessions(c.Request().Context(), pr, a.cookie(c))
	if err != nil {
		return a.ui.internalError(c, err)
	}
	p := a.ui.newPage(c)
	if c.QueryParam("ended") != "" {
		p.Status = "account.sessions.ended"
	}
	items := make([]sessionItem, 0, len(list))
	for _, s := range list {
		items = append(items, sessionItem{
			Handle: s.Handle, Current: s.Current, Device: device(p.Lang, s.Browser, s.OS),
			IP:      template.HTML(strings.ReplaceAll(template.HTMLEscapeString(s.IP), ":", ":<wbr>")),
			Started: a.when(p.Lang, s.CreatedAt), LastSeen: a.when(p.Lang, s.LastSeenAt),
		})
	}
	p.Data = sessionsData{Sessions: items}
	return a.ui.render(c, http.StatusOK, "account-sessions.html", p)
}

// device says "Firefox sur Android" (or in English) from what is known.
func device(lang, browser, os string) string {
	m := func(key string) string {
		v := accountMessages[key]
		if lang == "en" {
			return v.en
		}
		return v.fr
	}
	switch {
	case browser != "" && os != "":
		return strings.NewReplacer("{browser}", browser, "{os}", os).Replace(m("account.sessions.device"))
	case browser != "":
		return browser
	case os != "":
		return strings.NewReplacer("{os}", os).Replace(m("account.sessions.device.os"))
	}
	return m("account.sessions.device.unknown")
}

// when is a date and time in Paris, in lang.
func (a *Account) when(lang string, t time.Time) string {
	t = t.In(a.loc)
	if lang == "en" {
		return formatDate(lang, t) + " at " + t.Format("15:04")
	}
	return formatDate(lang, t) + " à " + t.Format("15:04")
}

func (a *Account) endSession(c echo.Context) error {
	pr, ok := a.ui.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/signin?return_to=/account/sessions")
	}
	handle := c.FormValue("session")
	if handle == "" || len(handle) > 64 {
		return a.ui.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
	}
	current, err := a.svc.EndSession(c.Request().Context(), pr, a.cookie(c), handle)
	if errors.Is(err, people.ErrUnknownSession) {
		return a.ui.renderProblem(c, http.StatusNotFound, "account.sessions.unknown.title", "account.sessions.unknown.detail")
	}
	if err != nil {
		return a.ui.internalError(c, err)
	}
	if current {
		a.ui.clearSessionCookie(c)
		return c.Redirect(http.StatusSeeOther, "/signin?signedout=1")
	}
	return c.Redirect(http.StatusSeeOther, "/account/sessions?ended=1")
}

// endEverywhere ends every session of the person, this one included.
func (a *Account) endEverywhere(c echo.Context) error {
	pr, ok := a.ui.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/signin?return_to=/account/sessions")
	}
	if _, err := a.svc.EndEverywhere(c.Request().Context(), pr); err != nil {
		return a.ui.internalError(c, err)
	}
	a.ui.clearSessionCookie(c)
	return c.Redirect(http.StatusSeeOther, "/signin?signedout=1")
}

// resetData is what the reset request page shows.
type resetData struct {
	Sent    bool
	Email   string
	Minutes int // how long a link works
}

func (a *Account) unavailable(c echo.Context) error {
	return a.ui.renderProblem(c, http.StatusNotFound, "account.reset.unavailable.title", "account.reset.unavailable.detail")
}

func (a *Account) resetPage(c echo.Context) error {
	if !a.svc.ResetAvailable() {
		return a.unavailable(c)
	}
	p := a.ui.newPage(c)
	if c.QueryParam("sent") != "" {
		p.Status = "account.reset.sent"
		p.Data = resetData{Sent: true, Minutes: a.minutes()}
	} else {
		p.Data = resetData{}
	}
	return a.ui.render(c, http.StatusOK, "account-reset.html", p)
}

func (a *Account) requestReset(c echo.Context) error {
	email := c.FormValue("email")
	p := a.ui.newPage(c)
	err := a.svc.RequestPasswordReset(c.Request().Context(), email, c.RealIP(), p.Lang)
	status := http.StatusUnprocessableEntity
	switch {
	case err == nil:
		return c.Redirect(http.StatusSeeOther, "/account/reset?sent=1")
	case errors.Is(err, people.ErrInvalidEmail):
		p.Errors = []fieldError{{Field: "email", Key: "account.reset.err.email"}}
	case errors.Is(err, people.ErrTooManyAttempts):
		status = http.StatusTooManyRequests
		a.retryAfter(c)
		p.Errors = []fieldError{{Key: "account.reset.throttled"}}
	case errors.Is(err, people.ErrResetUnavailable):
		return a.unavailable(c)
	case errors.Is(err, context.Canceled):
		return err
	default:
		return a.ui.internalError(c, err)
	}
	if len(email) > 254 {
		email = ""
	}
	p.Data = resetData{Email: strings.TrimSpace(email)}
	return a.ui.render(c, status, "account-reset.html", p)
}

func (a *Account) minutes() int { return int(a.svc.Config().ResetTTL.Minutes()) }

func (a *Account) retryAfter(c echo.Context) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(a.ui.people.Config().ThrottleWindow.Seconds())))
}

// confirmData is what the page of a reset link shows.
type confirmData struct {
	Token string
	Email string
}

func (a *Account) confirmPage(c echo.Context) error {
	return a.showConfirm(c, c.QueryParam("token"), http.StatusOK, nil)
}

// showConfirm draws the new-password form of a reset link (again, after mistakes).
func (a *Account) showConfirm(c echo.Context, token string, status int, errs []fieldError) error {
	view, err := a.svc.OpenPasswordReset(c.Request().Context(), token)
	if errors.Is(err, people.ErrResetLinkInvalid) {
		return a.invalidLink(c)
	}
	if err != nil {
		return a.ui.internalError(c, err)
	}
	p := a.ui.newPage(c)
	p.Errors = errs
	p.Data = confirmData{Token: token, Email: view.Email}
	return a.ui.render(c, status, "account-reset-confirm.html", p)
}

func (a *Account) invalidLink(c echo.Context) error {
	return a.ui.renderProblem(c, http.StatusGone, "account.reset.invalid.title", "account.reset.invalid.detail")
}

func (a *Account) confirmReset(c echo.Context) error {
	token := c.FormValue("token")
	err := a.svc.CompletePasswordReset(c.Request().Context(), token, c.FormValue("password"),
		people.ResetProof{TOTPCode: c.FormValue("code")}, c.RealIP())
	var fe fieldError
	status := http.StatusUnprocessableEntity
	switch {
	case err == nil:
		a.ui.clearSessionCookie(c) // every session of the account has ended
		return c.Redirect(http.StatusSeeOther, "/account/reset/done")
	case errors.Is(err, people.ErrResetLinkInvalid):
		return a.invalidLink(c)
	case errors.Is(err, people.ErrInvalidCode):
		fe = fieldError{Field: "code", Key: "account.reset.err.code"}
	case errors.Is(err, people.ErrTooManyAttempts):
		status = http.StatusTooManyRequests
		a.retryAfter(c)
		fe = fieldError{Key: "account.reset.throttled"}
	case errors.Is(err, context.Canceled):
		return err
	default:
		field, key := enrolErrorField(err) // the same password rules as enrolment
		if key == "" || field != "password" {
			return a.ui.internalError(c, err)
		}
		fe = fieldError{Field: field, Key: key}
	}
	return a.showConfirm(c, token, status, []fieldError{fe})
}

func (a *Account) resetDone(c echo.Context) error {
	return a.ui.render(c, http.StatusOK, "account-reset-done.html", a.ui.newPage(c))
}
