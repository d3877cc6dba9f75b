package people

import "context"

// Authenticator is one way to sign in. Staff sign in with a password and a
// TOTP code (StaffAuthenticator); holders' methods (passkeys, one-time codes
// sent to a phone) arrive later and plug in the same way:
//
//  1. in people, write a type with Method (a stable name such as
//     "holder-passkey") and Authenticate, which reads the fields it needs
//     from the Attempt and returns the Principal or an error (a generic one
//     for bad credentials, ErrTooManyAttempts when throttled);
//  2. in ui, wrap it in a ui.SignInMethod naming the template that draws its
//     fields, and pass it in ui.Deps.Methods.
//
// Sessions, return_to handling and CSRF are the same for every method.
type Authenticator interface {
	Method() string
	Authenticate(ctx context.Context, a Attempt) (Principal, error)
}

// Attempt is one sign-in attempt: the submitted form fields and where it
// came from (for throttling and logs).
type Attempt struct {
	Fields map[string]string
	IP     string
}

// MethodStaffPassword is the staff method: email, password and TOTP code.
const MethodStaffPassword = "staff-password-totp"

// StaffAuthenticator signs staff in with the fields "email", "password" and
// "code".
func (s *Service) StaffAuthenticator() Authenticator { return staffAuthenticator{s} }

type staffAuthenticator struct{ s *Service }

func (staffAuthenticator) Method() string { return MethodStaffPassword }

func (a staffAuthenticator) Authenticate(ctx context.Context, at Attempt) (Principal, error) {
	f := at.Fields
	return a.s.SignInStaff(ctx, f["email"], f["password"], f["code"], at.IP)
}
