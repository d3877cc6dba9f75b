package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
)

// RegisterStaffMailbox adds the API of a staff member's own professional
// mailbox (docs/holders.md): GET /api/me/mailbox says where it stands, POST
// /api/me/mailbox/code sends a one-time code to it and returns a challenge,
// POST /api/me/mailbox with the challenge and the code makes the caller its
// holder. Callers are signed-in staff (who returns the principal of the UI
// session cookie); unsafe methods carry the session's CSRF token.
func RegisterStaffMailbox(e *echo.Echo, svc *people.StaffMailboxes, who func(echo.Context) (people.Principal, bool), retryAfter time.Duration) {
	h := mailboxHandlers{svc: svc, who: who, retryAfter: retryAfter}
	e.GET("/api/me/mailbox", h.get)
	e.POST("/api/me/mailbox/code", h.sendCode)
	e.POST("/api/me/mailbox", h.declare)
}

type mailboxHandlers struct {
	svc        *people.StaffMailboxes
	who        func(echo.Context) (people.Principal, bool)
	retryAfter time.Duration
}

type mailboxJSON struct {
	Mailbox  string      `json:"mailbox"`
	Declared bool        `json:"declared"`
	Taken    bool        `json:"taken,omitempty"`
	Holder   *HolderJSON `json:"holder,omitempty"`
}

type mailboxChallengeJSON struct {
	Mailbox   string `json:"mailbox"`
	Challenge string `json:"challenge"`
	ExpiresAt string `json:"expires_at"`
}

type declareMailboxRequest struct {
	Challenge string `json:"challenge"`
	Code      string `json:"code"`
	Language  string `json:"language"`
}

// caller is the signed-in staff member, or a 401 problem.
func (h mailboxHandlers) caller(c echo.Context) (people.Principal, bool, error) {
	p, ok := h.who(c)
	if !ok || p.Kind != "staff" {
		return people.Principal{}, false, WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "sign in as staff first: this API uses the session of the pages"})
	}
	return p, true, nil
}

func (h mailboxHandlers) get(c echo.Context) error {
	p, ok, err := h.caller(c)
	if !ok {
		return err
	}
	st, err := h.svc.Mailbox(c.Request().Context(), p)
	if err != nil {
		return h.fail(c, err)
	}
	out := mailboxJSON{Mailbox: st.Mailbox, Declared: st.Declared, Taken: st.Taken}
	if st.Declared {
		hj := toHolderJSON(st.Holder)
		out.Holder = &hj
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

func (h mailboxHandlers) sendCode(c echo.Context) error {
	p, ok, err := h.caller(c)
	if !ok {
		return err
	}
	lang := "fr"
	if c.QueryParam("lang") == "en" {
		lang = "en"
	}
	ch, err := h.svc.SendCode(c.Request().Context(), p, c.RealIP(), lang)
	if err != nil {
		return h.fail(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, mailboxChallengeJSON{Mailbox: ch.Mailbox, Challenge: ch.Token, ExpiresAt: ch.ExpiresAt.Format(time.RFC3339)})
}

func (h mailboxHandlers) declare(c echo.Context) error {
	p, ok, err := h.caller(c)
	if !ok {
		return err
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return WriteProblem(c, Problem{Status: http.StatusUnsupportedMediaType, Detail: "send the challenge and code as application/json"})
	}
	var req declareMailboxRequest
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "the body is not a valid object: " + jsonReason(err)})
	}
	if req.Challenge == "" || req.Code == "" {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "give the challenge and the code"})
	}
	res, err := h.svc.Declare(c.Request().Context(), p, req.Challenge, req.Code, c.RealIP(), req.Language)
	if err != nil {
		return h.fail(c, err)
	}
	status := http.StatusCreated
	if res.Linked {
		status = http.StatusOK
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, createHolderResponse{Holder: toHolderJSON(res.Holder), Linked: res.Linked})
}

// fail answers a service error as a problem.
func (h mailboxHandlers) fail(c echo.Context, err error) error {
	switch {
	case errors.Is(err, people.ErrNotActiveStaff):
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: err.Error()})
	case errors.Is(err, people.ErrMailboxDeclared), errors.Is(err, people.ErrMailboxTaken):
		return WriteProblem(c, Problem{Status: http.StatusConflict, Detail: err.Error()})
	case errors.Is(err, people.ErrInvalidCode):
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity, Detail: "the code is wrong or expired; ask for a new one"})
	case errors.Is(err, people.ErrTooManyCodes), errors.Is(err, people.ErrTooManyAttempts):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(h.retryAfter.Seconds())))
		return WriteProblem(c, Problem{Status: http.StatusTooManyRequests, Detail: err.Error()})
	case errors.Is(err, notify.ErrNoChannel):
		return WriteProblem(c, Problem{Status: http.StatusServiceUnavailable, Detail: "this server sends no email"})
	}
	return err // logged, answered 500 by the error handler
}
