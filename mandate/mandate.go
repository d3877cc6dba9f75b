package mandate

import (
	"fmt"
	"time"
)

// Kind says what a mandate is for.
type Kind string

// Mandate kinds.
const (
	// KindSession is an assisted appointment: a mediator helps the holder,
	// who is in the room or on the phone.
	KindSession Kind = "session"
	// KindDelegation is a colleague covering the holder's absence for a
	// window set in advance.
	KindDelegation Kind = "delegation"
)

// Valid reports whether k is a defined kind.
func (k Kind) Valid() bool { return k == KindSession || k == KindDelegation }

// State is where a mandate is in its life.
//
//	requested ──approve──▶ approved ──activate──▶ active ──end──▶ ended
//	    │  └──refuse──▶ refused                      ▲
//	    └──lapse──▶ expired_unanswered               │
//	approved and requested may also end (cancelled) ─┘
//
// refused, expired_unanswered and ended are final.
type State string

// Mandate states.
const (
	StateRequested  State = "requested"
	StateApproved   State = "approved"
	StateRefused    State = "refused"
	StateUnanswered State = "expired_unanswered"
	StateActive     State = "active"
	StateEnded      State = "ended"
)

// States lists every state, for exhaustive tests.
func States() []State {
	return []State{StateRequested, StateApproved, StateRefused, StateUnanswered, StateActive, StateEnded}
}

// Final reports whether no transition leaves s.
func (s State) Final() bool {
	return s == StateRefused || s == StateUnanswered || s == StateEnded
}

// EndReason says who or what ended a mandate.
type EndReason string

// End reasons.
const (
	EndedByHolder      EndReason = "holder"        // the holder pressed "Arrêter"
	EndedByDelegate    EndReason = "delegate"      // the mediator or colleague ended it
	EndedByAdmin       EndReason = "admin"         // a structure admin ended it
	EndedByOffboarding EndReason = "offboarding"   // the delegate's account was deactivated
	EndedByExpiry      EndReason = "expiry"        // its validity window closed
	EndedByPresence    EndReason = "presence_lost" // the holder's presence lease lapsed
)

// EndReasons lists every end reason.
func EndReasons() []EndReason {
	return []EndReason{EndedByHolder, EndedByDelegate, EndedByAdmin, EndedByOffboarding, EndedByExpiry, EndedByPresence}
}

// Valid reports whether r is a defined end reason.
func (r EndReason) Valid() bool {
	for _, v := range EndReasons() {
		if v == r {
			return true
		}
	}
	return false
}

// Transition is an event that moves a mandate between states.
type Transition string

// Transitions.
const (
	TransitionApprove  Transition = "approve"  // the holder approved (requested → approved)
	TransitionRefuse   Transition = "refuse"   // the holder refused (requested → refused)
	TransitionLapse    Transition = "lapse"    // nobody answered in time (requested → expired_unanswered)
	TransitionActivate Transition = "activate" // first token issued, or delegation window opened (approved → active)
	TransitionEnd      Transition = "end"      // requested | approved | active → ended (needs an EndReason)
)

// Transitions lists every transition, for exhaustive tests.
func Transitions() []Transition {
	return []Transition{TransitionApprove, TransitionRefuse, TransitionLapse, TransitionActivate, TransitionEnd}
}

// ErrInvalidTransition wraps every refused transition.
var ErrInvalidTransition = fmt.Errorf("invalid mandate transition: %w", ErrConflict)

// Next returns the state t leads to from s, or an error wrapping
// ErrInvalidTransition (and so ErrConflict). It is the only definition of
// the state machine: every state change goes through it.
//
// Ending a request that was never answered is a cancellation (the
// delegate, an admin or offboarding); the holder refuses instead, so
// EndedByHolder is refused from requested. Expiry and presence loss end
// only approved or active mandates (an unanswered request lapses instead).
func Next(s State, t Transition, reason EndReason) (State, error) {
	bad := func() (State, error) {
		return s, fmt.Errorf("%w: %s from %s", ErrInvalidTransition, t, s)
	}
	if t != TransitionEnd && reason != "" {
		return bad()
	}
	switch t {
	case TransitionApprove:
		if s == StateRequested {
			return StateApproved, nil
		}
	case TransitionRefuse:
		if s == StateRequested {
			return StateRefused, nil
		}
	case TransitionLapse:
		if s == StateRequested {
			return StateUnanswered, nil
		}
	case TransitionActivate:
		if s == StateApproved {
			return StateActive, nil
		}
	case TransitionEnd:
		if !reason.Valid() {
			return bad()
		}
		switch s {
		case StateRequested:
			if reason == EndedByDelegate || reason == EndedByAdmin || reason == EndedByOffboarding {
				return StateEnded, nil
			}
		case StateApproved, StateActive:
			return StateEnded, nil
		}
	}
	return bad()
}

// Presence is a mandate's presence policy.
type Presence string

// Presence policies.
const (
	// PresenceRequired: tokens live only while the holder's presence lease
	// is alive (the holder's page is open and beating). Every session.
	PresenceRequired Presence = "required"
	// PresenceRelaxed: no lease; only for colleague delegations and only
	// where the structure's policy allows it. The holder is notified of
	// every access instead.
	PresenceRelaxed Presence = "relaxed"
)

// Exclusion names messages a mandate never reaches.
const (
	// ExcludePersonal: messages marked personal (secret des
	// correspondances). On by default; the holder may opt in.
	ExcludePersonal = "personal"
)

// PurposeCategory is the kind of procedure a mandate is for.
type PurposeCategory string

// Purpose categories (démarches).
const (
	PurposeSocial     PurposeCategory = "social"     // CAF, CPAM, France Travail…
	PurposeTax        PurposeCategory = "tax"        // impots.gouv
	PurposeHousing    PurposeCategory = "housing"    // logement
	PurposeHealth     PurposeCategory = "health"     // santé
	PurposeEmployment PurposeCategory = "employment" // emploi
	PurposeAbsence    PurposeCategory = "absence"    // colleague covering an absence
	PurposeOther      PurposeCategory = "other"
)

// PurposeCategories lists the categories in display order.
func PurposeCategories() []PurposeCategory {
	return []PurposeCategory{PurposeSocial, PurposeTax, PurposeHousing, PurposeHealth, PurposeEmployment, PurposeAbsence, PurposeOther}
}

// Valid reports whether c is a defined category.
func (c PurposeCategory) Valid() bool {
	for _, v := range PurposeCategories() {
		if v == c {
			return true
		}
	}
	return false
}

// MaxPurposeLen bounds the free-text purpose (bytes).
const MaxPurposeLen = 500

// Mandate is a holder's recorded consent: who may do what on which mailbox,
// for how long, under which presence policy.
type Mandate struct {
	ID          string
	Kind        Kind
	StructureID string
	HolderID    string
	Mailbox     string // the holder's mailbox address, copied at request time
	DelegateID  string // the staff member acting (mediator or colleague)
	ClientID    string // the OAuth2 client that receives the tokens
	Scopes      []string
	// Exclusions are the kinds of messages the tokens never reach
	// (ExcludePersonal unless the holder opted in).
	Exclusions      []string
	Purpose         string
	PurposeCategory PurposeCategory
	Presence        Presence
	// Duration is how long a session lasts once approved (sessions); for
	// delegations it is NotAfter-NotBefore.
	Duration time.Duration
	// NotBefore and NotAfter bound when tokens may exist. A session's window
	// is set at approval (approval time + Duration); a delegation's is
	// chosen at request time.
	NotBefore time.Time
	NotAfter  time.Time
	// AnswerBy is when an unanswered request lapses.
	AnswerBy time.Time

	State     State
	EndReason EndReason // set when State is StateEnded
	// EndedBy is the id of the person who ended it ("" for the system).
	EndedBy string

	// GrantID is the OAuth2 request ID (token family) of the tokens issued
	// under the mandate; revoking it ends them all.
	GrantID string

	// ConsentVersion names the consent text the holder approved; ConsentHash
	// is the SHA-256 (hex) of the receipt (see Receipt); ConsentReceipt is
	// that receipt's canonical bytes as approved (Receipt.Canonical), kept
	// so that renaming anyone later changes neither what it says nor its
	// hash (ParseReceipt reads it back).
	ConsentVersion string
	ConsentHash    string
	ConsentReceipt []byte

	// LeaseUntil is when the presence lease lapses unless a heartbeat moves
	// it (PresenceRequired, active or approved). Zero: no lease was ever
	// started. A session ends when its lease lapses; a delegation does not
	// (its tokens only stop working until the holder starts their presence
	// again: Service.StartPresence).
	LeaseUntil time.Time

	CreatedAt   time.Time
	DecidedAt   time.Time // approved, refused or lapsed
	ActivatedAt time.Time
	EndedAt     time.Time
	// Version increases on every write (optimistic concurrency).
	Version int
}

// Live reports whether tokens may exist for m at now: active (or approved,
// for the first token), inside its window, and — when presence is
// required — with a lease that has not lapsed. A delegation whose lease
// lapsed is not live but goes on (approved or active) until its window
// closes: presence gates its tokens, not its life.
func (m Mandate) Live(now time.Time) bool {
	if m.State != StateActive && m.State != StateApproved {
		return false
	}
	if now.Before(m.NotBefore) || !now.Before(m.NotAfter) {
		return false
	}
	if m.Presence == PresenceRequired && !now.Before(m.LeaseUntil) {
		return false
	}
	return true
}

// Exchangeable reports whether the first token may be issued under m at
// now (its device code exchanged): a session must be Live; a delegation
// need only be approved with its window not yet closed — a colleague's
// client takes its grant when the holder approves, ahead of the absence,
// and its tokens stay unusable (introspection inactive, refresh refused,
// the access token not valid before NotBefore) until the window opens and,
// when presence is required, the holder is present.
func (m Mandate) Exchangeable(now time.Time) bool {
	if m.State != StateApproved {
		return false
	}
	if m.Kind == KindDelegation {
		return now.Before(m.NotAfter)
	}
	return m.Live(now)
}

// Present reports whether the holder's lease is alive at now.
func (m Mandate) Present(now time.Time) bool {
	return !m.LeaseUntil.IsZero() && now.Before(m.LeaseUntil)
}
