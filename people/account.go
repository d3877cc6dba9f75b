package people

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify"
)

// AccountStore is what a person's own account pages need beyond Store: the
// list of their sessions, when each was last used, and password-reset
// links. The gorm store implements it (store/websessions.go).
type AccountStore interface {
	// ListSessionsOf returns subject's sessions not expired at now (idle
	// ones included: the caller applies the idle timeout).
	ListSessionsOf(ctx context.Context, subject string, now time.Time) ([]Session, error)
	// TouchSession records that a session was used at `at` (never moving
	// LastSeenAt backwards); mandate.ErrNotFound when it is gone.
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error

	// CreatePasswordReset stores r and, in the same transaction, deletes
	// every other unused reset link of r.StaffID: a new link cancels the
	// older ones. mandate.ErrNotFound when the account does not exist.
	CreatePasswordReset(ctx context.Context, r PasswordReset) error
	// GetPasswordReset finds a reset link by token hash, used or not.
	GetPasswordReset(ctx context.Context, tokenHash []byte) (PasswordReset, error)
	// CompletePasswordReset, in one transaction: claims the link if unused
	// and not expired at now (mandate.ErrConflict otherwise, ErrNotFound when
	// unknown), marks it used and applies fn to its account. fn's error
	// aborts everything (the link stays usable) and is returned.
	CompletePasswordReset(ctx context.Context, tokenHash []byte, now time.Time, fn func(*Staff) error) error
}

// AccountConfig tunes the account services; zero fields take the defaults.
type AccountConfig struct {
	// Notifier sends password-reset links by email. Without it there is no
	// reset by email (ErrResetUnavailable).
	Notifier notify.Notifier
	// ResetURL turns a reset token into the link sent by email; required
	// with Notifier.
	ResetURL func(token string) string
	// ResetTTL is how long a reset link works; 30m.
	ResetTTL time.Duration
	// MaxResetsPerEmail and MaxResetsPerIP cap reset requests within the
	// sign-in throttle window (Config.ThrottleWindow, 15m); 3 and 10.
	MaxResetsPerEmail int
	MaxResetsPerIP    int
	// SendTimeout bounds the delivery of one reset email; 30s.
	SendTimeout time.Duration
}

func (c AccountConfig) withDefaults() AccountConfig {
	if c.ResetTTL <= 0 {
		c.ResetTTL = 30 * time.Minute
	}
	if c.MaxResetsPerEmail <= 0 {
		c.MaxResetsPerEmail = 3
	}
	if c.MaxResetsPerIP <= 0 {
		c.MaxResetsPerIP = 10
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 30 * time.Second
	}
	return c
}

// Account runs what any signed-in person does with their own account (see
// and end their sessions) and the staff password reset by email.
type Account struct {
	svc   *Service
	store AccountStore
	cfg   AccountConfig
	sends sync.WaitGroup // reset emails on their way
}

// NewAccount returns the account services over svc and its store.
func NewAccount(svc *Service, st AccountStore, cfg AccountConfig) *Account {
	return &Account{svc: svc, store: st, cfg: cfg.withDefaults()}
}

// Config returns the effective configuration (defaults filled in).
func (a *Account) Config() AccountConfig { return a.cfg }

// Errors of the account services.
var (
	// ErrUnknownSession: the session named is not one of the caller's live
	// sessions (another person's, ended, or made up).
	ErrUnknownSession = errors.New("this session is not one of yours, or it has ended already")
	// ErrResetLinkInvalid: unknown, used, replaced by a newer one, or expired.
	ErrResetLinkInvalid = errors.New("this password reset link is unknown, already used, replaced by a newer one or expired")
	// ErrResetUnavailable: no email delivery is configured for reset links.
	ErrResetUnavailable = errors.New("password reset by email is not set up on this server")
)

// SessionInfo is one of a person's sessions as their session list shows it.
type SessionInfo struct {
	// Handle names the session on the page (to end it). It is derived from
	// the stored hash and cannot be turned into a cookie.
	Handle     string
	Current    bool // the session the list is looked at from
	CreatedAt  time.Time
	LastSeenAt time.Time
	IP         string
	Browser    string
	OS         string
}

// sessionHandle derives the public name of a session from its ID hash.
func sessionHandle(idHash []byte) string {
	h := sha256.Sum256(append([]byte("mandated session handle v1\x00"), idHash...))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// Sessions lists p's live sessions, most recently used first; the one of
// cookie is marked Current.
func (a *Account) Sessions(ctx context.Context, p Principal, cookie string) ([]SessionInfo, error) {
	live, err := a.liveSessions(ctx, p)
	if err != nil {
		return nil, err
	}
	current := hashToken(cookie)
	out := make([]SessionInfo, 0, len(live))
	for _, s := range live {
		out = append(out, SessionInfo{
			Handle: sessionHandle(s.IDHash), Current: subtle.ConstantTimeCompare(s.IDHash, current) == 1,
			CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, IP: s.IP, Browser: s.Browser, OS: s.OS,
		})
	}
	return out, nil
}

func (a *Account) liveSessions(ctx context.Context, p Principal) ([]Session, error) {
	now := a.svc.clock.Now()
	all, err := a.store.ListSessionsOf(ctx, p.Subject, now)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %s: %w", p.Subject, err)
	}
	live := all[:0]
	for _, s := range all {
		if s.LastSeenAt.IsZero() {
			s.LastSeenAt = s.CreatedAt
		}
		if !a.svc.idle(s, now) {
			live = append(live, s)
		}
	}
	slices.SortStableFunc(live, func(x, y Session) int { return y.LastSeenAt.Compare(x.LastSeenAt) })
	return live, nil
}

// EndSession ends one of p's sessions, named by its handle, and reports
// whether it was the one of cookie (the caller then clears the cookie).
// A handle that names none of p's live sessions is refused with
// ErrUnknownSession and nothing changes; the refusal is recorded.
func (a *Account) EndSession(ctx context.Context, p Principal, cookie, handle string) (bool, error) {
	live, err := a.liveSessions(ctx, p)
	if err != nil {
		return false, err
	}
	for _, s := range live {
		if subtle.ConstantTimeCompare([]byte(sessionHandle(s.IDHash)), []byte(handle)) != 1 {
			continue
		}
		if err := a.recordFor(ctx, p, audit.ActionSessionEnded, audit.OutcomeSuccess, "ended from the session list"); err != nil {
			return false, fmt.Errorf("end session: %w", err)
		}
		if err := a.svc.store.DeleteSession(ctx, s.IDHash); err != nil {
			return false, fmt.Errorf("end session: %w", err)
		}
		return subtle.ConstantTimeCompare(s.IDHash, hashToken(cookie)) == 1, nil
	}
	if err := a.recordFor(ctx, p, audit.ActionSessionEnded, audit.OutcomeDenied, "not one of the caller's sessions"); err != nil {
		return false, fmt.Errorf("refuse to end a session: %w", err)
	}
	return false, ErrUnknownSession
}

// EndEverywhere ends every session of p, the current one included ("sign
// out everywhere"), and returns how many ended.
func (a *Account) EndEverywhere(ctx context.Context, p Principal) (int, error) {
	return a.svc.endAllSessions(ctx, p.Subject, "signed out everywhere")
}

// recordFor records an event whose actor is the signed-in p.
func (a *Account) recordFor(ctx context.Context, p Principal, action audit.Action, outcome audit.Outcome, reason string) error {
	actor, ok := subjectActor(p.Subject)
	if !ok {
		return fmt.Errorf("record %s: %q is neither staff nor holder", action, p.Subject)
	}
	actor.Name = p.DisplayName
	return a.svc.record(ctx, audit.Event{
		Actor: actor, Structure: p.StructureID, Action: action, Outcome: outcome, Reason: reason,
	})
}

// Wait waits for the reset emails on their way (tests; shutdown).
func (a *Account) Wait() { a.sends.Wait() }
