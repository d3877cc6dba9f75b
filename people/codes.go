package people

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// OneTimeCode is a code sent to a holder's own phone or email. Only its
// HMAC-SHA256 under the server's code key is stored.
type OneTimeCode struct {
	ID        string
	HolderID  string
	Purpose   CodePurpose
	Hash      []byte
	Channel   notify.Channel
	CreatedAt time.Time
	ExpiresAt time.Time
	Attempts  int        // wrong tries so far
	UsedAt    *time.Time // set when the code was accepted
	VoidedAt  *time.Time // set when superseded by a newer code or after too many wrong tries
}

// CodeStore persists one-time codes. Methods return errors wrapping
// mandate.ErrNotFound when there is nothing to act on.
type CodeStore interface {
	// CreateCode stores c and, in the same transaction, voids (at
	// c.CreatedAt) every other live code of the same holder and purpose: a
	// new code supersedes the older ones. It also deletes the holder's
	// codes created more than a day before c.
	CreateCode(ctx context.Context, c OneTimeCode) error
	// CountCodesSince counts the codes created for holderID since t,
	// whatever their purpose and state.
	CountCodesSince(ctx context.Context, holderID string, since time.Time) (int, error)
	// UpdateLiveCode reads the newest live code of holderID for purpose
	// (not used, not voided, expiring after now), changes it with fn and
	// writes it, in one transaction (row-locked on PostgreSQL). fn's error
	// aborts and is returned; mandate.ErrNotFound when there is no live code.
	UpdateLiveCode(ctx context.Context, holderID string, purpose CodePurpose, now time.Time, fn func(*OneTimeCode) error) error
	// PruneCodes deletes every code created before t; returns how many.
	PruneCodes(ctx context.Context, before time.Time) (int, error)
}

// Errors of one-time codes.
var (
	// ErrTooManyCodes: the holder was sent the most codes allowed in an
	// hour, or this address asked for too many.
	ErrTooManyCodes = errors.New("too many codes were asked for; wait before asking for another")
	// ErrNoContactForCodes: the holder has neither phone nor email.
	ErrNoContactForCodes = errors.New("the holder has no phone or email to send a code to")
)

// SendCode sends a new one-time code for purpose to the holder's own
// contact and returns the channel it went by: by default SMS when the
// holder has a phone, email when they have none or the SMS could not be
// sent (HoldersConfig.Channels). A new code supersedes the previous ones of
// the same purpose. At most MaxCodesPerHour codes per holder per hour, and
// MaxIPCodeRequests per address within the throttle window
// (ErrTooManyCodes). ErrNoContactForCodes when the holder has no contact,
// notify.ErrNoChannel when no notifier serves their contacts. Every send is
// audited; a send whose record cannot be written does not happen.
func (h *Holders) SendCode(ctx context.Context, holderID string, purpose CodePurpose, ip string) (notify.Channel, error) {
	if purpose != CodeSignIn && purpose != CodeEnrol {
		return "", fmt.Errorf("send code: unknown purpose %q", purpose)
	}
	holder, err := h.store.GetHolder(ctx, holderID)
	if err != nil {
		return "", fmt.Errorf("send code: %w", err)
	}
	if err := h.allowCodeRequest(ctx, ip); err != nil {
		return "", err
	}
	return h.sendCode(ctx, holder, purpose)
}

// allowCodeRequest counts a code request from ip and refuses it past the
// per-address limit.
func (h *Holders) allowCodeRequest(ctx context.Context, ip string) error {
	now := h.clock.Now()
	n, err := h.store.RecordSignInFailure(ctx, "code-ip:"+clip(ip, 64), now, now.Add(-h.cfg.ThrottleWindow))
	if err != nil {
		return fmt.Errorf("count code requests: %w", err)
	}
	if n > h.cfg.MaxIPCodeRequests {
		return ErrTooManyCodes
	}
	return nil
}

func (h *Holders) sendCode(ctx context.Context, holder Holder, purpose CodePurpose) (notify.Channel, error) {
	now := h.clock.Now()
	n, err := h.store.CountCodesSince(ctx, holder.ID, now.Add(-time.Hour))
	if err != nil {
		return "", fmt.Errorf("send code: %w", err)
	}
	if n >= h.cfg.MaxCodesPerHour {
		h.recordRefused(ctx, holder.ID, "send limit reached")
		return "", ErrTooManyCodes
	}
	channels := h.channels(holder)
	if len(channels) == 0 {
		return "", ErrNoContactForCodes
	}
	code, err := newCode(h.cfg.CodeDigits)
	if err != nil {
		return "", err
	}
	c := OneTimeCode{
		ID: uuid.NewString(), HolderID: holder.ID, Purpose: purpose, Hash: h.codeHash(holder.ID, purpose, code),
		CreatedAt: now, ExpiresAt: now.Add(h.cfg.CodeTTL),
	}
	var sendErr error
	for _, ch := range channels {
		c.Channel = ch
		if err := h.record(ctx, audit.Event{
			Actor: audit.Actor{Kind: audit.ActorSystem}, Holder: holder.ID,
			Action: audit.ActionCodeSent, Outcome: audit.OutcomeSuccess,
			Reason: fmt.Sprintf("%s code by %s", purpose, ch),
		}); err != nil {
			return "", fmt.Errorf("send code: %w", err)
		}
		if err := h.store.CreateCode(ctx, c); err != nil {
			return "", fmt.Errorf("send code: %w", err)
		}
		sendErr = h.deliver(ctx, holder, purpose, ch, code)
		if sendErr == nil {
			h.log.InfoContext(ctx, "one-time code sent", "holder_id", holder.ID, "purpose", purpose, "channel", ch)
			return ch, nil
		}
		if err := h.record(ctx, audit.Event{
			Actor: audit.Actor{Kind: audit.ActorSystem}, Holder: holder.ID,
			Action: audit.ActionCodeSent, Outcome: audit.OutcomeError,
			Reason: fmt.Sprintf("%s code by %s not delivered", purpose, ch),
		}); err != nil {
			h.log.ErrorContext(ctx, "record failed code delivery", "err", err)
		}
		h.log.WarnContext(ctx, "one-time code not delivered", "holder_id", holder.ID, "channel", ch, "err", sendErr)
		c.ID = uuid.NewString() // the next channel gets a code of its own
		if code, err = newCode(h.cfg.CodeDigits); err != nil {
			return "", err
		}
		c.Hash = h.codeHash(holder.ID, purpose, code)
	}
	return "", fmt.Errorf("send code: %w", sendErr)
}

// channels are where the holder's codes may go, in the configured order of
// preference (by default their phone by SMS, then their email).
func (h *Holders) channels(holder Holder) []notify.Channel {
	var out []notify.Channel
	for _, ch := range h.cfg.Channels {
		switch {
		case ch == notify.SMS && holder.Phone != "", ch == notify.Email && holder.Email != "":
			out = append(out, ch)
		}
	}
	return out
}

func (h *Holders) deliver(ctx context.Context, holder Holder, purpose CodePurpose, ch notify.Channel, code string) error {
	if h.cfg.Notifier == nil {
		return notify.ErrNoChannel
	}
	m := codeMessage(holder.Language, purpose, code, h.cfg.CodeTTL)
	m.Channel = ch
	m.To = holder.Email
	if ch == notify.SMS {
		m.To = holder.Phone
	}
	return h.cfg.Notifier.Send(ctx, m)
}

// codeMessage is the text of a code message, in the holder's language.
func codeMessage(lang string, purpose CodePurpose, code string, ttl time.Duration) notify.Message {
	minutes := int(ttl.Round(time.Minute) / time.Minute)
	if lang == "en" {
		subject, what := "Your sign-in code", "to sign in"
		if purpose == CodeEnrol {
			subject, what = "Your code to add a passkey", "to add a passkey to your account"
		}
		return notify.Message{Language: "en", Subject: subject, Text: fmt.Sprintf(
			"Your mandated code %s: %s\nIt works once, for %d minutes.\nNever give it to anyone, not even to the person helping you. If you did not ask for it, ignore this message.",
			what, code, minutes)}
	}
	subject, what := "Votre code de connexion", "pour vous connecter"
	if purpose == CodeEnrol {
		subject, what = "Votre code pour ajouter une clé d'accès", "pour ajouter une clé d'accès (passkey)"
	}
	return notify.Message{Language: "fr", Subject: subject, Text: fmt.Sprintf(
		"Votre code mandated %s : %s\nIl ne sert qu'une fois, pendant %d minutes.\nNe le donnez à personne, même pas à la personne qui vous aide. Si vous ne l'avez pas demandé, ignorez ce message.",
		what, code, minutes)}
}

// newCode returns n random decimal digits (crypto/rand).
func newCode(n int) (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", fmt.Errorf("random code: %w", err)
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// codeHash is the stored form of a code: HMAC-SHA256 under the code key,
// bound to the holder and the purpose.
func (h *Holders) codeHash(holderID string, purpose CodePurpose, code string) []byte {
	m := hmac.New(sha256.New, h.cfg.CodeKey)
	m.Write([]byte("mandated one-time code\x00" + holderID + "\x00" + string(purpose) + "\x00" + code))
	return m.Sum(nil)
}

// normalizeCode drops the spaces and dashes people type in codes.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\u00a0' {
			return -1
		}
		return r
	}, code)
}

// VerifyCode checks a code the holder typed against their live code for
// purpose. A right code is used up at once (single use). A wrong one counts
// against the code (MaxCodeAttempts wrong tries void it), the holder and
// the address (past MaxHolderFailures or MaxIPFailures within the throttle
// window, ErrTooManyAttempts until the window has passed). ErrInvalidCode
// for a wrong, expired, superseded or already used code. Every success and
// failure is audited, except attempts refused by the lock after the one
// that set it (they could grow the append-only log without end).
func (h *Holders) VerifyCode(ctx context.Context, holderID string, purpose CodePurpose, code, ip string) error {
	holder, err := h.store.GetHolder(ctx, holderID)
	if err != nil {
		return fmt.Errorf("verify code: %w", err)
	}
	return h.verifyCode(ctx, holder, purpose, code, ip)
}

func (h *Holders) verifyCode(ctx context.Context, holder Holder, purpose CodePurpose, code, ip string) error {
	holderKey, ipKey := codeThrottleKeys(holder.Mailbox, ip)
	if err := h.checkThrottle(ctx, holderKey, ipKey); err != nil {
		return err
	}
	code = normalizeCode(code)
	typed := h.codeHash(holder.ID, purpose, clip(code, 16))
	now := h.clock.Now()
	reason := ""
	err := h.store.UpdateLiveCode(ctx, holder.ID, purpose, now, func(c *OneTimeCode) error {
		if hmac.Equal(c.Hash, typed) {
			c.UsedAt = &now
			return nil
		}
		c.Attempts++
		reason = "wrong code"
		if c.Attempts >= h.cfg.MaxCodeAttempts {
			c.VoidedAt = &now
			reason = "wrong code; code void"
		}
		return nil
	})
	if errors.Is(err, mandate.ErrNotFound) {
		reason = "no live code (expired, used or superseded)"
	} else if err != nil {
		return fmt.Errorf("verify code: %w", err)
	}
	if reason != "" {
		if h.countFailure(ctx, holderKey, ipKey) >= h.cfg.MaxHolderFailures {
			reason += "; locked"
		}
		h.recordRefused(ctx, holder.ID, fmt.Sprintf("%s code: %s", purpose, reason))
		h.log.InfoContext(ctx, "one-time code refused", "holder_id", holder.ID, "ip", ip)
		return ErrInvalidCode
	}
	if err := h.record(ctx, audit.Event{
		Actor: holderActor(holder.ID), Holder: holder.ID,
		Action: audit.ActionCodeVerified, Outcome: audit.OutcomeSuccess, Reason: string(purpose) + " code",
	}); err != nil {
		return fmt.Errorf("verify code: %w", err)
	}
	if err := h.store.ClearSignInFailures(ctx, holderKey); err != nil {
		h.log.WarnContext(ctx, "clear code failures", "err", err)
	}
	if holder.ContactConfirmedAt == nil {
		err := h.store.UpdateHolder(ctx, holder.ID, func(x *Holder) error {
			if x.ContactConfirmedAt == nil {
				x.ContactConfirmedAt = &now
			}
			return nil
		})
		if err != nil {
			h.log.WarnContext(ctx, "mark holder contact confirmed", "holder_id", holder.ID, "err", err)
		}
	}
	return nil
}

func (h *Holders) checkThrottle(ctx context.Context, holderKey, ipKey string) error {
	since := h.clock.Now().Add(-h.cfg.ThrottleWindow)
	n, err := h.store.CountSignInFailures(ctx, holderKey, since)
	if err != nil {
		return fmt.Errorf("count code failures: %w", err)
	}
	if n >= h.cfg.MaxHolderFailures {
		return ErrTooManyAttempts
	}
	n, err = h.store.CountSignInFailures(ctx, ipKey, since)
	if err != nil {
		return fmt.Errorf("count code failures: %w", err)
	}
	if n >= h.cfg.MaxIPFailures {
		return ErrTooManyAttempts
	}
	return nil
}

// countFailure counts a failure under each key and returns the first's count.
func (h *Holders) countFailure(ctx context.Context, keys ...string) int {
	now := h.clock.Now()
	first := 0
	for i, k := range keys {
		n, err := h.store.RecordSignInFailure(ctx, k, now, now.Add(-h.cfg.ThrottleWindow))
		if err != nil {
			h.log.WarnContext(ctx, "record code failure", "err", err)
		}
		if i == 0 {
			first = n
		}
	}
	return first
}

// recordRefused records a refused code; a lost record is logged (the
// attempt fails anyway).
func (h *Holders) recordRefused(ctx context.Context, holderID, reason string) {
	if err := h.record(ctx, audit.Event{
		Actor: audit.Actor{Kind: audit.ActorUnknown}, Holder: holderID,
		Action: audit.ActionCodeRefused, Outcome: audit.OutcomeDenied, Reason: reason,
	}); err != nil {
		h.log.ErrorContext(ctx, "record refused code", "err", err)
	}
}

// SendSignInCode is step one of a holder's sign-in with a code: it sends a
// sign-in code to the holder of mailbox, if there is one. It answers the
// same (nil) whether or not the mailbox is known, and whether or not the
// code could be delivered, so that nobody can learn who has a record here;
// only ErrTooManyCodes (per address, counted for every request) and store
// failures come back.
func (h *Holders) SendSignInCode(ctx context.Context, mailbox, ip string) error {
	send, err := h.PrepareSignInCode(ctx, mailbox, ip)
	if err != nil {
		return err
	}
	return send(ctx)
}

// PrepareSignInCode is SendSignInCode in two parts, so that a page can
// answer at once, the same for every mailbox, and send in the background:
// it counts the request against the address (ErrTooManyCodes past the
// limit) and finds the holder, and returns send, which sends the code (a
// no-op for an unknown mailbox). send logs what went wrong and returns only
// store failures.
func (h *Holders) PrepareSignInCode(ctx context.Context, mailbox, ip string) (send func(context.Context) error, err error) {
	nothing := func(context.Context) error { return nil }
	if err := h.allowCodeRequest(ctx, ip); err != nil {
		return nil, err
	}
	mailbox, err = NormalizeEmail(mailbox)
	if err != nil {
		return nothing, nil
	}
	holder, err := h.store.FindHolderByMailbox(ctx, mailbox)
	if errors.Is(err, mandate.ErrNotFound) {
		return nothing, nil
	}
	if err != nil {
		return nil, fmt.Errorf("send sign-in code: %w", err)
	}
	return func(ctx context.Context) error {
		_, err := h.sendCode(ctx, holder, CodeSignIn)
		switch {
		case err == nil:
		case errors.Is(err, ErrTooManyCodes), errors.Is(err, ErrNoContactForCodes), errors.Is(err, notify.ErrNoChannel):
			h.log.InfoContext(ctx, "no sign-in code sent", "holder_id", holder.ID, "err", err)
		default:
			h.log.WarnContext(ctx, "sign-in code not sent", "holder_id", holder.ID, "err", err)
		}
		return nil
	}, nil
}

// SignInWithCode is step two: it checks the code sent to the holder of
// mailbox and returns the holder. ErrSignInFailed for an unknown mailbox
// or a wrong, expired or used code (they cannot be told apart),
// ErrTooManyAttempts when locked. A success is audited as a sign-in.
func (h *Holders) SignInWithCode(ctx context.Context, mailbox, code, ip string) (Holder, error) {
	mailbox, err := NormalizeEmail(mailbox)
	if err != nil {
		return Holder{}, ErrSignInFailed
	}
	holder, err := h.store.FindHolderByMailbox(ctx, mailbox)
	if errors.Is(err, mandate.ErrNotFound) {
		// Throttled and counted exactly like a known mailbox, so that the
		// lock does not tell them apart either.
		holderKey, ipKey := codeThrottleKeys(mailbox, ip)
		if err := h.checkThrottle(ctx, holderKey, ipKey); err != nil {
			return Holder{}, err
		}
		h.countFailure(ctx, holderKey, ipKey)
		if err := h.record(ctx, audit.Event{
			Actor: audit.Actor{Kind: audit.ActorUnknown}, Action: audit.ActionCodeRefused,
			Outcome: audit.OutcomeDenied, Reason: "signin code: unknown mailbox",
		}); err != nil {
			h.log.ErrorContext(ctx, "record refused code", "err", err)
		}
		return Holder{}, ErrSignInFailed
	}
	if err != nil {
		return Holder{}, fmt.Errorf("sign in with code: %w", err)
	}
	err = h.verifyCode(ctx, holder, CodeSignIn, code, ip)
	if errors.Is(err, ErrInvalidCode) {
		return Holder{}, ErrSignInFailed
	}
	if err != nil {
		return Holder{}, err
	}
	if err := h.record(ctx, audit.Event{
		Actor: holderActor(holder.ID), Holder: holder.ID,
		Action: audit.ActionSignInSucceeded, Outcome: audit.OutcomeSuccess, Reason: "one-time code",
	}); err != nil {
		return Holder{}, fmt.Errorf("sign in %s: %w", holder.ID, err)
	}
	h.log.InfoContext(ctx, "holder signed in", "holder_id", holder.ID, "ip", ip)
	return holder, nil
}

// codeThrottleKeys are the failure counters of a holder's codes (keyed by
// mailbox, so that an unknown mailbox locks like a known one) and of an
// address (shared with staff sign-in).
func codeThrottleKeys(mailbox, ip string) (holderKey, ipKey string) {
	return "holder:" + clip(mailbox, 254), "ip:" + clip(ip, 64)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
