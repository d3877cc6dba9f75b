package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mandated/mandated/audit"
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
	// Recorded first: if the record fails, no consent and no code.
	if err := s.recordConsent(ctx, audit.ActionConsentGranted, subject, clientID, "scope="+strings.Join(dedupe(scopes), " ")); err != nil {
		return err
	}
	if err := s.store.SaveConsent(ctx, c); err != nil {
		return fmt.Errorf("save consent of %s for %s: %w", subject, clientID, err)
	}
	return nil
}

// WithdrawConsent forgets the consent and ends every grant subject gave
// clientID: tokens and unused codes become inactive at once, everywhere.
func (s *Server) WithdrawConsent(ctx context.Context, subject, clientID string) error {
	// Recorded first: if the record fails, nothing is withdrawn and the
	// person sees an error.
	if err := s.recordConsent(ctx, audit.ActionConsentWithdrawn, subject, clientID, ""); err != nil {
		return err
	}
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

// recordConsent records a consent event with the person as actor.
func (s *Server) recordConsent(ctx context.Context, action audit.Action, subject, clientID, reason string) error {
	actor, ok := subjectActor(subject)
	if !ok {
		return fmt.Errorf("record %s: subject %q is not a person", action, subject)
	}
	if len(reason) > audit.MaxReasonLen {
		reason = reason[:audit.MaxReasonLen]
	}
	e := audit.Event{Actor: actor, ClientID: clientID, Action: action, Outcome: audit.OutcomeSuccess, Reason: reason}
	if _, err := s.rec.Record(ctx, e); err != nil {
		return fmt.Errorf("consent of %s for %s: %w", subject, clientID, err)
	}
	return nil
}
