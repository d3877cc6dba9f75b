package people

import (
	"context"
	"fmt"
	"net"

	"github.com/mandated/mandated/audit"
)

// DefaultMaxCeremonyBeginsPerIP is how many holder sign-in ceremonies one
// address (one /64 in IPv6) may begin within the throttle window.
const DefaultMaxCeremonyBeginsPerIP = 60

// beginKey is the counter of ceremonies begun from ip, kept with the sign-in
// failure counters (same table, same pruning) under its own key, so that
// begins never throttle staff sign-in from a shared address. IPv6
// addresses count per /64: one host usually holds a whole /64.
func beginKey(ip string) string {
	if parsed := net.ParseIP(ip); parsed != nil && parsed.To4() == nil {
		ip = parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	if len(ip) > 64 {
		ip = ip[:64]
	}
	return "passkey-begin:" + ip
}

// beginsReached reports whether ip has begun as many ceremonies as allowed
// within the throttle window.
func (k *Passkeys) beginsReached(ctx context.Context, ip string) (bool, error) {
	n, err := k.svc.store.CountSignInFailures(ctx, beginKey(ip), k.svc.clock.Now().Add(-k.svc.cfg.ThrottleWindow))
	if err != nil {
		return false, fmt.Errorf("count passkey ceremonies begun: %w", err)
	}
	return n >= k.cfg.MaxBeginsPerIP, nil
}

// limitBegin counts one ceremony begun from ip, or refuses it with
// ErrTooManyAttempts when ip has begun MaxBeginsPerIP within the throttle
// window: anyone may begin a holder sign-in, and each begin stores a
// ceremony. Refused begins store nothing; the begin that reaches the limit
// is recorded once (not every refused one: the log would fill with them).
func (k *Passkeys) limitBegin(ctx context.Context, ip string) error {
	reached, err := k.beginsReached(ctx, ip)
	if err != nil {
		return err
	}
	if reached {
		return ErrTooManyAttempts
	}
	now := k.svc.clock.Now()
	n, err := k.svc.store.RecordSignInFailure(ctx, beginKey(ip), now, now.Add(-k.svc.cfg.ThrottleWindow))
	if err != nil {
		return fmt.Errorf("count passkey ceremony begun: %w", err)
	}
	if n == k.cfg.MaxBeginsPerIP {
		e := k.event("", audit.ActionPasskeyRefused, audit.OutcomeDenied, "sign-in begun too often from one address; throttled")
		if err := k.svc.record(ctx, e); err != nil {
			k.svc.log.ErrorContext(ctx, "record passkey begin throttle", "err", err)
		}
		k.svc.log.WarnContext(ctx, "passkey sign-in begins throttled", "window", k.svc.cfg.ThrottleWindow, "limit", k.cfg.MaxBeginsPerIP)
	}
	return nil
}
