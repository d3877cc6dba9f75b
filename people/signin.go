package people

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// SignInStaff checks a staff member's email, password and TOTP code, and
// returns who they are. Unknown email, wrong password and wrong code all give
// ErrSignInFailed (the password hash runs even for unknown emails, so timing
// tells nothing either). Failures are counted per account and per IP address;
// past the limits, ErrTooManyAttempts until the window has passed.
func (s *Service) SignInStaff(ctx context.Context, email, password, totpCode, ip string) (Principal, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 { // no account has such an address; keep throttle keys short
		email = email[:254]
	}
	if len(ip) > 64 {
		ip = ip[:64]
	}
	accountKey, ipKey := "account:"+email, "ip:"+ip
	if err := s.checkThrottle(ctx, accountKey, ipKey); err != nil {
		return Principal{}, err
	}
	p, err := s.signInStaff(ctx, email, password, totpCode)
	if errors.Is(err, ErrSignInFailed) {
		s.recordFailure(ctx, accountKey, ipKey)
		s.log.InfoContext(ctx, "staff sign-in failed", "ip", ip)
		return Principal{}, err
	}
	if err != nil {
		return Principal{}, err
	}
	if err := s.store.ClearSignInFailures(ctx, accountKey); err != nil {
		s.log.WarnContext(ctx, "clear sign-in failures", "err", err)
	}
	s.log.InfoContext(ctx, "staff signed in", "staff_id", p.ID, "ip", ip)
	return p, nil
}

func (s *Service) signInStaff(ctx context.Context, email, password, totpCode string) (Principal, error) {
	staff, err := s.store.FindStaffByEmail(ctx, email)
	if err != nil || staff.PasswordHash == "" {
		_, _ = VerifyPassword(s.dummy(), password) // same cost as a real check
		return Principal{}, ErrSignInFailed
	}
	ok, err := VerifyPassword(staff.PasswordHash, password)
	if err != nil {
		return Principal{}, fmt.Errorf("verify password of %s: %w", staff.ID, err)
	}
	if !ok {
		return Principal{}, ErrSignInFailed
	}
	rehash := ""
	if NeedsRehash(staff.PasswordHash) {
		if rehash, err = HashPassword(password); err != nil {
			return Principal{}, err
		}
	}
	now := s.clock.Now()
	err = s.store.UpdateStaff(ctx, staff.ID, func(st *Staff) error {
		if st.Status == StaffPending || st.SealedTOTP == nil {
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
		if st.Status != StaffActive {
			return ErrAccountDeactivated
		}
		st.LastTOTPStep = step
		st.LastSignInAt = &now
		if rehash != "" {
			st.PasswordHash = rehash
		}
		staff = *st
		return nil
	})
	if errors.Is(err, ErrSignInFailed) || errors.Is(err, ErrAccountDeactivated) {
		return Principal{}, err
	}
	if err != nil {
		return Principal{}, fmt.Errorf("sign in %s: %w", staff.ID, err)
	}
	return staffPrincipal(staff), nil
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

func (s *Service) recordFailure(ctx context.Context, keys ...string) {
	now := s.clock.Now()
	for _, k := range keys {
		if _, err := s.store.RecordSignInFailure(ctx, k, now, now.Add(-s.cfg.ThrottleWindow)); err != nil {
			s.log.WarnContext(ctx, "record sign-in failure", "err", err)
		}
	}
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
