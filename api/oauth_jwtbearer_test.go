package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandated/mandated/authz"
)

func bearerAssertion(t *testing.T, key *ecdsa.PrivateKey, iss, sub, aud, jti string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "idp-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: iss, Subject: sub, Audience: jwt.Audience{aud}, ID: jti,
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTBearerGrantHonoursTrustRelationships: an identity provider's signed
// assertion about a person is exchanged for an access token for that person,
// only within the trust registered for it (RFC 7523 §2.1).
func TestJWTBearerGrantHonoursTrustRelationships(t *testing.T) {
	h := newHarness(t)
	idpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &idpKey.PublicKey, KeyID: "idp-1", Algorithm: "ES256"})
	const idp = "https://idp.example.fr"
	if _, err := h.srv.RegisterTrust(h.ctx, authz.TrustSpec{Issuer: idp, Subject: "agent-42", JWK: pub, Scopes: []string{"mail.read"}}); err != nil {
		t.Fatal(err)
	}
	app, secret := h.register(authz.ClientSpec{Name: "Portail", GrantTypes: []string{authz.GrantJWTBearer}, Scopes: []string{"mail.read", "mail.send"}})
	tokenURL := h.issuer + authz.PathToken
	grant := func(assertion, scope string) reply {
		return h.post(authz.PathToken, url.Values{"grant_type": {authz.GrantJWTBearer}, "assertion": {assertion}, "scope": {scope}}, app.ID, secret)
	}

	valid := bearerAssertion(t, idpKey, idp, "agent-42", tokenURL, "a-1")
	r := grant(valid, "mail.read")
	if r.status != 200 {
		t.Fatalf("valid assertion: %d %s", r.status, r.raw)
	}
	if in := h.introspect(r.str("access_token"), app.ID, secret); in.str("sub") != "agent-42" || in.str("scope") != "mail.read" {
		t.Errorf("token introspects %s", in.raw)
	}

	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name, assertion, scope, wantErr string
	}{
		{"replayed assertion", valid, "mail.read", "invalid_grant"},
		{"untrusted issuer", bearerAssertion(t, idpKey, "https://evil.example", "agent-42", tokenURL, "a-2"), "mail.read", "invalid_grant"},
		{"another subject", bearerAssertion(t, idpKey, idp, "agent-43", tokenURL, "a-3"), "mail.read", "invalid_grant"},
		{"signed by another key", bearerAssertion(t, stranger, idp, "agent-42", tokenURL, "a-4"), "mail.read", "invalid_grant"},
		{"wrong audience", bearerAssertion(t, idpKey, idp, "agent-42", "https://other.example/token", "a-5"), "mail.read", "invalid_grant"},
		{"scope beyond the trust", bearerAssertion(t, idpKey, idp, "agent-42", tokenURL, "a-6"), "mail.send", "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := grant(tt.assertion, tt.scope)
			if r.status != 400 || r.str("error") != tt.wantErr {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.raw, tt.wantErr)
			}
		})
	}
}

func TestRegisterTrustRefusesBadSpecs(t *testing.T) {
	h := newHarness(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k"})
	priv, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k"})
	tests := map[string]authz.TrustSpec{
		"no issuer":          {Subject: "s", JWK: pub, Scopes: []string{"mail.read"}},
		"subject and any":    {Issuer: "i", Subject: "s", AnySubject: true, JWK: pub, Scopes: []string{"mail.read"}},
		"neither":            {Issuer: "i", JWK: pub, Scopes: []string{"mail.read"}},
		"private key":        {Issuer: "i", Subject: "s", JWK: priv, Scopes: []string{"mail.read"}},
		"not a key":          {Issuer: "i", Subject: "s", JWK: []byte(`{"kty":"nope"}`), Scopes: []string{"mail.read"}},
		"unknown scope":      {Issuer: "i", Subject: "s", JWK: pub, Scopes: []string{"mail.all"}},
		"no scope":           {Issuer: "i", Subject: "s", JWK: pub},
		"expiry in the past": {Issuer: "i", Subject: "s", JWK: pub, Scopes: []string{"mail.read"}, ExpiresAt: time.Now().Add(-time.Hour)},
	}
	for name, spec := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := h.srv.RegisterTrust(h.ctx, spec); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if list, _ := h.srv.ListTrusts(h.ctx); len(list) != 0 {
		t.Fatalf("refused specs were stored: %v", list)
	}
}
