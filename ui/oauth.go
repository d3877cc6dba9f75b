package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// RenderConsent shows the consent page: which app asks, for what, with
// "Autoriser" and "Refuser" buttons posting v.Hidden back to v.FormAction
// with decision=allow|deny.
func (u *UI) RenderConsent(c echo.Context, v ConsentView) error {
	p := u.newPage(c)
	p.Data = v
	return u.render(c, http.StatusOK, "consent.html", p)
}

// RenderError shows a plain-language error page with status. An empty
// Problem shows the generic words for the status.
func (u *UI) RenderError(c echo.Context, status int, pb Problem) error {
	p := u.newPage(c)
	d := errorData{Title: pb.TitleFR, Detail: pb.DetailFR}
	if p.Lang == "en" {
		d.Title, d.Detail = pb.TitleEN, pb.DetailEN
	}
	if d.Title == "" {
		d.TitleKey, d.DetailKey = statusKeys(status)
	}
	p.Data = d
	return u.render(c, status, "error.html", p)
}

func statusKeys(status int) (string, string) {
	switch {
	case status == http.StatusNotFound:
		return "error.notfound.title", "error.notfound.detail"
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return "error.forbidden.title", "error.forbidden.detail"
	case status >= 500:
		return "error.internal.title", "error.internal.detail"
	}
	return "error.badrequest.title", "error.badrequest.detail"
}
