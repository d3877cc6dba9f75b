package authz

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// TrustSpec asks to trust an issuer's signed assertions for the RFC 7523
// §2.1 JWT bearer grant.
type TrustSpec struct {
	Issuer     string
	Subject    string // the one subject the issuer may assert; empty with AnySubject
	AnySubject bool
	JWK        json.RawMessage // the issuer's public key (JWK); its kid names it
	Scopes     []string
	ExpiresAt  time.Time // one year from now when zero
}

// trustAlgorithms are the signature algorithms accepted on trusted keys.
var trustAlgorithms = map[string]bool{"ES256": true, "ES384": true, "EdDSA": true, "RS256": true, "PS256": true}

// RegisterTrust validates spec and stores the trust relationship.
func (s *Server) RegisterTrust(ctx context.Context, spec TrustSpec) (Trust, error) {
	if spec.Issuer == "" {
		return Trust{}, invalidSpec("the issuer is required")
	}
	if spec.AnySubject == (spec.Subject != "") {
		return Trust{}, invalidSpec("give either one subject or any subject")
	}
	if len(spec.Scopes) == 0 {
		return Trust{}, invalidSpec("at least one scope is required")
	}
	if err := mandate.ValidateScopes(spec.Scopes); err != nil {
		return Trust{}, invalidSpec("%v", err)
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(spec.JWK); err != nil {
		return Trust{}, invalidSpec("the key is not a JWK: %v", err)
	}
	if !key.Valid() || !key.IsPublic() {
		return Trust{}, invalidSpec("the key must be a valid public JWK")
	}
	if key.Algorithm != "" && !trustAlgorithms[key.Algorithm] {
		return Trust{}, invalidSpec("key algorithm %q is not accepted", key.Algorithm)
	}
	if key.KeyID == "" {
		thumb, err := key.Thumbprint(crypto.SHA256)
		if err != nil {
			return Trust{}, invalidSpec("cannot compute the key's thumbprint: %v", err)
		}
		key.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	}
	key.Use = "sig" // fosite ignores keys without it
	raw, err := key.MarshalJSON()
	if err != nil {
		return Trust{}, fmt.Errorf("encode trusted key: %w", err)
	}
	now := s.clock.Now()
	if spec.ExpiresAt.IsZero() {
		spec.ExpiresAt = now.AddDate(1, 0, 0)
	}
	if !spec.ExpiresAt.After(now) {
		return Trust{}, invalidSpec("the expiry must be in the future")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Trust{}, fmt.Errorf("trust id: %w", err)
	}
	t := Trust{
		ID: base64.RawURLEncoding.EncodeToString(id[:]), Issuer: spec.Issuer, Subject: spec.Subject,
		AllowAnySubject: spec.AnySubject, KeyID: key.KeyID, PublicJWK: raw, Scopes: spec.Scopes,
		ExpiresAt: spec.ExpiresAt.UTC(), CreatedAt: now.UTC(),
	}
	if err := s.store.CreateTrust(ctx, t); err != nil {
		return Trust{}, fmt.Errorf("store trust: %w", err)
	}
	// Recorded once it exists; if the record fails, the trust goes again.
	if err := s.recordAdmin(ctx, audit.ActionTrustAdded, "", "trust "+t.ID); err != nil {
		if derr := s.store.DeleteTrust(ctx, t.ID); derr != nil {
			return Trust{}, fmt.Errorf("add trust: %w (and removing it failed: %v)", err, derr)
		}
		return Trust{}, fmt.Errorf("add trust: %w", err)
	}
	return t, nil
}

// ListTrusts returns every trust relationship.
func (s *Server) ListTrusts(ctx context.Context) ([]Trust, error) {
	return s.store.ListTrusts(ctx)
}

// DeleteTrust ends a trust relationship; tokens already issued under it run
// to their (short) expiry.
func (s *Server) DeleteTrust(ctx context.Context, id string) error {
	trusts, err := s.store.ListTrusts(ctx)
	if err != nil {
		return fmt.Errorf("delete trust %s: %w", id, err)
	}
	if !slices.ContainsFunc(trusts, func(t Trust) bool { return t.ID == id }) {
		return fmt.Errorf("delete trust %s: %w", id, mandate.ErrNotFound)
	}
	// Recorded first: if the record fails, the trust stays.
	if err := s.recordAdmin(ctx, audit.ActionTrustDeleted, "", "trust "+id); err != nil {
		return fmt.Errorf("delete trust %s: %w", id, err)
	}
	return s.store.DeleteTrust(ctx, id)
}
