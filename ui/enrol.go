package ui

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// enrolData is what the enrolment page shows.
type enrolData struct {
	Action      string // /enrol?token=...
	Email       string
	DisplayName string
	QR          template.URL // data:image/png;base64,...
	OTPAuthURL  template.URL // otpauth://totp/...
	Secret      string
}

func (u *UI) enrolPage(c echo.Context) error {
	return u.showEnrolment(c, http.StatusOK, nil, "")
}

// showEnrolment draws the enrolment form (again, after mistakes).
func (u *UI) showEnrolment(c echo.Context, status int, errs []fieldError, displayName string) error {
	token := c.QueryParam("token")
	view, err := u.people.BeginEnrolment(withClient(c), token)
	if errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		return u.renderProblem(c, http.StatusGone, "enrol.invalid.title", "enrol.invalid.detail")
	}
	if err != nil {
		return u.internalError(c, err)
	}
	p := u.newPage(c)
	p.Errors = errs
	p.Data = enrolData{
		Action:      "/enrol?token=" + url.QueryEscape(token),
		Email:       view.Email,
		DisplayName: displayName,
		QR:          template.URL(view.TOTP.QRDataURI), // made by people: a PNG data URI
		OTPAuthURL:  template.URL(view.TOTP.URL),       // made by people: otpauth://
		Secret:      view.TOTP.Secret,
	}
	return u.render(c, status, "enrol.html", p)
}

func (u *UI) enrol(c echo.Context) error {
	token := c.QueryParam("token")
	name := c.FormValue("display_name")
	err := u.people.CompleteEnrolment(withClient(c), token, name, c.FormValue("password"), c.FormValue("code"))
	if err == nil {
		return c.Redirect(http.StatusSeeOther, "/signin?enrolled=1")
	}
	field, key := enrolErrorField(err)
	if key == "" {
		if errors.Is(err, people.ErrEnrolmentLinkInvalid) {
			return u.renderProblem(c, http.StatusGone, "enrol.invalid.title", "enrol.invalid.detail")
		}
		return u.internalError(c, err)
	}
	if len(name) > 200 {
		name = ""
	}
	return u.showEnrolment(c, http.StatusUnprocessableEntity, []fieldError{{Field: field, Key: key}}, name)
}

// enrolErrorField maps a CompleteEnrolment mistake to the input it concerns.
func enrolErrorField(err error) (field, key string) {
	switch {
	case errors.Is(err, people.ErrInvalidName):
		return "display_name", "enrol.err.name"
	case errors.Is(err, people.ErrPasswordTooShort):
		return "password", "enrol.err.short"
	case errors.Is(err, people.ErrPasswordTooLong):
		return "password", "enrol.err.long"
	case errors.Is(err, people.ErrPasswordIsEmail):
		return "password", "enrol.err.email"
	case errors.Is(err, people.ErrInvalidCode):
		return "code", "enrol.err.code"
	}
	return "", ""
}

// withClient is the request's context carrying its client (address after
// the trusted-proxy rule), with which package people counts and records
// refused links, even when the account pages' middleware is not installed.
func withClient(c echo.Context) context.Context {
	ctx := c.Request().Context()
	if people.ClientFrom(ctx).IP != "" {
		return ctx
	}
	return people.WithClient(ctx, people.Client{IP: c.RealIP(), UserAgent: c.Request().UserAgent()})
}
