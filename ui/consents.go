package ui

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
)

// ConsentManager lists and withdraws the consents a person gave to apps.
// *authz.Server implements it.
type ConsentManager interface {
	// ListConsents returns subject's remembered consents, newest first.
	ListConsents(ctx context.Context, subject string) ([]authz.Consent, error)
	// WithdrawConsent forgets the consent and revokes what was issued under
	// it. Withdrawing a consent that is gone is not an error.
	WithdrawConsent(ctx context.Context, subject, clientID string) error
	// Client returns a registered client, for its display name.
	Client(ctx context.Context, id string) (*authz.Client, error)
}

// clientName is a client's display name, or its ID when it has none or is gone.
func (u *UI) clientName(ctx context.Context, id string) string {
	if c, err := u.consents.Client(ctx, id); err == nil && c.Name != "" {
		return c.Name
	}
	return id
}

type consentItem struct {
	ClientID   string
	ClientName string
	Scopes     []mandate.Scope
	GrantedAt  time.Time
}

func (u *UI) consentsPage(c echo.Context) error {
	pr, ok := u.CurrentPrincipal(c)
	if !ok {
		return u.SignInRedirect(c)
	}
	ctx := c.Request().Context()
	list, err := u.consents.ListConsents(ctx, pr.Subject)
	if err != nil {
		return u.internalError(c, err)
	}
	items := make([]consentItem, 0, len(list))
	for _, cs := range list {
		it := consentItem{ClientID: cs.ClientID, ClientName: u.clientName(ctx, cs.ClientID), GrantedAt: cs.GrantedAt}
		for _, name := range cs.Scopes {
			if s, ok := mandate.LookupScope(name); ok {
				it.Scopes = append(it.Scopes, s)
			}
		}
		items = append(items, it)
	}
	p := u.newPage(c)
	if c.QueryParam("withdrawn") != "" {
		p.Status = "consents.withdrawn"
	}
	p.Data = items
	return u.render(c, http.StatusOK, "consents.html", p)
}

func (u *UI) withdrawConsent(c echo.Context) error {
	pr, ok := u.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/signin?return_to=/account/consents")
	}
	clientID := c.FormValue("client_id")
	if clientID == "" || len(clientID) > 200 {
		return u.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
	}
	err := u.consents.WithdrawConsent(c.Request().Context(), pr.Subject, clientID)
	if err != nil {
		return u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/account/consents?withdrawn=1")
}
