package ui

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
)

// MailboxPages is « Ma boîte professionnelle » (/account/mailbox): a
// signed-in staff member declares the mailbox they sign in with as a holder
// of their own, proving it with a code sent to that mailbox, so that
// colleagues can be given mandates on it. Build it with NewMailboxPages and
// add it with Register.
type MailboxPages struct {
	ui  *UI
	svc *people.StaffMailboxes
}

// NewMailboxPages returns the page over u (rendering, sessions) and svc.
func NewMailboxPages(u *UI, svc *people.StaffMailboxes) *MailboxPages {
	return &MailboxPages{ui: u, svc: svc}
}

// Register adds the page's routes to e.
func (m *MailboxPages) Register(e *echo.Echo) {
	e.GET("/account/mailbox", m.page)
	e.POST("/account/mailbox/code", m.sendCode)
	e.POST("/account/mailbox", m.declare)
}

// mailboxData is what the page shows.
type mailboxData struct {
	Mailbox   string
	Declared  bool
	Taken     bool
	Challenge string // set once a code was sent: the code form shows
}

// staff returns the signed-in staff member, or answers (sign-in redirect,
// or the plain page for a holder).
func (m *MailboxPages) staff(c echo.Context) (people.Principal, bool, error) {
	p, ok := m.ui.CurrentPrincipal(c)
	if !ok {
		return people.Principal{}, false, c.Redirect(http.StatusSeeOther, "/signin?return_to=/account/mailbox")
	}
	if p.Kind != "staff" {
		return people.Principal{}, false, m.ui.renderProblem(c, http.StatusForbidden, "mailbox.staffonly.title", "mailbox.staffonly.detail")
	}
	return p, true, nil
}

func (m *MailboxPages) page(c echo.Context) error {
	p, ok, err := m.staff(c)
	if !ok {
		return err
	}
	return m.show(c, p, http.StatusOK, "", nil)
}

// show draws the page: the mailbox's state, and the code form when a
// challenge is given.
func (m *MailboxPages) show(c echo.Context, p people.Principal, status int, challenge string, errs []fieldError) error {
	st, err := m.svc.Mailbox(c.Request().Context(), p)
	if errors.Is(err, people.ErrNotActiveStaff) {
		return m.ui.renderProblem(c, http.StatusForbidden, "mailbox.staffonly.title", "mailbox.staffonly.detail")
	}
	if err != nil {
		return m.ui.internalError(c, err)
	}
	pg := m.ui.newPage(c)
	pg.Errors = errs
	switch {
	case st.Declared && c.QueryParam("declared") != "":
		pg.Status = "mailbox.declared.now"
	case challenge != "" && len(errs) == 0:
		pg.Status = "mailbox.code.sent"
	}
	if st.Declared || st.Taken {
		challenge = ""
	}
	pg.Data = mailboxData{Mailbox: st.Mailbox, Declared: st.Declared, Taken: st.Taken, Challenge: challenge}
	return m.ui.render(c, status, "account-mailbox.html", pg)
}

func (m *MailboxPages) sendCode(c echo.Context) error {
	p, ok, err := m.staff(c)
	if !ok {
		return err
	}
	pg := m.ui.newPage(c)
	ch, err := m.svc.SendCode(c.Request().Context(), p, c.RealIP(), pg.Lang)
	switch {
	case err == nil:
		return m.show(c, p, http.StatusOK, ch.Token, nil)
	case errors.Is(err, people.ErrMailboxDeclared), errors.Is(err, people.ErrMailboxTaken):
		return c.Redirect(http.StatusSeeOther, "/account/mailbox")
	case errors.Is(err, people.ErrTooManyCodes):
		m.retryAfter(c)
		return m.show(c, p, http.StatusTooManyRequests, "", []fieldError{{Key: "mailbox.err.toomany"}})
	case errors.Is(err, notify.ErrNoChannel):
		return m.show(c, p, http.StatusServiceUnavailable, "", []fieldError{{Key: "mailbox.err.nomail"}})
	case errors.Is(err, people.ErrNotActiveStaff):
		return m.ui.renderProblem(c, http.StatusForbidden, "mailbox.staffonly.title", "mailbox.staffonly.detail")
	case errors.Is(err, context.Canceled):
		return err
	}
	m.ui.log.WarnContext(c.Request().Context(), "mailbox code not sent", "err", err)
	return m.show(c, p, http.StatusBadGateway, "", []fieldError{{Key: "mailbox.err.send"}})
}

func (m *MailboxPages) declare(c echo.Context) error {
	p, ok, err := m.staff(c)
	if !ok {
		return err
	}
	challenge := c.FormValue("challenge")
	if len(challenge) > 1024 {
		challenge = ""
	}
	_, err = m.svc.Declare(c.Request().Context(), p, challenge, c.FormValue("code"), c.RealIP(), m.ui.lang(c))
	switch {
	case err == nil:
		return c.Redirect(http.StatusSeeOther, "/account/mailbox?declared=1")
	case errors.Is(err, people.ErrInvalidCode):
		return m.show(c, p, http.StatusUnprocessableEntity, challenge, []fieldError{{Field: "code", Key: "mailbox.err.code"}})
	case errors.Is(err, people.ErrTooManyAttempts):
		m.retryAfter(c)
		return m.show(c, p, http.StatusTooManyRequests, challenge, []fieldError{{Key: "mailbox.err.locked"}})
	case errors.Is(err, people.ErrMailboxTaken):
		return c.Redirect(http.StatusSeeOther, "/account/mailbox")
	case errors.Is(err, people.ErrNotActiveStaff):
		return m.ui.renderProblem(c, http.StatusForbidden, "mailbox.staffonly.title", "mailbox.staffonly.detail")
	case errors.Is(err, context.Canceled):
		return err
	}
	return m.ui.internalError(c, err)
}

func (m *MailboxPages) retryAfter(c echo.Context) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(m.ui.people.Config().ThrottleWindow.Seconds())))
}
