package people

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// Errors of a staff member's own professional mailbox.
var (
	// ErrNotActiveStaff: only a signed-in, active staff account declares
	// its professional mailbox (holders have theirs already).
	ErrNotActiveStaff = errors.New("only an active staff account can declare its professional mailbox")
	// ErrMailboxDeclared: the mailbox is already the account's.
	ErrMailboxDeclared = errors.New("this mailbox is already declared as yours")
	// ErrMailboxTaken: another staff account declared this mailbox.
	ErrMailboxTaken = errors.New("another account declared this mailbox; ask your structure's administrator")
)

// StaffMailboxes lets a signed-in staff member become the holder of their
// own professional mailbox, so that colleagues can be given mandates on it
// (colleague delegations). The professional mailbox is the address the
// account signs in with. The staff member proves they control it with a
// one-time code sent to that very mailbox; then the holder record of the
// mailbox is created (or, when one exists without a staff account, marked
// as theirs), with Holder.StaffID set, and served by their structure. Every
// step is audited.
type StaffMailboxes struct {
	svc *Service
	h   *Holders
}

// NewStaffMailboxes returns the service over the people service (accounts,
// sealer) and the holders service (holder records, code settings, notifier,
// audit log).
func NewStaffMailboxes(svc *Service, h *Holders) *StaffMailboxes {
	return &StaffMailboxes{svc: svc, h: h}
}

// StaffMailbox is where a staff member's professional mailbox stands.
type StaffMailbox struct {
	Mailbox  string // the account's address
	Declared bool   // Holder is theirs (Holder.StaffID is the account)
	Holder   Holder // when Declared
	Taken    bool   // another staff account declared this mailbox
}

// Mailbox says whether p has declared their professional mailbox.
func (m *StaffMailboxes) Mailbox(ctx context.Context, p Principal) (StaffMailbox, error) {
	staff, err := m.activeStaff(ctx, p)
	if err != nil {
		return StaffMailbox{}, err
	}
	return m.mailboxOf(ctx, staff)
}

func (m *StaffMailboxes) mailboxOf(ctx context.Context, staff Staff) (StaffMailbox, error) {
	out := StaffMailbox{Mailbox: staff.Email}
	holder, err := m.h.store.FindHolderByMailbox(ctx, staff.Email)
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return out, nil
	case err != nil:
		return StaffMailbox{}, fmt.Errorf("professional mailbox of %s: %w", staff.ID, err)
	}
	switch holder.StaffID {
	case staff.ID:
		out.Declared, out.Holder = true, holder
	case "":
	default:
		out.Taken = true
	}
	return out, nil
}

func (m *StaffMailboxes) activeStaff(ctx context.Context, p Principal) (Staff, error) {
	if p.Kind != "staff" || p.ID == "" {
		return Staff{}, ErrNotActiveStaff
	}
	staff, err := m.svc.store.GetStaff(ctx, p.ID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Staff{}, ErrNotActiveStaff
	}
	if err != nil {
		return Staff{}, fmt.Errorf("load staff %s: %w", p.ID, err)
	}
	if staff.Status != StaffActive {
		return Staff{}, ErrNotActiveStaff
	}
	return staff, nil
}

// MailboxChallenge is a code sent to a professional mailbox: the code goes
// to the mailbox, Token comes back with it (Declare). Token is opaque,
// sealed by the server; it holds no code, only its HMAC.
type MailboxChallenge struct {
	Token     string
	Mailbox   string
	ExpiresAt time.Time
}

// challengeBody is what a challenge token seals.
type challengeBody struct {
	Staff   string `json:"s"`
	Mailbox string `json:"m"`
	Expires int64  `json:"e"` // Unix seconds
	Hash    []byte `json:"h"`
}

const challengePurpose = "mandated staff mailbox challenge v1"

// maxChallengeLen bounds a challenge token as typed back (a sealed body is
// about 250 characters).
const maxChallengeLen = 1024

// SendCode sends a one-time code, in lang, to p's professional mailbox, and
// returns the challenge to give back with it. Limits: the holders' code
// settings (length, lifetime, MaxCodesPerHour codes per account within the
// throttle window, MaxIPCodeRequests per address): ErrTooManyCodes.
// ErrMailboxDeclared when it is theirs already, ErrMailboxTaken when
// another account declared it, notify.ErrNoChannel without email delivery.
// The send is recorded first (code.sent); a failed delivery is recorded too.
func (m *StaffMailboxes) SendCode(ctx context.Context, p Principal, ip, lang string) (MailboxChallenge, error) {
	staff, err := m.activeStaff(ctx, p)
	if err != nil {
		return MailboxChallenge{}, err
	}
	st, err := m.mailboxOf(ctx, staff)
	if err != nil {
		return MailboxChallenge{}, err
	}
	switch {
	case st.Declared:
		return MailboxChallenge{}, ErrMailboxDeclared
	case st.Taken:
		m.refuse(ctx, staff, "mailbox code: mailbox declared by another account")
		return MailboxChallenge{}, ErrMailboxTaken
	}
	if m.h.cfg.Notifier == nil {
		return MailboxChallenge{}, notify.ErrNoChannel
	}
	if err := m.h.allowCodeRequest(ctx, ip); err != nil {
		return MailboxChallenge{}, err
	}
	now := m.h.clock.Now()
	sentKey := "mailbox-code:" + staff.ID
	n, err := m.h.store.RecordSignInFailure(ctx, sentKey, now, now.Add(-m.h.cfg.ThrottleWindow))
	if err != nil {
		return MailboxChallenge{}, fmt.Errorf("count mailbox codes: %w", err)
	}
	if n > m.h.cfg.MaxCodesPerHour {
		if n == m.h.cfg.MaxCodesPerHour+1 { // the first refusal only: asking again cannot grow the log
			m.refuse(ctx, staff, "mailbox code: send limit reached")
		}
		return MailboxChallenge{}, ErrTooManyCodes
	}
	code, err := newCode(m.h.cfg.CodeDigits)
	if err != nil {
		return MailboxChallenge{}, err
	}
	body := challengeBody{Staff: staff.ID, Mailbox: staff.Email, Expires: now.Add(m.h.cfg.CodeTTL).Unix()}
	body.Hash = m.codeHash(body, code)
	token, err := m.seal(body)
	if err != nil {
		return MailboxChallenge{}, err
	}
	if err := m.h.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, ""), Structure: staff.StructureID,
		Action: audit.ActionCodeSent, Outcome: audit.OutcomeSuccess, Reason: "mailbox code by email",
	}); err != nil {
		return MailboxChallenge{}, fmt.Errorf("send mailbox code: %w", err)
	}
	msg := mailboxCodeMessage(lang, code, m.h.cfg.CodeTTL)
	msg.Channel, msg.To = notify.Email, staff.Email
	if err := m.h.cfg.Notifier.Send(ctx, msg); err != nil {
		if rerr := m.h.record(ctx, audit.Event{
			Actor: staffActor(staff.ID, ""), Structure: staff.StructureID,
			Action: audit.ActionCodeSent, Outcome: audit.OutcomeError, Reason: "mailbox code by email not delivered",
		}); rerr != nil {
			m.h.log.ErrorContext(ctx, "record failed mailbox code delivery", "err", rerr)
		}
		return MailboxChallenge{}, fmt.Errorf("send mailbox code: %w", err)
	}
	m.h.log.InfoContext(ctx, "mailbox code sent", "staff_id", staff.ID)
	return MailboxChallenge{Token: token, Mailbox: staff.Email, ExpiresAt: time.Unix(body.Expires, 0).UTC()}, nil
}

// Declare checks the code p received in their professional mailbox against
// the challenge SendCode returned and makes p the holder of that mailbox:
// a new holder record (name from the account, contact email the mailbox,
// proven; language lang) served by their structure, or, when the mailbox
// has a record without a staff account, that record marked as theirs and
// linked to their structure (its name and contacts unchanged). A wrong or
// expired code is ErrInvalidCode, counted against the account and the
// address like holders' codes (ErrTooManyAttempts past the limits); each
// refusal and the declaration are recorded. Declaring again changes
// nothing (Linked, no event).
func (m *StaffMailboxes) Declare(ctx context.Context, p Principal, challenge, code, ip, lang string) (CreateResult, error) {
	staff, err := m.activeStaff(ctx, p)
	if err != nil {
		return CreateResult{}, err
	}
	failKey, ipKey := "mailbox:"+staff.ID, "ip:"+clip(ip, 64)
	if err := m.h.checkThrottle(ctx, failKey, ipKey); err != nil {
		return CreateResult{}, err
	}
	now := m.h.clock.Now()
	body, ok := m.open(challenge)
	reason := ""
	switch {
	case !ok || body.Staff != staff.ID || body.Mailbox != staff.Email:
		reason = "mailbox code: unknown challenge"
	case !now.Before(time.Unix(body.Expires, 0)):
		reason = "mailbox code: expired"
	case !hmac.Equal(body.Hash, m.codeHash(body, clip(normalizeCode(code), 16))):
		reason = "mailbox code: wrong code"
	}
	if reason != "" {
		if m.h.countFailure(ctx, failKey, ipKey) >= m.h.cfg.MaxHolderFailures {
			reason += "; locked"
		}
		m.refuse(ctx, staff, reason)
		return CreateResult{}, ErrInvalidCode
	}
	if err := m.h.store.ClearSignInFailures(ctx, failKey); err != nil {
		m.h.log.WarnContext(ctx, "clear mailbox code failures", "err", err)
	}
	return m.declare(ctx, staff, lang)
}

// declare creates or marks the holder record of staff's mailbox.
func (m *StaffMailboxes) declare(ctx context.Context, staff Staff, lang string) (CreateResult, error) {
	existing, err := m.h.store.FindHolderByMailbox(ctx, staff.Email)
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		res, err := m.create(ctx, staff, lang)
		if !errors.Is(err, mandate.ErrAlreadyExists) {
			return res, err
		}
		if existing, err = m.h.store.FindHolderByMailbox(ctx, staff.Email); err != nil { // created meanwhile
			return CreateResult{}, fmt.Errorf("declare professional mailbox: %w", err)
		}
	case err != nil:
		return CreateResult{}, fmt.Errorf("declare professional mailbox: %w", err)
	}
	return m.claim(ctx, staff, existing)
}

func (m *StaffMailboxes) create(ctx context.Context, staff Staff, lang string) (CreateResult, error) {
	now := m.h.clock.Now()
	name, err := normalizeDisplayName(staff.DisplayName)
	if err != nil {
		name, _, _ = strings.Cut(staff.Email, "@")
	}
	if lang != "en" {
		lang = "fr"
	}
	holder := Holder{
		ID: uuid.NewString(), Mailbox: staff.Email, DisplayName: name, Email: staff.Email, Language: lang,
		StaffID: staff.ID, ContactConfirmedAt: &now, CreatedAt: now,
	}
	if err := m.h.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, staff.DisplayName), Holder: holder.ID, Structure: staff.StructureID,
		Action: audit.ActionHolderCreated, Outcome: audit.OutcomeSuccess, Reason: "own professional mailbox",
	}); err != nil {
		return CreateResult{}, fmt.Errorf("declare professional mailbox: %w", err)
	}
	if err := m.h.store.CreateHolder(ctx, holder, staff.StructureID); err != nil {
		if errors.Is(err, mandate.ErrAlreadyExists) {
			return CreateResult{}, err
		}
		return CreateResult{}, fmt.Errorf("declare professional mailbox of %s: %w", staff.ID, err)
	}
	m.h.log.InfoContext(ctx, "professional mailbox declared", "staff_id", staff.ID, "holder_id", holder.ID)
	return CreateResult{Holder: holder}, nil
}

// claim marks an existing holder record as staff's and links it to their
// structure.
func (m *StaffMailboxes) claim(ctx context.Context, staff Staff, holder Holder) (CreateResult, error) {
	if holder.StaffID != "" && holder.StaffID != staff.ID {
		m.refuse(ctx, staff, "mailbox declared by another account")
		return CreateResult{}, ErrMailboxTaken
	}
	served, err := m.h.store.HolderServedBy(ctx, holder.ID, staff.StructureID)
	if err != nil {
		return CreateResult{}, fmt.Errorf("declare professional mailbox: %w", err)
	}
	if holder.StaffID == staff.ID && served {
		return CreateResult{Holder: holder, Linked: true}, nil
	}
	if err := m.h.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, staff.DisplayName), Holder: holder.ID, Structure: staff.StructureID,
		Action: audit.ActionHolderLinked, Outcome: audit.OutcomeSuccess, Reason: "own professional mailbox",
	}); err != nil {
		return CreateResult{}, fmt.Errorf("declare professional mailbox: %w", err)
	}
	err = m.h.store.UpdateHolder(ctx, holder.ID, func(x *Holder) error {
		if x.StaffID != "" && x.StaffID != staff.ID {
			return ErrMailboxTaken
		}
		x.StaffID = staff.ID
		holder = *x
		return nil
	})
	if errors.Is(err, ErrMailboxTaken) {
		return CreateResult{}, err
	}
	if err != nil {
		return CreateResult{}, fmt.Errorf("declare professional mailbox of %s: %w", staff.ID, err)
	}
	if !served {
		if err := m.h.store.LinkHolder(ctx, holder.ID, staff.StructureID, m.h.clock.Now()); err != nil {
			return CreateResult{}, fmt.Errorf("declare professional mailbox of %s: %w", staff.ID, err)
		}
	}
	m.h.log.InfoContext(ctx, "professional mailbox declared", "staff_id", staff.ID, "holder_id", holder.ID, "existing", true)
	return CreateResult{Holder: holder, Linked: true}, nil
}

// refuse records a refused step; a lost record is logged (the step fails
// anyway).
func (m *StaffMailboxes) refuse(ctx context.Context, staff Staff, reason string) {
	if err := m.h.record(ctx, audit.Event{
		Actor: staffActor(staff.ID, ""), Structure: staff.StructureID,
		Action: audit.ActionCodeRefused, Outcome: audit.OutcomeDenied, Reason: reason,
	}); err != nil {
		m.h.log.ErrorContext(ctx, "record refused mailbox declaration", "err", err)
	}
}

// codeHash binds a code to its challenge: HMAC-SHA256 under the code key.
func (m *StaffMailboxes) codeHash(b challengeBody, code string) []byte {
	mac := hmac.New(sha256.New, m.h.cfg.CodeKey)
	fmt.Fprintf(mac, "mandated staff mailbox code\x00%s\x00%s\x00%d\x00%s", b.Staff, b.Mailbox, b.Expires, code)
	return mac.Sum(nil)
}

func (m *StaffMailboxes) seal(b challengeBody) (string, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return "", fmt.Errorf("mailbox challenge: %w", err)
	}
	sealed, err := m.svc.sealer.Seal(plain, challengePurpose)
	if err != nil {
		return "", fmt.Errorf("mailbox challenge: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// open reads a challenge token; false when it is not one this server sealed.
func (m *StaffMailboxes) open(token string) (challengeBody, bool) {
	if token == "" || len(token) > maxChallengeLen {
		return challengeBody{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return challengeBody{}, false
	}
	plain, err := m.svc.sealer.Open(sealed, challengePurpose)
	if err != nil {
		return challengeBody{}, false
	}
	var b challengeBody
	if err := json.Unmarshal(plain, &b); err != nil {
		return challengeBody{}, false
	}
	return b, true
}

// mailboxCodeMessage is the email that carries a mailbox code, in lang.
func mailboxCodeMessage(lang, code string, ttl time.Duration) notify.Message {
	minutes := int(ttl.Round(time.Minute) / time.Minute)
	if lang == "en" {
		return notify.Message{Language: "en", Subject: "Your code to declare your professional mailbox",
			Text: fmt.Sprintf("Your mandated code to declare this mailbox as your professional mailbox: %s\n"+
				"It works once, for %d minutes. Never give it to anyone. If you did not ask for it, ignore this message: nothing changes.", code, minutes)}
	}
	return notify.Message{Language: "fr", Subject: "Votre code pour déclarer votre boîte professionnelle",
		Text: fmt.Sprintf("Votre code mandated pour déclarer cette adresse comme votre boîte professionnelle : %s\n"+
			"Il ne sert qu'une fois, pendant %d minutes. Ne le donnez à personne. Si vous ne l'avez pas demandé, ignorez ce message : rien ne change.", code, minutes)}
}
