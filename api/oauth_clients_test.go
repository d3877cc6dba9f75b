package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandated/mandated/authz"
)

func (h *harness) service(method string, scopes ...string) (*authz.Client, string) {
	return h.register(authz.ClientSpec{Name: "Service", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: scopes, AuthMethod: method})
}

func TestClientCredentials(t *testing.T) {
	h := newHarness(t)
	basic, basicSecret := h.service(authz.AuthMethodSecretBasic, "mail.read", "mail.send")
	post, postSecret := h.service(authz.AuthMethodSecretPost, "mail.read")
	cc := func(scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	}
	withCreds := func(f url.Values, id, secret string) url.Values {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
		return f
	}
	tests := []struct {
		name       string
		form       url.Values
		id, secret string // HTTP Basic when id != ""
		status     int
		wantErr    string
	}{
		{"basic", cc("mail.read mail.send"), basic.ID, basicSecret, 200, ""},
		{"post", withCreds(cc("mail.read"), post.ID, postSecret), "", "", 200, ""},
		{"wrong secret", cc("mail.read"), basic.ID, "wrong", 401, "invalid_client"},
		{"unknown client", cc("mail.read"), "nobody", "x", 401, "invalid_client"},
		{"basic client using post", withCreds(cc("mail.read"), basic.ID, basicSecret), "", "", 401, "invalid_client"},
		{"post client using basic", cc("mail.read"), post.ID, postSecret, 401, "invalid_client"},
		{"unknown scope", cc("mail.read mail.admin"), basic.ID, basicSecret, 400, "invalid_scope"},
		{"scope not registered", cc("mail.delete"), basic.ID, basicSecret, 400, "invalid_scope"},
		{"unsupported grant", url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, basic.ID, basicSecret, 400, "unsupported_grant_type"},
		{"no grant type", url.Values{"scope": {"mail.read"}}, basic.ID, basicSecret, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(authz.PathToken, tt.form, tt.id, tt.secret)
			if r.status != tt.status || r.str("error") != tt.wantErr {
				t.Fatalf("got %d %s, want %d %q", r.status, r.raw, tt.status, tt.wantErr)
			}
			if tt.status != 200 {
				return
			}
			c := h.verifyWithJWKS(r.str("access_token"))
			if c.Subject != c.ClientID || c.ClientID == "" || c.Scope != tt.form.Get("scope") {
				t.Errorf("claims sub=%q client_id=%q scope=%q", c.Subject, c.ClientID, c.Scope)
			}
			if r.str("refresh_token") != "" {
				t.Error("client credentials must not get a refresh token")
			}
		})
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	h := newHarness(t)
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	other, otherSecret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	issue := func() string {
		r := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}}, svc.ID, secret)
		if r.status != 200 {
			t.Fatalf("issue: %d %s", r.status, r.raw)
		}
		return r.str("access_token")
	}
	at := issue()

	if r := h.introspect(at, "", ""); r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
		t.Errorf("introspection without client authentication: %d %s", r.status, r.raw)
	}
	if r := h.introspect(at, svc.ID, "wrong"); r.status != http.StatusUnauthorized {
		t.Errorf("introspection with a wrong secret: %d %s", r.status, r.raw)
	}
	if r := h.introspect("garbage", svc.ID, secret); r.status != 200 || r.raw != `{"active":false}` {
		t.Errorf("unknown token: %d %s", r.status, r.raw)
	}
	tampered := at[:len(at)-4] + "AAAA"
	if r := h.introspect(tampered, svc.ID, secret); r.body["active"] != false {
		t.Errorf("tampered token: %s", r.raw)
	}
	// Same signature, other payload: the cache must not vouch for it.
	forged := forgePayload(t, at)
	if r := h.introspect(forged, svc.ID, secret); r.body["active"] != false {
		t.Errorf("forged payload with a real signature: %s", r.raw)
	}
	for i := 0; i < 2; i++ { // cold, then from the cache
		if r := h.introspect(at, svc.ID, secret); r.body["active"] != true {
			t.Fatalf("introspection %d: %s", i, r.raw)
		}
	}

	// Another client may not revoke it.
	if r := h.post(authz.PathRevoke, url.Values{"token": {at}}, other.ID, otherSecret); r.status != http.StatusBadRequest || r.str("error") != "unauthorized_client" {
		t.Errorf("revocation by another client: %d %s", r.status, r.raw)
	}
	if r := h.introspect(at, svc.ID, secret); r.body["active"] != true {
		t.Fatalf("token revoked by another client: %s", r.raw)
	}
	if r := h.post(authz.PathRevoke, url.Values{"token": {at}}, "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("revocation without authentication: %d %s", r.status, r.raw)
	}
	if r := h.post(authz.PathRevoke, url.Values{"token": {at}, "token_type_hint": {"access_token"}}, svc.ID, secret); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := h.introspect(at, svc.ID, secret); r.raw != `{"active":false}` {
		t.Errorf("revoked token: %s", r.raw)
	}
	if r := h.post(authz.PathRevoke, url.Values{"token": {"never-issued"}}, svc.ID, secret); r.status != 200 {
		t.Errorf("revoking an unknown token: %d %s", r.status, r.raw)
	}

	// Expiry follows the clock.
	at = issue()
	h.introspect(at, svc.ID, secret) // cached
	h.clock.Advance(authz.DefaultAccessTokenLifetime + time.Second)
	if r := h.introspect(at, svc.ID, secret); r.raw != `{"active":false}` {
		t.Errorf("expired token: %s", r.raw)
	}

	// Deleting the client ends its tokens and its authentication.
	h.clock.Advance(-authz.DefaultAccessTokenLifetime - time.Second)
	at = issue()
	h.introspect(at, other.ID, otherSecret)
	if err := h.srv.DeleteClient(h.ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	if r := h.introspect(at, other.ID, otherSecret); r.body["active"] != false {
		t.Errorf("token of a deleted client: %s", r.raw)
	}
	if r := h.introspect(at, svc.ID, secret); r.status != http.StatusUnauthorized {
		t.Errorf("deleted client authenticated: %d %s", r.status, r.raw)
	}
}

// forgePayload keeps a token's header and signature and changes its subject.
func forgePayload(t *testing.T, token string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "someone-else"
	payload, _ := json.Marshal(claims)
	parts := splitJWT(token)
	return parts[0] + "." + b64(payload) + "." + parts[2]
}

func TestKeyRotationKeepsOldTokensVerifiable(t *testing.T) {
	h := newHarness(t)
	svc, secret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	issue := func() string {
		return h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}}, svc.ID, secret).str("access_token")
	}
	old := issue()
	if err := h.keys.Rotate(h.ctx); err != nil {
		t.Fatal(err)
	}
	fresh := issue()
	if kid(t, old) == kid(t, fresh) {
		t.Fatal("rotation did not change the kid")
	}
	for _, tok := range []string{old, fresh} {
		h.verifyWithJWKS(tok)
		if r := h.introspect(tok, svc.ID, secret); r.body["active"] != true {
			t.Errorf("after rotation: %s", r.raw)
		}
	}
	// Once every token the old key signed has expired, it leaves the JWKS.
	h.clock.Advance(time.Hour)
	if err := h.keys.Reload(h.ctx); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(h.keys.JWKS(), &set)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != kid(t, fresh) {
		t.Errorf("JWKS after the old key's tokens expired: %s", h.keys.JWKS())
	}
}

func kid(t *testing.T, token string) string {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Headers[0].KeyID
}

// assertionClient registers a private_key_jwt client with an inline ES256 key.
func (h *harness) assertionClient() (*authz.Client, *ecdsa.PrivateKey) {
	h.t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: "app-key-1", Algorithm: "ES256", Use: "sig"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	c, _ := h.register(authz.ClientSpec{Name: "Signed", GrantTypes: []string{authz.GrantClientCredentials},
		Scopes: []string{"mail.read"}, AuthMethod: authz.AuthMethodPrivateKey, JWKS: set})
	return c, priv
}

func assertion(t testing.TB, key *ecdsa.PrivateKey, kid, clientID, aud, jti string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: jti,
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(exp)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPrivateKeyJWT(t *testing.T) {
	h := newHarness(t)
	c, key := h.assertionClient()
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	soon := time.Now().Add(time.Minute)
	replayed := assertion(t, key, "app-key-1", c.ID, h.issuer+authz.PathToken, "jti-replayed", soon)
	tests := []struct {
		name      string
		assertion string
		status    int
	}{
		{"aud = token endpoint", replayed, 200},
		{"aud = issuer", assertion(t, key, "app-key-1", c.ID, h.issuer, "jti-2", soon), 200},
		{"replayed jti", replayed, 401},
		{"wrong audience", assertion(t, key, "app-key-1", c.ID, "https://other.example/token", "jti-3", soon), 401},
		{"expired", assertion(t, key, "app-key-1", c.ID, h.issuer, "jti-4", time.Now().Add(-time.Minute)), 401},
		{"signed by another key", assertion(t, stranger, "app-key-1", c.ID, h.issuer, "jti-5", soon), 401},
		{"garbage", "not.a.jwt", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(authz.PathToken, form(tt.assertion), "", "")
			if r.status != tt.status || tt.status != 200 && r.str("error") != "invalid_client" && r.str("error") != "invalid_request" {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
			}
		})
	}
	// private_key_jwt also authenticates introspection.
	tok := h.post(authz.PathToken, form(assertion(t, key, "app-key-1", c.ID, h.issuer, "jti-6", soon)), "", "").str("access_token")
	in := h.post(authz.PathIntrospect, url.Values{"token": {tok},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion(t, key, "app-key-1", c.ID, h.issuer+authz.PathIntrospect, "jti-7", soon)}}, "", "")
	if in.body["active"] != true || in.str("client_id") != c.ID {
		t.Fatalf("introspection with private_key_jwt: %d %s", in.status, in.raw)
	}
}
