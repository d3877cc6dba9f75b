package people

import "errors"

// Errors the services return, worded so a page can show them as they are
// (package ui translates them). Store failures are wrapped, not listed here.
var (
	ErrInvalidEmail     = errors.New("this is not a valid email address")
	ErrInvalidRole      = errors.New("the role must be admin, mediator or auditor")
	ErrInvalidName      = errors.New("enter your name, at most 100 characters")
	ErrPasswordTooShort = errors.New("the password must have at least 12 characters")
	ErrPasswordTooLong  = errors.New("the password must have at most 128 characters")
	ErrPasswordIsEmail  = errors.New("the password must not be your email address")
	// ErrInvalidCode: the one-time code is wrong, too old, or was already used.
	ErrInvalidCode = errors.New("the code is wrong or was already used; wait for the next code")
	// ErrEnrolmentLinkInvalid: unknown, already used or expired enrolment link.
	ErrEnrolmentLinkInvalid = errors.New("this enrolment link is unknown, already used or expired")
	// ErrNotPending: the account has finished its enrolment already.
	ErrNotPending = errors.New("this account is already set up")
	// ErrSignInFailed is the one answer for an unknown email, a wrong password
	// or a wrong code, so that none of them can be told apart.
	ErrSignInFailed = errors.New("the email, password or code is wrong")
	// ErrTooManyAttempts: sign-in is paused for this account or address.
	ErrTooManyAttempts = errors.New("too many failed attempts; wait 15 minutes and try again")
	// ErrAccountDeactivated is returned only to someone who gave the right
	// password and code.
	ErrAccountDeactivated = errors.New("this account has been deactivated")
	// ErrNoSession: no session, or it has ended or expired.
	ErrNoSession = errors.New("not signed in, or the session has ended")
	// ErrAlreadyBootstrapped: there is staff already; the first admin exists.
	ErrAlreadyBootstrapped = errors.New("a staff account exists already")
)
