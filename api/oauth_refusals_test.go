package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mandated/mandated/authz"
)

func TestAuthorizeRefusals(t *testing.T) {
	h := newHarness(t)
	client, _, _ := h.webApp()
	b := h.browser()
	b.visit(http.MethodGet, h.ts.URL+"/test/signin?next=/", nil)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := func(mod func(url.Values)) string {
		q := url.Values{"response_type": {"code"}, "client_id": {client.ID}, "redirect_uri": {appRedirect},
			"scope": {"mail.read"}, "state": {"state-1234567890"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		mod(q)
		return h.ts.URL + authz.PathAuthorize + "?" + q.Encode()
	}
	tests := []struct {
		name      string
		mod       func(url.Values)
		wantError string // error redirected to the app; "" = shown on a page, never redirected
	}{
		{"wrong redirect URI", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, ""},
		{"redirect URI with extra path", func(q url.Values) { q.Set("redirect_uri", appRedirect+"/x") }, ""},
		{"loopback on another port", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:8888/cb") }, ""},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, ""},
		{"missing PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"PKCE without method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"unknown scope", func(q url.Values) { q.Set("scope", "mail.read mail.admin") }, "invalid_scope"},
		{"scope not registered", func(q url.Values) { q.Set("scope", "mail.delete") }, "invalid_scope"},
		{"token response type", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, loc := b.visit(http.MethodGet, base(tt.mod), nil)
			if tt.wantError == "" {
				if loc != nil || page.status != http.StatusBadRequest || page.str("TitleEN") == "" {
					t.Fatalf("want an error page, got %d %s (location %v)", page.status, page.raw, loc)
				}
				return
			}
			if loc == nil || loc.Host != "app.example" || loc.Query().Get("error") != tt.wantError || loc.Query().Get("state") != "state-1234567890" {
				t.Fatalf("want redirect with error=%s, got %d %s (location %v)", tt.wantError, page.status, page.raw, loc)
			}
		})
	}
}

func TestDenyRedirectsAccessDenied(t *testing.T) {
	h := newHarness(t)
	_, _, conf := h.webApp()
	b := h.browser()
	page, _ := b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), nil)
	_, loc := b.decide(page, "deny")
	if loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("code") != "" {
		t.Fatalf("deny: location %v", loc)
	}
}

func TestConsentFormNeedsCSRFToken(t *testing.T) {
	h := newHarness(t)
	_, _, conf := h.webApp()
	b := h.browser()
	page, _ := b.visit(http.MethodGet, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), nil)
	form := url.Values{"decision": {"allow"}}
	var cp consentPage
	_ = jsonUnmarshal(page.raw, &cp)
	for k, v := range cp.View.Hidden {
		form.Set(k, v)
	}
	r, loc := b.visit(http.MethodPost, h.ts.URL+authz.PathAuthorize, form)
	if loc != nil || r.status != http.StatusBadRequest && r.status != http.StatusForbidden {
		t.Fatalf("consent without CSRF token: %d %v", r.status, loc)
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	h := newHarness(t)
	client, secret, conf := h.webApp()
	b := h.browser()
	verifier := oauth2.GenerateVerifier()
	code := h.authorize(b, conf, verifier)
	exchange := func(mod func(url.Values), id, sec string) reply {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifier}}
		mod(f)
		return h.post(authz.PathToken, f, id, sec)
	}
	// Failed attempts that must not use the code up.
	for _, tt := range []struct {
		name, wantErr string
		mod           func(url.Values)
		secret        string
		status        int
	}{
		{"wrong client secret", "invalid_client", func(url.Values) {}, "nope", http.StatusUnauthorized},
		{"wrong verifier", "invalid_grant", func(f url.Values) { f.Set("code_verifier", oauth2.GenerateVerifier()) }, secret, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := exchange(tt.mod, client.ID, tt.secret)
			if r.status != tt.status || r.str("error") != tt.wantErr {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tt.status, tt.wantErr)
			}
			if tt.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Error("error without Cache-Control: no-store")
			}
		})
	}
	// The wrong verifier consumed the PKCE session: a fresh code for the rest.
	code = h.authorize(b, conf, verifier)
	if r := exchange(func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:9999/cb") }, client.ID, secret); r.str("error") != "invalid_grant" {
		t.Fatalf("wrong redirect_uri at token endpoint: %d %s", r.status, r.raw)
	}
	code = h.authorize(b, conf, verifier)
	first := exchange(func(url.Values) {}, client.ID, secret)
	if first.status != 200 {
		t.Fatalf("exchange: %d %s", first.status, first.raw)
	}
	again := exchange(func(url.Values) {}, client.ID, secret)
	if again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
		t.Fatalf("reused code: %d %s", again.status, again.raw)
	}
	if in := h.introspect(first.str("access_token"), client.ID, secret); in.body["active"] != false {
		t.Errorf("code reuse must revoke the tokens it issued; access token: %s", in.raw)
	}
}

func TestRefreshTokenReuseRevokesTheFamily(t *testing.T) {
	h := newHarness(t)
	client, secret, conf := h.webApp()
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(h.clientCtx(), h.authorize(h.browser(), conf, verifier), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string) reply {
		return h.post(authz.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, client.ID, secret)
	}
	second := refresh(tok.RefreshToken)
	if second.status != 200 {
		t.Fatalf("refresh: %d %s", second.status, second.raw)
	}
	if in := h.introspect(second.str("access_token"), client.ID, secret); in.body["active"] != true {
		t.Fatalf("new access token inactive: %s", in.raw)
	}
	if in := h.introspect(tok.AccessToken, client.ID, secret); in.body["active"] != false {
		t.Errorf("rotation must end the previous access token: %s", in.raw)
	}
	if r := refresh(tok.RefreshToken); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.raw)
	}
	if in := h.introspect(second.str("access_token"), client.ID, secret); in.body["active"] != false {
		t.Errorf("after reuse, the newest access token must be inactive: %s", in.raw)
	}
	if in := h.post(authz.PathIntrospect, url.Values{"token": {second.str("refresh_token")}, "token_type_hint": {"refresh_token"}}, client.ID, secret); in.body["active"] != false {
		t.Errorf("after reuse, the newest refresh token must be inactive: %s", in.raw)
	}
	if r := refresh(second.str("refresh_token")); r.str("error") != "invalid_grant" {
		t.Errorf("after reuse, the newest refresh token still works: %d %s", r.status, r.raw)
	}
}
