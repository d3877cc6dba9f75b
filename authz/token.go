package authz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/x/errorsx"

	"github.com/mandated/mandated/mandate"
)

// atJWTType is the JWS typ of access tokens (RFC 9068 §2.1).
const atJWTType = "at+jwt"

// iatLeeway tolerates clock skew between replicas for the iat check.
const iatLeeway = 30 * time.Second

// TokenStrategy is our oauth2.CoreStrategy: access tokens are RFC 9068 JWTs
// signed with the KeyManager's current ES256 key; authorization codes and
// refresh tokens are fosite's HMAC tokens (opaque, looked up in storage).
//
// A JWT's storage signature is its third segment (the JWS signature).
type TokenStrategy struct {
	*oauth2.HMACSHAStrategy // codes and refresh tokens

	Keys            *KeyManager
	Issuer          string
	DefaultAudience []string
	AccessLifetime  time.Duration
	Clock           mandate.Clock
	// MandateAudience is added to the aud of every mandate token
	// (Config.MandateAudience).
	MandateAudience []string
}

var _ oauth2.CoreStrategy = (*TokenStrategy)(nil)

// AccessTokenClaims are the claims of an access token (RFC 9068 §2.2).
type AccessTokenClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`

	// Mandate tokens only (mandate_tokens.go): the staff member acting
	// (RFC 8693 §4.1), the mandate, and what it allows (RFC 9396).
	Act                  *ActClaim             `json:"act,omitempty"`
	MandateID            string                `json:"mandate_id,omitempty"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details,omitempty"`
}

// Session keys in fosite.DefaultSession.Extra that the strategy reads or writes.
const (
	extraJTI      = "jti"       // written: the access token's jti, for introspection
	extraAuthTime = "auth_time" // read: Unix time the person signed in
)

// AccessTokenSignature returns the JWS signature of a compact JWT, or "" when
// token is not one.
func (s *TokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return jwtSignature(token)
}

func jwtSignature(token string) string {
	if strings.Count(token, ".") != 2 {
		return ""
	}
	return base64URLOnly(token[strings.LastIndexByte(token, '.')+1:])
}

// base64URLOnly returns sig if it is a plausible base64url signature, else
// "": arbitrary client bytes never reach the store as a lookup key.
func base64URLOnly(sig string) string {
	if sig == "" || len(sig) > 512 {
		return ""
	}
	for i := 0; i < len(sig); i++ {
		c := sig[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return sig
}

// RefreshTokenSignature is fosite's HMAC signature, when well-formed.
func (s *TokenStrategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return base64URLOnly(s.HMACSHAStrategy.RefreshTokenSignature(ctx, token))
}

// AuthorizeCodeSignature is fosite's HMAC signature, when well-formed.
func (s *TokenStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return base64URLOnly(s.HMACSHAStrategy.AuthorizeCodeSignature(ctx, token))
}

// GenerateAccessToken signs a new access token for requester. It records the
// jti in the session's Extra so introspection can report it.
func (s *TokenStrategy) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	signer, _, err := s.Keys.Signer()
	if err != nil {
		return "", "", errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	sess, ok := r.GetSession().(*fosite.DefaultSession)
	if !ok || sess == nil {
		return "", "", errorsx.WithStack(fosite.ErrServerError.WithDebug("session is not a *fosite.DefaultSession"))
	}
	now := s.Clock.Now()
	iat := r.GetRequestedAt()
	if iat.IsZero() || iat.After(now) {
		iat = now
	}
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = iat.Add(s.AccessLifetime)
	}
	jti, err := randomID()
	if err != nil {
		return "", "", errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	clientID := r.GetClient().GetID()
	sub := sess.GetSubject()
	if sub == "" {
		sub = clientID
	}
	aud := []string(r.GetGrantedAudience())
	if len(aud) == 0 {
		aud = s.DefaultAudience
	}
	mc, isMandate := mandateClaimsOf(sess)
	if isMandate {
		aud = withAudience(aud, s.MandateAudience) // the mail servers (Config.MandateAudience)
	}
	if isMandate && !mc.NotAfter.IsZero() && exp.After(mc.NotAfter) {
		exp = mc.NotAfter // never past the mandate's end
	}
	c := AccessTokenClaims{
		Claims: jwt.Claims{
			Issuer: s.Issuer, Subject: sub, Audience: jwt.Audience(aud), ID: jti,
			IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(exp),
		},
		ClientID: clientID,
		Scope:    strings.Join(r.GetGrantedScopes(), " "),
		AuthTime: authTime(sess),
	}
	if isMandate {
		if now.Before(mc.NotBefore) {
			// A delegation exchanged ahead of its window: the token is not
			// valid before the window opens (RFC 7519 §4.1.5).
			c.NotBefore = jwt.NewNumericDate(mc.NotBefore)
		}
		c.Act = &ActClaim{Sub: mc.ActorSub}
		c.MandateID = mc.MandateID
		c.AuthorizationDetails = mc.details()
	}
	token, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", "", errorsx.WithStack(fosite.ErrServerError.WithWrap(err).WithDebug(err.Error()))
	}
	if sess.Extra == nil {
		sess.Extra = map[string]interface{}{}
	}
	sess.Extra[extraJTI] = jti
	return token, jwtSignature(token), nil
}

func authTime(sess *fosite.DefaultSession) int64 {
	switch v := sess.Extra[extraAuthTime].(type) {
	case int64:
		return v
	case float64: // after a JSON round trip
		return int64(v)
	case time.Time:
		return v.Unix()
	}
	return 0
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ValidateAccessToken checks the JWT's signature (with the published key
// named by kid), typ, issuer, exp and iat. The requester is not consulted:
// the token carries its own expiry.
func (s *TokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	_, err := s.ParseAccessToken(ctx, token)
	return err
}

// ParseAccessToken verifies token and returns its claims.
func (s *TokenStrategy) ParseAccessToken(ctx context.Context, token string) (*AccessTokenClaims, error) {
	invalid := func(hint string, err error) error {
		e := fosite.ErrTokenSignatureMismatch.WithHint(hint)
		if err != nil {
			e = e.WithWrap(err).WithDebug(err.Error())
		}
		return errorsx.WithStack(e)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, invalid("The access token is not a well-formed JWT.", err)
	}
	if len(tok.Headers) != 1 {
		return nil, invalid("The access token must have exactly one signature.", nil)
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, atJWTType) && !strings.EqualFold(typ, "application/"+atJWTType) {
		return nil, invalid("The JWT is not an access token (typ).", nil)
	}
	key, err := s.Keys.VerificationKey(ctx, h.KeyID)
	if err != nil {
		return nil, invalid("The access token is signed with an unknown key.", err)
	}
	var c AccessTokenClaims
	if err := tok.Claims(key, &c); err != nil {
		return nil, invalid("The access token signature is invalid.", err)
	}
	now := s.Clock.Now()
	switch {
	case c.Issuer != s.Issuer:
		return nil, invalid("The access token was issued by someone else.", nil)
	case c.Expiry == nil || !now.Before(c.Expiry.Time()):
		return nil, errorsx.WithStack(fosite.ErrTokenExpired.WithHint("The access token expired."))
	case c.IssuedAt == nil || c.IssuedAt.Time().After(now.Add(iatLeeway)):
		return nil, invalid("The access token was issued in the future.", nil)
	}
	return &c, nil
}
