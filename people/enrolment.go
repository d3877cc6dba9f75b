package people

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// EnrolmentView is what the enrolment page shows.
type EnrolmentView struct {
	Email string
	TOTP  TOTPKey
}

func (s *Service) newEnrolment(ctx context.Context, staffID string) (string, error) {
	token, hash, err := newToken()
	if err != nil {
		return "", err
	}
	now := s.clock.Now()
	e := Enrolment{TokenHash: hash, StaffID: staffID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.EnrolmentTTL)}
	if err := s.store.CreateEnrolment(ctx, e); err != nil {
		return "", fmt.Errorf("create enrolment for %s: %w", staffID, err)
	}
	// Only the newest link works: the older ones stop (invitation.go).
	if err := s.cancelOlderEnrolments(ctx, staffID, hash, now); err != nil {
		return "", err
	}
	return token, nil
}

// NewEnrolmentLink issues a fresh enrolment token for a pending account
// (when the first link expired or was lost).
func (s *Service) NewEnrolmentLink(ctx context.Context, email string) (string, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	staff, err := s.store.FindStaffByEmail(ctx, email)
	if err != nil {
		return "", fmt.Errorf("find staff %s: %w", email, err)
	}
	if staff.Status != StaffPending {
		return "", ErrNotPending
	}
	return s.newEnrolment(ctx, staff.ID)
}

// openEnrolment finds a usable enrolment and its pending account.
func (s *Service) openEnrolment(ctx context.Context, token string) (Enrolment, Staff, error) {
	if token == "" || len(token) > 100 {
		return Enrolment{}, Staff{}, ErrEnrolmentLinkInvalid
	}
	e, err := s.store.GetEnrolment(ctx, hashToken(token))
	if errors.Is(err, mandate.ErrNotFound) {
		return Enrolment{}, Staff{}, ErrEnrolmentLinkInvalid
	}
	if err != nil {
		return Enrolment{}, Staff{}, fmt.Errorf("load enrolment: %w", err)
	}
	if e.UsedAt != nil || !s.clock.Now().Before(e.ExpiresAt) {
		return Enrolment{}, Staff{}, ErrEnrolmentLinkInvalid
	}
	staff, err := s.store.GetStaff(ctx, e.StaffID)
	if err != nil {
		return Enrolment{}, Staff{}, fmt.Errorf("load staff %s: %w", e.StaffID, err)
	}
	if staff.Status != StaffPending {
		return Enrolment{}, Staff{}, ErrEnrolmentLinkInvalid
	}
	return e, staff, nil
}

// BeginEnrolment opens an enrolment link and returns the second-factor
// secret to scan. The secret is generated on first opening and kept (sealed)
// with the enrolment, so reloading the page shows the same one.
func (s *Service) BeginEnrolment(ctx context.Context, token string) (EnrolmentView, error) {
	e, staff, err := s.openEnrolment(ctx, token)
	if err != nil {
		return EnrolmentView{}, err
	}
	var secret string
	if e.SealedPendingTOTP != nil {
		plain, err := s.sealer.Open(e.SealedPendingTOTP, totpPurpose(staff.ID))
		if err != nil {
			return EnrolmentView{}, fmt.Errorf("open pending totp of %s: %w", staff.ID, err)
		}
		secret = string(plain)
	} else {
		if secret, err = newTOTPSecret(staff.Email); err != nil {
			return EnrolmentView{}, err
		}
		sealed, err := s.sealer.Seal([]byte(secret), totpPurpose(staff.ID))
		if err != nil {
			return EnrolmentView{}, fmt.Errorf("seal totp: %w", err)
		}
		if err := s.store.SetEnrolmentPendingTOTP(ctx, e.TokenHash, sealed); err != nil {
			return EnrolmentView{}, fmt.Errorf("store pending totp of %s: %w", staff.ID, err)
		}
	}
	key, err := totpKey(staff.Email, secret)
	if err != nil {
		return EnrolmentView{}, err
	}
	return EnrolmentView{Email: staff.Email, TOTP: key}, nil
}

// CompleteEnrolment finishes an enrolment: the person's name, their password
// (checked against the policy) and a first code from the secret shown by
// BeginEnrolment. The link works once: the account becomes active in the
// same transaction that marks the link used.
func (s *Service) CompleteEnrolment(ctx context.Context, token, displayName, password, totpCode string) error {
	displayName = strings.TrimSpace(displayName)
	if displayName == "" || utf8.RuneCountInString(displayName) > 100 {
		return ErrInvalidName
	}
	e, staff, err := s.openEnrolment(ctx, token)
	if err != nil {
		return err
	}
	if err := CheckPasswordPolicy(password, staff.Email); err != nil {
		return err
	}
	if e.SealedPendingTOTP == nil {
		return ErrEnrolmentLinkInvalid // the page was never opened: no secret to prove
	}
	plain, err := s.sealer.Open(e.SealedPendingTOTP, totpPurpose(staff.ID))
	if err != nil {
		return fmt.Errorf("open pending totp of %s: %w", staff.ID, err)
	}
	now := s.clock.Now()
	step, err := validateTOTP(string(plain), totpCode, now, 0)
	if err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	err = s.store.CompleteEnrolment(ctx, e.TokenHash, now, func(st *Staff) error {
		if st.Status != StaffPending {
			return ErrEnrolmentLinkInvalid
		}
		st.DisplayName = displayName
		st.PasswordHash = hash
		st.SealedTOTP = e.SealedPendingTOTP
		st.LastTOTPStep = step
		st.Status = StaffActive
		return nil
	})
	switch {
	case errors.Is(err, mandate.ErrConflict), errors.Is(err, mandate.ErrNotFound), errors.Is(err, ErrEnrolmentLinkInvalid):
		return ErrEnrolmentLinkInvalid
	case err != nil:
		return fmt.Errorf("complete enrolment of %s: %w", staff.ID, err)
	}
	// The account is active; if the record fails the person sees an error
	// (the account stays active: the enrolment transaction cannot wait on
	// the log, which needs the store's writer).
	if err := s.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, displayName), Structure: staff.StructureID,
		Action: audit.ActionEnrolmentDone, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return fmt.Errorf("complete enrolment of %s: %w", staff.ID, err)
	}
	s.log.InfoContext(ctx, "staff enrolment completed", "staff_id", staff.ID)
	return nil
}
