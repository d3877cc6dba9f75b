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

// openEnrolment finds a usable enrolment and its pending account. A link
// that is unknown, used, expired (or replaced: a newer link expires the older
// ones) or of an account no longer pending is refused with
// ErrEnrolmentLinkInvalid, and the refusal is recorded (refuseLink).
func (s *Service) openEnrolment(ctx context.Context, token string) (Enrolment, Staff, error) {
	e, staff, reason, err := s.findEnrolment(ctx, token)
	if err != nil {
		return Enrolment{}, Staff{}, err
	}
	if reason != "" {
		s.refuseEnrolment(ctx, staff, reason)
		return Enrolment{}, Staff{}, ErrEnrolmentLinkInvalid
	}
	return e, staff, nil
}

// findEnrolment loads the enrolment of token and its account; reason says
// why it cannot be used ("" when it can). staff is set whenever the link
// named an account.
func (s *Service) findEnrolment(ctx context.Context, token string) (Enrolment, Staff, string, error) {
	if token == "" || len(token) > 100 {
		return Enrolment{}, Staff{}, "enrolment link unknown", nil
	}
	e, err := s.store.GetEnrolment(ctx, hashToken(token))
	if errors.Is(err, mandate.ErrNotFound) {
		return Enrolment{}, Staff{}, "enrolment link unknown", nil
	}
	if err != nil {
		return Enrolment{}, Staff{}, "", fmt.Errorf("load enrolment: %w", err)
	}
	staff, err := s.store.GetStaff(ctx, e.StaffID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Enrolment{}, Staff{}, "enrolment link unknown", nil
	}
	if err != nil {
		return Enrolment{}, Staff{}, "", fmt.Errorf("load staff %s: %w", e.StaffID, err)
	}
	switch {
	case e.UsedAt != nil:
		return e, staff, "enrolment link used", nil
	case !s.clock.Now().Before(e.ExpiresAt):
		return e, staff, "enrolment link expired or replaced", nil
	case staff.Status != StaffPending:
		return e, staff, "enrolment link of an account not pending (" + string(staff.Status) + ")", nil
	}
	return e, staff, "", nil
}

// refuseEnrolment records a refused enrolment link: the actor is the account
// the link named, or unknown (what was typed is never recorded).
func (s *Service) refuseEnrolment(ctx context.Context, staff Staff, reason string) {
	actor := audit.Actor{Kind: audit.ActorUnknown}
	if staff.ID != "" {
		actor = staffActor(staff.ID, "")
	}
	s.refuseLink(ctx, audit.Event{
		Actor: actor, Structure: staff.StructureID, Action: audit.ActionEnrolmentDone,
		Outcome: audit.OutcomeDenied, Reason: reason,
	})
}

// refuseLink records the refusal of a single-use link (enrolment, password
// reset) opened or sent from the request's address (ClientFrom). Refusals
// are counted per address under "link-ip:<address>" with the sign-in
// failure counters; past MaxIPFailures within the throttle window they are
// still refused but no longer recorded, so that a flood of made-up links
// cannot fill the append-only log (they reach the request log). The counter
// is apart from the sign-in one: opening dead links does not lock an
// office's sign-ins. A lost record is logged; the link is refused anyway.
func (s *Service) refuseLink(ctx context.Context, e audit.Event) {
	ip := cutTo(ClientFrom(ctx).IP, 64)
	now := s.clock.Now()
	n, err := s.store.RecordSignInFailure(ctx, "link-ip:"+ip, now, now.Add(-s.cfg.ThrottleWindow))
	if err != nil {
		s.log.WarnContext(ctx, "count refused link", "err", err)
	}
	if n > s.cfg.MaxIPFailures {
		s.log.InfoContext(ctx, "refused link not recorded: too many from this address", "action", e.Action, "ip", ip)
		return
	}
	if n == s.cfg.MaxIPFailures {
		e.Reason += "; address throttled, further refusals not recorded"
	}
	if err := s.record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "record refused link", "action", e.Action, "err", err)
	}
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
	if e.SealedPendingTOTP == nil { // the page was never opened: no secret to prove
		s.refuseEnrolment(ctx, staff, "enrolment link sent before its page was opened")
		return ErrEnrolmentLinkInvalid
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
		s.refuseEnrolment(ctx, staff, "enrolment link used or expired meanwhile")
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
