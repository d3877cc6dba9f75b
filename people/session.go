package people

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// StartSession opens a browser session for p and returns the cookie value
// (32 random bytes; only their SHA-256 is stored).
func (s *Service) StartSession(ctx context.Context, p Principal) (string, Session, error) {
	cookie, hash, err := newToken()
	if err != nil {
		return "", Session{}, err
	}
	csrf, _, err := newToken()
	if err != nil {
		return "", Session{}, err
	}
	now := s.clock.Now()
	sess := Session{IDHash: hash, Subject: p.Subject, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return "", Session{}, fmt.Errorf("create session for %s: %w", p.Subject, err)
	}
	return cookie, sess, nil
}

// LookupSession finds the live session of a cookie value and who it belongs
// to. ErrNoSession for unknown or expired sessions and for accounts that are
// no longer active (their session is ended).
func (s *Service) LookupSession(ctx context.Context, cookie string) (Principal, Session, error) {
	if cookie == "" || len(cookie) > 100 {
		return Principal{}, Session{}, ErrNoSession
	}
	hash := hashToken(cookie)
	sess, err := s.store.GetSession(ctx, hash, s.clock.Now())
	if errors.Is(err, mandate.ErrNotFound) {
		return Principal{}, Session{}, ErrNoSession
	}
	if err != nil {
		return Principal{}, Session{}, fmt.Errorf("load session: %w", err)
	}
	p, err := s.principalOf(ctx, sess.Subject)
	if errors.Is(err, ErrNoSession) {
		if err := s.store.DeleteSession(ctx, hash); err != nil && !errors.Is(err, mandate.ErrNotFound) {
			s.log.WarnContext(ctx, "end session of unknown or inactive account", "err", err)
		}
	}
	if err != nil {
		return Principal{}, Session{}, err
	}
	return p, sess, nil
}

// principalOf names who a session's subject is: an active staff member, or
// a holder (when Config.Holders is set). ErrNoSession for anyone else.
func (s *Service) principalOf(ctx context.Context, subject string) (Principal, error) {
	kind, id, ok := ParseSubject(subject)
	if !ok || id == "" {
		return Principal{}, ErrNoSession
	}
	switch kind {
	case "staff":
		staff, err := s.store.GetStaff(ctx, id)
		if errors.Is(err, mandate.ErrNotFound) {
			return Principal{}, ErrNoSession
		}
		if err != nil {
			return Principal{}, fmt.Errorf("load staff %s: %w", id, err)
		}
		if staff.Status != StaffActive {
			return Principal{}, ErrNoSession
		}
		return staffPrincipal(staff), nil
	case "holder":
		if s.cfg.Holders == nil {
			return Principal{}, ErrNoSession
		}
		h, err := s.cfg.Holders.GetHolder(ctx, id)
		if errors.Is(err, mandate.ErrNotFound) {
			return Principal{}, ErrNoSession
		}
		if err != nil {
			return Principal{}, fmt.Errorf("load holder %s: %w", id, err)
		}
		return HolderPrincipal(h), nil
	}
	return Principal{}, ErrNoSession
}

// HolderPrincipal is the principal of a signed-in holder.
func HolderPrincipal(h Holder) Principal {
	return Principal{Subject: HolderSubject(h.ID), Kind: "holder", ID: h.ID, DisplayName: h.DisplayName, Email: h.Mailbox}
}

// EndSession ends the session of a cookie value; ending an unknown session is
// not an error.
func (s *Service) EndSession(ctx context.Context, cookie string) error {
	if cookie == "" || len(cookie) > 100 {
		return nil
	}
	hash := hashToken(cookie)
	sess, err := s.store.GetSession(ctx, hash, s.clock.Now())
	if errors.Is(err, mandate.ErrNotFound) {
		return nil // unknown or expired: nothing to end, nothing to record
	}
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	if err := s.recordEnded(ctx, sess.Subject, "signed out"); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	err = s.store.DeleteSession(ctx, hash)
	if err != nil && !errors.Is(err, mandate.ErrNotFound) {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndAllSessions ends every session of subject and returns how many ended.
func (s *Service) EndAllSessions(ctx context.Context, subject string) (int, error) {
	if err := s.recordEnded(ctx, subject, "all sessions ended"); err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", subject, err)
	}
	n, err := s.store.DeleteSessionsOf(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", subject, err)
	}
	return n, nil
}

// recordEnded records the end of a staff member's session(s), before they end.
func (s *Service) recordEnded(ctx context.Context, subject, reason string) error {
	kind, id, ok := ParseSubject(subject)
	if !ok || kind != "staff" || id == "" {
		return nil // not a person we know how to name; nothing personal goes in clear
	}
	return s.record(ctx, audit.Event{
		Actor: staffActor(id, ""), Action: audit.ActionSessionEnded, Outcome: audit.OutcomeSuccess, Reason: reason,
	})
}
