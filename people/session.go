package people

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// DefaultSessionIdleTimeout ends a browser session nobody used for that
// long (Config.SessionIdleTimeout); the absolute lifetime (Config.SessionTTL)
// applies as well.
const DefaultSessionIdleTimeout = 30 * time.Minute

// touchEvery is how often, at most, a session's LastSeenAt is written: not on
// every request. The idle timeout is therefore exact to within this much.
const touchEvery = time.Minute

// Client is where a request comes from, as the HTTP adapter sees it: the IP
// address after the trusted-proxy rule and the User-Agent header.
type Client struct {
	IP        string
	UserAgent string
}

type clientKey struct{}

// WithClient returns ctx carrying the request's client; StartSession
// records it with the session (shown on the session list).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the client WithClient put in ctx (zero when none).
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// sessionToucher is implemented by stores that record when a session was
// last used (AccountStore); without it there is no last-seen time and the
// idle timeout counts from sign-in.
type sessionToucher interface {
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
}

// StartSession opens a browser session for p and returns the cookie value
// (32 random bytes; only their SHA-256 is stored). The client in ctx
// (WithClient), if any, is recorded with it.
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
	cl := ClientFrom(ctx)
	dev := ParseUserAgent(cl.UserAgent)
	sess := Session{
		IDHash: hash, Subject: p.Subject, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL),
		LastSeenAt: now, IP: cutTo(cl.IP, 64), Browser: dev.Browser, OS: dev.OS,
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return "", Session{}, fmt.Errorf("create session for %s: %w", p.Subject, err)
	}
	return cookie, sess, nil
}

// LookupSession finds the live session of a cookie value and who it belongs
// to. ErrNoSession for unknown or expired sessions, for sessions idle for
// longer than Config.SessionIdleTimeout and for accounts that are no longer
// active (those sessions are ended). It records, at most once a minute, that
// the session was used.
func (s *Service) LookupSession(ctx context.Context, cookie string) (Principal, Session, error) {
	if cookie == "" || len(cookie) > 100 {
		return Principal{}, Session{}, ErrNoSession
	}
	hash := hashToken(cookie)
	now := s.clock.Now()
	sess, err := s.store.GetSession(ctx, hash, now)
	if errors.Is(err, mandate.ErrNotFound) {
		return Principal{}, Session{}, ErrNoSession
	}
	if err != nil {
		return Principal{}, Session{}, fmt.Errorf("load session: %w", err)
	}
	if s.idle(sess, now) {
		s.endIdle(ctx, sess)
		return Principal{}, Session{}, ErrNoSession
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
	if t, ok := s.store.(sessionToucher); ok && now.Sub(sess.LastSeenAt) >= touchEvery {
		if err := t.TouchSession(ctx, hash, now); err != nil && !errors.Is(err, mandate.ErrNotFound) {
			s.log.WarnContext(ctx, "record session use", "err", err)
		} else {
			sess.LastSeenAt = now
		}
	}
	return p, sess, nil
}

// idle reports whether sess went unused for the idle timeout at now.
func (s *Service) idle(sess Session, now time.Time) bool {
	last := sess.LastSeenAt
	if last.IsZero() {
		last = sess.CreatedAt
	}
	return !now.Before(last.Add(s.cfg.SessionIdleTimeout))
}

// endIdle ends a session past its idle timeout, once its end is recorded (a
// lost record leaves the row, which stays refused as idle anyway).
func (s *Service) endIdle(ctx context.Context, sess Session) {
	if err := s.recordEnded(ctx, sess.Subject, "idle timeout"); err != nil {
		s.log.ErrorContext(ctx, "record the end of an idle session", "err", err)
		return
	}
	if err := s.store.DeleteSession(ctx, sess.IDHash); err != nil && !errors.Is(err, mandate.ErrNotFound) {
		s.log.WarnContext(ctx, "end idle session", "err", err)
	}
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
	return s.endAllSessions(ctx, subject, "all sessions ended")
}

func (s *Service) endAllSessions(ctx context.Context, subject, reason string) (int, error) {
	if err := s.recordEnded(ctx, subject, reason); err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", subject, err)
	}
	n, err := s.store.DeleteSessionsOf(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", subject, err)
	}
	return n, nil
}

// recordEnded records the end of a person's session(s), before they end.
func (s *Service) recordEnded(ctx context.Context, subject, reason string) error {
	actor, ok := subjectActor(subject)
	if !ok {
		return nil // not a person we know how to name; nothing personal goes in clear
	}
	return s.record(ctx, audit.Event{
		Actor: actor, Action: audit.ActionSessionEnded, Outcome: audit.OutcomeSuccess, Reason: reason,
	})
}

// subjectActor names the person a session subject is, for the audit log.
func subjectActor(subject string) (audit.Actor, bool) {
	kind, id, ok := ParseSubject(subject)
	if !ok || id == "" {
		return audit.Actor{}, false
	}
	switch kind {
	case "staff":
		return staffActor(id, ""), true
	case "holder":
		return audit.Actor{Kind: audit.ActorHolder, ID: id}, true
	}
	return audit.Actor{}, false
}

// cutTo cuts s to at most n bytes.
func cutTo(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
