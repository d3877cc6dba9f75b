package people_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/people"
)

func TestStaffEnrolsSignsInAndUsesASession(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	staff, token, err := e.svc.CreateStaff(ctx, " Marie.Dupont@Mairie.fr ", "mediator", "Mairie de Trifouillis", false)
	if err != nil {
		t.Fatal(err)
	}
	if staff.Email != "marie.dupont@mairie.fr" || staff.Status != people.StaffPending || staff.Platform {
		t.Fatalf("created staff = %+v", staff)
	}
	if _, err := e.svc.SignInStaff(ctx, staff.Email, testPassword, "123456", "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Fatalf("pending account signs in: %v", err)
	}

	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if view.Email != staff.Email || view.TOTP.Secret == "" || !strings.HasPrefix(view.TOTP.QRDataURI, "data:image/png;base64,") {
		t.Fatalf("enrolment view = %+v", view)
	}
	if err := e.svc.CompleteEnrolment(ctx, token, "Marie Dupont", testPassword, e.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.GetStaff(ctx, staff.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != people.StaffActive || stored.DisplayName != "Marie Dupont" ||
		!strings.HasPrefix(stored.PasswordHash, "$argon2id$") || bytes.Contains(stored.SealedTOTP, []byte(view.TOTP.Secret)) {
		t.Fatalf("stored after enrolment = %+v", stored)
	}

	e.nextStep()
	p, err := e.svc.SignInStaff(ctx, "MARIE.DUPONT@mairie.fr", testPassword, e.code(t, view.TOTP.Secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	want := people.Principal{Subject: "staff:" + staff.ID, Kind: "staff", ID: staff.ID, DisplayName: "Marie Dupont",
		Email: staff.Email, Role: people.RoleMediator, StructureID: staff.StructureID}
	if p != want {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}
	if st, _ := e.store.GetStaff(ctx, staff.ID); st.LastSignInAt == nil || !st.LastSignInAt.Equal(e.clock.Now()) {
		t.Errorf("LastSignInAt = %v, want %v", st.LastSignInAt, e.clock.Now())
	}

	cookie, sess, err := e.svc.StartSession(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cookie) < 43 || bytes.Contains(sess.IDHash, []byte(cookie)) || !sess.ExpiresAt.Equal(e.clock.Now().Add(12*time.Hour)) {
		t.Fatalf("session = %q, %+v", cookie, sess)
	}
	got, _, err := e.svc.LookupSession(ctx, cookie)
	if err != nil || got != want {
		t.Fatalf("LookupSession = %+v, %v", got, err)
	}
	if err := e.svc.EndSession(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.LookupSession(ctx, cookie); !errors.Is(err, people.ErrNoSession) {
		t.Fatalf("ended session still works: %v", err)
	}
}

func TestSessionsExpireAndCanAllBeEnded(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	p, err := e.svc.SignInStaff(ctx, staff.Email, testPassword, e.code(t, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := e.svc.StartSession(ctx, p)
	b, _, _ := e.svc.StartSession(ctx, p)
	if n, err := e.svc.EndAllSessions(ctx, p.Subject); err != nil || n != 2 {
		t.Fatalf("EndAllSessions = %d, %v", n, err)
	}
	for _, c := range []string{a, b} {
		if _, _, err := e.svc.LookupSession(ctx, c); !errors.Is(err, people.ErrNoSession) {
			t.Errorf("session lives on: %v", err)
		}
	}
	c, _, _ := e.svc.StartSession(ctx, p)
	e.clock.Advance(12*time.Hour + time.Second)
	if _, _, err := e.svc.LookupSession(ctx, c); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("expired session works: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, "forged"); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("forged cookie: %v", err)
	}
}

func TestCodeIsNeverAcceptedTwice(t *testing.T) {
	e := newEnv(t, people.Config{})
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	code := e.code(t, secret)
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, code, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, code, "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Fatalf("replayed code: %v", err)
	}
}

func TestSignInFailuresAllLookTheSame(t *testing.T) {
	e := newEnv(t, people.Config{})
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	pending, _, err := e.svc.CreateStaff(t.Context(), "paul@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	good := e.code(t, secret)
	wrong := "000000"
	if good == wrong {
		wrong = "111111"
	}
	for name, try := range map[string][3]string{
		"unknown email":   {"nobody@mairie.fr", testPassword, good},
		"wrong password":  {staff.Email, testPassword + "!", good},
		"wrong code":      {staff.Email, testPassword, wrong},
		"no code":         {staff.Email, testPassword, ""},
		"pending account": {pending.Email, testPassword, good},
	} {
		if _, err := e.svc.SignInStaff(t.Context(), try[0], try[1], try[2], "192.0.2.1"); err != people.ErrSignInFailed {
			t.Errorf("%s: error = %v, want exactly ErrSignInFailed", name, err)
		}
	}
}

func TestThrottlingLocksAnAccountUntilTheWindowPasses(t *testing.T) {
	e := newEnv(t, people.Config{})
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	for i := range 5 {
		if _, err := e.svc.SignInStaff(t.Context(), staff.Email, "wrong password!", e.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	e.nextStep()
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, e.code(t, secret), "198.51.100.7"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("locked account, right password from another IP: %v", err)
	}
	e.clock.Advance(15 * time.Minute)
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, e.code(t, secret), "198.51.100.7"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestThrottlingBlocksAnAddressAcrossAccounts(t *testing.T) {
	e := newEnv(t, people.Config{MaxIPFailures: 3})
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	for _, email := range []string{"a@x.fr", "b@x.fr", "c@x.fr"} {
		if _, err := e.svc.SignInStaff(t.Context(), email, testPassword, "123456", "203.0.113.9"); !errors.Is(err, people.ErrSignInFailed) {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, e.code(t, secret), "203.0.113.9"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("blocked address: %v", err)
	}
	if _, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, e.code(t, secret), "192.0.2.1"); err != nil {
		t.Fatalf("other address: %v", err)
	}
}

func TestDeactivatedAccountCannotSignInOrKeepItsSession(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	staff, secret := e.enrolled(t, "marie@mairie.fr", "Mairie")
	p, err := e.svc.SignInStaff(ctx, staff.Email, testPassword, e.code(t, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, _ := e.svc.StartSession(ctx, p)
	if err := e.store.UpdateStaff(ctx, staff.ID, func(s *people.Staff) error { s.Status = people.StaffDeactivated; return nil }); err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	if _, err := e.svc.SignInStaff(ctx, staff.Email, testPassword, e.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrAccountDeactivated) {
		t.Errorf("deactivated sign-in: %v", err)
	}
	if _, err := e.svc.SignInStaff(ctx, staff.Email, "wrong password!", e.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("deactivated, wrong password: %v (must not reveal the status)", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, cookie); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("deactivated session: %v", err)
	}
}
