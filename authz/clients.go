package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// Grant types a client may register.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

var supportedGrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantJWTBearer, GrantTypeDeviceCode}

// ClientSpec is what an administrator registers.
type ClientSpec struct {
	Name         string
	GrantTypes   []string
	Scopes       []string
	RedirectURIs []string
	Audience     []string
	AuthMethod   string          // client_secret_basic when empty
	JWKSURI      string          // private_key_jwt: where the client publishes its keys
	JWKS         json.RawMessage // private_key_jwt: or the public keys inline
}

// ErrInvalidClientSpec wraps every registration refusal.
var ErrInvalidClientSpec = errors.New("invalid client registration")

func invalidSpec(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidClientSpec, fmt.Sprintf(format, args...))
}

// RegisterClient validates spec and stores a new client. For the secret
// methods it returns the secret, which is stored only as a hash and never
// shown again.
func (s *Server) RegisterClient(ctx context.Context, spec ClientSpec) (*Client, string, error) {
	c, err := s.clientFromSpec(spec)
	if err != nil {
		return nil, "", err
	}
	var secret string
	if c.AuthMethod == AuthMethodSecretBasic || c.AuthMethod == AuthMethodSecretPost {
		if secret, err = NewClientSecret(); err != nil {
			return nil, "", err
		}
		if c.SecretHash, err = (SecretHasher{}).Hash(ctx, []byte(secret)); err != nil {
			return nil, "", err
		}
	}
	if c.ID, err = randomID(); err != nil {
		return nil, "", fmt.Errorf("generate client id: %w", err)
	}
	c.CreatedAt = s.clock.Now()
	if err := c.Prepare(); err != nil {
		return nil, "", invalidSpec("%v", err)
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("register client %s: %w", c.Name, err)
	}
	// Recorded once it exists; if the record fails, the client goes again.
	if err := s.recordAdmin(ctx, audit.ActionClientRegistered, c.ID, "client "+c.ID); err != nil {
		if derr := s.store.DeleteClient(ctx, c.ID); derr != nil {
			return nil, "", fmt.Errorf("register client %s: %w (and removing it failed: %v)", c.Name, err, derr)
		}
		return nil, "", fmt.Errorf("register client %s: %w", c.Name, err)
	}
	return c, secret, nil
}

func (s *Server) clientFromSpec(spec ClientSpec) (*Client, error) {
	name := strings.TrimSpace(spec.Name)
	if name == "" || len(name) > 200 {
		return nil, invalidSpec("a name of 1 to 200 characters is required")
	}
	method := spec.AuthMethod
	if method == "" {
		method = AuthMethodSecretBasic
	}
	grants := dedupe(spec.GrantTypes)
	if len(grants) == 0 {
		return nil, invalidSpec("at least one grant type is required")
	}
	for _, g := range grants {
		if !slices.Contains(supportedGrantTypes, g) {
			return nil, invalidSpec("unsupported grant type %q", g)
		}
	}
	code := slices.Contains(grants, GrantAuthorizationCode)
	device := slices.Contains(grants, GrantTypeDeviceCode)
	if slices.Contains(grants, GrantRefreshToken) && !code && !device {
		return nil, invalidSpec("refresh_token needs authorization_code or %s", GrantTypeDeviceCode)
	}
	scopes := dedupe(spec.Scopes)
	if err := mandate.ValidateScopes(scopes); err != nil {
		return nil, invalidSpec("%v", err)
	}
	if (code || device) && slices.ContainsFunc(scopes, mandate.IsServiceScope) {
		return nil, invalidSpec("service scopes (audit.write) are for client_credentials only: register the resource server as a client of its own")
	}
	if code && len(spec.RedirectURIs) == 0 {
		return nil, invalidSpec("authorization_code needs at least one redirect URI")
	}
	if !code && len(spec.RedirectURIs) > 0 {
		return nil, invalidSpec("redirect URIs are only for the authorization_code grant")
	}
	for _, u := range spec.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, err
		}
	}
	c := &Client{
		Name: name, GrantTypes: grants, Scopes: scopes, RedirectURIs: dedupe(spec.RedirectURIs),
		Audience: dedupe(spec.Audience), AuthMethod: method,
	}
	if code {
		c.ResponseTypes = []string{"code"}
	}
	switch method {
	case AuthMethodSecretBasic, AuthMethodSecretPost:
		if spec.JWKSURI != "" || len(spec.JWKS) > 0 {
			return nil, invalidSpec("keys are only for private_key_jwt")
		}
	case AuthMethodNone:
		if slices.ContainsFunc(grants, func(g string) bool {
			return g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantTypeDeviceCode
		}) {
			return nil, invalidSpec("a public client (auth method none) may only use authorization_code (with PKCE), the device code grant and refresh_token")
		}
	case AuthMethodPrivateKey:
		if err := setClientKeys(c, spec); err != nil {
			return nil, err
		}
	default:
		return nil, invalidSpec("unsupported authentication method %q", method)
	}
	return c, nil
}

func setClientKeys(c *Client, spec ClientSpec) error {
	switch {
	case spec.JWKSURI != "" && len(spec.JWKS) > 0:
		return invalidSpec("give jwks_uri or jwks, not both")
	case spec.JWKSURI != "":
		u, err := url.Parse(spec.JWKSURI)
		if err != nil || u.Host == "" || u.Fragment != "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			return invalidSpec("jwks_uri must be an https URL")
		}
		c.JWKSURI = spec.JWKSURI
		return nil
	case len(spec.JWKS) > 0:
		var set josev3.JSONWebKeySet
		if err := json.Unmarshal(spec.JWKS, &set); err != nil {
			return invalidSpec("jwks is not a JWK Set: %v", err)
		}
		if len(set.Keys) == 0 {
			return invalidSpec("jwks holds no key")
		}
		for i := range set.Keys {
			k := &set.Keys[i]
			if !k.IsPublic() {
				return invalidSpec("jwks must hold public keys only")
			}
			switch k.Use {
			case "":
				k.Use = "sig" // fosite only considers keys marked for signatures
			case "sig":
			default:
				return invalidSpec("jwks key %q is not for signatures", k.KeyID)
			}
		}
		raw, err := json.Marshal(set)
		if err != nil {
			return invalidSpec("jwks: %v", err)
		}
		c.JWKS = raw
		return nil
	}
	return invalidSpec("private_key_jwt needs jwks_uri or jwks")
}

// validateRedirectURI: absolute, https (http only on loopback), no fragment.
func validateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return invalidSpec("redirect URI %q is not an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalidSpec("redirect URI %q has a fragment", raw)
	}
	if u.User != nil {
		return invalidSpec("redirect URI %q carries credentials", raw)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return invalidSpec("redirect URI %q must use https (http only on loopback)", raw)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		v = strings.TrimSpace(v)
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// ListClients returns every registered client.
func (s *Server) ListClients(ctx context.Context) ([]*Client, error) {
	return s.store.ListClients(ctx)
}

// DeleteClient removes a client with its tokens, codes and consents, and
// tells every cache (on every replica) to forget it.
func (s *Server) DeleteClient(ctx context.Context, id string) error {
	if _, err := s.store.GetClient(ctx, id); err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	// Recorded first: if the record fails, the client stays.
	if err := s.recordAdmin(ctx, audit.ActionClientDeleted, id, "client "+id); err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	if err := s.store.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	s.store.publish(ctx, clientMessagePrefix+id)
	return nil
}

// recordAdmin records an administration event done by the operator (the
// mandated CLI). Client ids are not personal data: they go in clear.
func (s *Server) recordAdmin(ctx context.Context, action audit.Action, clientID, target string) error {
	_, err := s.rec.Record(ctx, audit.Event{
		Actor: operator, ClientID: clientID, Action: action, Target: target, Outcome: audit.OutcomeSuccess,
	})
	return err
}
