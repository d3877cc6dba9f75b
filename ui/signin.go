package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// SignInMethod is how the sign-in page offers one people.Authenticator:
// FormTemplate names a file under templates/ that defines "method-fields"
// (the inputs, each with id and name from Fields), and Fields lists the
// form values handed to Authenticate. See people.Authenticator.
type SignInMethod interface {
	people.Authenticator
	FormTemplate() string
	Fields() []string
}

// StaffSignIn is the staff method: email, password and TOTP code.
func StaffSignIn(s *people.Service) SignInMethod { return staffSignIn{s.StaffAuthenticator()} }

type staffSignIn struct{ people.Authenticator }

func (staffSignIn) FormTemplate() string { return "form-staff.html" }
func (staffSignIn) Fields() []string     { return []string{"email", "password", "code"} }

// signInData is what the sign-in page shows.
type signInData struct {
	Method   string
	ReturnTo string
	Values   map[string]string // entered values kept after a mistake (never secrets)
}

func (u *UI) method(name string) SignInMethod {
	for _, m := range u.methods {
		if m.Method() == name {
			return m
		}
	}
	return u.methods[0]
}

func (u *UI) signInPage(c echo.Context) error {
	returnTo := safeReturnTo(c.QueryParam("return_to"))
	if _, ok := u.CurrentPrincipal(c); ok {
		return c.Redirect(http.StatusSeeOther, orHome(returnTo))
	}
	p := u.newPage(c)
	switch {
	case c.QueryParam("enrolled") != "":
		p.Status = "signin.enrolled"
	case c.QueryParam("signedout") != "":
		p.Status = "signin.signedout"
	}
	m := u.method(c.QueryParam("method"))
	p.Data = signInData{Method: m.Method(), ReturnTo: returnTo}
	return u.render(c, http.StatusOK, "signin:"+m.Method(), p)
}

func (u *UI) signIn(c echo.Context) error {
	ctx := c.Request().Context()
	m := u.method(c.FormValue("method"))
	returnTo := safeReturnTo(c.FormValue("return_to"))
	fields := map[string]string{}
	for _, f := range m.Fields() {
		fields[f] = c.FormValue(f)
	}
	pr, err := m.Authenticate(ctx, people.Attempt{Fields: fields, IP: c.RealIP()})
	if err != nil {
		return u.signInFailed(c, m, returnTo, fields, err)
	}
	if old, err := c.Cookie(u.cookieName); err == nil { // never reuse a session across sign-ins
		_ = u.people.EndSession(ctx, old.Value)
	}
	cookie, _, err := u.people.StartSession(ctx, pr)
	if err != nil {
		return u.internalError(c, err)
	}
	u.setSessionCookie(c, cookie)
	return c.Redirect(http.StatusSeeOther, orHome(returnTo))
}

func (u *UI) signInFailed(c echo.Context, m SignInMethod, returnTo string, fields map[string]string, err error) error {
	status, key := http.StatusUnprocessableEntity, "signin.failed"
	switch {
	case errors.Is(err, people.ErrSignInFailed):
	case errors.Is(err, people.ErrTooManyAttempts):
		status, key = http.StatusTooManyRequests, "signin.throttled"
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(u.people.Config().ThrottleWindow.Seconds())))
	case errors.Is(err, people.ErrAccountDeactivated):
		status, key = http.StatusForbidden, "signin.deactivated"
	case errors.Is(err, context.Canceled):
		return err
	default:
		return u.internalError(c, err)
	}
	p := u.newPage(c)
	q := url.Values{}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	p.SwitchURL = switchURL("/signin", q, p.OtherLang())
	p.Errors = []fieldError{{Key: key}}
	kept := map[string]string{}
	if e := strings.TrimSpace(fields["email"]); len(e) <= 254 {
		kept["email"] = e
	}
	p.Data = signInData{Method: m.Method(), ReturnTo: returnTo, Values: kept}
	return u.render(c, status, "signin:"+m.Method(), p)
}

func (u *UI) signOut(c echo.Context) error {
	next := "/signin?signedout=1"
	if pr, ok := u.CurrentPrincipal(c); ok && pr.Kind == "holder" {
		next = "/holder/signin?signedout=1" // holders sign in on their own page
	}
	if ck, err := c.Cookie(u.cookieName); err == nil {
		if err := u.people.EndSession(c.Request().Context(), ck.Value); err != nil {
			return u.internalError(c, err)
		}
	}
	u.clearSessionCookie(c)
	return c.Redirect(http.StatusSeeOther, next)
}

// SignInRedirect sends the browser to the sign-in page, to come back to this
// request's URL afterwards.
func (u *UI) SignInRedirect(c echo.Context) error {
	target := "/signin"
	if rt := safeReturnTo(c.Request().RequestURI); rt != "" {
		target += "?return_to=" + url.QueryEscape(rt)
	}
	return c.Redirect(http.StatusSeeOther, target)
}

func orHome(returnTo string) string {
	if returnTo == "" {
		return "/"
	}
	return returnTo
}
