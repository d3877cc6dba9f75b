// Package authz is mandated's OAuth2 authorization server: fosite composed
// with our access-token strategy (RFC 9068 JWTs signed by rotating ES256
// keys), client registration, consent, and introspection answered from
// memory. It speaks net/http; package api mounts it on echo.
package authz

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"github.com/mandated/mandated/mandate"
)

// Server is the authorization server.
type Server struct {
	cfg      Config
	provider *fosite.Fosite
	store    *cachedStorage
	strategy *TokenStrategy
	keys     *KeyManager
	bus      RevocationBus
	clock    mandate.Clock
	log      *slog.Logger
	rec      Recorder
	// subjectCheck is consulted before tokens are issued for a subject (subjects.go).
	subjectCheck SubjectCheck
	// device is the RFC 8628 device flow and mandate tokens; nil when off (device.go).
	device *deviceFlow
	// tokenHook is told of each mandate's tokens (mandate_tokens.go); nil: nobody.
	tokenHook TokenHook
}

// Option adjusts New.
type Option func(*options)

type options struct {
	clock      mandate.Clock
	log        *slog.Logger
	bus        RevocationBus
	jwksClient *http.Client
	maxCached  int
	recorder   Recorder
	// subjectCheck: see WithSubjectCheck.
	subjectCheck SubjectCheck
	// mandates, devices and staffDir: see WithMandates, WithDeviceStore, WithStaffDirectory.
	mandates Mandates
	devices  DeviceStore
	staffDir StaffDirectory
	// tokenHook: see WithTokenHook.
	tokenHook TokenHook
}

// WithClock sets the clock (system clock by default).
func WithClock(c mandate.Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets the logger (slog.Default() by default).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRevocationBus sets the bus revocations travel on (a LocalBus by default;
// replicas need a shared one).
func WithRevocationBus(b RevocationBus) Option { return func(o *options) { o.bus = b } }

// WithJWKSHTTPClient sets the HTTP client that fetches clients' jwks_uri.
func WithJWKSHTTPClient(c *http.Client) Option { return func(o *options) { o.jwksClient = c } }

// fositeConfig lets private_key_jwt assertions name any of our endpoints or
// the issuer as audience (fosite v0.49 accepts only its single TokenURL).
type fositeConfig struct {
	*fosite.Config
	tokenURLs []string
}

func (c *fositeConfig) GetTokenURLs(context.Context) []string { return c.tokenURLs }

// New composes the authorization server.
func New(cfg Config, st Storage, keys *KeyManager, opts ...Option) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if st == nil || keys == nil {
		return nil, errors.New("authz: storage and key manager are required")
	}
	o := options{clock: mandate.SystemClock{}, log: slog.Default(), maxCached: 100_000}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bus == nil {
		o.bus = NewLocalBus()
	}
	if o.recorder == nil {
		o.recorder = NopRecorder{}
	}
	if (o.mandates == nil) != (o.devices == nil) {
		return nil, errors.New("authz: the device flow needs both WithMandates and WithDeviceStore (or neither)")
	}
	secret, err := hkdf.Key(sha256.New, cfg.HMACSecret, nil, "mandated oauth2 hmac tokens", 32)
	if err != nil {
		return nil, fmt.Errorf("authz: derive HMAC secret: %w", err)
	}
	fc := &fositeConfig{
		Config: &fosite.Config{
			AccessTokenLifespan:            cfg.AccessTokenLifetime,
			RefreshTokenLifespan:           cfg.RefreshTokenLifetime,
			AuthorizeCodeLifespan:          cfg.AuthorizeCodeLifetime,
			GlobalSecret:                   secret,
			ScopeStrategy:                  fosite.ExactScopeStrategy,
			AudienceMatchingStrategy:       fosite.ExactAudienceMatchingStrategy,
			EnforcePKCE:                    true,
			EnablePKCEPlainChallengeMethod: false,
			RefreshTokenScopes:             []string{}, // every code exchange gets a refresh token
			TokenURL:                       cfg.URL(PathToken),
			AccessTokenIssuer:              cfg.Issuer,
			IDTokenIssuer:                  cfg.Issuer,
			ClientSecretsHasher:            SecretHasher{},
			RedirectSecureChecker:          fosite.IsRedirectURISecureStrict,
			JWKSFetcherStrategy:            fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(jwksClient(o.jwksClient))),
			GrantTypeJWTBearerMaxDuration:  time.Hour,
			SendDebugMessagesToClients:     false,
		},
		tokenURLs: []string{cfg.URL(PathToken), cfg.Issuer, cfg.URL(PathIntrospect), cfg.URL(PathRevoke), cfg.URL(PathDeviceAuthorization)},
	}
	s := &Server{cfg: cfg, keys: keys, bus: o.bus, clock: o.clock, log: o.log, rec: o.recorder, subjectCheck: o.subjectCheck,
		tokenHook: o.tokenHook}
	if o.mandates != nil {
		if s.device, err = newDeviceFlow(cfg, o.mandates, o.devices, o.staffDir); err != nil {
			return nil, err
		}
	}
	s.store = &cachedStorage{
		Storage: st, tokens: newTokenCache(o.maxCached), clients: newClientCache(5 * time.Minute),
		bus: o.bus, clock: o.clock, log: o.log,
	}
	o.bus.Subscribe(s.store.onRevocation)
	if s.device != nil {
		s.device.cache = newMandateCache(o.maxCached)
		o.bus.Subscribe(s.device.onBusMessage)
	}
	s.strategy = &TokenStrategy{
		HMACSHAStrategy: compose.NewOAuth2HMACStrategy(fc),
		Keys:            keys, Issuer: cfg.Issuer, DefaultAudience: cfg.DefaultAudience, MandateAudience: cfg.MandateAudience,
		AccessLifetime: cfg.AccessTokenLifetime, Clock: o.clock,
	}
	s.provider = fosite.NewOAuth2Provider(s.store, fc)
	fc.ClientAuthenticationStrategy = s.authenticateClient
	// compose.Compose takes a *fosite.Config; we need our fositeConfig, so we
	// run its loop here with the same factories.
	for _, factory := range []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.RFC7523AssertionGrantFactory,
		compose.OAuth2PKCEFactory, // after the explicit handler: it needs the code
		compose.OAuth2TokenRevocationFactory,
	} {
		h := factory(fc, s.store, s.strategy)
		if ah, ok := h.(fosite.AuthorizeEndpointHandler); ok {
			fc.AuthorizeEndpointHandlers.Append(ah)
		}
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			fc.TokenEndpointHandlers.Append(th)
		}
		if rh, ok := h.(fosite.RevocationHandler); ok {
			fc.RevocationHandlers.Append(rh)
		}
	}
	if s.device != nil {
		fc.TokenEndpointHandlers.Append(&deviceGrantHandler{s: s})
	}
	fc.TokenIntrospectionHandlers.Append(&introspector{
		strategy: s.strategy, store: s.store, tokens: s.store.tokens, clock: o.clock, scopes: fosite.ExactScopeStrategy,
		mandateLive: s.mandateLive,
	})
	return s, nil
}

func jwksClient(c *http.Client) *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.RetryMax = 1
	rc.Logger = nil
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	rc.HTTPClient = c
	return rc
}

// authenticateClient is fosite's default client authentication, with a
// replayed assertion jti reported as invalid_client (RFC 7523 §3) rather than
// fosite's non-standard "jti_known".
//
// It also answers invalid_client (not invalid_request) when no client
// authentication is included (RFC 6749 §5.2, RFC 7662 §2.1), and when the
// assertion fails JWT validation with an error fosite passes through raw.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if _, _, basic := r.BasicAuth(); !basic && form.Get("client_id") == "" && form.Get("client_assertion") == "" {
		return nil, fosite.ErrInvalidClient.WithHint("No client authentication was included.")
	}
	c, err := s.provider.DefaultClientAuthenticationStrategy(ctx, r, form)
	if err == nil {
		noteClient(ctx, c.GetID())
		return c, nil
	}
	var rfc *fosite.RFC6749Error
	switch {
	case errors.Is(err, fosite.ErrJTIKnown):
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion was already used.").WithWrap(err)
	case !errors.As(err, &rfc):
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion is invalid.").WithWrap(err).WithDebug(err.Error())
	}
	return nil, err
}

// authenticate authenticates the caller of introspection or revocation as a
// confidential client.
func (s *Server) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if c.IsPublic() {
		return nil, fosite.ErrInvalidClient.WithHint("Public clients cannot use this endpoint.")
	}
	return c, nil
}

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Keys returns the key manager.
func (s *Server) Keys() *KeyManager { return s.keys }

// Run keeps the server's background work going until ctx ends: key reloads,
// sweeping expired entries from the token cache, and forgetting expired
// device authorizations.
func (s *Server) Run(ctx context.Context) {
	go s.keys.Run(ctx)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.store.tokens.sweep(s.clock.Now())
			s.pruneDevices(ctx)
		}
	}
}
