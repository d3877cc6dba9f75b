package people_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
)

var codeInText = regexp.MustCompile(`\b(\d{6,8})\b`)

// codeIn finds the code in a message's text.
func codeIn(t *testing.T, text string) string {
	t.Helper()
	m := codeInText.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no code in %q", text)
	}
	return m[1]
}

// smtpEnv is a holders service sending email to a real SMTP listener.
func smtpEnv(t *testing.T, tune func(*people.HoldersConfig)) (holdersEnv, *notifytest.SMTPServer) {
	t.Helper()
	srv := notifytest.StartSMTP(t)
	n := notify.Router{notify.Email: notifytest.SMTPNotifier(t, srv)}
	return newHoldersEnv(t, n, tune), srv
}

// mailCode asks for a code for holder by email and returns it, as received.
func (e holdersEnv) mailCode(t *testing.T, srv *notifytest.SMTPServer, h people.Holder, purpose people.CodePurpose) string {
	t.Helper()
	before := len(srv.Messages())
	ch, err := e.h.SendCode(t.Context(), h.ID, purpose, "192.0.2.1")
	if err != nil || ch != notify.Email {
		t.Fatalf("send code: %q, %v", ch, err)
	}
	msgs := srv.Messages()
	if len(msgs) != before+1 {
		t.Fatalf("%d messages after sending one code (before: %d)", len(msgs), before)
	}
	m := msgs[len(msgs)-1]
	if !slices.Equal(m.To, []string{h.Email}) {
		t.Fatalf("code sent to %v, want %s", m.To, h.Email)
	}
	return codeIn(t, m.Text)
}

func TestCodeByEmailIsSingleUseAndAudited(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "marie.contact@example.net").Holder
	code := e.mailCode(t, srv, h, people.CodeSignIn)
	if len(code) != 8 {
		t.Errorf("code %q: want 8 digits by default", code)
	}
	m := srv.WaitFor(t, "marie.contact@example.net")
	if m.Subject != "Votre code de connexion" || !strings.Contains(m.Text, "Ne le donnez à personne") || !strings.Contains(m.Text, "10 minutes") {
		t.Errorf("message: %q %q", m.Subject, m.Text)
	}

	wrong := "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeEnrol, code, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("a sign-in code for enrolment: %v", err)
	}
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, wrong, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("wrong code: %v", err)
	}
	spaced := code[:4] + " " + code[4:]
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, spaced, "192.0.2.1"); err != nil {
		t.Fatalf("right code (typed with a space): %v", err)
	}
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, code, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("replayed code: %v", err)
	}
	got, _ := e.store.GetHolder(ctx, h.ID)
	if got.ContactConfirmedAt == nil || !got.ContactConfirmedAt.Equal(e.clock.Now()) {
		t.Errorf("contact not confirmed: %+v", got)
	}

	var rows []string
	for _, ev := range e.events(t) {
		if ev.Holder != h.ID || ev.Action == audit.ActionHolderCreated {
			continue
		}
		rows = append(rows, string(ev.Action)+" "+string(ev.Actor.Kind)+" "+ev.Reason)
		if strings.Contains(ev.Reason, code) || strings.Contains(ev.Reason, "@") {
			t.Errorf("reason holds personal data or the code: %q", ev.Reason)
		}
	}
	want := []string{
		"code.sent system signin code by email",
		"code.refused unknown enrol code: no live code (expired, used or superseded)",
		"code.refused unknown signin code: wrong code",
		"code.verified holder signin code",
		"code.refused unknown signin code: no live code (expired, used or superseded)",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("events:\n got %q\nwant %q", rows, want)
	}
}

func TestCodeIsStoredAsKeyedHash(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	e, srv := smtpEnv(t, func(c *people.HoldersConfig) { c.CodeDigits = 6 })
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	code := e.mailCode(t, srv, h, people.CodeEnrol)
	if len(code) != 6 {
		t.Errorf("code %q: want 6 digits", code)
	}
	err := e.store.UpdateLiveCode(t.Context(), h.ID, people.CodeEnrol, e.clock.Now(), func(c *people.OneTimeCode) error {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("mandated one-time code\x00" + h.ID + "\x00enrol\x00" + code))
		if !hmac.Equal(c.Hash, mac.Sum(nil)) || bytes.Contains(c.Hash, []byte(code)) {
			t.Errorf("stored %x, not the HMAC of the code", c.Hash)
		}
		if c.Channel != notify.Email || !c.ExpiresAt.Equal(e.clock.Now().Add(10*time.Minute)) {
			t.Errorf("stored %+v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: key, CodeDigits: 9}); err == nil {
		t.Error("9-digit codes accepted")
	}
	if _, err := people.NewHolders(people.HoldersConfig{Store: e.store, CodeKey: key[:8]}); err == nil {
		t.Error("a short code key accepted")
	}
}

func TestCodeExpiresAndIsSuperseded(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder

	old := e.mailCode(t, srv, h, people.CodeSignIn)
	e.clock.Advance(time.Minute)
	newer := e.mailCode(t, srv, h, people.CodeSignIn)
	if old != newer {
		if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, old, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
			t.Errorf("superseded code: %v", err)
		}
	}
	e.clock.Advance(10 * time.Minute)
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, newer, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Errorf("expired code: %v", err)
	}
	code := e.mailCode(t, srv, h, people.CodeSignIn)
	e.clock.Advance(10*time.Minute - time.Second)
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, code, "192.0.2.1"); err != nil {
		t.Errorf("code just before expiry: %v", err)
	}
}

func TestFiveWrongTriesVoidTheCode(t *testing.T) {
	e, srv := smtpEnv(t, func(c *people.HoldersConfig) { c.MaxHolderFailures = 50 })
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	code := e.mailCode(t, srv, h, people.CodeSignIn)
	for i := range 5 {
		wrong := strings.Repeat(string(rune('0'+i)), 8)
		if wrong == code {
			wrong = "12345678"
		}
		if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, wrong, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
			t.Fatalf("wrong try %d: %v", i, err)
		}
	}
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, code, "192.0.2.1"); !errors.Is(err, people.ErrInvalidCode) {
		t.Fatalf("the right code after five wrong tries: %v", err)
	}
	evs := e.events(t)
	if r := evs[len(evs)-2].Reason; r != "signin code: wrong code; code void" {
		t.Errorf("fifth wrong try recorded as %q", r)
	}
}

func TestGuessingLocksTheHolderAndTheAddress(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	code := e.mailCode(t, srv, h, people.CodeSignIn)
	wrong := "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	for i := range 5 { // from five addresses: the holder's lock counts them all
		ip := "192.0.2." + string(rune('1'+i))
		if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, wrong, ip); !errors.Is(err, people.ErrInvalidCode) {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	evs := e.events(t)
	if r := evs[len(evs)-1].Reason; r != "signin code: wrong code; code void; locked" {
		t.Errorf("the locking try was recorded as %q", r)
	}
	n := len(evs)
	code = e.mailCode(t, srv, h, people.CodeSignIn)
	if err := e.h.VerifyCode(ctx, h.ID, people.CodeSignIn, code, "198.51.100.1"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("right code while locked: %v", err)
	}
	if _, err := e.h.SignInWithCode(ctx, "marie@example.org", code, "198.51.100.1"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("sign-in while locked: %v", err)
	}
	if got := len(e.events(t)); got != n+1 { // the new code's send only
		t.Errorf("%d events while locked, want 1 (the send)", got-n)
	}
	e.clock.Advance(15*time.Minute + time.Second)
	code = e.mailCode(t, srv, h, people.CodeSignIn)
	if _, err := e.h.SignInWithCode(ctx, "Marie@Example.org", code, "198.51.100.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}

	// An address guessing across mailboxes is blocked after 20 failures,
	// unknown mailboxes counting like known ones.
	for i := range 20 {
		if _, err := e.h.SignInWithCode(ctx, "nobody"+string(rune('a'+i))+"@example.org", "12345678", "203.0.113.9"); !errors.Is(err, people.ErrSignInFailed) {
			t.Fatalf("unknown mailbox %d: %v", i, err)
		}
	}
	code = e.mailCode(t, srv, h, people.CodeSignIn)
	if _, err := e.h.SignInWithCode(ctx, "marie@example.org", code, "203.0.113.9"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("blocked address: %v", err)
	}
}

func TestUnknownMailboxLocksLikeAKnownOne(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	e.create(t, e.medA, "known@example.org", "", "k@example.net")
	for _, mailbox := range []string{"known@example.org", "unknown@example.org"} {
		if err := e.h.SendSignInCode(ctx, mailbox, "192.0.2.1"); err != nil {
			t.Fatalf("%s: %v", mailbox, err)
		}
		for i := range 5 {
			if _, err := e.h.SignInWithCode(ctx, mailbox, "99999999", "192.0.2."+string(rune('1'+i))); !errors.Is(err, people.ErrSignInFailed) {
				t.Fatalf("%s try %d: %v", mailbox, i, err)
			}
		}
		if _, err := e.h.SignInWithCode(ctx, mailbox, "99999999", "192.0.2.9"); !errors.Is(err, people.ErrTooManyAttempts) {
			t.Errorf("%s after five failures: %v", mailbox, err)
		}
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].To[0] != "k@example.net" {
		t.Errorf("messages sent: %+v", msgs)
	}
}

func TestSendLimits(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	for range 5 {
		e.mailCode(t, srv, h, people.CodeSignIn)
	}
	if _, err := e.h.SendCode(ctx, h.ID, people.CodeEnrol, "192.0.2.1"); !errors.Is(err, people.ErrTooManyCodes) {
		t.Fatalf("sixth code in an hour: %v", err)
	}
	// Step one of the sign-in answers the same, and sends nothing.
	if err := e.h.SendSignInCode(ctx, "marie@example.org", "192.0.2.1"); err != nil {
		t.Fatalf("sign-in step one past the limit: %v", err)
	}
	if n := len(srv.Messages()); n != 5 {
		t.Errorf("%d messages, want 5", n)
	}
	evs := e.events(t)
	if last := evs[len(evs)-1]; last.Action != audit.ActionCodeRefused || last.Reason != "send limit reached" {
		t.Errorf("refusal recorded as %+v", last)
	}
	e.clock.Advance(time.Hour + time.Second)
	e.mailCode(t, srv, h, people.CodeSignIn)

	// One address asking for codes of anyone, known or not.
	for i := range 30 {
		if err := e.h.SendSignInCode(ctx, "nobody"+string(rune('a'+i))+"@example.org", "203.0.113.9"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := e.h.SendSignInCode(ctx, "marie@example.org", "203.0.113.9"); !errors.Is(err, people.ErrTooManyCodes) {
		t.Errorf("31st request from one address: %v", err)
	}
	if _, err := e.h.SendCode(ctx, "nope", people.CodeSignIn, "192.0.2.1"); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("unknown holder: %v", err)
	}
}

func TestSMSIsPreferredAndEmailIsTheFallback(t *testing.T) {
	hook := notifytest.StartWebhook(t)
	srv := notifytest.StartSMTP(t)
	e := newHoldersEnv(t, notify.Router{notify.SMS: notifytest.WebhookNotifier(t, hook), notify.Email: notifytest.SMTPNotifier(t, srv)}, nil)
	ctx := t.Context()
	both := e.create(t, e.medA, "both@example.org", "06 12 34 56 78", "both@example.net").Holder
	both.Language = "en"
	if err := e.store.UpdateHolder(ctx, both.ID, func(h *people.Holder) error { h.Language = "en"; return nil }); err != nil {
		t.Fatal(err)
	}
	ch, err := e.h.SendCode(ctx, both.ID, people.CodeEnrol, "192.0.2.1")
	if err != nil || ch != notify.SMS {
		t.Fatalf("send: %q, %v", ch, err)
	}
	call := hook.WaitFor(t, "+33612345678")
	if call.Payload.Language != "en" || !strings.Contains(call.Payload.Text, "add a passkey") {
		t.Errorf("SMS: %+v", call.Payload)
	}
	if err := e.h.VerifyCode(ctx, both.ID, people.CodeEnrol, codeIn(t, call.Payload.Text), "192.0.2.1"); err != nil {
		t.Errorf("SMS code: %v", err)
	}

	// The gateway fails: the code goes by email instead, and the failure is recorded.
	hook.Respond(400)
	ch, err = e.h.SendCode(ctx, both.ID, people.CodeSignIn, "192.0.2.1")
	if err != nil || ch != notify.Email {
		t.Fatalf("fallback: %q, %v", ch, err)
	}
	m := srv.WaitFor(t, "both@example.net")
	if err := e.h.VerifyCode(ctx, both.ID, people.CodeSignIn, codeIn(t, m.Text), "192.0.2.1"); err != nil {
		t.Errorf("email code after the SMS failed: %v", err)
	}
	var outcomes []audit.Outcome
	for _, ev := range e.events(t) {
		if ev.Action == audit.ActionCodeSent {
			outcomes = append(outcomes, ev.Outcome)
		}
	}
	if want := []audit.Outcome{audit.OutcomeSuccess, audit.OutcomeSuccess, audit.OutcomeError, audit.OutcomeSuccess}; !slices.Equal(outcomes, want) {
		t.Errorf("code.sent outcomes %v, want %v", outcomes, want)
	}

	// No notifier at all: nothing is sent, the caller knows.
	none := newHoldersEnv(t, nil, nil)
	h := none.create(t, none.medA, "x@example.org", "06 12 34 56 78", "").Holder
	if _, err := none.h.SendCode(ctx, h.ID, people.CodeSignIn, "192.0.2.1"); !errors.Is(err, notify.ErrNoChannel) {
		t.Errorf("no notifier: %v", err)
	}
}

func TestNoCodeWithoutItsRecord(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	e := newHoldersEnv(t, notifytest.SMTPNotifier(t, srv), nil)
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	failing, err := people.NewHolders(people.HoldersConfig{Store: e.store, Notifier: notifytest.SMTPNotifier(t, srv),
		CodeKey: bytes.Repeat([]byte{7}, 32), Recorder: failingRecorder{}, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.SendCode(t.Context(), h.ID, people.CodeSignIn, "192.0.2.1"); err == nil {
		t.Fatal("a code was sent while the audit log refuses writes")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent without their record", n)
	}
}

func TestSignInWithCode(t *testing.T) {
	e, srv := smtpEnv(t, nil)
	ctx := t.Context()
	h := e.create(t, e.medA, "marie@example.org", "", "m@example.net").Holder
	if err := e.h.SendSignInCode(ctx, " Marie@Example.org ", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := codeIn(t, srv.WaitFor(t, "m@example.net").Text)
	got, err := e.h.SignInWithCode(ctx, "marie@example.org", code, "192.0.2.1")
	if err != nil || got.ID != h.ID {
		t.Fatalf("sign in: %+v, %v", got, err)
	}
	if _, err := e.h.SignInWithCode(ctx, "marie@example.org", code, "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("replay: %v", err)
	}
	evs := e.events(t)
	var signedIn bool
	for _, ev := range evs {
		if ev.Action == audit.ActionSignInSucceeded && ev.Actor.Kind == audit.ActorHolder && ev.Actor.ID == h.ID && ev.Holder == h.ID {
			signedIn = true
		}
	}
	if !signedIn {
		t.Error("the sign-in was not recorded")
	}
	if last := evs[len(evs)-1]; last.Action != audit.ActionCodeRefused || last.Holder != h.ID {
		t.Errorf("replay recorded as %+v", last)
	}
}
