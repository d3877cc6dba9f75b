package people

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// PasswordReset is a single-use, expiring link with which a staff member
// chooses a new password. Only the SHA-256 of the token is stored; a new
// link cancels the older ones of the same account.
type PasswordReset struct {
	TokenHash []byte
	StaffID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// ResetView is what the page that opens a reset link shows.
type ResetView struct {
	Email string
}

// ResetProof is the second factor a reset asks for: a reset changes the
// password, never the second factor, so the person proves they still hold
// it.
//
// Hook for passkeys: when staff may use a passkey as their second factor,
// add its assertion here (and a ResetView field with the WebAuthn options to
// ask for), and accept it in verifySecondFactor as an alternative to the
// TOTP code. Nothing else in the reset changes.
type ResetProof struct {
	TOTPCode string
}

// ResetAvailable reports whether reset links can be sent.
func (a *Account) ResetAvailable() bool { return a.cfg.Notifier != nil && a.cfg.ResetURL != nil }

// RequestPasswordReset asks for a reset link for email, from ip, with the
// email written in lang ("fr" or "en"). It answers the same (nil) whether or
// not an account uses the address, and sends a link only to an active staff
// account; the email goes out in the background, so the answer takes about
// as long either way. Requests are limited per address and per IP
// (ErrTooManyAttempts); ErrInvalidEmail when email is not an address.
func (a *Account) RequestPasswordReset(ctx context.Context, email, ip, lang string) error {
	if !a.ResetAvailable() {
		return ErrResetUnavailable
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := a.throttleResetRequest(ctx, email, ip); err != nil {
		return err
	}
	staff, err := a.svc.store.FindStaffByEmail(ctx, email)
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return a.svc.record(ctx, audit.Event{
			Actor: audit.Actor{Kind: audit.ActorUnknown}, Action: audit.ActionResetRequested,
			Outcome: audit.OutcomeDenied, Reason: "unknown account",
		})
	case err != nil:
		return fmt.Errorf("reset request: find staff: %w", err)
	case staff.Status != StaffActive:
		return a.svc.record(ctx, audit.Event{
			Actor: staffActor(staff.ID, ""), Structure: staff.StructureID, Action: audit.ActionResetRequested,
			Outcome: audit.OutcomeDenied, Reason: "account " + string(staff.Status),
		})
	}
	// Recorded before the link exists: no link without its record.
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, ""), Structure: staff.StructureID,
		Action: audit.ActionResetRequested, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return fmt.Errorf("reset request of %s: %w", staff.ID, err)
	}
	token, hash, err := newToken()
	if err != nil {
		return err
	}
	now := a.svc.clock.Now()
	r := PasswordReset{TokenHash: hash, StaffID: staff.ID, CreatedAt: now, ExpiresAt: now.Add(a.cfg.ResetTTL)}
	if err := a.store.CreatePasswordReset(ctx, r); err != nil {
		return fmt.Errorf("reset request of %s: %w", staff.ID, err)
	}
	a.send(ctx, staff, resetMessage(staff.Email, a.cfg.ResetURL(token), a.cfg.ResetTTL, lang))
	return nil
}

// throttleResetRequest counts one request for the address (hashed: what was
// typed may be anyone's) and one for the IP, and refuses past the limits.
func (a *Account) throttleResetRequest(ctx context.Context, email, ip string) error {
	sum := sha256.Sum256([]byte(email))
	keys := []struct {
		key   string
		limit int
	}{
		{"reset-email:" + hex.EncodeToString(sum[:16]), a.cfg.MaxResetsPerEmail},
		{"reset-ip:" + cutTo(ip, 64), a.cfg.MaxResetsPerIP},
	}
	now := a.svc.clock.Now()
	since := now.Add(-a.svc.cfg.ThrottleWindow)
	for _, k := range keys {
		n, err := a.svc.store.CountSignInFailures(ctx, k.key, since)
		if err != nil {
			return fmt.Errorf("count reset requests: %w", err)
		}
		if n >= k.limit {
			a.svc.log.InfoContext(ctx, "password reset request throttled", "ip", ip)
			return ErrTooManyAttempts
		}
	}
	for _, k := range keys {
		if _, err := a.svc.store.RecordSignInFailure(ctx, k.key, now, since); err != nil {
			return fmt.Errorf("count reset request: %w", err)
		}
	}
	return nil
}

// send delivers m in the background; a failure is logged (the person sees
// the same answer either way, and may ask again).
func (a *Account) send(ctx context.Context, staff Staff, m notify.Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.SendTimeout)
	a.sends.Add(1)
	go func() {
		defer a.sends.Done()
		defer cancel()
		if err := a.cfg.Notifier.Send(ctx, m); err != nil {
			a.svc.log.ErrorContext(ctx, "send password reset link", "staff_id", staff.ID, "err", err)
			return
		}
		a.svc.log.InfoContext(ctx, "password reset link sent", "staff_id", staff.ID)
	}()
}

// resetMessage is the email that carries a reset link, in lang.
func resetMessage(to, link string, ttl time.Duration, lang string) notify.Message {
	minutes := int(ttl.Minutes())
	if lang == "en" {
		return notify.Message{Channel: notify.Email, To: to, Language: "en",
			Subject: "Reset your mandated password",
			Text: fmt.Sprintf("Hello,\n\nSomeone (you, we hope) asked to choose a new password for your mandated account.\n\n"+
				"Open this link within %d minutes to choose it. It works once:\n\n%s\n\n"+
				"You will also need the code of your authenticator app: the reset does not change your second factor. "+
				"Once the password is changed, every session of your account ends.\n\n"+
				"If you did not ask for this, ignore this message: your password stays as it is.\n", minutes, link)}
	}
	return notify.Message{Channel: notify.Email, To: to, Language: "fr",
		Subject: "Réinitialiser votre mot de passe mandated",
		Text: fmt.Sprintf("Bonjour,\n\nQuelqu'un (vous, nous l'espérons) a demandé à choisir un nouveau mot de passe pour votre compte mandated.\n\n"+
			"Ouvrez ce lien dans les %d minutes pour le choisir. Il ne sert qu'une fois :\n\n%s\n\n"+
			"Il vous faudra aussi le code de votre application d'authentification : la réinitialisation ne change pas votre deuxième facteur. "+
			"Une fois le mot de passe changé, toutes les sessions de votre compte se terminent.\n\n"+
			"Si vous n'avez rien demandé, ignorez ce message : votre mot de passe reste le même.\n", minutes, link)}
}

// openReset finds a usable reset link and its active account; reason says
// why it cannot be used ("" when it can: then err is nil too). staff is set
// whenever the link named an account.
func (a *Account) openReset(ctx context.Context, token string) (PasswordReset, Staff, string, error) {
	if token == "" || len(token) > 100 {
		return PasswordReset{}, Staff{}, "reset link unknown", ErrResetLinkInvalid
	}
	r, err := a.store.GetPasswordReset(ctx, hashToken(token))
	if errors.Is(err, mandate.ErrNotFound) {
		return PasswordReset{}, Staff{}, "reset link unknown", ErrResetLinkInvalid
	}
	if err != nil {
		return PasswordReset{}, Staff{}, "", fmt.Errorf("load reset link: %w", err)
	}
	staff, err := a.svc.store.GetStaff(ctx, r.StaffID)
	if errors.Is(err, mandate.ErrNotFound) {
		return r, Staff{}, "reset link unknown", ErrResetLinkInvalid
	}
	if err != nil {
		return r, Staff{}, "", fmt.Errorf("load staff %s: %w", r.StaffID, err)
	}
	switch {
	case r.UsedAt != nil:
		return r, staff, "reset link used", ErrResetLinkInvalid
	case !a.svc.clock.Now().Before(r.ExpiresAt):
		return r, staff, "reset link expired or replaced", ErrResetLinkInvalid
	case staff.Status != StaffActive:
		return r, staff, "reset link of an account not active (" + string(staff.Status) + ")", ErrResetLinkInvalid
	}
	return r, staff, "", nil
}

// OpenPasswordReset checks a reset link before its page is shown. A link
// that cannot be used gives ErrResetLinkInvalid, and the refusal is
// recorded (password.reset.completed, outcome denied), except past the
// per-address limit of refused links (see refuseLink).
func (a *Account) OpenPasswordReset(ctx context.Context, token string) (ResetView, error) {
	_, staff, reason, err := a.openReset(ctx, token)
	if errors.Is(err, ErrResetLinkInvalid) {
		a.svc.refuseLink(ctx, a.refusal(staff, "opened: "+reason))
		return ResetView{}, err
	}
	if err != nil {
		return ResetView{}, err
	}
	return ResetView{Email: staff.Email}, nil
}

// CompletePasswordReset sets a new password with a reset link, from ip:
// the password follows the enrolment rules (CheckPasswordPolicy) and the
// person proves their second factor (ResetProof). On success the link is
// used up and every session of the account ends. Wrong codes count as
// failed sign-ins of the account and the IP (ErrInvalidCode; the link stays
// usable until the throttle stops it with ErrTooManyAttempts); a link that
// is unknown, used, replaced, expired or of an inactive account gives
// ErrResetLinkInvalid. Each refusal is recorded.
func (a *Account) CompletePasswordReset(ctx context.Context, token, password string, proof ResetProof, ip string) error {
	ipKey := "ip:" + cutTo(ip, 64)
	if err := a.svc.checkThrottle(ctx, "", ipKey); err != nil {
		return err
	}
	_, staff, reason, err := a.openReset(ctx, token)
	if errors.Is(err, ErrResetLinkInvalid) {
		a.svc.recordFailure(ctx, ipKey)
		a.refuseReset(ctx, staff, reason)
		return err
	}
	if err != nil {
		return err
	}
	accountKey := "account:" + staff.Email
	if err := a.svc.checkThrottle(ctx, accountKey, ipKey); err != nil {
		return err
	}
	if err := CheckPasswordPolicy(password, staff.Email); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	now := a.svc.clock.Now()
	err = a.store.CompletePasswordReset(ctx, hashToken(token), now, func(st *Staff) error {
		if st.Status != StaffActive {
			return ErrResetLinkInvalid
		}
		step, err := a.verifySecondFactor(st, proof, now)
		if err != nil {
			return err
		}
		st.LastTOTPStep = step
		st.PasswordHash = hash
		return nil
	})
	switch {
	case errors.Is(err, ErrInvalidCode):
		a.svc.recordFailure(ctx, accountKey, ipKey)
		a.refuseReset(ctx, staff, "wrong second-factor code")
		return err
	case errors.Is(err, mandate.ErrConflict), errors.Is(err, mandate.ErrNotFound), errors.Is(err, ErrResetLinkInvalid):
		a.refuseReset(ctx, staff, "link used or expired meanwhile")
		return ErrResetLinkInvalid
	case err != nil:
		return fmt.Errorf("reset password of %s: %w", staff.ID, err)
	}
	// The password is changed (the transaction cannot wait on the log, which
	// needs the store's writer); if the record fails the person sees an error.
	if err := a.svc.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, staff.DisplayName), Structure: staff.StructureID,
		Action: audit.ActionResetCompleted, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return fmt.Errorf("reset password of %s: %w", staff.ID, err)
	}
	if err := a.svc.store.ClearSignInFailures(ctx, accountKey); err != nil {
		a.svc.log.WarnContext(ctx, "clear sign-in failures", "err", err)
	}
	if _, err := a.svc.endAllSessions(ctx, StaffSubject(staff.ID), "password reset"); err != nil {
		return fmt.Errorf("reset password of %s: %w", staff.ID, err)
	}
	a.svc.log.InfoContext(ctx, "staff password reset", "staff_id", staff.ID)
	return nil
}

// verifySecondFactor checks proof against st's second factor at now and
// returns the TOTP step to remember (so the code is never accepted again).
// ErrInvalidCode when it does not match. Passkeys plug in here (ResetProof).
func (a *Account) verifySecondFactor(st *Staff, proof ResetProof, now time.Time) (int64, error) {
	if st.SealedTOTP == nil {
		return 0, ErrInvalidCode
	}
	secret, err := a.svc.sealer.Open(st.SealedTOTP, totpPurpose(st.ID))
	if err != nil {
		return 0, fmt.Errorf("open totp of %s: %w", st.ID, err)
	}
	return validateTOTP(string(secret), proof.TOTPCode, now, st.LastTOTPStep)
}

// refuseReset records a refused reset; the actor is the account when the
// link named one. A lost record is logged: the reset fails anyway.
func (a *Account) refuseReset(ctx context.Context, staff Staff, reason string) {
	if err := a.svc.record(ctx, a.refusal(staff, reason)); err != nil {
		a.svc.log.ErrorContext(ctx, "record refused password reset", "err", err)
	}
}

// refusal is the event of a refused reset link.
func (a *Account) refusal(staff Staff, reason string) audit.Event {
	actor := audit.Actor{Kind: audit.ActorUnknown}
	if staff.ID != "" {
		actor = staffActor(staff.ID, "")
	}
	return audit.Event{
		Actor: actor, Structure: staff.StructureID, Action: audit.ActionResetCompleted,
		Outcome: audit.OutcomeDenied, Reason: reason,
	}
}
