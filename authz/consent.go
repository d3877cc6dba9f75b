package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mandated/mandated/mandate"
)

// ConsentCovers reports whether subject already allowed clientID every one of
// scopes, so no new click is needed.
func (s *Server) ConsentCovers(ctx context.Context, subject, clientID string, scopes []string) (bool, error) {
	c, err := s.store.GetConsent(ctx, subject, clientID)
	if errors.Is(err, mandate.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("consent of %s for %s: %w", subject, clientID, err)
	}
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return false, nil
		}
	}
	return true, nil
}

// RememberConsent records that subject allowed clientID scopes, added to what
// they allowed before.
func (s *Server) RememberConsent(ctx context.Context, subject, clientID string, scopes []string) error {
	all := dedupe(scopes)
	prev, err := s.store.GetConsent(ctx, subject, clientID)
	switch {
	case err == nil:
		all = dedupe(append(prev.Scopes, scopes...))
	case !errors.Is(err, mandate.ErrNotFound):
		return fmt.Errorf("consent of %s for %s: %w", subject, clientID, err)
	}
	c := Consent{Subject: subject, ClientID: clientID, Scopes: all, GrantedAt: s.clock.Now()}
	if err := s.store.SaveConsent(ctx, c); err != nil {
		return fmt.Errorf("save consent of %s for %s: %w", subject, clientID, err)
	}
	return nil
}

// WithdrawConsent forgets the consent and ends every grant subject gave
// clientID: tokens and unused codes become inactive at once, everywhere.
func (s *Server) WithdrawConsent(ctx context.Context, subject, clientID string) error {
	if err := s.store.DeleteConsent(ctx, subject, clientID); err != nil && !errors.Is(err, mandate.ErrNotFound) {
		return fmt.Errorf("withdraw consent of %s for %s: %w", subject, clientID, err)
	}
	ids, err := s.store.RevokeGrantsOf(ctx, subject, clientID)
	if err != nil {
		return fmt.Errorf("revoke grants of %s for %s: %w", subject, clientID, err)
	}
	s.store.publish(ctx, ids...)
	return nil
}

// ListConsents returns subject's consents, newest first.
func (s *Server) ListConsents(ctx context.Context, subject string) ([]Consent, error) {
	return s.store.ListConsents(ctx, subject)
}
