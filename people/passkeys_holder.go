package people

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
)

// EnrolmentLink is a holder's passkey enrolment link, shown once to the
// mediator who started it (as a QR code and as text).
type EnrolmentLink struct {
	URL       string
	ExpiresAt time.Time
}

// HolderEnrolURL is the page an enrolment token opens.
func HolderEnrolURL(base, token string) string {
	return strings.TrimSuffix(base, "/") + "/holder/enrol?token=" + url.QueryEscape(token)
}

// enrolmentStructure is the structure on whose behalf staff may start a
// holder's passkey enrolment: their own when it serves the holder and they
// hold PermServeHolders there; else — platform staff, who act in every
// structure — the first structure serving the holder in which people.Can
// grants them PermServeHolders. ErrForbidden when there is none (which is
// also the answer for a holder that does not exist).
func (k *Passkeys) enrolmentStructure(ctx context.Context, staff Principal, holderID string) (string, error) {
	if holderID == "" || len(holderID) > 100 {
		return "", fmt.Errorf("%w: no such holder", ErrForbidden)
	}
	if Can(staff, PermServeHolders, staff.StructureID) {
		served, err := k.holders.HolderServedBy(ctx, holderID, staff.StructureID)
		if err != nil && !errors.Is(err, mandate.ErrNotFound) {
			return "", fmt.Errorf("start passkey enrolment: %w", err)
		}
		if served {
			return staff.StructureID, nil
		}
	}
	if staff.Platform {
		structures, err := k.holders.HolderStructures(ctx, holderID)
		if err != nil && !errors.Is(err, mandate.ErrNotFound) {
			return "", fmt.Errorf("start passkey enrolment: %w", err)
		}
		for _, id := range structures {
			if Can(staff, PermServeHolders, id) {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("%w: %s on no structure serving the holder", ErrForbidden, PermServeHolders)
}

// HolderToEnrol returns the holder staff may start a passkey enrolment for
// (see StartHolderEnrolment), and the structure on whose behalf. A holder
// they may not serve, or that does not exist, is ErrForbidden.
func (k *Passkeys) HolderToEnrol(ctx context.Context, staff Principal, holderID string) (Holder, string, error) {
	if k.holders == nil || k.codes == nil {
		return Holder{}, "", ErrPasskeysUnavailable
	}
	structureID, err := k.enrolmentStructure(ctx, staff, holderID)
	if err != nil {
		return Holder{}, "", err
	}
	h, err := k.holders.GetHolder(ctx, holderID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Holder{}, "", fmt.Errorf("%w: no such holder", ErrForbidden)
	}
	if err != nil {
		return Holder{}, "", fmt.Errorf("load holder %s: %w", holderID, err)
	}
	return h, structureID, nil
}

// StartHolderEnrolment lets a mediator start a passkey enrolment for a
// holder their structure serves, during an appointment: it returns a
// single-use link that expires soon. The link alone gives nothing: the
// holder must then type a code sent to their own registered contact, so a
// mediator can never enrol a passkey of their own in a holder's name. It is
// also how a holder who lost their phone gets a passkey again. Platform
// staff may do it for a holder of any structure in which their role holds
// PermServeHolders; the enrolment (and its audit event) is then on behalf
// of that structure. Holders the staff member may not serve (or that do
// not exist) are ErrForbidden.
func (k *Passkeys) StartHolderEnrolment(ctx context.Context, mediator Principal, holderID string) (EnrolmentLink, error) {
	if k.holders == nil || k.codes == nil {
		return EnrolmentLink{}, ErrPasskeysUnavailable
	}
	structureID, err := k.enrolmentStructure(ctx, mediator, holderID)
	if err != nil {
		return EnrolmentLink{}, err
	}
	token, hash, err := newToken()
	if err != nil {
		return EnrolmentLink{}, err
	}
	now := k.svc.clock.Now()
	e := PasskeyEnrolment{
		TokenHash: hash, HolderID: holderID, StructureID: structureID, StartedBy: mediator.ID,
		CreatedAt: now, ExpiresAt: now.Add(k.cfg.EnrolmentTTL),
	}
	if err := k.svc.record(ctx, audit.Event{
		Actor: staffActor(mediator.ID, mediator.DisplayName), Holder: holderID, Structure: structureID,
		Action: audit.ActionPasskeyEnrolment, Outcome: audit.OutcomeSuccess,
	}); err != nil {
		return EnrolmentLink{}, fmt.Errorf("start passkey enrolment: %w", err)
	}
	if err := k.store.CreatePasskeyEnrolment(ctx, e); err != nil {
		return EnrolmentLink{}, fmt.Errorf("start passkey enrolment: %w", err)
	}
	return EnrolmentLink{URL: HolderEnrolURL(k.cfg.BaseURL, token), ExpiresAt: e.ExpiresAt}, nil
}

// HolderEnrolment is the state of an enrolment link as its page shows it.
type HolderEnrolment struct {
	HolderID string
	// Verified: the holder typed the right code on this browser, which may
	// now create the passkey.
	Verified  bool
	ExpiresAt time.Time
}

// openEnrolment finds a usable (unused, unexpired) enrolment link.
func (k *Passkeys) openEnrolment(ctx context.Context, token string) (PasskeyEnrolment, error) {
	if k.holders == nil || k.codes == nil {
		return PasskeyEnrolment{}, ErrPasskeysUnavailable
	}
	if token == "" || len(token) > 100 {
		return PasskeyEnrolment{}, ErrPasskeyLinkInvalid
	}
	e, err := k.store.GetPasskeyEnrolment(ctx, hashToken(token))
	if errors.Is(err, mandate.ErrNotFound) {
		return PasskeyEnrolment{}, ErrPasskeyLinkInvalid
	}
	if err != nil {
		return PasskeyEnrolment{}, fmt.Errorf("load passkey enrolment: %w", err)
	}
	if e.UsedAt != nil || !k.svc.clock.Now().Before(e.ExpiresAt) {
		return PasskeyEnrolment{}, ErrPasskeyLinkInvalid
	}
	return e, nil
}

// deviceVerified reports whether deviceSecret is the secret given to the
// browser that typed the code.
func deviceVerified(e PasskeyEnrolment, deviceSecret string) bool {
	if e.VerifiedAt == nil || len(e.DeviceHash) == 0 || deviceSecret == "" || len(deviceSecret) > 100 {
		return false
	}
	return subtle.ConstantTimeCompare(e.DeviceHash, hashToken(deviceSecret)) == 1
}

// OpenHolderEnrolment checks an enrolment link and says whether this
// browser (deviceSecret, "" when it has none) has typed the code.
func (k *Passkeys) OpenHolderEnrolment(ctx context.Context, token, deviceSecret string) (HolderEnrolment, error) {
	e, err := k.openEnrolment(ctx, token)
	if err != nil {
		return HolderEnrolment{}, err
	}
	return HolderEnrolment{HolderID: e.HolderID, Verified: deviceVerified(e, deviceSecret), ExpiresAt: e.ExpiresAt}, nil
}

// SendEnrolmentCode sends a one-time code (CodeEnrol) to the holder's own
// registered contact and says through which channel.
func (k *Passkeys) SendEnrolmentCode(ctx context.Context, token, ip string) (notify.Channel, error) {
	e, err := k.openEnrolment(ctx, token)
	if err != nil {
		return "", err
	}
	ch, err := k.codes.SendCode(ctx, e.HolderID, CodeEnrol, ip)
	if err != nil {
		return "", fmt.Errorf("send enrolment code: %w", err)
	}
	return ch, nil
}

// VerifyEnrolmentCode checks the code the holder typed; on success it
// returns a secret for this browser (kept in a cookie) without which the
// passkey cannot be created: whoever else holds the link cannot use the
// holder's code.
func (k *Passkeys) VerifyEnrolmentCode(ctx context.Context, token, code, ip string) (string, error) {
	e, err := k.openEnrolment(ctx, token)
	if err != nil {
		return "", err
	}
	if err := k.codes.VerifyCode(ctx, e.HolderID, CodeEnrol, code, ip); err != nil {
		return "", err
	}
	secret, hash, err := newToken()
	if err != nil {
		return "", err
	}
	err = k.store.VerifyPasskeyEnrolment(ctx, e.TokenHash, hash, k.svc.clock.Now())
	if errors.Is(err, mandate.ErrConflict) || errors.Is(err, mandate.ErrNotFound) {
		return "", ErrPasskeyLinkInvalid
	}
	if err != nil {
		return "", fmt.Errorf("verify passkey enrolment: %w", err)
	}
	return secret, nil
}

// holderOwner names a holder for their authenticator's account chooser.
func holderOwner(h Holder) ownerInfo {
	return principalOwner(HolderPrincipal(h))
}

// BeginHolderEnrolment starts creating the holder's passkey on the browser
// that typed the code.
func (k *Passkeys) BeginHolderEnrolment(ctx context.Context, token, deviceSecret string) (string, []byte, error) {
	e, err := k.openEnrolment(ctx, token)
	if err != nil {
		return "", nil, err
	}
	if !deviceVerified(e, deviceSecret) {
		return "", nil, ErrPasskeyLinkInvalid
	}
	h, err := k.holders.GetHolder(ctx, e.HolderID)
	if err != nil {
		return "", nil, fmt.Errorf("load holder %s: %w", e.HolderID, err)
	}
	return k.beginRegistration(ctx, holderOwner(h), CeremonyHolderEnrol)
}

// FinishHolderEnrolment checks the authenticator's response and stores the
// passkey, marking the link used in the same transaction. It returns the
// holder.
func (k *Passkeys) FinishHolderEnrolment(ctx context.Context, token, deviceSecret, ceremonyID string, response []byte, name string) (Holder, error) {
	e, err := k.openEnrolment(ctx, token)
	if err != nil {
		return Holder{}, err
	}
	if !deviceVerified(e, deviceSecret) {
		return Holder{}, ErrPasskeyLinkInvalid
	}
	h, err := k.holders.GetHolder(ctx, e.HolderID)
	if err != nil {
		return Holder{}, fmt.Errorf("load holder %s: %w", e.HolderID, err)
	}
	owner := holderOwner(h)
	owner.structure = e.StructureID
	_, err = k.finishRegistration(ctx, owner, CeremonyHolderEnrol, ceremonyID, response, name, func(p Passkey) error {
		err := k.store.CompletePasskeyEnrolment(ctx, e.TokenHash, hashToken(deviceSecret), k.svc.clock.Now(), p)
		if errors.Is(err, mandate.ErrConflict) {
			return ErrPasskeyLinkInvalid
		}
		return err
	})
	if err != nil {
		return Holder{}, err
	}
	return h, nil
}

// BeginHolderSignIn starts a holder's sign-in with a discoverable
// credential: the phone offers the holder's passkeys for this site. Anyone
// may begin one, so each address (ip) may begin at most MaxBeginsPerIP
// within the throttle window: past it, ErrTooManyAttempts and nothing is
// stored.
func (k *Passkeys) BeginHolderSignIn(ctx context.Context, ip string) (string, []byte, error) {
	if k.holders == nil {
		return "", nil, ErrPasskeysUnavailable
	}
	if err := k.limitBegin(ctx, ip); err != nil {
		return "", nil, err
	}
	return k.beginAssertion(ctx, "", CeremonyHolderSignIn, nil)
}

// FinishHolderSignIn checks the response and returns the signed-in holder
// (open a session with Service.StartSession). Only holders' passkeys sign
// in here; staff passkeys are a second factor after the password. Refusals
// count against ip: past the limit, ErrTooManyAttempts. So does a finish
// without a ceremony from an address that may begin no more (the page's
// script posts the form when its begin was refused): the person is told to
// wait, not to try again.
func (k *Passkeys) FinishHolderSignIn(ctx context.Context, ceremonyID string, response []byte, ip string) (Principal, error) {
	if k.holders == nil {
		return Principal{}, ErrPasskeysUnavailable
	}
	if ceremonyID == "" {
		reached, err := k.beginsReached(ctx, ip)
		if err != nil {
			return Principal{}, err
		}
		if reached {
			return Principal{}, ErrTooManyAttempts
		}
	}
	var p Principal
	err := k.throttledByIP(ctx, ip, func() error {
		var err error
		p, err = k.finishHolderSignIn(ctx, ceremonyID, response)
		return err
	})
	return p, err
}

func (k *Passkeys) finishHolderSignIn(ctx context.Context, ceremonyID string, response []byte) (Principal, error) {
	_, sd, err := k.takeCeremony(ctx, ceremonyID, CeremonyHolderSignIn)
	if err != nil {
		return Principal{}, err
	}
	pk, err := k.assertion(ctx, sd, "", response, func(p Passkey) bool {
		kind, _, _ := ParseSubject(p.Owner)
		return kind == "holder"
	})
	if err != nil {
		return Principal{}, err
	}
	_, holderID, _ := ParseSubject(pk.Owner)
	h, err := k.holders.GetHolder(ctx, holderID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Principal{}, k.refuse(ctx, pk.Owner, "sign-in: holder no longer exists", err)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load holder %s: %w", holderID, err)
	}
	e := k.event(pk.Owner, audit.ActionSignInSucceeded, audit.OutcomeSuccess, "passkey")
	if err := k.svc.record(ctx, e); err != nil {
		return Principal{}, fmt.Errorf("sign in holder: %w", err)
	}
	return HolderPrincipal(h), nil
}
