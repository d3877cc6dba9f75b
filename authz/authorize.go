package authz

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"
)

// NewAuthorizeRequest parses and validates an authorization request. On
// error, CanRedirect(ar) tells whether the error may be sent back to the
// client's redirect URI (WriteAuthorizeError) or must be shown on a page.
//
// On top of fosite it checks, before anyone signs in or consents: PKCE S256
// present (fosite checks it only when issuing the code), requested scopes in
// the catalogue, and an exact redirect_uri match (see CanRedirect).
func (s *Server) NewAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		return ar, err
	}
	if !s.CanRedirect(ar) {
		return ar, fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the client's registered redirect URIs.")
	}
	form := ar.GetRequestForm()
	if form.Get("code_challenge") == "" {
		return ar, fosite.ErrInvalidRequest.WithHint("Clients must include a code_challenge (PKCE, S256).")
	}
	if form.Get("code_challenge_method") != "S256" {
		return ar, fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256, plain is not allowed.")
	}
	if err := checkCatalogue(form.Get("scope")); err != nil {
		return ar, err
	}
	return ar, nil
}

// CanRedirect reports whether ar carries a redirect URI that exactly equals
// one the client registered, so errors may be sent there.
//
// fosite matches redirect URIs by string comparison, except that for an http
// loopback IP literal (127.0.0.1, [::1]) it accepts any port (RFC 8252 §7.3),
// and it uses the single registered URI when the request names none. We keep
// the latter (still exact) and refuse the former: a registered loopback URI
// must be requested with its port.
func (s *Server) CanRedirect(ar fosite.AuthorizeRequester) bool {
	if ar == nil || ar.GetClient() == nil || !ar.IsRedirectURIValid() {
		return false
	}
	raw := ar.GetRequestForm().Get("redirect_uri")
	if raw == "" {
		raw = ar.GetRedirectURI().String()
	}
	return slices.Contains(ar.GetClient().GetRedirectURIs(), raw)
}

// WriteAuthorizeError redirects an error to the client (only call it when
// CanRedirect(ar) is true).
func (s *Server) WriteAuthorizeError(ctx context.Context, rw http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	s.provider.WriteAuthorizeError(ctx, rw, ar, err)
}

// FinishAuthorize issues the authorization code for subject with the granted
// scopes (those of the request the person allowed) and redirects to the client.
func (s *Server) FinishAuthorize(ctx context.Context, rw http.ResponseWriter, ar fosite.AuthorizeRequester, subject string, granted []string, authTime time.Time) {
	for _, sc := range ar.GetRequestedScopes() {
		if slices.Contains(granted, sc) {
			ar.GrantScope(sc)
		}
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
	sess := &fosite.DefaultSession{Subject: subject, Extra: map[string]interface{}{}}
	if !authTime.IsZero() {
		sess.Extra[extraAuthTime] = authTime.Unix()
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, rw, ar, err)
		return
	}
	s.provider.WriteAuthorizeResponse(ctx, rw, ar, resp)
}

// Client returns a registered client (from the cache when possible).
func (s *Server) Client(ctx context.Context, id string) (*Client, error) {
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.(*Client), nil
}
