package authz

import (
	"encoding/json"
	"errors"
	"testing"
)

const testECJWK = `{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

const testECPrivateJWK = `{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}`

func TestClientRegistrationValidation(t *testing.T) {
	code := []string{GrantAuthorizationCode, GrantRefreshToken}
	web := []string{"https://app.example/cb"}
	tests := []struct {
		name string
		spec ClientSpec
		ok   bool
	}{
		{"web app", ClientSpec{Name: "Web", GrantTypes: code, Scopes: []string{"mail.read"}, RedirectURIs: web}, true},
		{"service", ClientSpec{Name: "Svc", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"mail.send"}, AuthMethod: AuthMethodSecretPost}, true},
		{"loopback http", ClientSpec{Name: "CLI", GrantTypes: code, RedirectURIs: []string{"http://127.0.0.1:8765/cb"}, AuthMethod: AuthMethodNone}, true},
		{"localhost http", ClientSpec{Name: "CLI", GrantTypes: code, RedirectURIs: []string{"http://localhost:8765/cb"}, AuthMethod: AuthMethodNone}, true},
		{"private_key_jwt inline", ClientSpec{Name: "K", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey, JWKS: json.RawMessage(`{"keys":[` + testECJWK + `]}`)}, true},
		{"private_key_jwt uri", ClientSpec{Name: "K", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey, JWKSURI: "https://app.example/jwks.json"}, true},
		{"jwt bearer", ClientSpec{Name: "B", GrantTypes: []string{GrantJWTBearer}}, true},

		{"no name", ClientSpec{GrantTypes: code, RedirectURIs: web}, false},
		{"no grant", ClientSpec{Name: "X"}, false},
		{"implicit grant", ClientSpec{Name: "X", GrantTypes: []string{"implicit"}, RedirectURIs: web}, false},
		{"password grant", ClientSpec{Name: "X", GrantTypes: []string{"password"}}, false},
		{"refresh without code", ClientSpec{Name: "X", GrantTypes: []string{GrantRefreshToken}}, false},
		{"unknown scope", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: web, Scopes: []string{"mail.admin"}}, false},
		{"code without redirect", ClientSpec{Name: "X", GrantTypes: code}, false},
		{"relative redirect", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: []string{"/cb"}}, false},
		{"http redirect", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: []string{"http://app.example/cb"}}, false},
		{"fragment", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: []string{"https://app.example/cb#x"}}, false},
		{"custom scheme", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: []string{"com.example.app:/cb"}}, false},
		{"redirect for service", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, RedirectURIs: web}, false},
		{"unknown auth method", ClientSpec{Name: "X", GrantTypes: code, RedirectURIs: web, AuthMethod: "client_secret_jwt"}, false},
		{"none with client credentials", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodNone}, false},
		{"private_key_jwt without keys", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey}, false},
		{"private_key_jwt with private key", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey, JWKS: json.RawMessage(`{"keys":[` + testECPrivateJWK + `]}`)}, false},
		{"private_key_jwt with both", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey, JWKSURI: "https://a.example/j", JWKS: json.RawMessage(`{"keys":[` + testECJWK + `]}`)}, false},
		{"private_key_jwt http jwks_uri", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, AuthMethod: AuthMethodPrivateKey, JWKSURI: "http://a.example/j"}, false},
		{"secret client with keys", ClientSpec{Name: "X", GrantTypes: []string{GrantClientCredentials}, JWKSURI: "https://a.example/j"}, false},
	}
	s := &Server{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.clientFromSpec(tt.spec)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if err := c.Prepare(); err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidClientSpec) {
				t.Fatalf("err = %v, want ErrInvalidClientSpec", err)
			}
		})
	}
}

func TestInlineJWKSKeysAreMarkedForSignatures(t *testing.T) {
	c, err := (&Server{}).clientFromSpec(ClientSpec{Name: "K", GrantTypes: []string{GrantClientCredentials},
		AuthMethod: AuthMethodPrivateKey, JWKS: json.RawMessage(`{"keys":[` + testECJWK + `]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	if k := c.GetJSONWebKeys().Key("k1"); len(k) != 1 || k[0].Use != "sig" {
		t.Fatalf("key = %+v, want use=sig", k)
	}
}
