package mandate

import (
	"context"
	"time"
)

// Query pages through mandates, newest first (CreatedAt then ID, descending).
type Query struct {
	StructureID string  // "" for every structure (platform staff only)
	HolderID    string  // "" for every holder
	DelegateID  string  // "" for every delegate
	States      []State // empty for every state
	// BeforeCreated and BeforeID are the cursor: the last mandate of the
	// previous page. Zero for the first page.
	BeforeCreated time.Time
	BeforeID      string
	Limit         int // 1..500
}

// Store persists mandates and structure policies. Methods return errors
// wrapping ErrNotFound, ErrAlreadyExists or ErrConflict. The gorm adapter in
// store/ implements it; store/storetest checks it on SQLite and PostgreSQL.
type Store interface {
	// CreateMandate stores a new mandate (Version 1). ErrAlreadyExists when
	// the id is taken.
	CreateMandate(ctx context.Context, m Mandate) error
	GetMandate(ctx context.Context, id string) (Mandate, error)
	// UpdateMandate reads one mandate, lets fn change it, and writes it back
	// with Version+1, in one transaction (row-locked on PostgreSQL), so two
	// concurrent transitions never both succeed. fn's error aborts and is
	// returned as is. It returns the mandate as written.
	UpdateMandate(ctx context.Context, id string, fn func(*Mandate) error) (Mandate, error)
	// ExtendLease moves a presence lease forward: LeaseUntil = until, in one
	// statement, only when the mandate belongs to holderID, is approved or
	// active, requires presence, is not past NotAfter, and its lease has
	// not lapsed at now (LeaseUntil > now). ErrNotFound when no mandate of
	// that holder has that id; ErrConflict when the lease cannot be moved
	// (lapsed, ended, not a presence mandate). It does not bump Version.
	ExtendLease(ctx context.Context, id, holderID string, now, until time.Time) error
	ListMandates(ctx context.Context, q Query) ([]Mandate, error)
	// DueMandates lists up to limit mandates a sweep at now must move:
	// requested with AnswerBy <= now; approved or active with NotAfter <=
	// now; sessions approved or active, presence required, with LeaseUntil
	// <= now (or no lease). A delegation whose lease lapsed is not due: it
	// lives until its window closes, its tokens gated by Live.
	//
	// CreateMandate, UpdateMandate and the readers keep every field,
	// ConsentReceipt's bytes exactly (nil when empty).
	DueMandates(ctx context.Context, now time.Time, limit int) ([]Mandate, error)
	// GetPolicy returns a structure's policy; ErrNotFound when it has none
	// (callers use DefaultPolicy then).
	GetPolicy(ctx context.Context, structureID string) (Policy, error)
	// PutPolicy creates or replaces a structure's policy.
	PutPolicy(ctx context.Context, p Policy) error
}
