package authz

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/x/errorsx"

	"github.com/mandated/mandated/mandate"
)

// introspector is the fosite.TokenIntrospector that replaces fosite's
// CoreValidator. Access tokens are answered from the token cache: a hit costs
// a map lookup and a SHA-256 of the token; only a miss reads storage and
// verifies the JWT signature. Refresh tokens are looked up in storage.
type introspector struct {
	strategy *TokenStrategy
	store    *cachedStorage
	tokens   *tokenCache
	clock    mandate.Clock
	scopes   fosite.ScopeStrategy
	// mandateLive tells whether a mandate token's mandate is live
	// (Server.mandateLive); asked on every introspection of one.
	mandateLive func(ctx context.Context, id string) (mandate.Mandate, bool, error)
}

var _ fosite.TokenIntrospector = (*introspector)(nil)

func (in *introspector) IntrospectToken(ctx context.Context, token string, use fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if use == fosite.RefreshToken {
		if err := in.refresh(ctx, token, ar, scopes); err == nil {
			return fosite.RefreshToken, nil
		}
		if err := in.access(ctx, token, ar, scopes); err != nil {
			return "", err
		}
		return fosite.AccessToken, nil
	}
	err := in.access(ctx, token, ar, scopes)
	if err == nil {
		return fosite.AccessToken, nil
	}
	if jwtSignature(token) != "" {
		return "", err // a JWT is never a refresh token
	}
	if err := in.refresh(ctx, token, ar, scopes); err != nil {
		return "", err
	}
	return fosite.RefreshToken, nil
}

func inactive(hint string) error {
	return errorsx.WithStack(fosite.ErrInactiveToken.WithHint(hint))
}

func (in *introspector) access(ctx context.Context, token string, ar fosite.AccessRequester, scopes []string) error {
	sig := jwtSignature(token)
	if sig == "" {
		return inactive("Not an access token.")
	}
	hash := sha256.Sum256([]byte(token))
	now := in.clock.Now()
	if e, ok := in.tokens.get(sig); ok {
		if !now.Before(e.expires) {
			return errorsx.WithStack(fosite.ErrTokenExpired.WithHint("The access token expired."))
		}
		if !e.verified {
			if err := in.strategy.ValidateAccessToken(ctx, e.req, token); err != nil {
				return err
			}
			in.tokens.markVerified(sig, hash)
		} else if e.hash != hash {
			return inactive("The token does not match the issued one.")
		}
		return in.mergeLive(ctx, e.req, token, ar, scopes)
	}
	gen := in.tokens.generation()
	or, err := in.store.GetAccessTokenSession(ctx, sig, &fosite.DefaultSession{})
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, fosite.ErrInactiveToken) {
			return inactive("The access token is unknown or revoked.")
		}
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if err := in.strategy.ValidateAccessToken(ctx, or, token); err != nil {
		return err
	}
	exp := or.GetSession().GetExpiresAt(fosite.AccessToken)
	if !exp.IsZero() && now.Before(exp) {
		in.tokens.put(sig, tokenEntry{req: or, expires: exp, hash: hash, verified: true}, gen)
	}
	return in.mergeLive(ctx, or, token, ar, scopes)
}

func (in *introspector) refresh(ctx context.Context, token string, ar fosite.AccessRequester, scopes []string) error {
	sig := in.strategy.RefreshTokenSignature(ctx, token)
	or, err := in.store.GetRefreshTokenSession(ctx, sig, &fosite.DefaultSession{})
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, fosite.ErrInactiveToken) {
			return inactive("The refresh token is unknown, used or revoked.")
		}
		return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if err := in.strategy.ValidateRefreshToken(ctx, or, token); err != nil {
		return err
	}
	return in.mergeLive(ctx, or, "", ar, scopes)
}

// mergeLive is merge for a token whose mandate, if it has one, is live;
// a mandate token's session then carries its mandate claims for describe.
// accessToken is the verified access token ("" for a refresh token).
func (in *introspector) mergeLive(ctx context.Context, or fosite.Requester, accessToken string, ar fosite.AccessRequester, scopes []string) error {
	c, ok, err := mandateOfToken(or, accessToken)
	if err != nil {
		return inactive("The access token's claims are malformed.")
	}
	if !ok {
		return in.merge(or, ar, scopes)
	}
	m, live := mandate.Mandate{}, false
	if in.mandateLive != nil {
		if m, live, err = in.mandateLive(ctx, c.MandateID); err != nil {
			return errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
		}
	}
	if !live {
		return inactive("The token's mandate has ended, is outside its window, or the holder is no longer present.")
	}
	if err := in.merge(or, ar, scopes); err != nil {
		return err
	}
	ar.SetSession(&introspectedMandate{Session: ar.GetSession(), claims: c, presence: presenceOf(m)})
	return nil
}

// mandateOfToken reads the mandate claims of a token record: from its
// session as stored, or — for a cached access token, whose snapshot keeps
// only the subject — from the verified token itself when its subject is a
// holder (mandate tokens' subjects always are).
func mandateOfToken(or fosite.Requester, accessToken string) (mandateClaims, bool, error) {
	sess := or.GetSession()
	if c, ok := mandateClaimsOf(sess); ok {
		return c, true, nil
	}
	if _, stored := sess.(*fosite.DefaultSession); stored || sess == nil || accessToken == "" ||
		!strings.HasPrefix(sess.GetSubject(), "holder:") {
		return mandateClaims{}, false, nil
	}
	return mandateClaimsOfJWT(accessToken)
}

func (in *introspector) merge(or fosite.Requester, ar fosite.AccessRequester, scopes []string) error {
	for _, s := range scopes {
		if s != "" && !in.scopes(or.GetGrantedScopes(), s) {
			return errorsx.WithStack(fosite.ErrInvalidScope.WithHintf("The token was not granted scope '%s'.", s))
		}
	}
	ar.Merge(or)
	return nil
}

// introspectionResponse is an RFC 7662 §2.2 response.
type introspectionResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	JTI       string   `json:"jti,omitempty"`

	// Mandate tokens only (mandate_tokens.go: describeMandate).
	MandateID            string                `json:"mandate_id,omitempty"`
	Act                  *ActClaim             `json:"act,omitempty"`
	ActSub               string                `json:"act_sub,omitempty"`
	Username             string                `json:"username,omitempty"`
	Rights               string                `json:"rights,omitempty"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details,omitempty"`
	Presence             string                `json:"presence,omitempty"`
}

// Introspect serves RFC 7662 token introspection. The caller must
// authenticate as a confidential client (any of our methods); an inactive,
// unknown, expired or revoked token answers {"active": false} only.
func (s *Server) Introspect(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := s.parsePost(r)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	caller, err := s.authenticate(ctx, r, form)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	token := form.Get("token")
	if token == "" {
		s.writeError(rw, r, fosite.ErrInvalidRequest.WithHint("The 'token' parameter is missing."))
		return
	}
	scopes := fosite.RemoveEmpty(strings.Split(form.Get("scope"), " "))
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.TokenUse(form.Get("token_type_hint")), &fosite.DefaultSession{}, scopes...)
	resp := introspectionResponse{}
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			s.log.ErrorContext(ctx, "introspection", "err", err)
			s.writeError(rw, r, fosite.ErrTemporarilyUnavailable)
			return
		}
	} else if d := s.describe(use, ar); mayIntrospect(caller.GetID(), d) {
		resp = d
	}
	writeJSON(rw, http.StatusOK, resp)
}

// mayIntrospect is the introspection visibility policy (SECURITY.md: never
// reveal a token's claims to a client that may not see them). A client sees a
// token it was issued, or a token whose audience names it (a resource server
// the token is meant for); every other token answers {"active": false}, as
// RFC 7662 §4 allows, so a client cannot probe others' tokens.
func mayIntrospect(callerID string, d introspectionResponse) bool {
	if callerID == d.ClientID {
		return true
	}
	for _, aud := range d.Audience {
		if aud == callerID {
			return true
		}
	}
	return false
}

func (s *Server) describe(use fosite.TokenUse, ar fosite.AccessRequester) introspectionResponse {
	resp := introspectionResponse{
		Active:   true,
		Scope:    strings.Join(ar.GetGrantedScopes(), " "),
		ClientID: ar.GetClient().GetID(),
		Issuer:   s.cfg.Issuer,
		Audience: ar.GetGrantedAudience(),
	}
	sess := ar.GetSession()
	if m, ok := sess.(*introspectedMandate); ok {
		describeMandate(&resp, m)
		sess = m.Session
	}
	switch sess := sess.(type) {
	case *fosite.DefaultSession: // loaded from storage (refresh tokens)
		if sess != nil {
			resp.Subject = sess.GetSubject()
			if jti, ok := sess.Extra[extraJTI].(string); ok && use == fosite.AccessToken {
				resp.JTI = jti
			}
		}
	case accessSnapshot: // from the token cache
		resp.Subject = sess.subject
		if use == fosite.AccessToken {
			resp.JTI = sess.jti
		}
	}
	if resp.Subject == "" {
		resp.Subject = resp.ClientID
	}
	if !ar.GetRequestedAt().IsZero() {
		resp.IssuedAt = ar.GetRequestedAt().Unix()
	}
	switch use {
	case fosite.AccessToken:
		resp.TokenType = "Bearer"
		if len(resp.Audience) == 0 {
			resp.Audience = s.cfg.DefaultAudience
		}
		if exp := ar.GetSession().GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
			resp.Expiry = exp.Unix()
		}
	case fosite.RefreshToken:
		resp.TokenType = "refresh_token"
		if exp := ar.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
			resp.Expiry = exp.Unix()
		}
	}
	if resp.MandateID != "" {
		// Every mandate token is also for the mail servers of
		// Config.MandateAudience (as its JWT says: token.go).
		resp.Audience = withAudience(resp.Audience, s.cfg.MandateAudience)
	}
	return resp
}

// withAudience returns aud with every member of more it lacks appended.
func withAudience(aud, more []string) []string {
	out := append([]string(nil), aud...)
	for _, a := range more {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(rw, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}
