package authz

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// userCodeAlphabet is RFC 8628 §6.1's example character set: consonants
// only (no vowels, so no words; no look-alike digits). 8 of them give
// 20^8 ≈ 2.6·10^10 codes (about 34 bits).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen is the number of letters in a user code (shown XXXX-XXXX).
const userCodeLen = 8

// Errors of LookupUserCode, for the holder's verification page.
var (
	// ErrUserCodeUnknown: no pending authorization has this code (mistyped,
	// expired, or never issued).
	ErrUserCodeUnknown = errors.New("authz: unknown or expired user code")
	// ErrUserCodeUsed: the code's request was already answered (approved,
	// refused, lapsed or cancelled).
	ErrUserCodeUsed = errors.New("authz: the user code was already used")
	// ErrUserCodeThrottled: too many wrong codes lately, from this address
	// or from everyone; try again later.
	ErrUserCodeThrottled = errors.New("authz: too many wrong user codes, try again later")
)

// newUserCode draws userCodeLen letters of userCodeAlphabet uniformly
// (rejection sampling: bytes ≥ 240 are drawn again).
func newUserCode() (string, error) {
	const limit = 256 - 256%len(userCodeAlphabet)
	out := make([]byte, 0, userCodeLen)
	buf := make([]byte, 16)
	for len(out) < userCodeLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate user code: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < userCodeLen {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// formatUserCode shows a normalised code as XXXX-XXXX.
func formatUserCode(c string) string {
	if len(c) != userCodeLen {
		return c
	}
	return c[:userCodeLen/2] + "-" + c[userCodeLen/2:]
}

// normaliseUserCode is what a person typed, upper-cased, without dashes or
// spaces (RFC 8628 §6.1: case and punctuation are ignored).
func normaliseUserCode(s string) string {
	if len(s) > 64 {
		return ""
	}
	var b strings.Builder
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// validUserCode reports whether a normalised code could be one we issued.
func validUserCode(n string) bool {
	if len(n) != userCodeLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !strings.ContainsRune(userCodeAlphabet, rune(n[i])) {
			return false
		}
	}
	return true
}

// NormaliseUserCode returns what the holder typed as the canonical
// XXXX-XXXX form, or "" when it cannot be a user code (for the
// verification page's input).
func NormaliseUserCode(s string) string {
	n := normaliseUserCode(s)
	if !validUserCode(n) {
		return ""
	}
	return formatUserCode(n)
}

// LookupUserCode finds the mandate a holder is asked to approve by the
// user code they typed (case, dashes and spaces ignored), for the
// verification page. Wrong guesses are limited per address and globally
// (ErrUserCodeThrottled, before the code is even looked at) and recorded
// (request.refused, actor unknown; the code itself is never recorded).
// An unknown or expired code is ErrUserCodeUnknown; a code whose request
// was already answered is ErrUserCodeUsed.
//
// The caller must still check that the signed-in holder is the mandate's
// holder (and treat anyone else as ErrUserCodeUnknown): the code proves
// only that its bearer saw the mediator's screen.
func (s *Server) LookupUserCode(ctx context.Context, userCode, remoteIP string) (mandate.Mandate, error) {
	if s.device == nil {
		return mandate.Mandate{}, errDeviceFlowOff
	}
	now := s.clock.Now()
	if s.device.guesses.blocked(remoteIP, now) {
		return mandate.Mandate{}, ErrUserCodeThrottled
	}
	wrong := func(reason string) (mandate.Mandate, error) {
		s.device.guesses.fail(remoteIP, now)
		if _, err := s.rec.Record(ctx, audit.Event{
			Actor: audit.Actor{Kind: audit.ActorUnknown}, Action: audit.ActionRequestRefused, Outcome: audit.OutcomeDenied,
			Reason: "device verification: " + reason,
		}); err != nil {
			// Refused whatever happens; a lost record of a refusal is logged.
			s.log.ErrorContext(ctx, "record wrong user code", "err", err)
		}
		return mandate.Mandate{}, ErrUserCodeUnknown
	}
	n := normaliseUserCode(userCode)
	if !validUserCode(n) {
		return wrong("malformed user code")
	}
	d, err := s.device.store.DeviceAuthorizationByUserCode(ctx, s.device.userCodeSignature(n))
	if errors.Is(err, mandate.ErrNotFound) {
		return wrong("unknown user code")
	}
	if err != nil {
		return mandate.Mandate{}, fmt.Errorf("look up user code: %w", err)
	}
	if !now.Before(d.ExpiresAt) {
		return wrong("expired user code")
	}
	m, err := s.device.mandates.Get(ctx, d.MandateID)
	if errors.Is(err, mandate.ErrNotFound) {
		return wrong("unknown user code")
	}
	if err != nil {
		return mandate.Mandate{}, fmt.Errorf("look up user code: mandate %s: %w", d.MandateID, err)
	}
	if m.State != mandate.StateRequested {
		return mandate.Mandate{}, ErrUserCodeUsed
	}
	if !now.Before(m.AnswerBy) {
		return wrong("expired user code")
	}
	return m, nil
}

// guessLimits bound wrong user codes: PerIP per address (an IPv6 address
// counts as its /64) and Global for everyone, in fixed windows of Period.
type guessLimits struct {
	PerIP  int
	Global int
	Period time.Duration
}

var defaultGuessLimits = guessLimits{PerIP: 10, Global: 1000, Period: 15 * time.Minute}

// guessLimiter counts wrong user codes in memory (per replica: with n
// replicas an address gets at most n times its limit).
type guessLimiter struct {
	mu     sync.Mutex
	limits guessLimits
	perIP  map[string]guessWindow
	global guessWindow
}

type guessWindow struct {
	start time.Time
	n     int
}

func (w guessWindow) count(now time.Time, period time.Duration) int {
	if now.Sub(w.start) >= period || now.Before(w.start) {
		return 0
	}
	return w.n
}

func newGuessLimiter(l guessLimits) *guessLimiter {
	return &guessLimiter{limits: l, perIP: map[string]guessWindow{}}
}

// ipKey is the bucket of an address: itself for IPv4, its /64 for IPv6,
// one shared bucket for anything unparsable.
func ipKey(remote string) string {
	ip := net.ParseIP(strings.TrimSpace(remote))
	if ip == nil {
		if host, _, err := net.SplitHostPort(remote); err == nil {
			ip = net.ParseIP(host)
		}
	}
	switch {
	case ip == nil:
		return "?"
	case ip.To4() != nil:
		return ip.To4().String()
	default:
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
}

func (l *guessLimiter) blocked(remote string, now time.Time) bool {
	key := ipKey(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.global.count(now, l.limits.Period) >= l.limits.Global ||
		l.perIP[key].count(now, l.limits.Period) >= l.limits.PerIP
}

func (l *guessLimiter) fail(remote string, now time.Time) {
	key := ipKey(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	bump := func(w guessWindow) guessWindow {
		if w.count(now, l.limits.Period) == 0 {
			return guessWindow{start: now, n: 1}
		}
		w.n++
		return w
	}
	l.global = bump(l.global)
	if _, ok := l.perIP[key]; !ok && len(l.perIP) >= 2*l.limits.Global {
		// Bounded memory: forget windows that closed. Addresses with open
		// windows number at most about twice the global limit.
		for k, w := range l.perIP {
			if w.count(now, l.limits.Period) == 0 {
				delete(l.perIP, k)
			}
		}
	}
	l.perIP[key] = bump(l.perIP[key])
}
