package people

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandated/mandated/audit"
)

// SignInStaff checks a staff member's email, password and TOTP code, and
// returns who they are. Unknown email, wrong password and wrong code all give
// ErrSignInFailed (the password hash runs even for unknown emails, so timing
// tells nothing either). Failures are counted per account and per IP address;
// past the limits, ErrTooManyAttempts until the window has passed.
func (s *Service) SignInStaff(ctx context.Context, email, password, totpCode, ip string) (Principal, error) {
	p, err := s.staffStep(ctx, email, ip, func(email string) (Principal, string, error) {
		return s.signInStaff(ctx, email, password, totpCode)
	})
	if err != nil {
		return Principal{}, err
	}
	return s.staffSignedIn(ctx, p, email, ip, "")
}

// throttleKeys are the failure-counting keys of an account's email and of an
// IP address, and both bounded.
func throttleKeys(email, ip string) (accountKey, ipKey, normEmail, normIP string) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 { // no account has such an address; keep throttle keys short
		email = email[:254]
	}
	if len(ip) > 64 {
		ip = ip[:64]
	}
	return "account:" + email, "ip:" + ip, email, ip
}

// staffStep runs one step of a staff sign-in that checks credentials under
// the throttle: refused while the account or the IP address is throttled;
// ErrSignInFailed is counted against both and audited; ErrAccountDeactivated
// is audited. step gets the normalized email and returns the principal, or
// the error with the id of the account the email named.
func (s *Service) staffStep(ctx context.Context, email, ip string, step func(email string) (Principal, string, error)) (Principal, error) {
	accountKey, ipKey, email, ip := throttleKeys(email, ip)
	if err := s.checkThrottle(ctx, accountKey, ipKey); err != nil {
		return Principal{}, err
	}
	p, staffID, err := step(email)
	if errors.Is(err, ErrSignInFailed) {
		reason := "bad credentials"
		if s.recordFailure(ctx, accountKey, ipKey) >= s.cfg.MaxAccountFailures {
			reason = "bad credentials; throttled"
		}
		s.auditFailure(ctx, staffID, reason)
		s.log.InfoContext(ctx, "staff sign-in failed", "ip", ip)
		return Principal{}, err
	}
	if errors.Is(err, ErrAccountDeactivated) {
		s.auditFailure(ctx, staffID, "deactivated")
		return Principal{}, err
	}
	if err != nil {
		return Principal{}, err
	}
	return p, nil
}

// staffSignedIn records a finished staff sign-in and forgets the account's
// failures. No session without its record: the caller gets an error, not p.
func (s *Service) staffSignedIn(ctx context.Context, p Principal, email, ip, reason string) (Principal, error) {
	accountKey, _, _, ip := throttleKeys(email, ip)
	if err := s.record(ctx, audit.Event{
		Actor: staffActor(p.ID, p.DisplayName), Structure: p.StructureID,
		Action: audit.ActionSignInSucceeded, Outcome: audit.OutcomeSuccess, Reason: reason,
	}); err != nil {
		return Principal{}, fmt.Errorf("sign in %s: %w", p.ID, err)
	}
	if err := s.store.ClearSignInFailures(ctx, accountKey); err != nil {
		s.log.WarnContext(ctx, "clear sign-in failures", "err", err)
	}
	s.log.InfoContext(ctx, "staff signed in", "staff_id", p.ID, "ip", ip)
	return p, nil
}

// auditFailure records a failed sign-in. The actor is the account when the
// email names one; otherwise the system, with no identifier at all (the
// typed email may be anything, even someone's personal data, and would be
// stored in clear). Attempts refused by the throttle before any check are
// not recorded: anyone could send them without end, and the log is
// append-only forever (they reach the request log and metrics only). A lost
// record of a failure is logged; the attempt fails anyway.
func (s *Service) auditFailure(ctx context.Context, staffID, reason string) {
	actor := audit.Actor{Kind: audit.ActorUnknown}
	if staffID != "" {
		actor = staffActor(staffID, "")
	} else {
		reason += ": unknown account"
	}
	if err := s.record(ctx, audit.Event{Actor: actor, Action: audit.ActionSignInFailed, Outcome: audit.OutcomeDenied, Reason: reason}); err != nil {
		s.log.ErrorContext(ctx, "record failed sign-in", "err", err)
	}
}

// signInStaff returns the principal, or the error with the id of the
// account the email named ("" when none).
func (s *Service) signInStaff(ctx context.Context, email, password, totpCode string) (Principal, string, error) {
	staff, rehash, err := s.checkStaffPassword(ctx, email, password)
	if err != nil {
		return Principal{}, staff.ID, err
	}
	return s.completeStaffSignIn(ctx, staff.ID, rehash, func(st *Staff, now time.Time) error {
		if st.SealedTOTP == nil {
			return ErrSignInFailed
		}
		secret, err := s.sealer.Open(st.SealedTOTP, totpPurpose(st.ID))
		if err != nil {
			return fmt.Errorf("open totp of %s: %w", st.ID, err)
		}
		step, err := validateTOTP(string(secret), totpCode, now, st.LastTOTPStep)
		if errors.Is(err, ErrInvalidCode) {
			return ErrSignInFailed
		}
		if err != nil {
			return err
		}
		st.LastTOTPStep = step
		return nil
	})
}

// checkStaffPassword finds the account of email and checks its password. It
// returns the account (its ID even on ErrSignInFailed when the email names
// one) and, when the stored hash needs upgrading, the new hash.
func (s *Service) checkStaffPassword(ctx context.Context, email, password string) (Staff, string, error) {
	staff, err := s.store.FindStaffByEmail(ctx, email)
	if err != nil || staff.PasswordHash == "" {
		_, _ = VerifyPassword(s.dummy(), password) // same cost as a real check
		if err == nil {
			return Staff{ID: staff.ID}, "", ErrSignInFailed
		}
		return Staff{}, "", ErrSignInFailed
	}
	ok, err := VerifyPassword(staff.PasswordHash, password)
	if err != nil {
		return Staff{ID: staff.ID}, "", fmt.Errorf("verify password of %s: %w", staff.ID, err)
	}
	if !ok {
		return Staff{ID: staff.ID}, "", ErrSignInFailed
	}
	rehash := ""
	if NeedsRehash(staff.PasswordHash) {
		if rehash, err = HashPassword(password); err != nil {
			return Staff{ID: staff.ID}, "", err
		}
	}
	return staff, rehash, nil
}

// completeStaffSignIn checks the second factor with factor, inside the
// account's update transaction, and records the sign-in time (and rehash).
func (s *Service) completeStaffSignIn(ctx context.Context, staffID, rehash string, factor func(st *Staff, now time.Time) error) (Principal, string, error) {
	now := s.clock.Now()
	var staff Staff
	err := s.store.UpdateStaff(ctx, staffID, func(st *Staff) error {
		if st.Status == StaffPending {
			return ErrSignInFailed
		}
		if err := factor(st, now); err != nil {
			return err
		}
		if st.Status != StaffActive {
			return ErrAccountDeactivated
		}
		st.LastSignInAt = &now
		if rehash != "" {
			st.PasswordHash = rehash
		}
		staff = *st
		return nil
	})
	if errors.Is(err, ErrSignInFailed) || errors.Is(err, ErrAccountDeactivated) {
		return Principal{}, staffID, err
	}
	if err != nil {
		return Principal{}, staffID, fmt.Errorf("sign in %s: %w", staffID, err)
	}
	return staffPrincipal(staff), staffID, nil
}

func (s *Service) checkThrottle(ctx context.Context, accountKey, ipKey string) error {
	since := s.clock.Now().Add(-s.cfg.ThrottleWindow)
	n, err := s.store.CountSignInFailures(ctx, accountKey, since)
	if err != nil {
		return fmt.Errorf("count sign-in failures: %w", err)
	}
	if n >= s.cfg.MaxAccountFailures {
		return ErrTooManyAttempts
	}
	n, err = s.store.CountSignInFailures(ctx, ipKey, since)
	if err != nil {
		return fmt.Errorf("count sign-in failures: %w", err)
	}
	if n >= s.cfg.MaxIPFailures {
		return ErrTooManyAttempts
	}
	return nil
}

// recordFailure counts a failure under each key and returns the count of
// the first (the account's).
func (s *Service) recordFailure(ctx context.Context, keys ...string) int {
	now := s.clock.Now()
	first := 0
	for i, k := range keys {
		n, err := s.store.RecordSignInFailure(ctx, k, now, now.Add(-s.cfg.ThrottleWindow))
		if err != nil {
			s.log.WarnContext(ctx, "record sign-in failure", "err", err)
		}
		if i == 0 {
			first = n
		}
	}
	return first
}

// dummy is a hash to verify against when there is no account, so an unknown
// email costs the same time as a known one.
func (s *Service) dummy() string {
	s.dummyOnce.Do(func() {
		h, err := HashPassword("not a real password, only spends time")
		if err != nil {
			panic(fmt.Sprintf("people: dummy hash: %v", err))
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

func staffPrincipal(st Staff) Principal {
	return Principal{
		Subject:     StaffSubject(st.ID),
		Kind:        "staff",
		ID:          st.ID,
		DisplayName: st.DisplayName,
		Email:       st.Email,
		Role:        st.Role,
		StructureID: st.StructureID,
		Platform:    st.Platform,
	}
}

// PruneSignInFailures forgets failed sign-ins older than the throttle window
// (they no longer count); run it now and then. Returns how many went.
func (s *Service) PruneSignInFailures(ctx context.Context) (int, error) {
	n, err := s.store.PruneSignInFailures(ctx, s.clock.Now().Add(-s.cfg.ThrottleWindow))
	if err != nil {
		return 0, fmt.Errorf("prune sign-in failures: %w", err)
	}
	return n, nil
}
