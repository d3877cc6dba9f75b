package people_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

const (
	testOrigin = "https://id.example.org"
	testRPID   = "id.example.org"
)

// pkEnv is the passkey service over a real SQLite store, the real holders
// service sending codes to a real SMTP server, and a real audit log.
type pkEnv struct {
	env
	log     *storetest.AuditLog
	keys    *people.Passkeys
	holders *people.Holders
	smtp    *notifytest.SMTPServer
}

func newPKEnv(t *testing.T) pkEnv {
	t.Helper()
	var log *storetest.AuditLog
	e := newEnvRecording(t, func(st *store.Store, clock *storetest.Clock) people.Recorder {
		log = storetest.StartAuditLog(t, st, clock)
		return log
	})
	srv := notifytest.StartSMTP(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	holders, err := people.NewHolders(people.HoldersConfig{
		Store: e.store, Notifier: notifytest.SMTPNotifier(t, srv), CodeKey: key, Recorder: log, Clock: e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := people.PasskeyDefaults(people.PasskeyConfig{}, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := people.NewPasskeys(e.svc, e.store, e.store, holders, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return pkEnv{env: e, log: log, keys: keys, holders: holders, smtp: srv}
}

// mediator enrols a mediator of structure and returns their principal.
func (e pkEnv) mediator(t *testing.T, email, structure string) people.Principal {
	t.Helper()
	_, secret := e.enrolled(t, email, structure)
	p, err := e.svc.SignInStaff(t.Context(), email, testPassword, e.code(t, secret), "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	return p
}

// holder creates a holder served by the mediator's structure, whose codes
// go to email.
func (e pkEnv) holder(t *testing.T, by people.Principal, mailbox, email string) people.Holder {
	t.Helper()
	res, err := e.holders.Create(t.Context(), by, by.StructureID, people.HolderInput{
		Mailbox: mailbox, DisplayName: "Jeanne Martin", Email: email, Language: "fr",
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Holder
}

var codeRE = regexp.MustCompile(`\b[0-9]{6,8}\b`)

// codeFor returns the nth code mailed to addr (sending returns once the
// SMTP server has the message).
func (e pkEnv) codeFor(t *testing.T, addr string, nth int) string {
	t.Helper()
	e.smtp.WaitFor(t, addr)
	var got []string
	for _, m := range e.smtp.Messages() {
		if slices.Contains(m.To, addr) {
			got = append(got, codeRE.FindString(m.Text))
		}
	}
	if len(got) < nth || got[nth-1] == "" {
		t.Fatalf("no code %d for %s in %q", nth, addr, got)
	}
	return got[nth-1]
}

// enrolHolder runs the whole enrolment with a and returns the holder's passkey.
func (e pkEnv) enrolHolder(t *testing.T, med people.Principal, h people.Holder, a *softAuthenticator, nthCode int) {
	t.Helper()
	ctx := t.Context()
	link, err := e.keys.StartHolderEnrolment(ctx, med, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, link.URL)
	if _, err := e.keys.SendEnrolmentCode(ctx, token, "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	device, err := e.keys.VerifyEnrolmentCode(ctx, token, e.codeFor(t, h.Email, nthCode), "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	id, opts, err := e.keys.BeginHolderEnrolment(ctx, token, device)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.FinishHolderEnrolment(ctx, token, device, id, a.create(opts), "Mon téléphone"); err != nil {
		t.Fatal(err)
	}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	m := regexp.MustCompile(`/holder/enrol\?token=([A-Za-z0-9_-]+)$`).FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("enrolment link %q", link)
	}
	return m[1]
}

// events returns the recorded events, oldest first.
func (e pkEnv) events(t *testing.T) []audit.Event {
	t.Helper()
	page, err := e.log.Query(t.Context(), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Collect(func(yield func(audit.Event) bool) {
		for _, ev := range slices.Backward(page.Events) {
			if !yield(ev) {
				return
			}
		}
	})
}

func (e pkEnv) count(t *testing.T, action audit.Action) int {
	t.Helper()
	n := 0
	for _, ev := range e.events(t) {
		if ev.Action == action {
			n++
		}
	}
	return n
}

func TestHolderEnrolsAPasskeyWithTheMediatorAndSignsInWithIt(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	med := e.mediator(t, "marie@example.org", "mairie-lyon")
	h := e.holder(t, med, "jeanne@mail.example", "jeanne.contact@example.net")
	phone := newSoftAuthenticator(t, testOrigin, testRPID)

	link, err := e.keys.StartHolderEnrolment(ctx, med, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, link.URL)
	// The mediator, who saw the link, cannot create a passkey without the code.
	if _, _, err := e.keys.BeginHolderEnrolment(ctx, token, ""); !errors.Is(err, people.ErrPasskeyLinkInvalid) {
		t.Fatalf("begin without the code: %v", err)
	}
	ch, err := e.keys.SendEnrolmentCode(ctx, token, "198.51.100.7")
	if err != nil || ch != "email" {
		t.Fatalf("send code: %v, %v", ch, err)
	}
	if _, err := e.keys.VerifyEnrolmentCode(ctx, token, "00000000", "198.51.100.7"); !errors.Is(err, people.ErrInvalidCode) {
		t.Fatalf("wrong code: %v", err)
	}
	device, err := e.keys.VerifyEnrolmentCode(ctx, token, e.codeFor(t, h.Email, 1), "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.keys.OpenHolderEnrolment(ctx, token, device)
	if err != nil || !view.Verified {
		t.Fatalf("open after code: %+v, %v", view, err)
	}
	if view, _ := e.keys.OpenHolderEnrolment(ctx, token, "another browser"); view.Verified {
		t.Fatal("another browser counts as verified")
	}
	// Another browser holding the link cannot use the holder's code.
	if _, _, err := e.keys.BeginHolderEnrolment(ctx, token, "another browser"); !errors.Is(err, people.ErrPasskeyLinkInvalid) {
		t.Fatalf("begin on another browser: %v", err)
	}
	id, opts, err := e.keys.BeginHolderEnrolment(ctx, token, device)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.keys.FinishHolderEnrolment(ctx, token, device, id, phone.create(opts), "  Mon   téléphone ")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != h.ID {
		t.Errorf("enrolled holder %s, want %s", got.ID, h.ID)
	}
	list, err := e.keys.List(ctx, people.HolderSubject(h.ID))
	if err != nil || len(list) != 1 || list[0].Name != "Mon téléphone" || !list[0].UserVerified {
		t.Fatalf("holder's passkeys: %+v, %v", list, err)
	}
	// The link works once.
	if _, err := e.keys.OpenHolderEnrolment(ctx, token, device); !errors.Is(err, people.ErrPasskeyLinkInvalid) {
		t.Fatalf("used link: %v", err)
	}

	id, opts, err = e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.keys.FinishHolderSignIn(ctx, id, phone.get(opts), "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != "holder" || p.ID != h.ID || p.Subject != people.HolderSubject(h.ID) {
		t.Errorf("signed in as %+v", p)
	}
	list, _ = e.keys.List(ctx, people.HolderSubject(h.ID))
	if list[0].SignCount != 1 || list[0].LastUsedAt == nil {
		t.Errorf("use not recorded: %+v", list[0])
	}

	var seen []audit.Action
	for _, ev := range e.events(t) {
		switch ev.Action {
		case audit.ActionPasskeyEnrolment:
			if ev.Actor.ID != med.ID || ev.Holder != h.ID || ev.Structure != med.StructureID {
				t.Errorf("enrolment event: %+v", ev)
			}
		case audit.ActionPasskeyAdded, audit.ActionSignInSucceeded:
			if ev.Actor.Kind == audit.ActorHolder && (ev.Actor.ID != h.ID || ev.Holder != h.ID) {
				t.Errorf("holder event: %+v", ev)
			}
		}
		seen = append(seen, ev.Action)
	}
	for _, want := range []audit.Action{audit.ActionPasskeyEnrolment, audit.ActionCodeVerified, audit.ActionPasskeyAdded} {
		if !slices.Contains(seen, want) {
			t.Errorf("no %s event in %v", want, seen)
		}
	}
	if seen[len(seen)-1] != audit.ActionSignInSucceeded {
		t.Errorf("last event %s, want the holder's sign-in", seen[len(seen)-1])
	}
}

func TestOnlyAMediatorServingTheHolderStartsAnEnrolment(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	med := e.mediator(t, "marie@example.org", "mairie-lyon")
	other := e.mediator(t, "paul@example.org", "ccas-grenoble")
	h := e.holder(t, med, "jeanne@mail.example", "jeanne.contact@example.net")
	if _, err := e.keys.StartHolderEnrolment(ctx, other, h.ID); !errors.Is(err, people.ErrForbidden) {
		t.Errorf("another structure's mediator: %v", err)
	}
	if _, err := e.keys.StartHolderEnrolment(ctx, med, "no-such-holder"); !errors.Is(err, people.ErrForbidden) {
		t.Errorf("unknown holder: %v", err)
	}
	holder := people.HolderPrincipal(h)
	if _, err := e.keys.StartHolderEnrolment(ctx, holder, h.ID); !errors.Is(err, people.ErrForbidden) {
		t.Errorf("the holder themself: %v", err)
	}
	if n := e.count(t, audit.ActionPasskeyEnrolment); n != 0 {
		t.Errorf("%d enrolments recorded", n)
	}
	// The mediator's own enrolment link expires.
	link, err := e.keys.StartHolderEnrolment(ctx, med, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.keys.Config().EnrolmentTTL)
	if _, err := e.keys.SendEnrolmentCode(ctx, tokenOf(t, link.URL), "198.51.100.7"); !errors.Is(err, people.ErrPasskeyLinkInvalid) {
		t.Errorf("expired link: %v", err)
	}
}

// TestRefusedPasskeyResponsesChangeNothingAndAreAudited: a response for
// another challenge or origin, a replayed, expired or misdirected ceremony,
// no user verification, a cloned authenticator.
func TestRefusedPasskeyResponsesChangeNothingAndAreAudited(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	med := e.mediator(t, "marie@example.org", "mairie-lyon")
	h := e.holder(t, med, "jeanne@mail.example", "jeanne.contact@example.net")
	phone := newSoftAuthenticator(t, testOrigin, testRPID)
	e.enrolHolder(t, med, h, phone, 1)

	st := e.mediator(t, "luc@example.org", "mairie-lyon")
	type attempt func() error
	begin := func() (string, []byte) {
		id, opts, err := e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
		if err != nil {
			t.Fatal(err)
		}
		return id, opts
	}
	signIn := func(id string, resp []byte) error {
		_, err := e.keys.FinishHolderSignIn(ctx, id, resp, "198.51.100.7")
		return err
	}
	cases := []struct {
		name string
		run  attempt
	}{
		{"another origin", func() error {
			id, opts := begin()
			evil := *phone
			evil.origin = "https://id.example.org.evil.example"
			r := evil.get(opts)
			phone.counter = evil.counter
			return signIn(id, r)
		}},
		{"another challenge", func() error {
			_, optsA := begin()
			idB, _ := begin()
			return signIn(idB, phone.get(optsA))
		}},
		{"replayed ceremony", func() error {
			id, opts := begin()
			r := phone.get(opts)
			if err := signIn(id, r); err != nil {
				t.Fatalf("first use: %v", err)
			}
			phone.counter++
			return signIn(id, phone.assert(readOptions(t, opts).PublicKey.Challenge))
		}},
		{"expired ceremony", func() error {
			id, opts := begin()
			e.clock.Advance(e.keys.Config().CeremonyTTL)
			return signIn(id, phone.get(opts))
		}},
		{"registration ceremony finished as a sign-in", func() error {
			id, opts, err := e.keys.BeginRegistration(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			return signIn(id, phone.assert(readOptions(t, opts).PublicKey.Challenge))
		}},
		{"no user verification", func() error {
			id, opts := begin()
			phone.uv = false
			defer func() { phone.uv = true }()
			return signIn(id, phone.get(opts))
		}},
		{"cloned authenticator (sign count went back)", func() error {
			id, opts := begin()
			clone := *phone
			clone.counter = 0
			return signIn(id, clone.get(opts))
		}},
		{"garbage", func() error {
			id, _ := begin()
			return signIn(id, []byte(`{"id":"x","type":"public-key"}`))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := e.keys.List(ctx, people.HolderSubject(h.ID))
			refused := e.count(t, audit.ActionPasskeyRefused)
			signIns := e.count(t, audit.ActionSignInSucceeded)
			if err := c.run(); !errors.Is(err, people.ErrPasskeyRefused) {
				t.Fatalf("err = %v, want ErrPasskeyRefused", err)
			}
			after, _ := e.keys.List(ctx, people.HolderSubject(h.ID))
			if after[0].SignCount != before[0].SignCount && c.name != "replayed ceremony" {
				t.Errorf("sign count moved from %d to %d", before[0].SignCount, after[0].SignCount)
			}
			if got := e.count(t, audit.ActionPasskeyRefused); got != refused+1 {
				t.Errorf("%d refusals recorded, want 1", got-refused)
			}
			want := signIns
			if c.name == "replayed ceremony" {
				want++ // the first, genuine use
			}
			if got := e.count(t, audit.ActionSignInSucceeded); got != want {
				t.Errorf("%d sign-ins recorded, want %d", got-signIns, want-signIns)
			}
		})
	}
	// An unknown ceremony id is refused without a record.
	refused := e.count(t, audit.ActionPasskeyRefused)
	if err := signIn("no-such-ceremony", []byte("{}")); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("unknown ceremony: %v", err)
	}
	if e.count(t, audit.ActionPasskeyRefused) != refused {
		t.Error("an unknown ceremony was recorded")
	}
	// After all that, the genuine phone still signs in.
	id, opts := begin()
	if err := signIn(id, phone.get(opts)); err != nil {
		t.Fatalf("genuine sign-in after refusals: %v", err)
	}
}

func TestRefusedPasskeySignInsAreThrottledPerAddress(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	max := e.svc.Config().MaxIPFailures
	for i := range max {
		id, _, err := e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.keys.FinishHolderSignIn(ctx, id, []byte(`{}`), "203.0.113.5"); !errors.Is(err, people.ErrPasskeyRefused) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	id, _, err := e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	refused := e.count(t, audit.ActionPasskeyRefused)
	if _, err := e.keys.FinishHolderSignIn(ctx, id, []byte(`{}`), "203.0.113.5"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("past the limit: %v", err)
	}
	if e.count(t, audit.ActionPasskeyRefused) != refused {
		t.Error("an attempt refused by the throttle was recorded")
	}
	// Another address is not affected; the window passes.
	if _, err := e.keys.FinishHolderSignIn(ctx, id, []byte(`{}`), "203.0.113.6"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("another address: %v", err)
	}
	e.clock.Advance(e.svc.Config().ThrottleWindow + time.Second)
	id, _, _ = e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
	if _, err := e.keys.FinishHolderSignIn(ctx, id, []byte(`{}`), "203.0.113.5"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("after the window: %v", err)
	}
}

func TestRegistrationForAnotherOriginIsRefused(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	st := e.mediator(t, "marie@example.org", "mairie-lyon")
	for _, origin := range []string{"https://evil.example", "http://id.example.org"} {
		id, opts, err := e.keys.BeginRegistration(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		a := newSoftAuthenticator(t, origin, testRPID)
		if _, err := e.keys.FinishRegistration(ctx, st, id, a.create(opts), "clé"); !errors.Is(err, people.ErrPasskeyRefused) {
			t.Errorf("%s: %v", origin, err)
		}
	}
	// Someone else's ceremony.
	id, opts, err := e.keys.BeginRegistration(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	other := e.mediator(t, "luc@example.org", "mairie-lyon")
	a := newSoftAuthenticator(t, testOrigin, testRPID)
	if _, err := e.keys.FinishRegistration(ctx, other, id, a.create(opts), "clé"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("another's ceremony: %v", err)
	}
	if list, _ := e.keys.List(ctx, st.Subject); len(list) != 0 {
		t.Errorf("%d passkeys stored", len(list))
	}
	if n := e.count(t, audit.ActionPasskeyRefused); n != 3 {
		t.Errorf("%d refusals recorded, want 3", n)
	}
	if _, err := e.keys.FinishRegistration(ctx, st, "x", nil, ""); !errors.Is(err, people.ErrInvalidPasskeyName) {
		t.Errorf("empty name: %v", err)
	}
}

func TestStaffPasskeyIsASecondFactorAfterThePassword(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	st := e.mediator(t, "marie@example.org", "mairie-lyon")
	key := newSoftAuthenticator(t, testOrigin, testRPID)

	if _, _, err := e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1"); !errors.Is(err, people.ErrNoPasskey) {
		t.Fatalf("without a passkey: %v", err)
	}
	id, opts, err := e.keys.BeginRegistration(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.FinishRegistration(ctx, st, id, key.create(opts), "Clé USB"); err != nil {
		t.Fatal(err)
	}

	id, opts, err = e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.keys.FinishStaffSignIn(ctx, id, key.get(opts), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != "staff" || p.ID != st.ID || p.Role != people.RoleMediator {
		t.Errorf("signed in as %+v", p)
	}

	// With a second passkey, either one works.
	second := newSoftAuthenticator(t, testOrigin, testRPID)
	id, opts, err = e.keys.BeginRegistration(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.FinishRegistration(ctx, st, id, second.create(opts), "Téléphone"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(second.handle, key.handle) {
		t.Error("an owner's passkeys have different user handles")
	}
	for _, a := range []*softAuthenticator{second, key} {
		id, opts, err = e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.keys.FinishStaffSignIn(ctx, id, a.get(opts), "192.0.2.1"); err != nil {
			t.Fatalf("sign in with one of two passkeys: %v", err)
		}
	}

	// The staff member's own passkey, answering for another origin or without
	// user verification: refused, and counted as a failed sign-in.
	for _, tweak := range []func(a *softAuthenticator) func(){
		func(a *softAuthenticator) func() {
			o := a.origin
			a.origin = "https://evil.example"
			return func() { a.origin = o }
		},
		func(a *softAuthenticator) func() { a.uv = false; return func() { a.uv = true } },
	} {
		id, opts, err = e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		undo := tweak(key)
		resp := key.get(opts)
		undo()
		if _, err := e.keys.FinishStaffSignIn(ctx, id, resp, "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
			t.Fatalf("tweaked response: %v", err)
		}
	}

	// A staff passkey is no way in without the password, nor as a holder.
	hid, hopts, err := e.keys.BeginHolderSignIn(ctx, "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.FinishHolderSignIn(ctx, hid, key.get(hopts), "198.51.100.8"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("staff passkey as a holder: %v", err)
	}
	// A refused passkey counts as a failed sign-in.
	id, opts, err = e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	stranger := newSoftAuthenticator(t, testOrigin, testRPID)
	stranger.handle = key.handle
	if _, err := e.keys.FinishStaffSignIn(ctx, id, stranger.get(opts), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("unknown passkey: %v", err)
	}

	// The password step is throttled exactly like the TOTP sign-in.
	e.clock.Advance(e.svc.Config().ThrottleWindow + time.Second)
	for range e.svc.Config().MaxAccountFailures {
		if _, _, err := e.keys.BeginStaffSignIn(ctx, "marie@example.org", "not the password at all", "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if _, _, err := e.keys.BeginStaffSignIn(ctx, "marie@example.org", testPassword, "192.0.2.1"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("after 5 failures: %v", err)
	}
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", testPassword, "000000", "192.0.2.1"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("TOTP sign-in after 5 failures: %v", err)
	}
}

func TestOnlyTheOwnerRemovesAPasskey(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	st := e.mediator(t, "marie@example.org", "mairie-lyon")
	other := e.mediator(t, "luc@example.org", "mairie-lyon")
	key := newSoftAuthenticator(t, testOrigin, testRPID)
	id, opts, err := e.keys.BeginRegistration(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := e.keys.FinishRegistration(ctx, st, id, key.create(opts), "Clé USB")
	if err != nil {
		t.Fatal(err)
	}
	// The same authenticator cannot be registered twice.
	id, opts, err = e.keys.BeginRegistration(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.keys.FinishRegistration(ctx, st, id, key.create(opts), "Encore"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("same credential twice: %v", err)
	}
	if err := e.keys.Remove(ctx, other, pk.CredentialID); !errors.Is(err, mandate.ErrNotFound) {
		t.Errorf("remove by another: %v", err)
	}
	if err := e.keys.Remove(ctx, st, pk.CredentialID); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.keys.List(ctx, st.Subject); len(list) != 0 {
		t.Errorf("still %d passkeys", len(list))
	}
	if n := e.count(t, audit.ActionPasskeyRemoved); n != 1 {
		t.Errorf("%d removals recorded", n)
	}
}

func TestPasskeyDefaultsFromTheIssuer(t *testing.T) {
	cfg, err := people.PasskeyDefaults(people.PasskeyConfig{}, "https://id.example.org/")
	if err != nil || cfg.RPID != "id.example.org" || !slices.Equal(cfg.Origins, []string{"https://id.example.org"}) || cfg.BaseURL != "https://id.example.org" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	for _, c := range []struct {
		cfg    people.PasskeyConfig
		issuer string
	}{
		{people.PasskeyConfig{}, "http://127.0.0.1:8080"},
		{people.PasskeyConfig{RPID: "example.org", Origins: []string{"https://evil.example"}}, "https://id.example.org"},
		{people.PasskeyConfig{RPID: "example.org", Origins: []string{"https://id.example.org/path"}}, "https://id.example.org"},
	} {
		if _, err := people.PasskeyDefaults(c.cfg, c.issuer); err == nil {
			t.Errorf("%+v with issuer %s accepted", c.cfg, c.issuer)
		}
	}
	cfg, err = people.PasskeyDefaults(people.PasskeyConfig{RPID: "example.org", Origins: []string{"https://id.example.org", "https://app.example.org"}}, "https://id.example.org")
	if err != nil || cfg.RPID != "example.org" {
		t.Errorf("parent domain: %+v, %v", cfg, err)
	}
}
