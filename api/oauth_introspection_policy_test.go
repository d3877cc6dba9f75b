package api_test

import (
	"net/url"
	"testing"

	"github.com/mandated/mandated/authz"
)

// TestIntrospectionRevealsTokensOnlyToTheirClientOrAudience: a client sees
// its own tokens and tokens meant for it (named in aud); any other
// authenticated client learns nothing but {"active":false}.
func TestIntrospectionRevealsTokensOnlyToTheirClientOrAudience(t *testing.T) {
	h := newHarness(t)
	resource, resourceSecret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	stranger, strangerSecret := h.service(authz.AuthMethodSecretBasic, "mail.read")
	app, appSecret := h.register(authz.ClientSpec{
		Name: "App", GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"mail.read"},
		Audience: []string{resource.ID},
	})
	r := h.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}, "audience": {resource.ID}}, app.ID, appSecret)
	if r.status != 200 {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	at := r.str("access_token")

	tests := []struct {
		name, id, secret string
		active           bool
	}{
		{"the token's own client", app.ID, appSecret, true},
		{"the resource server named in aud", resource.ID, resourceSecret, true},
		{"another client", stranger.ID, strangerSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.introspect(at, tt.id, tt.secret)
			if got.status != 200 || got.body["active"] != tt.active {
				t.Fatalf("introspect = %d %s, want active=%v", got.status, got.raw, tt.active)
			}
			if !tt.active && got.raw != `{"active":false}` {
				t.Errorf("a hidden token revealed more than active=false: %s", got.raw)
			}
		})
	}
}
