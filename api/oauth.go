package api

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// OAuthPages is what the OAuth2 endpoints need from the browser UI.
type OAuthPages interface {
	CurrentPrincipal(c echo.Context) (people.Principal, bool)
	SignInRedirect(c echo.Context) error // 303 to the sign-in page, coming back to c.Request().RequestURI
	RenderConsent(c echo.Context, v ui.ConsentView) error
	RenderError(c echo.Context, status int, p ui.Problem) error
}

// oauthMaxBody bounds OAuth2 request bodies.
const oauthMaxBody = 64 << 10

// RegisterOAuth mounts the OAuth2 endpoints, the JWKS and the RFC 8414
// metadata on e.
func RegisterOAuth(e *echo.Echo, srv *authz.Server, pages OAuthPages) {
	h := &oauthHandlers{srv: srv, pages: pages}
	limit := limitBody(oauthMaxBody)
	e.GET(authz.PathAuthorize, h.authorize, limit)
	e.POST(authz.PathAuthorize, h.authorize, limit)
	e.POST(authz.PathToken, echo.WrapHandler(http.HandlerFunc(srv.Token)), limit)
	if srv.DeviceFlowEnabled() {
		e.POST(authz.PathDeviceAuthorization, echo.WrapHandler(http.HandlerFunc(srv.DeviceAuthorization)), limit)
	}
	e.POST(authz.PathIntrospect, echo.WrapHandler(http.HandlerFunc(srv.Introspect)), limit)
	e.POST(authz.PathRevoke, echo.WrapHandler(http.HandlerFunc(srv.Revoke)), limit)
	e.GET(authz.PathJWKS, echo.WrapHandler(http.HandlerFunc(srv.JWKS)))
	e.GET(authz.PathMetadata, echo.WrapHandler(http.HandlerFunc(srv.ServeMetadata)))
}

// OAuthCSRFSkipper exempts the client-authenticated OAuth2 endpoints (not
// browser forms) from the CSRF middleware. The consent form POSTed to
// /oauth2/authorize stays protected.
func OAuthCSRFSkipper(c echo.Context) bool {
	switch c.Request().URL.Path {
	case authz.PathToken, authz.PathDeviceAuthorization, authz.PathIntrospect, authz.PathRevoke:
		return true
	}
	return false
}

// limitBody makes reads past limit fail; the endpoints then answer with
// their protocol's invalid_request.
func limitBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}

type oauthHandlers struct {
	srv   *authz.Server
	pages OAuthPages
}

// Form fields the consent page adds, never forwarded as request parameters.
const (
	fieldDecision = "decision"
	fieldCSRF     = "_csrf"
)

func (h *oauthHandlers) authorize(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	ar, err := h.srv.NewAuthorizeRequest(ctx, r)
	if err != nil {
		if h.srv.CanRedirect(ar) {
			h.srv.WriteAuthorizeError(ctx, c.Response(), ar, err)
			return nil
		}
		return h.pages.RenderError(c, http.StatusBadRequest, authorizeProblem(err))
	}
	p, ok := h.pages.CurrentPrincipal(c)
	if !ok {
		if r.Method == http.MethodPost { // session ended on the consent page: start over
			return c.Redirect(http.StatusSeeOther, authz.PathAuthorize+"?"+requestParams(ar.GetRequestForm()).Encode())
		}
		return h.pages.SignInRedirect(c)
	}
	client := ar.GetClient()
	scopes := []string(ar.GetRequestedScopes())
	if r.Method == http.MethodPost {
		switch r.PostForm.Get(fieldDecision) {
		case "allow":
			if err := h.srv.RememberConsent(ctx, p.Subject, client.GetID(), scopes); err != nil {
				return err
			}
			h.srv.FinishAuthorize(ctx, c.Response(), ar, p.Subject, scopes, time.Time{})
			return nil
		case "deny":
			h.srv.WriteAuthorizeError(ctx, c.Response(), ar, fosite.ErrAccessDenied.WithHint("The person refused the request."))
			return nil
		default:
			return h.pages.RenderError(c, http.StatusBadRequest, ui.Problem{
				TitleFR: "Réponse manquante", TitleEN: "No answer",
				DetailFR: "Choisissez « Autoriser » ou « Refuser ».", DetailEN: "Choose “Allow” or “Refuse”.",
			})
		}
	}
	covered, err := h.srv.ConsentCovers(ctx, p.Subject, client.GetID(), scopes)
	if err != nil {
		return err
	}
	if covered {
		h.srv.FinishAuthorize(ctx, c.Response(), ar, p.Subject, scopes, time.Time{})
		return nil
	}
	return h.pages.RenderConsent(c, consentView(ar, scopes))
}

func consentView(ar fosite.AuthorizeRequester, scopes []string) ui.ConsentView {
	v := ui.ConsentView{ClientID: ar.GetClient().GetID(), FormAction: authz.PathAuthorize, Hidden: map[string]string{}}
	v.ClientName = v.ClientID
	if cl, ok := ar.GetClient().(*authz.Client); ok && cl.Name != "" {
		v.ClientName = cl.Name
	}
	for _, name := range scopes {
		if sc, ok := mandate.LookupScope(name); ok {
			v.Scopes = append(v.Scopes, sc)
		}
	}
	for k, vals := range requestParams(ar.GetRequestForm()) {
		v.Hidden[k] = vals[0]
	}
	return v
}

// requestParams are the authorization request's own parameters.
func requestParams(form url.Values) url.Values {
	out := url.Values{}
	for k, vals := range form {
		if k != fieldDecision && k != fieldCSRF && len(vals) > 0 {
			out[k] = vals
		}
	}
	return out
}

// authorizeProblem explains, in plain words, an authorization request we
// cannot send back to the application.
func authorizeProblem(err error) ui.Problem {
	if errors.Is(err, fosite.ErrInvalidClient) {
		return ui.Problem{
			TitleFR: "Application inconnue", TitleEN: "Unknown application",
			DetailFR: "L'application qui vous a envoyé ici n'est pas enregistrée. Revenez en arrière et contactez son éditeur.",
			DetailEN: "The application that sent you here is not registered. Go back and contact its publisher.",
		}
	}
	return ui.Problem{
		TitleFR: "Demande non valide", TitleEN: "Invalid request",
		DetailFR: "L'application qui vous a envoyé ici a fait une demande incorrecte (par exemple une adresse de retour non enregistrée). Aucune autorisation n'a été donnée.",
		DetailEN: "The application that sent you here made an invalid request (for example an unregistered return address). Nothing was authorised.",
	}
}
