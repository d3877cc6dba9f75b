package people

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mandated/mandated/mandate"
)

// BeginStaffSignIn is the first step of a staff sign-in with a passkey as
// the second factor, instead of the TOTP code: it checks the email and
// password exactly as SignInStaff does (same throttle, same failure counts
// and records), then begins a ceremony limited to the account's passkeys.
// ErrNoPasskey (only after the right password) when the account has none.
func (k *Passkeys) BeginStaffSignIn(ctx context.Context, email, password, ip string) (string, []byte, error) {
	var user passkeyUser
	p, err := k.svc.staffStep(ctx, email, ip, func(email string) (Principal, string, error) {
		staff, _, err := k.svc.checkStaffPassword(ctx, email, password)
		if err != nil {
			return Principal{}, staff.ID, err
		}
		switch staff.Status {
		case StaffActive:
		case StaffPending:
			return Principal{}, staff.ID, ErrSignInFailed
		default:
			return Principal{}, staff.ID, ErrAccountDeactivated
		}
		list, err := k.store.ListPasskeys(ctx, StaffSubject(staff.ID))
		if err != nil {
			return Principal{}, staff.ID, fmt.Errorf("list passkeys of %s: %w", staff.ID, err)
		}
		if len(list) == 0 {
			return Principal{}, staff.ID, ErrNoPasskey
		}
		user = passkeyUser{handle: list[0].UserHandle, creds: credentialsOf(list)}
		return staffPrincipal(staff), staff.ID, nil
	})
	if err != nil {
		return "", nil, err
	}
	return k.beginAssertion(ctx, p.Subject, CeremonyStaffSignIn, &user)
}

// FinishStaffSignIn checks the passkey's response to a ceremony begun by
// BeginStaffSignIn (which proved the password) and returns the signed-in
// staff member. A refused passkey counts as a failed sign-in of the account.
func (k *Passkeys) FinishStaffSignIn(ctx context.Context, ceremonyID string, response []byte, ip string) (Principal, error) {
	var (
		c  PasskeyCeremony
		sd webauthn.SessionData
	)
	err := k.throttledByIP(ctx, ip, func() error {
		var err error
		c, sd, err = k.takeCeremony(ctx, ceremonyID, CeremonyStaffSignIn)
		return err
	})
	if err != nil {
		return Principal{}, err
	}
	kind, staffID, _ := ParseSubject(c.Owner)
	if kind != "staff" {
		return Principal{}, k.refuse(ctx, c.Owner, "staff sign-in ceremony without a staff member", nil)
	}
	staff, err := k.svc.store.GetStaff(ctx, staffID)
	if errors.Is(err, mandate.ErrNotFound) {
		return Principal{}, ErrSignInFailed
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load staff %s: %w", staffID, err)
	}
	p, err := k.svc.staffStep(ctx, staff.Email, ip, func(string) (Principal, string, error) {
		_, err := k.assertion(ctx, sd, c.Owner, response, func(pk Passkey) bool { return pk.Owner == c.Owner })
		if errors.Is(err, ErrPasskeyRefused) {
			return Principal{}, staffID, ErrSignInFailed
		}
		if err != nil {
			return Principal{}, staffID, err
		}
		return k.svc.completeStaffSignIn(ctx, staffID, "", func(*Staff, time.Time) error { return nil })
	})
	if err != nil {
		return Principal{}, err
	}
	return k.svc.staffSignedIn(ctx, p, staff.Email, ip, "second factor: passkey")
}
