// Package people is the domain of the persons who sign in to mandated: the
// structures (organisations) and their staff accounts (structure admins,
// mediators, auditors), their enrolment, passwords (argon2id), second factor
// (TOTP), sign-in throttling and browser sessions. Holders arrive in a later
// issue and plug into the same sign-in interface. It does not import echo or gorm.
package people

import (
	"context"
	"time"
)

// Structure is the organisation a staff account belongs to (France Services,
// CCAS, town hall, association).
type Structure struct {
	ID        string
	Name      string // unique
	CreatedAt time.Time
}

// Role is what a staff member may do.
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleMediator Role = "mediator"
	RoleAuditor  Role = "auditor"
)

// StaffStatus is the life cycle of a staff account.
type StaffStatus string

const (
	StaffPending     StaffStatus = "pending" // created, enrolment not finished
	StaffActive      StaffStatus = "active"
	StaffDeactivated StaffStatus = "deactivated"
)

// Staff is a staff account. Platform staff act across every structure; others
// only within StructureID.
type Staff struct {
	ID           string
	Email        string // unique, stored lower-cased
	DisplayName  string
	Role         Role
	StructureID  string
	Platform     bool
	Status       StaffStatus
	PasswordHash string // PHC-format argon2id string; empty until enrolled
	SealedTOTP   []byte // TOTP secret sealed with package seal; nil until enrolled
	// LastTOTPStep is the last TOTP time step accepted, so a code is never
	// accepted twice.
	LastTOTPStep int64
	CreatedAt    time.Time
	LastSignInAt *time.Time
}

// Enrolment is a single-use, expiring link with which a new staff member sets
// their own password and second factor. Only the SHA-256 of the token is stored.
type Enrolment struct {
	TokenHash []byte
	StaffID   string
	// SealedPendingTOTP is the TOTP secret offered on the enrolment page, kept
	// until the person proves they scanned it.
	SealedPendingTOTP []byte
	CreatedAt         time.Time
	ExpiresAt         time.Time
	UsedAt            *time.Time
}

// Session is a signed-in browser session. Only the SHA-256 of the cookie
// value is stored.
type Session struct {
	IDHash    []byte
	Subject   string // "staff:<id>" (later "holder:<id>")
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
	// LastSeenAt is when the session was last used, recorded at most once a
	// minute; the idle timeout counts from it. Equals CreatedAt at first.
	LastSeenAt time.Time
	// IP is the client's address at sign-in, as the server sees it after the
	// trusted-proxy rule; Browser and OS name its user agent ("Firefox",
	// "Android"), "" when unknown. Shown on the session list.
	IP      string
	Browser string
	OS      string
}

// Store persists people. Methods return errors wrapping mandate.ErrNotFound,
// mandate.ErrAlreadyExists or mandate.ErrConflict.
type Store interface {
	CreateStructure(ctx context.Context, s Structure) error
	GetStructure(ctx context.Context, id string) (Structure, error)
	FindStructureByName(ctx context.Context, name string) (Structure, error)

	CreateStaff(ctx context.Context, s Staff) error
	GetStaff(ctx context.Context, id string) (Staff, error)
	FindStaffByEmail(ctx context.Context, email string) (Staff, error)
	CountStaff(ctx context.Context) (int, error)
	ListStaff(ctx context.Context, structureID string) ([]Staff, error)
	// UpdateStaff reads, changes with fn and writes one account in a single
	// transaction (row-locked on PostgreSQL). fn's error aborts and is returned.
	UpdateStaff(ctx context.Context, id string, fn func(*Staff) error) error

	CreateEnrolment(ctx context.Context, e Enrolment) error
	// GetEnrolment finds an enrolment by token hash, used or not.
	GetEnrolment(ctx context.Context, tokenHash []byte) (Enrolment, error)
	// SetEnrolmentPendingTOTP stores a new SealedPendingTOTP for an unused enrolment.
	SetEnrolmentPendingTOTP(ctx context.Context, tokenHash []byte, sealed []byte) error
	// CompleteEnrolment, in one transaction: checks the enrolment is unused
	// and not expired at now (mandate.ErrConflict otherwise), marks it used,
	// and applies fn to its staff account.
	CompleteEnrolment(ctx context.Context, tokenHash []byte, now time.Time, fn func(*Staff) error) error

	// RecordSignInFailure counts one failure for key (an account or an IP)
	// inside a sliding window starting at windowStart, and returns the number of
	// failures for key since windowStart, this one included.
	RecordSignInFailure(ctx context.Context, key string, at time.Time, windowStart time.Time) (int, error)
	// CountSignInFailures returns failures for key since windowStart.
	CountSignInFailures(ctx context.Context, key string, windowStart time.Time) (int, error)
	// ClearSignInFailures forgets key's failures (after a success).
	ClearSignInFailures(ctx context.Context, key string) error
	// PruneSignInFailures deletes failures recorded before t (older than any
	// throttle window) and returns how many went.
	PruneSignInFailures(ctx context.Context, before time.Time) (int, error)

	CreateSession(ctx context.Context, s Session) error
	// GetSession returns mandate.ErrNotFound for unknown or expired (at now) sessions.
	GetSession(ctx context.Context, idHash []byte, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, idHash []byte) error
	// DeleteSessionsOf ends every session of subject; returns how many.
	DeleteSessionsOf(ctx context.Context, subject string) (int, error)
}
