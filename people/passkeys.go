package people

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify"
)

// Passkey is a WebAuthn credential of a holder or a staff member. Only the
// public key is kept: the private key never leaves the person's device.
type Passkey struct {
	CredentialID []byte
	Owner        string // "holder:<id>" or "staff:<id>"
	// UserHandle is the WebAuthn user.id of the owner: random, the same for
	// every passkey of one owner, never their identifier.
	UserHandle        []byte
	PublicKey         []byte // COSE key
	AttestationFormat string
	AAGUID            []byte
	SignCount         uint32
	Transports        []string
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	Name              string // the name the owner gave it ("Téléphone de Marie")
	CreatedAt         time.Time
	LastUsedAt        *time.Time
}

// Ceremony purposes.
const (
	CeremonyRegister      = "register"      // add a passkey to a signed-in owner
	CeremonyHolderEnrol   = "holder-enrol"  // a holder's first (or recovery) passkey, by enrolment link
	CeremonyHolderSignIn  = "holder-signin" // a holder signs in with a discoverable credential
	CeremonyStaffSignIn   = "staff-signin"  // a staff member's second factor, after the password
	maxPasskeyNameRunes   = 60
	maxPasskeysPerOwner   = 20
	maxCeremonyResponseSz = 32 << 10
)

// PasskeyCeremony is a WebAuthn ceremony between its begin and finish steps,
// stored so that any replica can finish it. Only the SHA-256 of its id
// (given to the browser) is stored; it works once, before ExpiresAt.
type PasskeyCeremony struct {
	IDHash    []byte
	Owner     string // whose ceremony; "" for a discoverable sign-in
	Purpose   string
	Data      []byte // the library's session data (challenge, user, options), JSON
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// PasskeyEnrolment is a single-use, expiring link a mediator gives a holder
// (as a QR code) to create a passkey on their own phone. Only the SHA-256 of
// its token is stored. The link alone is not enough: the holder must type a
// code sent to their own contact (VerifiedAt), on the browser that then
// creates the passkey (DeviceHash).
type PasskeyEnrolment struct {
	TokenHash   []byte
	HolderID    string
	StructureID string
	StartedBy   string // the mediator's staff id
	DeviceHash  []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
	VerifiedAt  *time.Time
	UsedAt      *time.Time
}

// PasskeyStore persists passkeys, ceremonies and enrolment links. Methods
// return errors wrapping mandate.ErrNotFound, mandate.ErrAlreadyExists or
// mandate.ErrConflict.
type PasskeyStore interface {
	// CreatePasskey stores a passkey; ErrAlreadyExists if its credential id
	// is registered already (to anyone).
	CreatePasskey(ctx context.Context, p Passkey) error
	GetPasskey(ctx context.Context, credentialID []byte) (Passkey, error)
	// ListPasskeys returns owner's passkeys, oldest first.
	ListPasskeys(ctx context.Context, owner string) ([]Passkey, error)
	// RecordPasskeyUse stores a successful use: the new sign count, backup
	// state and time, only if the stored sign count is still prevCount
	// (ErrConflict otherwise: another use came first).
	RecordPasskeyUse(ctx context.Context, credentialID []byte, prevCount, newCount uint32, backupState bool, at time.Time) error
	// DeletePasskey removes owner's passkey; ErrNotFound if owner has no such
	// passkey.
	DeletePasskey(ctx context.Context, owner string, credentialID []byte) error

	CreatePasskeyCeremony(ctx context.Context, c PasskeyCeremony) error
	// TakePasskeyCeremony claims a ceremony: marks it used and returns it, if
	// unused and not expired at now. ErrNotFound for an unknown one,
	// ErrConflict (with the ceremony) for a used or expired one.
	TakePasskeyCeremony(ctx context.Context, idHash []byte, now time.Time) (PasskeyCeremony, error)
	// PrunePasskeyCeremonies deletes ceremonies that expired before t.
	PrunePasskeyCeremonies(ctx context.Context, before time.Time) (int, error)

	CreatePasskeyEnrolment(ctx context.Context, e PasskeyEnrolment) error
	GetPasskeyEnrolment(ctx context.Context, tokenHash []byte) (PasskeyEnrolment, error)
	// VerifyPasskeyEnrolment records that the holder typed the right code on
	// the browser whose secret hashes to deviceHash; ErrConflict when the
	// link is used or expired at now.
	VerifyPasskeyEnrolment(ctx context.Context, tokenHash, deviceHash []byte, now time.Time) error
	// CompletePasskeyEnrolment, in one transaction: marks the link used if it
	// is verified for deviceHash, unused and not expired at now (ErrConflict
	// otherwise), and stores p.
	CompletePasskeyEnrolment(ctx context.Context, tokenHash, deviceHash []byte, now time.Time, p Passkey) error
}

// HolderCodes sends and checks the one-time codes that go to a holder's own
// registered contact (*Holders implements it).
type HolderCodes interface {
	SendCode(ctx context.Context, holderID string, purpose CodePurpose, ip string) (notify.Channel, error)
	VerifyCode(ctx context.Context, holderID string, purpose CodePurpose, code, ip string) error
}

// PasskeyHolders is what passkeys need to know of holders.
type PasskeyHolders interface {
	GetHolder(ctx context.Context, id string) (Holder, error)
	HolderServedBy(ctx context.Context, holderID, structureID string) (bool, error)
	// HolderStructures lists the ids of the structures serving the holder.
	HolderStructures(ctx context.Context, holderID string) ([]string, error)
}

// Passkey errors, worded so a page can show them (package ui translates).
var (
	// ErrPasskeyRefused: the WebAuthn response was refused (another
	// challenge or origin, a used or expired ceremony, a bad signature, an
	// unknown or cloned credential, no user verification).
	ErrPasskeyRefused = errors.New("this passkey could not be used; try again")
	// ErrPasskeyLinkInvalid: unknown, used or expired enrolment link, or a
	// code step not done on this browser.
	ErrPasskeyLinkInvalid = errors.New("this link is unknown, already used or expired; ask for a new one")
	// ErrNoPasskey: the account has no passkey (staff second factor).
	ErrNoPasskey = errors.New("this account has no passkey; use the code from your authenticator app")
	// ErrTooManyPasskeys: an owner has at most 20 passkeys.
	ErrTooManyPasskeys = errors.New("this account has too many passkeys; remove one first")
	// ErrInvalidPasskeyName: empty or longer than 60 characters.
	ErrInvalidPasskeyName = errors.New("give the passkey a name of at most 60 characters")
	// ErrPasskeysUnavailable: holder enrolment needs the one-time codes.
	ErrPasskeysUnavailable = errors.New("passkey enrolment is not available")
)

// PasskeyConfig configures passkeys; zero durations take the defaults.
type PasskeyConfig struct {
	// RPID is the WebAuthn relying party id: the issuer's host name by
	// default. It must be a domain name (not an IP address).
	RPID string
	// Origins are the origins WebAuthn responses may come from: the issuer's
	// origin by default.
	Origins []string
	// BaseURL is the public URL links are built on (the issuer).
	BaseURL string
	// DisplayName is the relying party name authenticators show; "mandated".
	DisplayName  string
	CeremonyTTL  time.Duration // how long a begun ceremony may be finished; 5m
	EnrolmentTTL time.Duration // how long a holder's enrolment link works; 15m
	// MaxBeginsPerIP bounds the holder sign-in ceremonies one address (one
	// /64 in IPv6) may begin within the people throttle window;
	// DefaultMaxCeremonyBeginsPerIP when zero.
	MaxBeginsPerIP int
}

// PasskeyDefaults fills RPID and Origins from the issuer URL when they are
// empty, and checks them.
func PasskeyDefaults(cfg PasskeyConfig, issuer string) (PasskeyConfig, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return cfg, fmt.Errorf("passkeys: issuer %q is not an absolute URL", issuer)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = strings.TrimSuffix(issuer, "/")
	}
	if cfg.RPID == "" {
		cfg.RPID = u.Hostname()
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{u.Scheme + "://" + u.Host}
	}
	if net.ParseIP(cfg.RPID) != nil {
		return cfg, fmt.Errorf("passkeys: the relying party id %q is an IP address; browsers need a domain name (set --webauthn-rp-id, or an issuer with a host name)", cfg.RPID)
	}
	if err := protocol.ValidateRPID(cfg.RPID); err != nil {
		return cfg, fmt.Errorf("passkeys: relying party id %q: %w", cfg.RPID, err)
	}
	for _, o := range cfg.Origins {
		ou, err := url.Parse(o)
		if err != nil || (ou.Scheme != "https" && ou.Scheme != "http") || ou.Host == "" || (ou.Path != "" && ou.Path != "/") {
			return cfg, fmt.Errorf("passkeys: origin %q must be scheme://host[:port]", o)
		}
		if h := ou.Hostname(); h != cfg.RPID && !strings.HasSuffix(h, "."+cfg.RPID) {
			return cfg, fmt.Errorf("passkeys: origin %q is not on the relying party id %q or a subdomain", o, cfg.RPID)
		}
	}
	return cfg, nil
}

// Passkeys runs the passkey use cases: registration, sign-in with a
// discoverable credential (holders), passkeys as the staff second factor,
// the holders' enrolment links, listing and removal. Every step is audited.
type Passkeys struct {
	svc     *Service
	store   PasskeyStore
	holders PasskeyHolders
	codes   HolderCodes
	wa      *webauthn.WebAuthn
	cfg     PasskeyConfig
	// pruned is when expired ceremonies were last deleted (Unix seconds).
	pruned atomic.Int64
}

// NewPasskeys returns the passkey service. holders and codes may be nil:
// holder enrolment and holder sign-in are then unavailable.
func NewPasskeys(svc *Service, store PasskeyStore, holders PasskeyHolders, codes HolderCodes, cfg PasskeyConfig) (*Passkeys, error) {
	if cfg.DisplayName == "" {
		cfg.DisplayName = "mandated"
	}
	if cfg.CeremonyTTL <= 0 {
		cfg.CeremonyTTL = 5 * time.Minute
	}
	if cfg.EnrolmentTTL <= 0 {
		cfg.EnrolmentTTL = 15 * time.Minute
	}
	if cfg.MaxBeginsPerIP <= 0 {
		cfg.MaxBeginsPerIP = DefaultMaxCeremonyBeginsPerIP
	}
	if cfg.RPID == "" || len(cfg.Origins) == 0 {
		return nil, errors.New("passkeys: relying party id and origins are required (see PasskeyDefaults)")
	}
	required := protocol.ResidentKeyRequirementRequired
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.DisplayName,
		RPOrigins:     cfg.Origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        required,
			UserVerification:   protocol.VerificationRequired,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: cfg.CeremonyTTL, TimeoutUVD: cfg.CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: cfg.CeremonyTTL, TimeoutUVD: cfg.CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Passkeys{svc: svc, store: store, holders: holders, codes: codes, wa: wa, cfg: cfg}, nil
}

// Config returns the effective configuration.
func (k *Passkeys) Config() PasskeyConfig { return k.cfg }

// List returns owner's passkeys, oldest first.
func (k *Passkeys) List(ctx context.Context, owner string) ([]Passkey, error) {
	list, err := k.store.ListPasskeys(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("list passkeys of %s: %w", owner, err)
	}
	return list, nil
}

// Remove deletes one of the owner's passkeys (the owner is the signed-in
// principal: nobody else can remove them). Removing someone else's passkey,
// or one that is gone, is ErrNotFound-wrapped. The removal is recorded
// first: without its record it does not happen.
func (k *Passkeys) Remove(ctx context.Context, owner Principal, credentialID []byte) error {
	pk, err := k.store.GetPasskey(ctx, credentialID)
	if err != nil {
		return fmt.Errorf("remove passkey: %w", err)
	}
	if pk.Owner != owner.Subject {
		return fmt.Errorf("remove passkey: %w", errNotOwner)
	}
	e := k.event(owner.Subject, audit.ActionPasskeyRemoved, audit.OutcomeSuccess, "")
	e.Target, e.Structure = pk.Name, owner.StructureID
	if err := k.svc.record(ctx, e); err != nil {
		return fmt.Errorf("remove passkey: %w", err)
	}
	if err := k.store.DeletePasskey(ctx, owner.Subject, credentialID); err != nil {
		return fmt.Errorf("remove passkey: %w", err)
	}
	return nil
}

// event is an audit event whose actor is the owner of subject.
func (k *Passkeys) event(subject string, action audit.Action, outcome audit.Outcome, reason string) audit.Event {
	e := audit.Event{Action: action, Outcome: outcome, Reason: reason, Actor: audit.Actor{Kind: audit.ActorUnknown}}
	kind, id, _ := ParseSubject(subject)
	switch kind {
	case "holder":
		e.Actor = audit.Actor{Kind: audit.ActorHolder, ID: id}
		e.Holder = id
	case "staff":
		e.Actor = staffActor(id, "")
	}
	return e
}

// refuse records a refused WebAuthn step (a lost record is logged: the step
// fails anyway) and returns ErrPasskeyRefused.
func (k *Passkeys) refuse(ctx context.Context, subject, reason string, cause error) error {
	if err := k.svc.record(ctx, k.event(subject, audit.ActionPasskeyRefused, audit.OutcomeDenied, reason)); err != nil {
		k.svc.log.ErrorContext(ctx, "record refused passkey", "err", err)
	}
	k.svc.log.InfoContext(ctx, "passkey refused", "reason", reason, "err", cause)
	return ErrPasskeyRefused
}
