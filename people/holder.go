package people

import (
	"context"
	"time"
)

// Holder is the person whose mailbox mandates are about (a beneficiary, or a
// staff member for their own professional mailbox). There is one record per
// mailbox, even when several structures help the same person; each structure
// sees only the holders it serves (HolderStore.HolderServedBy).
type Holder struct {
	ID          string
	Mailbox     string // the mailbox address; unique, stored lower-cased
	DisplayName string
	// Phone (E.164, "+33612345678") and Email are the holder's own contacts,
	// where one-time codes go. At least one is set.
	Phone    string
	Email    string
	Language string // "fr" or "en": the language of codes and pages
	// StaffID is set when the holder is a staff member acting as holder of
	// their own professional mailbox (colleague delegations).
	StaffID string
	// ContactConfirmedAt is when the holder first proved they receive codes
	// at Phone or Email. From then on only the holder (signed in) may change
	// their contacts: a mediator alone can never redirect the codes.
	ContactConfirmedAt *time.Time
	CreatedAt          time.Time
}

// HolderSubject is the subject identifier of a holder ("holder:<id>"), the
// OAuth2 `sub` of tokens that act on their mailbox.
func HolderSubject(id string) string { return "holder:" + id }

// CodePurpose says what a one-time code proves; a code for one purpose never
// works for another.
type CodePurpose string

// One-time code purposes.
const (
	CodeSignIn CodePurpose = "signin" // sign in on a phone
	CodeEnrol  CodePurpose = "enrol"  // add a passkey: first enrolment or recovery after a lost phone
)

// HolderQuery pages through a structure's holders, ordered by mailbox.
type HolderQuery struct {
	Search string // case-insensitive substring of mailbox or display name; "" for all
	After  string // mailbox of the last holder of the previous page; "" for the first page
	Limit  int    // 1..500
}

// HolderStore persists holders and which structures serve them. Methods
// return errors wrapping mandate.ErrNotFound, mandate.ErrAlreadyExists or
// mandate.ErrConflict.
type HolderStore interface {
	// CreateHolder stores h and links it to structureID, in one transaction.
	// ErrAlreadyExists when the mailbox is taken.
	CreateHolder(ctx context.Context, h Holder, structureID string) error
	GetHolder(ctx context.Context, id string) (Holder, error)
	FindHolderByMailbox(ctx context.Context, mailbox string) (Holder, error)
	// UpdateHolder reads, changes with fn and writes one holder in a single
	// transaction (row-locked on PostgreSQL). fn's error aborts and is returned.
	UpdateHolder(ctx context.Context, id string, fn func(*Holder) error) error
	// LinkHolder records that structureID serves the holder; linking twice is
	// not an error.
	LinkHolder(ctx context.Context, holderID, structureID string, at time.Time) error
	HolderServedBy(ctx context.Context, holderID, structureID string) (bool, error)
	// HolderStructures lists the ids of the structures serving the holder.
	HolderStructures(ctx context.Context, holderID string) ([]string, error)
	ListHolders(ctx context.Context, structureID string, q HolderQuery) ([]Holder, error)
	CountHolders(ctx context.Context, structureID string) (int, error)
}

// HolderReader is the part of HolderStore sessions need to name a signed-in
// holder.
type HolderReader interface {
	GetHolder(ctx context.Context, id string) (Holder, error)
}
