package people_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

var resetLink = regexp.MustCompile(`https://mandated\.test/account/reset/confirm\?token=([A-Za-z0-9_-]+)`)

// resetToken asks for a reset of email and returns the token of the link
// the email received on the SMTP server carries (the n-th to that address).
func (e accountEnv) resetToken(t *testing.T, email, lang string, n int) string {
	t.Helper()
	if err := e.acc.RequestPasswordReset(t.Context(), email, "192.0.2.1", lang); err != nil {
		t.Fatal(err)
	}
	e.acc.Wait()
	var got []string
	for _, m := range e.smtp.Messages() {
		if slices.Contains(m.To, email) {
			got = append(got, m.Text)
		}
	}
	if len(got) < n {
		t.Fatalf("%d emails to %s, want %d", len(got), email, n)
	}
	mt := resetLink.FindStringSubmatch(got[n-1])
	if mt == nil {
		t.Fatalf("the email carries no reset link:\n%s", got[n-1])
	}
	return mt[1]
}

func TestStaffResetsPasswordByEmailKeepingTheirSecondFactor(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	p, secret := e.signedIn(t, "marie@example.org")
	oldSession, _, _ := e.svc.StartSession(ctx, p)

	if err := e.acc.RequestPasswordReset(ctx, "  Marie@Example.org ", "192.0.2.1", "fr"); err != nil {
		t.Fatal(err)
	}
	mail := e.smtp.WaitFor(t, "marie@example.org")
	if mail.Subject != "Réinitialiser votre mot de passe mandated" || !strings.Contains(mail.Text, "30 minutes") {
		t.Errorf("email: %q\n%s", mail.Subject, mail.Text)
	}
	m := resetLink.FindStringSubmatch(mail.Text)
	if m == nil {
		t.Fatalf("no link in the email:\n%s", mail.Text)
	}
	token := m[1]
	view, err := e.acc.OpenPasswordReset(ctx, token)
	if err != nil || view.Email != "marie@example.org" {
		t.Fatalf("OpenPasswordReset = %+v, %v", view, err)
	}

	const newPassword = "un tout nouveau mot de passe"
	if err := e.acc.CompletePasswordReset(ctx, token, "court", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1"); !errors.Is(err, people.ErrPasswordTooShort) {
		t.Errorf("short password: %v", err)
	}
	if err := e.acc.CompletePasswordReset(ctx, token, "marie@example.org", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1"); !errors.Is(err, people.ErrPasswordTooShort) && !errors.Is(err, people.ErrPasswordIsEmail) {
		t.Errorf("password = email: %v", err)
	}
	if err := e.acc.CompletePasswordReset(ctx, token, newPassword, people.ResetProof{TOTPCode: "000000"}, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("wrong code: %v", err)
	}
	if err := e.acc.CompletePasswordReset(ctx, token, newPassword, people.ResetProof{}, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("no code: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, oldSession); err != nil {
		t.Fatalf("a refused reset ended the sessions: %v", err)
	}
	code := e.code(t, secret)
	if err := e.acc.CompletePasswordReset(ctx, token, newPassword, people.ResetProof{TOTPCode: code}, "192.0.2.1"); err != nil {
		t.Fatalf("reset with the right code: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, oldSession); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("a session survived the reset: %v", err)
	}
	if err := e.acc.CompletePasswordReset(ctx, token, "encore un autre mot de passe", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1"); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Errorf("link used twice: %v", err)
	}
	// The code that completed the reset does not sign in again (replay).
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", newPassword, code, "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("the reset's code signed in again: %v", err)
	}
	e.nextStep()
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", testPassword, e.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("the old password still works: %v", err)
	}
	e.nextStep()
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", newPassword, e.code(t, secret), "192.0.2.1"); err != nil {
		t.Errorf("the new password with the same second factor: %v", err)
	}

	got := e.events(t, audit.ActionResetRequested, audit.ActionResetCompleted, audit.ActionSessionEnded)
	want := []eventRow{
		{audit.ActionResetRequested, audit.OutcomeSuccess, audit.ActorStaff, p.ID, ""},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorStaff, p.ID, "wrong second-factor code"},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorStaff, p.ID, "wrong second-factor code"},
		{audit.ActionResetCompleted, audit.OutcomeSuccess, audit.ActorStaff, p.ID, ""},
		{audit.ActionSessionEnded, audit.OutcomeSuccess, audit.ActorStaff, p.ID, "password reset"},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorStaff, p.ID, "reset link used"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}

func TestResetAnswersAlikeAndSendsOnlyToActiveAccounts(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	active, _ := e.enrolled(t, "active@example.org", "Mairie")
	pending, _, err := e.svc.CreateStaff(ctx, "pending@example.org", "mediator", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := e.enrolled(t, "gone@example.org", "Mairie")
	if err := e.store.UpdateStaff(ctx, gone.ID, func(st *people.Staff) error { st.Status = people.StaffDeactivated; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"nobody@example.org", "pending@example.org", "gone@example.org", "active@example.org"} {
		if err := e.acc.RequestPasswordReset(ctx, email, "192.0.2.1", "en"); err != nil {
			t.Errorf("RequestPasswordReset(%s) = %v, want the same nil for everyone", email, err)
		}
	}
	if err := e.acc.RequestPasswordReset(ctx, "not an address", "192.0.2.1", "en"); !errors.Is(err, people.ErrInvalidEmail) {
		t.Errorf("not an address: %v", err)
	}
	e.acc.Wait()
	msgs := e.smtp.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"active@example.org"}) {
		t.Fatalf("emails sent: %d, want one to the active account only", len(msgs))
	}
	if msgs[0].Subject != "Reset your mandated password" {
		t.Errorf("English subject = %q", msgs[0].Subject)
	}
	got := e.events(t, audit.ActionResetRequested)
	want := []eventRow{
		{audit.ActionResetRequested, audit.OutcomeDenied, audit.ActorUnknown, "", "unknown account"},
		{audit.ActionResetRequested, audit.OutcomeDenied, audit.ActorStaff, pending.ID, "account pending"},
		{audit.ActionResetRequested, audit.OutcomeDenied, audit.ActorStaff, gone.ID, "account deactivated"},
		{audit.ActionResetRequested, audit.OutcomeSuccess, audit.ActorStaff, active.ID, ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}

func TestNewResetLinkCancelsTheOlderAndLinksExpire(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	_, secret := e.enrolled(t, "marie@example.org", "Mairie")
	first := e.resetToken(t, "marie@example.org", "fr", 1)
	second := e.resetToken(t, "marie@example.org", "fr", 2)
	if _, err := e.acc.OpenPasswordReset(ctx, first); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Errorf("the older link still opens: %v", err)
	}
	if err := e.acc.CompletePasswordReset(ctx, first, "un tout nouveau mot de passe", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1"); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Errorf("the older link still works: %v", err)
	}
	if _, err := e.acc.OpenPasswordReset(ctx, second); err != nil {
		t.Fatalf("the newer link: %v", err)
	}
	e.clock.Advance(30 * time.Minute)
	if _, err := e.acc.OpenPasswordReset(ctx, second); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Errorf("a link after 30 minutes: %v", err)
	}
	for _, tok := range []string{"", "made-up", strings.Repeat("x", 500)} {
		if _, err := e.acc.OpenPasswordReset(ctx, tok); !errors.Is(err, people.ErrResetLinkInvalid) {
			t.Errorf("OpenPasswordReset(%.10q) = %v", tok, err)
		}
	}
}

func TestResetLinkOfAnAccountDeactivatedSinceStopsWorking(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	staff, secret := e.enrolled(t, "marie@example.org", "Mairie")
	token := e.resetToken(t, "marie@example.org", "fr", 1)
	if err := e.store.UpdateStaff(ctx, staff.ID, func(st *people.Staff) error { st.Status = people.StaffDeactivated; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.acc.CompletePasswordReset(ctx, token, "un tout nouveau mot de passe", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1"); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Fatalf("reset of a deactivated account: %v", err)
	}
	if st, _ := e.store.GetStaff(ctx, staff.ID); st.Status != people.StaffDeactivated {
		t.Errorf("status = %s", st.Status)
	}
}

func TestResetRequestsAreLimitedPerAddressAndPerIP(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	// Per address, known or not: 3 in the window.
	for _, email := range []string{"nobody@example.org"} {
		for i := range 3 {
			if err := e.acc.RequestPasswordReset(ctx, email, "192.0.2.10", "fr"); err != nil {
				t.Fatalf("request %d: %v", i+1, err)
			}
		}
		if err := e.acc.RequestPasswordReset(ctx, email, "198.51.100.1", "fr"); !errors.Is(err, people.ErrTooManyAttempts) {
			t.Errorf("4th request for %s from another IP: %v", email, err)
		}
	}
	// Per IP: 10 in the window, whatever the addresses (3 used above).
	for i := range 7 {
		if err := e.acc.RequestPasswordReset(ctx, "person"+string(rune('a'+i))+"@example.org", "192.0.2.10", "fr"); err != nil {
			t.Fatalf("request %d from the IP: %v", i+4, err)
		}
	}
	if err := e.acc.RequestPasswordReset(ctx, "someone-else@example.org", "192.0.2.10", "fr"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Errorf("11th request from one IP: %v", err)
	}
	e.clock.Advance(15*time.Minute + time.Second)
	if err := e.acc.RequestPasswordReset(ctx, "nobody@example.org", "192.0.2.10", "fr"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestGuessingTheCodeOnAResetLinkHitsTheSignInLimit(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	_, secret := e.enrolled(t, "marie@example.org", "Mairie")
	token := e.resetToken(t, "marie@example.org", "fr", 1)
	for i := range 5 {
		err := e.acc.CompletePasswordReset(ctx, token, "un tout nouveau mot de passe", people.ResetProof{TOTPCode: "123456"}, "192.0.2.1")
		if !errors.Is(err, people.ErrInvalidCode) && !errors.Is(err, people.ErrTooManyAttempts) {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	err := e.acc.CompletePasswordReset(ctx, token, "un tout nouveau mot de passe", people.ResetProof{TOTPCode: e.code(t, secret)}, "192.0.2.1")
	if !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("right code after 5 wrong ones: %v, want ErrTooManyAttempts", err)
	}
	// The account is locked for sign-in too: same counter.
	e.nextStep()
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", testPassword, e.code(t, secret), "198.51.100.7"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Errorf("sign-in after guessing on the reset page: %v", err)
	}
}

func TestNoResetLinkWithoutItsRecord(t *testing.T) {
	rec := &switchRecorder{}
	e := newEnvRecording(t, func(*store.Store, *storetest.Clock) people.Recorder { return rec })
	srv := notifytest.StartSMTP(t)
	acc := people.NewAccount(e.svc, e.store, people.AccountConfig{
		Notifier: notifytest.SMTPNotifier(t, srv),
		ResetURL: func(token string) string { return "https://mandated.test/account/reset/confirm?token=" + token },
	})
	e.enrolled(t, "marie@example.org", "Mairie")
	rec.failing = true
	// Known or not, the answer is the same error: nothing tells them apart.
	for _, email := range []string{"marie@example.org", "nobody@example.org"} {
		if err := acc.RequestPasswordReset(t.Context(), email, "192.0.2.1", "fr"); err == nil {
			t.Errorf("RequestPasswordReset(%s) while the log refuses writes succeeded", email)
		}
	}
	acc.Wait()
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d emails sent without their record", n)
	}
}

func TestOpeningADeadResetLinkIsRecorded(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := people.WithClient(t.Context(), people.Client{IP: "192.0.2.8"})
	p, _ := e.signedIn(t, "marie@example.org")
	first := e.resetToken(t, "marie@example.org", "fr", 1)
	second := e.resetToken(t, "marie@example.org", "fr", 2) // replaces (deletes) the first
	for _, tok := range []string{first, "made-up", ""} {
		if _, err := e.acc.OpenPasswordReset(ctx, tok); !errors.Is(err, people.ErrResetLinkInvalid) {
			t.Errorf("OpenPasswordReset(%q) = %v", tok, err)
		}
	}
	e.clock.Advance(31 * time.Minute)
	if _, err := e.acc.OpenPasswordReset(ctx, second); !errors.Is(err, people.ErrResetLinkInvalid) {
		t.Errorf("expired link: %v", err)
	}
	got := e.events(t, audit.ActionResetCompleted)
	want := []eventRow{
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorUnknown, "", "opened: reset link unknown"},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorUnknown, "", "opened: reset link unknown"},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorUnknown, "", "opened: reset link unknown"},
		{audit.ActionResetCompleted, audit.OutcomeDenied, audit.ActorStaff, p.ID, "opened: reset link expired or replaced"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}
