package ui

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

const ctxPrincipal = "ui.principal"

// CurrentPrincipal returns who is signed in on this request's session cookie.
func (u *UI) CurrentPrincipal(c echo.Context) (people.Principal, bool) {
	if p, ok := c.Get(ctxPrincipal).(people.Principal); ok {
		return p, true
	}
	ck, err := c.Cookie(u.cookieName)
	if err != nil {
		return people.Principal{}, false
	}
	p, _, err := u.people.LookupSession(c.Request().Context(), ck.Value)
	if err != nil {
		if !errors.Is(err, people.ErrNoSession) {
			u.log.ErrorContext(c.Request().Context(), "look up session", "err", err)
		}
		return people.Principal{}, false
	}
	c.Set(ctxPrincipal, p)
	return p, true
}

// setSessionCookie sets the session cookie. It has no Max-Age, so it ends
// with the browser (staff often share computers); the server ends it sooner.
func (u *UI) setSessionCookie(c echo.Context, value string) {
	c.SetCookie(&http.Cookie{Name: u.cookieName, Value: value, Path: "/",
		HttpOnly: true, Secure: u.secure, SameSite: http.SameSiteLaxMode})
}

func (u *UI) clearSessionCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: u.cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: u.secure, SameSite: http.SameSiteLaxMode})
}
