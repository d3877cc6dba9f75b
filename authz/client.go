package authz

import (
	"encoding/json"
	"fmt"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Client authentication methods (RFC 7591 §2 names).
const (
	AuthMethodSecretBasic = "client_secret_basic"
	AuthMethodSecretPost  = "client_secret_post"
	AuthMethodPrivateKey  = "private_key_jwt"
	AuthMethodNone        = "none"
)

// Client is a registered OAuth2 client. It implements fosite.Client and
// fosite.OpenIDConnectClient (the latter is what fosite's private_key_jwt
// authentication reads).
type Client struct {
	ID            string
	Name          string
	SecretHash    []byte // SHA-256 of the secret; empty for none and private_key_jwt
	RedirectURIs  []string
	GrantTypes    []string
	ResponseTypes []string
	Scopes        []string
	Audience      []string
	AuthMethod    string
	JWKSURI       string
	JWKS          json.RawMessage // public JWK Set (RFC 7517) for private_key_jwt, as registered
	// AuthSigningAlg is the JWS algorithm private_key_jwt assertions must use
	// (token_endpoint_auth_signing_alg, RFC 7591); ES256 when empty.
	AuthSigningAlg string
	CreatedAt      time.Time

	jwks *josev3.JSONWebKeySet // parsed JWKS, at fosite's go-jose v3 boundary
}

// Prepare parses the registered JWKS so GetJSONWebKeys can hand it to fosite.
// Stores call it on every client they load.
func (c *Client) Prepare() error {
	c.jwks = nil
	if len(c.JWKS) == 0 || string(c.JWKS) == "null" {
		return nil
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &set); err != nil {
		return fmt.Errorf("client %s: parse jwks: %w", c.ID, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return fmt.Errorf("client %s: jwks holds a private key", c.ID)
		}
	}
	c.jwks = &set
	return nil
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

func (c *Client) GetID() string                   { return c.ID }
func (c *Client) GetHashedSecret() []byte         { return c.SecretHash }
func (c *Client) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return c.ResponseTypes
}
func (c *Client) GetScopes() fosite.Arguments   { return c.Scopes }
func (c *Client) IsPublic() bool                { return c.AuthMethod == AuthMethodNone }
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

func (c *Client) GetRequestURIs() []string                 { return nil }
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet    { return c.jwks }
func (c *Client) GetJSONWebKeysURI() string                { return c.JWKSURI }
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }
func (c *Client) GetTokenEndpointAuthMethod() string       { return c.AuthMethod }
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.AuthSigningAlg == "" {
		return "ES256"
	}
	return c.AuthSigningAlg
}
