// Package audit is mandated's append-only, tamper-evident record of security
// events. Events are sequenced by one writer (Log.Run) into a Merkle tree as
// in RFC 9162 (golang.org/x/mod/sumdb/tlog), whose checkpoints are signed as
// C2SP signed notes; anyone holding the verifier key can check inclusion and
// consistency proofs and whole exports offline. Personal identifiers never
// enter the tree in clear: leaves hold keyed commitments under a per-person
// key, and the readable values live apart, encrypted under that key, so that
// erasing a person deletes what identifies them while every proof still
// verifies. Persistence is behind Store (implemented in package store).
package audit

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Action is what happened. The set is closed: Validate refuses others.
type Action string

// Actions.
const (
	ActionSignInSucceeded  Action = "sign_in.succeeded"
	ActionSignInFailed     Action = "sign_in.failed"
	ActionEnrolmentDone    Action = "enrolment.completed"
	ActionSessionEnded     Action = "session.ended"
	ActionResetRequested   Action = "password.reset.requested"
	ActionResetCompleted   Action = "password.reset.completed"
	ActionHolderCreated    Action = "holder.created"
	ActionHolderLinked     Action = "holder.linked"
	ActionHoldersImported  Action = "holders.imported"
	ActionCodeSent         Action = "code.sent"
	ActionCodeVerified     Action = "code.verified"
	ActionCodeRefused      Action = "code.refused"
	ActionPasskeyAdded     Action = "passkey.added"
	ActionPasskeyRemoved   Action = "passkey.removed"
	ActionPasskeyRefused   Action = "passkey.refused"
	ActionPasskeyEnrolment Action = "passkey.enrolment_started"
	ActionClientRegistered Action = "client.registered"
	ActionClientDeleted    Action = "client.deleted"
	ActionConsentGranted   Action = "consent.granted"
	ActionConsentWithdrawn Action = "consent.withdrawn"
	ActionTokenIssued      Action = "token.issued"
	ActionTokenRefreshed   Action = "token.refreshed"
	ActionTokenRevoked     Action = "token.revoked"
	ActionRequestRefused   Action = "request.refused"
	ActionKeyRotated       Action = "key.rotated"
	ActionRetentionApplied Action = "audit.retention_applied"
	ActionTrustAdded       Action = "trust.added"
	ActionTrustDeleted     Action = "trust.deleted"
	ActionMailboxRead      Action = "mailbox.read"
	ActionMailboxSend      Action = "mailbox.send"
	ActionMailboxMove      Action = "mailbox.move"
	ActionMailboxDelete    Action = "mailbox.delete"
	ActionStaffInvited     Action = "staff.invited"
	ActionStaffDeactivated Action = "staff.deactivated"
	ActionStaffReactivated Action = "staff.reactivated"
	ActionStructureCreated Action = "structure.created"
	ActionBannerPosted     Action = "banner.posted"
	ActionBannerChanged    Action = "banner.changed"
	ActionBannerDeleted    Action = "banner.deleted"
	// Mandate steps (audit/mandate.go maps mandate.Step to these).
	ActionMandateRequested     Action = "mandate.requested"
	ActionMandateApproved      Action = "mandate.approved"
	ActionMandateRefused       Action = "mandate.refused"
	ActionMandateUnanswered    Action = "mandate.unanswered"
	ActionMandateActivated     Action = "mandate.activated"
	ActionMandateEnded         Action = "mandate.ended"
	ActionMandateRequestDenied Action = "mandate.request_refused"
	ActionMandatePolicyChanged Action = "mandate.policy_changed"
	// ActionMandatePresence: the holder (re)opened a delegation's presence
	// lease; ActionMandatePresenceEnded: their page left it (the
	// delegation goes on, its tokens stop working).
	ActionMandatePresence      Action = "mandate.presence_started"
	ActionMandatePresenceEnded Action = "mandate.presence_ended"
)

var actions = map[Action]bool{
	ActionSignInSucceeded: true, ActionSignInFailed: true,
	ActionEnrolmentDone: true, ActionSessionEnded: true,
	ActionResetRequested: true, ActionResetCompleted: true,
	ActionHolderCreated: true, ActionHolderLinked: true, ActionHoldersImported: true,
	ActionCodeSent: true, ActionCodeVerified: true, ActionCodeRefused: true,
	ActionPasskeyAdded: true, ActionPasskeyRemoved: true, ActionPasskeyRefused: true, ActionPasskeyEnrolment: true,
	ActionClientRegistered: true, ActionClientDeleted: true,
	ActionConsentGranted: true, ActionConsentWithdrawn: true,
	ActionTokenIssued: true, ActionTokenRefreshed: true, ActionTokenRevoked: true,
	ActionRequestRefused: true, ActionKeyRotated: true, ActionRetentionApplied: true,
	ActionTrustAdded: true, ActionTrustDeleted: true,
	ActionMailboxRead: true, ActionMailboxSend: true, ActionMailboxMove: true, ActionMailboxDelete: true,
	ActionStaffInvited: true, ActionStaffDeactivated: true, ActionStaffReactivated: true, ActionStructureCreated: true,
	ActionBannerPosted: true, ActionBannerChanged: true, ActionBannerDeleted: true,
	ActionMandateRequested: true, ActionMandateApproved: true, ActionMandateRefused: true,
	ActionMandateUnanswered: true, ActionMandateActivated: true, ActionMandateEnded: true,
	ActionMandateRequestDenied: true, ActionMandatePolicyChanged: true,
	ActionMandatePresence: true, ActionMandatePresenceEnded: true,
}

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool { return actions[a] }

// Outcome is how the action ended.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeDenied  Outcome = "denied"
	OutcomeError   Outcome = "error"
)

// ActorKind says who acted.
type ActorKind string

// Actor kinds. Staff and holders are people: their identifiers are
// personal data and enter the tree only as commitments.
const (
	ActorStaff  ActorKind = "staff"
	ActorHolder ActorKind = "holder"
	ActorClient ActorKind = "client"
	ActorSystem ActorKind = "system"
	// ActorUnknown is a caller who named no known account (a sign-in with an
	// unknown email). It carries no id: what they typed is never recorded.
	ActorUnknown ActorKind = "unknown"
)

// Person reports whether the actor is a person (whose id and name are
// personal data).
func (k ActorKind) Person() bool { return k == ActorStaff || k == ActorHolder }

// Actor is who acted.
type Actor struct {
	Kind ActorKind
	ID   string
	Name string // display name
}

// Event is one security event. Seq is assigned by the log; Time defaults to
// the log's clock.
type Event struct {
	Seq       int64
	Time      time.Time
	Actor     Actor
	Holder    string // id of the holder acted for (a person), if any
	Structure string
	Action    Action
	Target    string // what was acted on; personal when there is a holder or a person actor
	MandateID string
	ClientID  string
	Outcome   Outcome
	Reason    string // must not hold personal data: it is stored in clear
	RequestID string
}

// Field size bounds (bytes).
const (
	MaxIDLen     = 256
	MaxNameLen   = 256
	MaxTargetLen = 512
	MaxReasonLen = 1024
)

// ErrInvalid wraps every validation error.
var ErrInvalid = errors.New("invalid audit event")

// Validate checks e: a known action and outcome, actor present, bounded
// UTF-8 fields without control characters.
func (e Event) Validate() error {
	if !e.Action.Valid() {
		return fmt.Errorf("%w: unknown action %q", ErrInvalid, trunc(string(e.Action)))
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeError:
	default:
		return fmt.Errorf("%w: unknown outcome %q", ErrInvalid, trunc(string(e.Outcome)))
	}
	switch e.Actor.Kind {
	case ActorStaff, ActorHolder, ActorClient:
		if e.Actor.ID == "" {
			return fmt.Errorf("%w: actor of kind %s needs an id", ErrInvalid, e.Actor.Kind)
		}
	case ActorSystem, ActorUnknown:
	default:
		return fmt.Errorf("%w: unknown actor kind %q", ErrInvalid, trunc(string(e.Actor.Kind)))
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"actor id", e.Actor.ID, MaxIDLen}, {"actor name", e.Actor.Name, MaxNameLen},
		{"holder", e.Holder, MaxIDLen}, {"structure", e.Structure, MaxIDLen},
		{"target", e.Target, MaxTargetLen}, {"mandate id", e.MandateID, MaxIDLen},
		{"client id", e.ClientID, MaxIDLen}, {"reason", e.Reason, MaxReasonLen},
		{"request id", e.RequestID, MaxIDLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, f.name, f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, f.name)
		}
		for _, r := range f.v {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("%w: %s holds a control character", ErrInvalid, f.name)
			}
		}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
