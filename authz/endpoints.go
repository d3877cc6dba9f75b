package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// parsePost reads a form-encoded POST body of at most MaxBodyBytes.
func (s *Server) parsePost(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, fosite.ErrInvalidRequest.WithHintf("HTTP method is '%s', expected 'POST'.", r.Method)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return nil, fosite.ErrInvalidRequest.WithHint("The request body is not a valid form or is too large.").WithWrap(err)
	}
	if len(r.PostForm) == 0 {
		return nil, fosite.ErrInvalidRequest.WithHint("The POST body can not be empty.")
	}
	return r.PostForm, nil
}

// writeError answers with an RFC 6749 §5.2 error. A client that tried HTTP
// Basic authentication and failed gets 401 with WWW-Authenticate.
func (s *Server) writeError(rw http.ResponseWriter, r *http.Request, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		s.log.ErrorContext(r.Context(), "oauth2 endpoint", "path", r.URL.Path, "err", err, "debug", rfc.DebugField)
	}
	if rfc.CodeField == http.StatusUnauthorized {
		if _, _, basic := r.BasicAuth(); basic {
			rw.Header().Set("WWW-Authenticate", `Basic realm="mandated"`)
		}
	}
	s.provider.WriteAccessError(r.Context(), rw, nil, err)
}

// checkCatalogue refuses scopes that are not in the catalogue.
func checkCatalogue(scope string) error {
	names := fosite.RemoveEmpty(strings.Split(scope, " "))
	if err := mandate.ValidateScopes(names); err != nil {
		return fosite.ErrInvalidScope.WithHint(err.Error())
	}
	return nil
}

// Token serves the token endpoint (RFC 6749 §3.2).
func (s *Server) Token(rw http.ResponseWriter, r *http.Request) {
	ctx := withHTTPRequestID(r.Context(), requestID(rw))
	form, err := s.parsePost(r)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	if err := checkCatalogue(form.Get("scope")); err != nil {
		s.writeError(rw, r, err)
		return
	}
	if gt := form.Get("grant_type"); gt != "" && !s.grantTypeEnabled(gt) {
		s.writeError(rw, r, fosite.ErrUnsupportedGrantType.WithHintf("Grant type '%s' is not supported.", gt))
		return
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
	if rfc := (*fosite.RFC6749Error)(nil); errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrJTIKnown.ErrorField {
		// A replayed RFC 7523 §2.1 assertion: invalid_grant (§3.1), not
		// fosite's non-standard jti_known. (Replayed client assertions were
		// already answered invalid_client during client authentication.)
		err = fosite.ErrInvalidGrant.WithHint("The assertion was already used.").WithWrap(err)
	}
	if err != nil {
		// A device code still pending is the protocol, not a refusal: the
		// client polls every few seconds (RFC 8628 §3.5).
		if !errors.Is(err, ErrAuthorizationPending) && !errors.Is(err, ErrSlowDown) {
			s.refused(ctx, rw, ar, err)
		}
		s.writeError(rw, r, err)
		return
	}
	if ar.GetGrantTypes().ExactOne(GrantClientCredentials) {
		// fosite checked them against the client's registration; granting is ours.
		for _, sc := range ar.GetRequestedScopes() {
			ar.GrantScope(sc)
		}
		for _, aud := range ar.GetRequestedAudience() {
			ar.GrantAudience(aud)
		}
	}
	// Before any token is made or any refresh token rotated: a
	// deactivated or unknown person gets nothing, whatever the grant.
	if err := s.checkSubject(ctx, rw, ar); err != nil {
		s.writeError(rw, r, err)
		return
	}
	// A mandate token refreshes only while its mandate is live.
	if err := s.checkMandateGrant(ctx, ar); err != nil {
		s.refused(ctx, rw, ar, err)
		s.writeError(rw, r, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.refused(ctx, rw, ar, err)
		s.writeError(rw, r, err)
		return
	}
	// No tokens without their record: the tokens exist in the store but
	// nobody has seen them; answer server_error instead.
	if err := s.recordTokens(ctx, rw, ar); err != nil {
		s.writeError(rw, r, fosite.ErrServerError.WithHint("The request could not be recorded.").WithWrap(err).WithDebug(err.Error()))
		return
	}
	s.provider.WriteAccessResponse(ctx, rw, ar, resp)
}

// Revoke serves token revocation (RFC 7009). Unknown or already revoked
// tokens answer 200; a token of another client is refused.
func (s *Server) Revoke(rw http.ResponseWriter, r *http.Request) {
	form, err := s.parsePost(r)
	if err == nil && form.Get("token") == "" {
		err = fosite.ErrInvalidRequest.WithHint("The 'token' parameter is missing.")
	}
	caller := &clientHolder{}
	if err == nil {
		var ctx context.Context
		ctx, caller = withClientHolder(r.Context())
		err = s.provider.NewRevocationRequest(ctx, r)
	}
	switch {
	case err == nil, errors.Is(err, fosite.ErrNotFound), errors.Is(err, fosite.ErrInactiveToken):
		// Only an authenticated client gets here. The token is revoked
		// already; failing to record it answers server_error so the client
		// retries (revocation is idempotent) and the retry is recorded.
		actor := audit.Actor{Kind: audit.ActorClient, ID: caller.id}
		if caller.id == "" {
			actor = audit.Actor{Kind: audit.ActorSystem}
		}
		if _, rerr := s.rec.Record(r.Context(), audit.Event{
			Actor: actor, ClientID: caller.id,
			Action: audit.ActionTokenRevoked, Outcome: audit.OutcomeSuccess,
			Reason: "revoked by the client", RequestID: requestID(rw),
		}); rerr != nil {
			s.writeError(rw, r, fosite.ErrServerError.WithHint("The request could not be recorded.").WithWrap(rerr).WithDebug(rerr.Error()))
			return
		}
		rw.Header().Set("Cache-Control", "no-store")
		rw.Header().Set("Pragma", "no-cache")
		rw.WriteHeader(http.StatusOK)
	default:
		s.writeError(rw, r, err)
	}
}

// JWKS serves the published signing keys.
func (s *Server) JWKS(rw http.ResponseWriter, _ *http.Request) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = rw.Write(s.keys.JWKS())
}

// Metadata is the RFC 8414 authorization server metadata.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint                string   `json:"device_authorization_endpoint,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgValues  []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgValues     []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
}

// clientAssertionAlgs are the JWS algorithms fosite verifies for private_key_jwt.
var clientAssertionAlgs = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// Metadata returns the server's RFC 8414 metadata.
func (s *Server) Metadata() Metadata {
	confidential := []string{AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodPrivateKey}
	device := ""
	if s.device != nil {
		device = s.cfg.URL(PathDeviceAuthorization)
	}
	return Metadata{
		Issuer:                            s.cfg.Issuer,
		AuthorizationEndpoint:             s.cfg.URL(PathAuthorize),
		TokenEndpoint:                     s.cfg.URL(PathToken),
		DeviceAuthorizationEndpoint:       device,
		JWKSURI:                           s.cfg.URL(PathJWKS),
		IntrospectionEndpoint:             s.cfg.URL(PathIntrospect),
		RevocationEndpoint:                s.cfg.URL(PathRevoke),
		ScopesSupported:                   mandate.ScopeNames(),
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               s.enabledGrantTypes(),
		TokenEndpointAuthMethodsSupported: append(confidential, AuthMethodNone),
		TokenEndpointAuthSigningAlgValuesSupported: clientAssertionAlgs,
		IntrospectionEndpointAuthMethodsSupported:  confidential,
		IntrospectionEndpointAuthSigningAlgValues:  clientAssertionAlgs,
		RevocationEndpointAuthMethodsSupported:     append(confidential, AuthMethodNone),
		RevocationEndpointAuthSigningAlgValues:     clientAssertionAlgs,
		CodeChallengeMethodsSupported:              []string{"S256"},
	}
}

// ServeMetadata writes Metadata as JSON.
func (s *Server) ServeMetadata(rw http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(s.Metadata())
	if err != nil {
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = rw.Write(body)
}
