package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/mandated/mandated/authz"
)

const appRedirect = "https://app.example/cb"

func (h *harness) webApp() (*authz.Client, string, *oauth2.Config) {
	c, secret := h.register(authz.ClientSpec{Name: "Mail app", GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantRefreshToken},
		Scopes: []string{"mail.read", "mail.send"}, RedirectURIs: []string{appRedirect, "http://127.0.0.1:9999/cb"}})
	return c, secret, &oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, RedirectURL: appRedirect, Scopes: []string{"mail.read"},
		Endpoint: oauth2.Endpoint{AuthURL: h.ts.URL + authz.PathAuthorize, TokenURL: h.ts.URL + authz.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
	}
}

func (h *harness) clientCtx() context.Context {
	return context.WithValue(h.ctx, oauth2.HTTPClient, h.ts.Client())
}

// authorize runs the browser part of the code flow and returns the code.
func (h *harness) authorize(b *browser, conf *oauth2.Config, verifier string) string {
	h.t.Helper()
	page, loc := b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier)), nil)
	if loc == nil { // consent not yet given
		_, loc = b.decide(page, "allow")
	}
	return codeFrom(h.t, loc)
}

func codeFrom(t testing.TB, loc *url.URL) string {
	t.Helper()
	if loc == nil || loc.Scheme+"://"+loc.Host+loc.Path != appRedirect {
		t.Fatalf("not redirected to the app: %v", loc)
	}
	if loc.Query().Get("state") != "state-1234567890" {
		t.Fatalf("state not round-tripped: %v", loc)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %v", loc)
	}
	return code
}

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	h := newHarness(t)
	client, secret, conf := h.webApp()
	b := h.browser()
	verifier := oauth2.GenerateVerifier()

	// Not signed in: sent to sign in, then back to the consent page.
	page, _ := b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier)), nil)
	var cp consentPage
	if err := json.Unmarshal([]byte(page.raw), &cp); err != nil || cp.View.ClientName != "Mail app" || len(cp.View.Scopes) != 1 || cp.View.Scopes[0].Name != "mail.read" {
		t.Fatalf("consent page = %d %s", page.status, page.raw)
	}
	_, loc := b.decide(page, "allow")
	tok, err := conf.Exchange(h.clientCtx(), codeFrom(t, loc), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for the code grant")
	}

	claims := h.verifyWithJWKS(tok.AccessToken)
	if claims.Subject != testPrincipal.Subject || claims.Issuer != h.issuer || !claims.Audience.Contains(h.issuer) || claims.ID == "" {
		t.Errorf("claims = %+v", claims.Claims)
	}
	if claims.ClientID != client.ID || claims.Scope != "mail.read" {
		t.Errorf("client_id=%q scope=%q", claims.ClientID, claims.Scope)
	}

	in := h.introspect(tok.AccessToken, client.ID, secret)
	if in.status != 200 || in.body["active"] != true || in.str("sub") != testPrincipal.Subject || in.str("scope") != "mail.read" ||
		in.str("client_id") != client.ID || in.str("iss") != h.issuer || in.str("token_type") != "Bearer" || in.str("jti") != claims.ID {
		t.Errorf("introspection = %d %s", in.status, in.raw)
	}
	if in.header.Get("Cache-Control") != "no-store" {
		t.Errorf("introspection Cache-Control = %q", in.header.Get("Cache-Control"))
	}

	// Refresh rotates.
	next, err := conf.TokenSource(h.clientCtx(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate")
	}

	// Consent remembered: a second authorization needs no click.
	page, loc = b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier)), nil)
	codeFrom(t, loc)

	// Withdrawing consent ends the grant at once.
	if err := h.srv.WithdrawConsent(h.ctx, testPrincipal.Subject, client.ID); err != nil {
		t.Fatal(err)
	}
	if in := h.introspect(next.AccessToken, client.ID, secret); in.body["active"] != false {
		t.Errorf("after withdrawal, access token = %s", in.raw)
	}
	if r := h.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}}, client.ID, secret); r.str("error") != "invalid_grant" {
		t.Errorf("after withdrawal, refresh = %d %s", r.status, r.raw)
	}
}

// verifyWithJWKS checks a token the way a resource server does: metadata,
// then jwks_uri, then the signature.
func (h *harness) verifyWithJWKS(token string) authz.AccessTokenClaims {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+authz.PathMetadata, nil)
	md := h.do(req)
	if md.str("issuer") != h.issuer {
		h.t.Fatalf("metadata = %s", md.raw)
	}
	req, _ = http.NewRequest(http.MethodGet, md.str("jwks_uri"), nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(h.do(req).raw), &set); err != nil {
		h.t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		h.t.Fatal(err)
	}
	if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		h.t.Errorf("typ = %v", typ)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		h.t.Fatalf("kid %q not in JWKS", parsed.Headers[0].KeyID)
	}
	var c authz.AccessTokenClaims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		h.t.Fatalf("signature: %v", err)
	}
	return c
}

func TestMetadata(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+authz.PathMetadata, nil)
	md := h.do(req)
	for k, want := range map[string]string{
		"issuer": h.issuer, "authorization_endpoint": h.issuer + authz.PathAuthorize, "token_endpoint": h.issuer + authz.PathToken,
		"jwks_uri": h.issuer + authz.PathJWKS, "introspection_endpoint": h.issuer + authz.PathIntrospect, "revocation_endpoint": h.issuer + authz.PathRevoke,
	} {
		if md.str(k) != want {
			t.Errorf("%s = %q, want %q", k, md.str(k), want)
		}
	}
	if got, _ := json.Marshal(md.body["code_challenge_methods_supported"]); string(got) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", got)
	}
	if got, _ := json.Marshal(md.body["scopes_supported"]); !strings.Contains(string(got), "mail.organize") {
		t.Errorf("scopes_supported = %s", got)
	}
}
