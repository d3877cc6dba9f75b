package people

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

var errNotOwner = fmt.Errorf("not your passkey: %w", mandate.ErrNotFound)

// passkeyUser is a passkey owner as the WebAuthn library sees them.
type passkeyUser struct {
	handle        []byte
	name, display string
	creds         []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u passkeyUser) WebAuthnName() string                       { return u.name }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.display }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credentialOf(p Passkey) webauthn.Credential {
	c := webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey, AttestationFormat: p.AttestationFormat,
		Flags: webauthn.CredentialFlags{
			UserPresent: true, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
	for _, t := range p.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

func credentialsOf(list []Passkey) []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(list))
	for _, p := range list {
		out = append(out, credentialOf(p))
	}
	return out
}

// ownerInfo names an owner for an authenticator's account chooser.
type ownerInfo struct {
	subject, name, display string
	structure              string // the structure the event concerns, if known
}

func principalOwner(p Principal) ownerInfo {
	name := p.Email
	if name == "" {
		name = p.ID
	}
	display := p.DisplayName
	if display == "" {
		display = name
	}
	return ownerInfo{subject: p.Subject, name: name, display: display, structure: p.StructureID}
}

// CheckPasskeyName trims a passkey's name and checks it.
func CheckPasskeyName(name string) (string, error) {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || utf8.RuneCountInString(name) > maxPasskeyNameRunes {
		return "", ErrInvalidPasskeyName
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", ErrInvalidPasskeyName
		}
	}
	return name, nil
}

// saveCeremony stores a begun ceremony and returns its id (32 random bytes,
// URL-safe; only the SHA-256 is stored).
func (k *Passkeys) saveCeremony(ctx context.Context, owner, purpose string, sd *webauthn.SessionData) (string, error) {
	data, err := json.Marshal(sd)
	if err != nil {
		return "", fmt.Errorf("encode ceremony: %w", err)
	}
	id, hash, err := newToken()
	if err != nil {
		return "", err
	}
	now := k.svc.clock.Now()
	c := PasskeyCeremony{IDHash: hash, Owner: owner, Purpose: purpose, Data: data, CreatedAt: now, ExpiresAt: now.Add(k.cfg.CeremonyTTL)}
	if err := k.store.CreatePasskeyCeremony(ctx, c); err != nil {
		return "", fmt.Errorf("store ceremony: %w", err)
	}
	k.pruneCeremonies(ctx, now)
	return id, nil
}

// pruneCeremonies deletes expired ceremonies, at most once a minute per
// process (every replica does it; they delete the same rows).
func (k *Passkeys) pruneCeremonies(ctx context.Context, now time.Time) {
	last := k.pruned.Load()
	if now.Unix()-last < 60 || !k.pruned.CompareAndSwap(last, now.Unix()) {
		return
	}
	if _, err := k.store.PrunePasskeyCeremonies(ctx, now.Add(-k.cfg.CeremonyTTL)); err != nil {
		k.svc.log.WarnContext(ctx, "prune passkey ceremonies", "err", err)
	}
}

// takeCeremony claims the ceremony id for purpose. Unknown ids are refused
// without a record (anyone can send them without end); used, expired and
// misdirected ones are refused and recorded.
func (k *Passkeys) takeCeremony(ctx context.Context, id, purpose string) (PasskeyCeremony, webauthn.SessionData, error) {
	if id == "" || len(id) > 100 {
		return PasskeyCeremony{}, webauthn.SessionData{}, ErrPasskeyRefused
	}
	c, err := k.store.TakePasskeyCeremony(ctx, hashToken(id), k.svc.clock.Now())
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		k.svc.log.InfoContext(ctx, "passkey refused: unknown ceremony")
		return PasskeyCeremony{}, webauthn.SessionData{}, ErrPasskeyRefused
	case errors.Is(err, mandate.ErrConflict):
		return PasskeyCeremony{}, webauthn.SessionData{}, k.refuse(ctx, c.Owner, "ceremony already used or expired", err)
	case err != nil:
		return PasskeyCeremony{}, webauthn.SessionData{}, fmt.Errorf("take ceremony: %w", err)
	}
	if c.Purpose != purpose {
		return PasskeyCeremony{}, webauthn.SessionData{}, k.refuse(ctx, c.Owner, "ceremony begun for "+c.Purpose+", finished as "+purpose, nil)
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal(c.Data, &sd); err != nil {
		return PasskeyCeremony{}, webauthn.SessionData{}, fmt.Errorf("decode ceremony: %w", err)
	}
	return c, sd, nil
}

// throttledByIP runs fn unless ip has too many failed sign-ins within the
// throttle window (ErrTooManyAttempts: the same "ip:" counter and limit as
// staff sign-in), and counts fn's ErrPasskeyRefused against ip. Anyone can
// begin a discoverable sign-in, so this is what bounds the refusals
// (and their records) one address can cause.
func (k *Passkeys) throttledByIP(ctx context.Context, ip string, fn func() error) error {
	_, ipKey, _, _ := throttleKeys("", ip)
	n, err := k.svc.store.CountSignInFailures(ctx, ipKey, k.svc.clock.Now().Add(-k.svc.cfg.ThrottleWindow))
	if err != nil {
		return fmt.Errorf("count sign-in failures: %w", err)
	}
	if n >= k.svc.cfg.MaxIPFailures {
		return ErrTooManyAttempts
	}
	err = fn()
	if errors.Is(err, ErrPasskeyRefused) {
		k.svc.recordFailure(ctx, ipKey)
	}
	return err
}

// protocolReason is a bounded, non-personal description of a library error.
func protocolReason(prefix string, err error) string {
	var pe *protocol.Error
	msg := "refused"
	if errors.As(err, &pe) {
		msg = pe.Type + ": " + pe.Details
	}
	r := prefix + ": " + msg
	if len(r) > 300 {
		r = r[:300]
	}
	return strings.ToValidUTF8(r, "")
}

// beginRegistration starts a registration ceremony for owner and returns its
// id and the options for navigator.credentials.create() (JSON).
func (k *Passkeys) beginRegistration(ctx context.Context, owner ownerInfo, purpose string) (string, []byte, error) {
	existing, err := k.store.ListPasskeys(ctx, owner.subject)
	if err != nil {
		return "", nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	if len(existing) >= maxPasskeysPerOwner {
		return "", nil, ErrTooManyPasskeys
	}
	handle := make([]byte, 32)
	if len(existing) > 0 {
		handle = existing[0].UserHandle
	} else if _, err := rand.Read(handle); err != nil {
		return "", nil, fmt.Errorf("random user handle: %w", err)
	}
	user := passkeyUser{handle: handle, name: owner.name, display: owner.display, creds: credentialsOf(existing)}
	creation, sd, err := k.wa.BeginRegistration(user,
		webauthn.WithExclusions(webauthn.Credentials(user.creds).CredentialDescriptors()))
	if err != nil {
		return "", nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	id, err := k.saveCeremony(ctx, owner.subject, purpose, sd)
	if err != nil {
		return "", nil, err
	}
	opts, err := json.Marshal(creation)
	if err != nil {
		return "", nil, fmt.Errorf("encode creation options: %w", err)
	}
	return id, opts, nil
}

// finishRegistration checks the authenticator's response to a registration
// ceremony of owner and stores the new passkey with save (which may wrap the
// store in a transaction of its own). The addition is recorded; a passkey
// whose record fails is removed again.
func (k *Passkeys) finishRegistration(ctx context.Context, owner ownerInfo, purpose, ceremonyID string, response []byte, name string, save func(Passkey) error) (Passkey, error) {
	name, err := CheckPasskeyName(name)
	if err != nil {
		return Passkey{}, err
	}
	c, sd, err := k.takeCeremony(ctx, ceremonyID, purpose)
	if err != nil {
		return Passkey{}, err
	}
	if c.Owner != owner.subject {
		return Passkey{}, k.refuse(ctx, owner.subject, "registration ceremony of another account", nil)
	}
	if len(response) == 0 || len(response) > maxCeremonyResponseSz {
		return Passkey{}, k.refuse(ctx, owner.subject, "registration: empty or oversized response", nil)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Passkey{}, k.refuse(ctx, owner.subject, protocolReason("registration response unreadable", err), err)
	}
	user := passkeyUser{handle: sd.UserID, name: owner.name, display: owner.display}
	cred, err := k.wa.CreateCredential(user, sd, parsed)
	if err != nil {
		return Passkey{}, k.refuse(ctx, owner.subject, protocolReason("registration refused", err), err)
	}
	now := k.svc.clock.Now()
	pk := Passkey{
		CredentialID: cred.ID, Owner: owner.subject, UserHandle: sd.UserID, PublicKey: cred.PublicKey,
		AttestationFormat: cred.AttestationFormat, AAGUID: cred.Authenticator.AAGUID,
		SignCount: cred.Authenticator.SignCount, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Name: name, CreatedAt: now,
	}
	for _, t := range cred.Transport {
		pk.Transports = append(pk.Transports, string(t))
	}
	if err := save(pk); err != nil {
		if errors.Is(err, mandate.ErrAlreadyExists) {
			return Passkey{}, k.refuse(ctx, owner.subject, "registration: credential registered already", err)
		}
		return Passkey{}, err
	}
	e := k.event(owner.subject, audit.ActionPasskeyAdded, audit.OutcomeSuccess, "")
	e.Target, e.Structure = name, owner.structure
	if err := k.svc.record(ctx, e); err != nil {
		if derr := k.store.DeletePasskey(ctx, owner.subject, pk.CredentialID); derr != nil {
			k.svc.log.ErrorContext(ctx, "remove unrecorded passkey", "err", derr)
		}
		return Passkey{}, fmt.Errorf("add passkey: %w", err)
	}
	k.svc.log.InfoContext(ctx, "passkey added", "purpose", purpose)
	return pk, nil
}

// assertion checks a sign-in response against the ceremony's session data.
// accept says whether a stored passkey may answer this ceremony (a holder's
// for a holder sign-in, the staff member's own for their second factor). It
// refuses clones (a sign count that did not grow) and concurrent uses, and
// records the use. The refusal is recorded against the passkey's owner when
// one is known, else against ceremonyOwner.
func (k *Passkeys) assertion(ctx context.Context, sd webauthn.SessionData, ceremonyOwner string, response []byte, accept func(Passkey) bool) (Passkey, error) {
	if len(response) == 0 || len(response) > maxCeremonyResponseSz {
		return Passkey{}, k.refuse(ctx, ceremonyOwner, "sign-in: empty or oversized response", nil)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Passkey{}, k.refuse(ctx, ceremonyOwner, protocolReason("sign-in response unreadable", err), err)
	}
	pk, err := k.store.GetPasskey(ctx, parsed.RawID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Passkey{}, k.refuse(ctx, ceremonyOwner, "sign-in: unknown passkey", err)
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("load passkey: %w", err)
	}
	subject := pk.Owner
	if !accept(pk) {
		return Passkey{}, k.refuse(ctx, subject, "sign-in: passkey not valid for this sign-in", nil)
	}
	user := passkeyUser{handle: pk.UserHandle, creds: []webauthn.Credential{credentialOf(pk)}}
	var cred *webauthn.Credential
	if len(sd.UserID) == 0 { // discoverable: the authenticator names the account
		_, cred, err = k.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			if !bytes.Equal(rawID, pk.CredentialID) || !bytes.Equal(userHandle, pk.UserHandle) {
				return nil, errors.New("user handle does not match the passkey")
			}
			return user, nil
		}, sd, parsed)
	} else { // limited to one account's passkeys: the library checks them all
		if !bytes.Equal(sd.UserID, pk.UserHandle) {
			return Passkey{}, k.refuse(ctx, subject, "sign-in: passkey of another account", nil)
		}
		all, lerr := k.store.ListPasskeys(ctx, pk.Owner)
		if lerr != nil {
			return Passkey{}, fmt.Errorf("list passkeys of %s: %w", pk.Owner, lerr)
		}
		user.creds = credentialsOf(all)
		cred, err = k.wa.ValidateLogin(user, sd, parsed)
	}
	if err != nil {
		return Passkey{}, k.refuse(ctx, subject, protocolReason("sign-in refused", err), err)
	}
	if cred.Authenticator.CloneWarning {
		return Passkey{}, k.refuse(ctx, subject, "sign-in: the sign count did not increase; the authenticator may have been cloned", nil)
	}
	now := k.svc.clock.Now()
	err = k.store.RecordPasskeyUse(ctx, pk.CredentialID, pk.SignCount, cred.Authenticator.SignCount, cred.Flags.BackupState, now)
	if errors.Is(err, mandate.ErrConflict) || errors.Is(err, mandate.ErrNotFound) {
		return Passkey{}, k.refuse(ctx, subject, "sign-in: passkey used concurrently or removed", err)
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("record passkey use: %w", err)
	}
	pk.SignCount, pk.BackupState, pk.LastUsedAt = cred.Authenticator.SignCount, cred.Flags.BackupState, &now
	return pk, nil
}

// beginAssertion starts a sign-in ceremony: discoverable when user is nil,
// else limited to the user's passkeys.
func (k *Passkeys) beginAssertion(ctx context.Context, owner, purpose string, user *passkeyUser) (string, []byte, error) {
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		err       error
	)
	uv := webauthn.WithUserVerification(protocol.VerificationRequired)
	if user == nil {
		assertion, sd, err = k.wa.BeginDiscoverableLogin(uv)
	} else {
		assertion, sd, err = k.wa.BeginLogin(*user, uv)
	}
	if err != nil {
		return "", nil, fmt.Errorf("begin passkey sign-in: %w", err)
	}
	id, err := k.saveCeremony(ctx, owner, purpose, sd)
	if err != nil {
		return "", nil, err
	}
	opts, err := json.Marshal(assertion)
	if err != nil {
		return "", nil, fmt.Errorf("encode request options: %w", err)
	}
	return id, opts, nil
}

// BeginRegistration starts adding a passkey to the signed-in owner (a
// holder or a staff member). It returns the ceremony id and the options for
// navigator.credentials.create().
func (k *Passkeys) BeginRegistration(ctx context.Context, owner Principal) (string, []byte, error) {
	return k.beginRegistration(ctx, principalOwner(owner), CeremonyRegister)
}

// FinishRegistration checks the authenticator's response and stores the
// passkey under name.
func (k *Passkeys) FinishRegistration(ctx context.Context, owner Principal, ceremonyID string, response []byte, name string) (Passkey, error) {
	return k.finishRegistration(ctx, principalOwner(owner), CeremonyRegister, ceremonyID, response, name, func(p Passkey) error {
		return k.store.CreatePasskey(ctx, p)
	})
}
