package authz

import (
	"context"
	"errors"
	"fmt"
)

// SubjectStore is what ending a person's access needs beyond Storage: every
// grant and consent of one subject, whatever the client. The gorm store
// implements it (store/offboard.go).
type SubjectStore interface {
	// RevokeSubjectGrants makes every access token, refresh token and unused
	// authorization code whose subject is subject inactive, and returns the
	// request IDs it touched.
	RevokeSubjectGrants(ctx context.Context, subject string) ([]string, error)
	// DeleteConsentsOf forgets every consent subject gave; returns how many.
	DeleteConsentsOf(ctx context.Context, subject string) (int, error)
}

// ErrNoSubjectStore: the storage cannot end a subject's access.
var ErrNoSubjectStore = errors.New("authz: the storage cannot end a person's access")

// EndAccessOf ends, at once, everything subject holds here: every grant
// (access tokens, refresh tokens, unused codes; whatever the client) and
// every remembered consent. The grants' request IDs are published on the
// revocation bus, one message per grant, so that every replica's
// introspection cache drops their tokens: from then on they introspect
// {"active": false} everywhere. It returns how many grants and consents
// ended. The caller records the event (staff.deactivated).
func (s *Server) EndAccessOf(ctx context.Context, subject string) (tokens, consents int, err error) {
	if subject == "" {
		return 0, 0, errors.New("authz: end access of an empty subject")
	}
	st, ok := s.store.Storage.(SubjectStore)
	if !ok {
		return 0, 0, ErrNoSubjectStore
	}
	// Consents first: no new silent grant can follow the revocation.
	consents, err = st.DeleteConsentsOf(ctx, subject)
	if err != nil {
		return 0, 0, fmt.Errorf("end consents of %s: %w", subject, err)
	}
	ids, err := st.RevokeSubjectGrants(ctx, subject)
	if err != nil {
		return 0, consents, fmt.Errorf("end grants of %s: %w", subject, err)
	}
	// publish evicts locally itself when the bus fails.
	s.store.publish(ctx, ids...)
	s.log.InfoContext(ctx, "access ended", "grants", len(ids), "consents", consents)
	return len(ids), consents, nil
}

// EndAccess is EndAccessOf as one count: it makes *Server a
// people.AccessEnder, which deactivation calls.
func (s *Server) EndAccess(ctx context.Context, subject string) (int, error) {
	t, c, err := s.EndAccessOf(ctx, subject)
	return t + c, err
}
