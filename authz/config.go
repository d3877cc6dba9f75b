package authz

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Endpoint paths, relative to the issuer URL.
const (
	PathAuthorize  = "/oauth2/authorize"
	PathToken      = "/oauth2/token"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
	PathJWKS       = "/oauth2/jwks.json"
	PathMetadata   = "/.well-known/oauth-authorization-server"
)

// Default lifetimes and limits.
const (
	DefaultAccessTokenLifetime   = 5 * time.Minute
	DefaultRefreshTokenLifetime  = 24 * time.Hour
	DefaultAuthorizeCodeLifetime = time.Minute
	DefaultMaxBodyBytes          = 64 << 10
)

// Config is the authorization server's configuration.
type Config struct {
	// Issuer is the server's issuer identifier (RFC 8414): an https URL (http
	// only on loopback) with no query or fragment. Every endpoint URL derives
	// from it.
	Issuer string
	// HMACSecret (32 bytes or more) keys the HMAC that authorization codes and
	// refresh tokens carry. Changing it invalidates every code and refresh token.
	HMACSecret []byte
	// DefaultAudience is the `aud` of access tokens granted no audience; the
	// issuer when empty.
	DefaultAudience []string
	// MandateAudience are the client ids of the resource servers (mail
	// servers, gateways) every mandate token is for, besides the audience
	// registered for the client that gets it: they may introspect mandate
	// tokens whatever client asked (the console's included).
	MandateAudience []string

	AccessTokenLifetime   time.Duration // 5 min when zero
	RefreshTokenLifetime  time.Duration // 24 h when zero
	AuthorizeCodeLifetime time.Duration // 1 min when zero
	// MaxBodyBytes bounds OAuth request bodies; 64 KiB when zero.
	MaxBodyBytes int64
}

func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		return c, errors.New("authz: issuer is required")
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return c, fmt.Errorf("authz: issuer %q must be an absolute URL without query or fragment", c.Issuer)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return c, fmt.Errorf("authz: issuer %q must use https (http only on loopback)", c.Issuer)
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if len(c.HMACSecret) < 32 {
		return c, errors.New("authz: HMAC secret must be at least 32 bytes")
	}
	if len(c.DefaultAudience) == 0 {
		c.DefaultAudience = []string{c.Issuer}
	}
	if c.AccessTokenLifetime <= 0 {
		c.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if c.RefreshTokenLifetime <= 0 {
		c.RefreshTokenLifetime = DefaultRefreshTokenLifetime
	}
	if c.AuthorizeCodeLifetime <= 0 {
		c.AuthorizeCodeLifetime = DefaultAuthorizeCodeLifetime
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c, nil
}

// URL returns the absolute URL of an endpoint path.
func (c Config) URL(path string) string { return strings.TrimSuffix(c.Issuer, "/") + path }
