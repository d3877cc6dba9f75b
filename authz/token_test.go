package authz_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newKeys(t *testing.T, st *store.Store, clk *clock) *authz.KeyManager {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	km := newKeysWith(t, st, clk, key)
	sealerKeys[km] = key
	return km
}

var sealerKeys = map[*authz.KeyManager][]byte{}

func sealerKey(t *testing.T, km *authz.KeyManager) []byte { return sealerKeys[km] }

func newKeysWith(t *testing.T, st *store.Store, clk *clock, key []byte) *authz.KeyManager {
	t.Helper()
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	km, err := authz.NewKeyManager(context.Background(), authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return km
}

func newStrategy(t *testing.T) (*authz.TokenStrategy, *authz.KeyManager, *clock) {
	t.Helper()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	km := newKeys(t, storetest.OpenSQLite(t), clk)
	return &authz.TokenStrategy{Keys: km, Issuer: "https://as.example", DefaultAudience: []string{"https://as.example"},
		AccessLifetime: 5 * time.Minute, Clock: clk}, km, clk
}

func request(clk *clock, subject string, scopes, aud []string) *fosite.Request {
	r := fosite.NewRequest()
	r.RequestedAt = clk.Now()
	r.Client = &authz.Client{ID: "app"}
	r.Session = &fosite.DefaultSession{Subject: subject}
	r.Session.SetExpiresAt(fosite.AccessToken, clk.Now().Add(5*time.Minute))
	for _, s := range scopes {
		r.GrantScope(s)
	}
	for _, a := range aud {
		r.GrantAudience(a)
	}
	return r
}

func TestAccessTokenClaims(t *testing.T) {
	s, km, clk := newStrategy(t)
	ctx := context.Background()
	tests := []struct {
		name             string
		subject          string
		scopes, aud      []string
		wantSub, wantScp string
		wantAud          []string
	}{
		{"person", "staff:alice", []string{"mail.read", "mail.send"}, nil, "staff:alice", "mail.read mail.send", []string{"https://as.example"}},
		{"client credentials", "", []string{"mail.read"}, nil, "app", "mail.read", []string{"https://as.example"}},
		{"granted audience", "staff:bob", nil, []string{"https://mail.example"}, "staff:bob", "", []string{"https://mail.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(clk, tt.subject, tt.scopes, tt.aud)
			token, sig, err := s.GenerateAccessToken(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if parts := strings.Split(token, "."); len(parts) != 3 || parts[2] != sig || s.AccessTokenSignature(ctx, token) != sig {
				t.Fatalf("signature %q is not the third segment of %q", sig, token)
			}
			parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			_, kid, _ := km.Signer()
			if h := parsed.Headers[0]; h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.KeyID != kid || h.Algorithm != "ES256" {
				t.Errorf("header = %+v", h)
			}
			c, err := s.ParseAccessToken(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != tt.wantSub || c.Scope != tt.wantScp || c.ClientID != "app" || c.Issuer != "https://as.example" || c.ID == "" {
				t.Errorf("claims = %+v", c)
			}
			if strings.Join(c.Audience, " ") != strings.Join(tt.wantAud, " ") {
				t.Errorf("aud = %v, want %v", c.Audience, tt.wantAud)
			}
			if !c.Expiry.Time().Equal(clk.Now().Add(5*time.Minute)) || !c.IssuedAt.Time().Equal(clk.Now()) {
				t.Errorf("iat=%v exp=%v", c.IssuedAt.Time(), c.Expiry.Time())
			}
			if req.Session.(*fosite.DefaultSession).Extra["jti"] != c.ID {
				t.Error("jti not recorded in the session")
			}
		})
	}
}

func TestAccessTokenValidation(t *testing.T) {
	s, km, clk := newStrategy(t)
	ctx := context.Background()
	token, _, err := s.GenerateAccessToken(ctx, request(clk, "staff:alice", []string{"mail.read"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := newStrategy(t) // same issuer, keys unknown here
	foreign, _, _ := other.GenerateAccessToken(ctx, request(clk, "staff:alice", nil, nil))
	jwtSigner, err := authz.SignerWithType(km, "JWT")
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := jwt.Signed(jwtSigner).Claims(jwt.Claims{Issuer: "https://as.example", Expiry: jwt.NewNumericDate(clk.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(clk.Now())}).Serialize()
	parts := strings.Split(token, ".")

	tests := []struct {
		name    string
		token   string
		advance time.Duration
		wantErr error
	}{
		{"valid", token, 0, nil},
		{"still valid just before exp", token, 5*time.Minute - time.Second, nil},
		{"expired", token, 5 * time.Minute, fosite.ErrTokenExpired},
		{"tampered payload", parts[0] + "." + parts[1] + "x." + parts[2], 0, fosite.ErrTokenSignatureMismatch},
		{"tampered signature", parts[0] + "." + parts[1] + "." + parts[2][:10] + "AAAA" + parts[2][14:], 0, fosite.ErrTokenSignatureMismatch},
		{"signed by an unknown key", foreign, 0, fosite.ErrTokenSignatureMismatch},
		{"wrong typ", idToken, 0, fosite.ErrTokenSignatureMismatch},
		{"not a JWT", "ory_at_abc", 0, fosite.ErrTokenSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			defer clk.Advance(-tt.advance)
			err := s.ValidateAccessToken(ctx, nil, tt.token)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRotatedKeysStillVerify(t *testing.T) {
	s, km, clk := newStrategy(t)
	ctx := context.Background()
	old, _, _ := s.GenerateAccessToken(ctx, request(clk, "staff:alice", nil, nil))
	if err := km.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, _, _ := s.GenerateAccessToken(ctx, request(clk, "staff:alice", nil, nil))
	for _, tok := range []string{old, fresh} {
		if err := s.ValidateAccessToken(ctx, nil, tok); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
}
