package people_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// mailboxEnv is the professional-mailbox service over a real store and
// audit log, sending codes to a real SMTP listener.
type mailboxEnv struct {
	env
	holders *people.Holders
	mb      *people.StaffMailboxes
	log     *storetest.AuditLog
	smtp    *notifytest.SMTPServer
}

func newMailboxEnv(t *testing.T, open func(testing.TB, store.Options) *store.Store, withNotifier bool) mailboxEnv {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := open(t, store.Options{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	log := storetest.StartAuditLog(t, st, clock)
	svc := people.NewService(st, sealer, clock, nil, people.Config{Recorder: log})
	smtp := notifytest.StartSMTP(t)
	var n notify.Notifier
	if withNotifier {
		n = notifytest.SMTPNotifier(t, smtp)
	}
	h, err := people.NewHolders(people.HoldersConfig{Store: st, Notifier: n, CodeKey: bytes.Repeat([]byte{9}, 32), Recorder: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return mailboxEnv{env: env{svc: svc, store: st, clock: clock}, holders: h, mb: people.NewStaffMailboxes(svc, h), log: log, smtp: smtp}
}

var mailboxCode = regexp.MustCompile(`: (\d{8})\n`)

// code is the code of the n-th email to to.
func (e mailboxEnv) code(t *testing.T, to string, n int) string {
	t.Helper()
	var got []string
	for _, m := range e.smtp.Messages() {
		if slices.Contains(m.To, to) {
			got = append(got, m.Text)
		}
	}
	if len(got) < n {
		t.Fatalf("%d emails to %s, want %d", len(got), to, n)
	}
	mt := mailboxCode.FindStringSubmatch(got[n-1])
	if mt == nil {
		t.Fatalf("no code in the email:\n%s", got[n-1])
	}
	return mt[1]
}

func (e mailboxEnv) principal(t *testing.T, email, structure string) people.Principal {
	t.Helper()
	staff, _ := e.enrolled(t, email, structure)
	return people.Principal{Subject: people.StaffSubject(staff.ID), Kind: "staff", ID: staff.ID, Email: staff.Email,
		Role: staff.Role, StructureID: staff.StructureID, DisplayName: "Marie Dupont"}
}

type mailboxEvent struct {
	action  audit.Action
	outcome audit.Outcome
	actor   string
	holder  string
	reason  string
}

func (e mailboxEnv) events(t *testing.T) []mailboxEvent {
	t.Helper()
	page, err := e.log.Query(t.Context(), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []mailboxEvent
	for _, ev := range slices.Backward(page.Events) {
		switch ev.Action {
		case audit.ActionCodeSent, audit.ActionCodeRefused, audit.ActionHolderCreated, audit.ActionHolderLinked:
			out = append(out, mailboxEvent{ev.Action, ev.Outcome, ev.Actor.ID, ev.Holder, ev.Reason})
		}
	}
	return out
}

func TestStaffDeclaresTheirProfessionalMailboxWithACodeSentThere(t *testing.T) {
	for name, open := range map[string]func(testing.TB, store.Options) *store.Store{
		"sqlite": storetest.OpenSQLiteWith, "postgres": storetest.OpenPostgresWith,
	} {
		t.Run(name, func(t *testing.T) {
			e := newMailboxEnv(t, open, true)
			ctx := t.Context()
			p := e.principal(t, "marie@mairie.fr", "Mairie")

			st, err := e.mb.Mailbox(ctx, p)
			if err != nil || st.Mailbox != "marie@mairie.fr" || st.Declared || st.Taken {
				t.Fatalf("before: %+v, %v", st, err)
			}
			ch, err := e.mb.SendCode(ctx, p, "192.0.2.1", "fr")
			if err != nil {
				t.Fatal(err)
			}
			if ch.Mailbox != "marie@mairie.fr" || !ch.ExpiresAt.Equal(e.clock.Now().Add(10*time.Minute).Truncate(time.Second)) || ch.Token == "" {
				t.Errorf("challenge %+v", ch)
			}
			mail := e.smtp.WaitFor(t, "marie@mairie.fr")
			if mail.Subject != "Votre code pour déclarer votre boîte professionnelle" {
				t.Errorf("subject %q", mail.Subject)
			}
			code := e.code(t, "marie@mairie.fr", 1)
			wrong := "00000000"
			if code == wrong {
				wrong = "11111111"
			}

			// Mistakes change nothing.
			other := e.principal(t, "paul@mairie.fr", "Mairie")
			for _, tt := range []struct {
				name      string
				p         people.Principal
				challenge string
				code      string
			}{
				{"wrong code", p, ch.Token, wrong},
				{"made-up challenge", p, "bm90IGEgY2hhbGxlbmdl", code},
				{"another account's challenge", other, ch.Token, code},
			} {
				if _, err := e.mb.Declare(ctx, tt.p, tt.challenge, tt.code, "192.0.2.1", "fr"); !errors.Is(err, people.ErrInvalidCode) {
					t.Errorf("%s: %v", tt.name, err)
				}
			}
			if _, err := e.store.FindHolderByMailbox(ctx, "marie@mairie.fr"); !errors.Is(err, mandate.ErrNotFound) {
				t.Fatalf("a refused code created a holder: %v", err)
			}
			if _, err := e.mb.Declare(ctx, people.Principal{Kind: "holder", ID: "h1"}, ch.Token, code, "192.0.2.1", "fr"); !errors.Is(err, people.ErrNotActiveStaff) {
				t.Errorf("a holder declares: %v", err)
			}

			res, err := e.mb.Declare(ctx, p, ch.Token, " "+code[:4]+" "+code[4:], "192.0.2.1", "en")
			if err != nil {
				t.Fatal(err)
			}
			h := res.Holder
			if res.Linked || h.StaffID != p.ID || h.Mailbox != "marie@mairie.fr" || h.Email != "marie@mairie.fr" ||
				h.DisplayName != "Marie Dupont" || h.Language != "en" || h.ContactConfirmedAt == nil || h.Phone != "" {
				t.Errorf("holder %+v", res)
			}
			if served, err := e.store.HolderServedBy(ctx, h.ID, p.StructureID); err != nil || !served {
				t.Errorf("the structure does not serve the holder: %v %v", served, err)
			}
			st, err = e.mb.Mailbox(ctx, p)
			if err != nil || !st.Declared || st.Holder.ID != h.ID {
				t.Errorf("after: %+v, %v", st, err)
			}
			// Again: nothing more happens; no new code is sent.
			if res, err := e.mb.Declare(ctx, p, ch.Token, code, "192.0.2.1", "fr"); err != nil || !res.Linked || res.Holder.ID != h.ID {
				t.Errorf("declaring again: %+v, %v", res, err)
			}
			if _, err := e.mb.SendCode(ctx, p, "192.0.2.1", "fr"); !errors.Is(err, people.ErrMailboxDeclared) {
				t.Errorf("a code for a declared mailbox: %v", err)
			}

			got := e.events(t)
			want := []mailboxEvent{
				{audit.ActionCodeSent, audit.OutcomeSuccess, p.ID, "", "mailbox code by email"},
				{audit.ActionCodeRefused, audit.OutcomeDenied, p.ID, "", "mailbox code: wrong code"},
				{audit.ActionCodeRefused, audit.OutcomeDenied, p.ID, "", "mailbox code: unknown challenge"},
				{audit.ActionCodeRefused, audit.OutcomeDenied, other.ID, "", "mailbox code: unknown challenge"},
				{audit.ActionHolderCreated, audit.OutcomeSuccess, p.ID, h.ID, "own professional mailbox"},
			}
			if !slices.Equal(got, want) {
				t.Errorf("events:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestProfessionalMailboxWithARecordAlready(t *testing.T) {
	e := newMailboxEnv(t, storetest.OpenSQLiteWith, true)
	ctx := t.Context()
	p := e.principal(t, "marie@mairie.fr", "Mairie")
	// Another structure created a holder record for this mailbox.
	if err := e.store.CreateStructure(ctx, people.Structure{ID: "B", Name: "B", CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	medB := people.Principal{Kind: "staff", ID: "mb", Role: people.RoleMediator, StructureID: "B"}
	created, err := e.holders.Create(ctx, medB, "B", people.HolderInput{Mailbox: "Marie@mairie.fr", DisplayName: "M. Dupont", Phone: "06 12 34 56 78"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.mb.SendCode(ctx, p, "192.0.2.1", "fr")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.mb.Declare(ctx, p, ch.Token, e.code(t, "marie@mairie.fr", 1), "192.0.2.1", "fr")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Linked || res.Holder.ID != created.Holder.ID || res.Holder.StaffID != p.ID ||
		res.Holder.Phone != "+33612345678" || res.Holder.DisplayName != "M. Dupont" {
		t.Errorf("claimed %+v", res)
	}
	for _, s := range []string{"B", p.StructureID} {
		if served, _ := e.store.HolderServedBy(ctx, created.Holder.ID, s); !served {
			t.Errorf("not served by %s", s)
		}
	}
	got := e.events(t)
	if last := got[len(got)-1]; last != (mailboxEvent{audit.ActionHolderLinked, audit.OutcomeSuccess, p.ID, created.Holder.ID, "own professional mailbox"}) {
		t.Errorf("last event %+v", last)
	}

	// A record already another account's is refused.
	paul := e.principal(t, "paul@mairie.fr", "Mairie")
	if err := e.store.UpdateHolder(ctx, created.Holder.ID, func(h *people.Holder) error {
		h.StaffID = paul.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.mb.Mailbox(ctx, p); !st.Taken || st.Declared {
		t.Errorf("status of a taken mailbox: %+v", st)
	}
	if _, err := e.mb.SendCode(ctx, p, "192.0.2.1", "fr"); !errors.Is(err, people.ErrMailboxTaken) {
		t.Errorf("code for a taken mailbox: %v", err)
	}
	if _, err := e.mb.Declare(ctx, p, ch.Token, e.code(t, "marie@mairie.fr", 1), "192.0.2.1", "fr"); !errors.Is(err, people.ErrMailboxTaken) {
		t.Errorf("declaring a taken mailbox: %v", err)
	}
}

func TestProfessionalMailboxCodesAreLimited(t *testing.T) {
	e := newMailboxEnv(t, storetest.OpenSQLiteWith, true)
	ctx := t.Context()
	p := e.principal(t, "marie@mairie.fr", "Mairie")
	cfg := e.holders.Config()
	var ch people.MailboxChallenge
	for i := range cfg.MaxCodesPerHour {
		var err error
		if ch, err = e.mb.SendCode(ctx, p, "192.0.2.1", "en"); err != nil {
			t.Fatalf("code %d: %v", i+1, err)
		}
	}
	if _, err := e.mb.SendCode(ctx, p, "192.0.2.1", "en"); !errors.Is(err, people.ErrTooManyCodes) {
		t.Fatalf("one code too many: %v", err)
	}
	code := e.code(t, "marie@mairie.fr", cfg.MaxCodesPerHour)
	if m := e.smtp.Messages(); m[len(m)-1].Subject != "Your code to declare your professional mailbox" {
		t.Errorf("English subject %q", m[len(m)-1].Subject)
	}
	for i := range cfg.MaxHolderFailures {
		if _, err := e.mb.Declare(ctx, p, ch.Token, "12345678", "192.0.2.1", "fr"); !errors.Is(err, people.ErrInvalidCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if _, err := e.mb.Declare(ctx, p, ch.Token, code, "192.0.2.1", "fr"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Fatalf("right code while locked: %v", err)
	}
	e.clock.Advance(cfg.ThrottleWindow + time.Second)
	if _, err := e.mb.Declare(ctx, p, ch.Token, code, "192.0.2.1", "fr"); !errors.Is(err, people.ErrInvalidCode) {
		t.Fatalf("the code after its lifetime: %v", err)
	}
	got := e.events(t)
	var reasons []string
	for _, ev := range got {
		if ev.action == audit.ActionCodeRefused {
			reasons = append(reasons, ev.reason)
		}
	}
	want := []string{"mailbox code: send limit reached", "mailbox code: wrong code", "mailbox code: wrong code", "mailbox code: wrong code",
		"mailbox code: wrong code", "mailbox code: wrong code; locked", "mailbox code: expired"}
	if !slices.Equal(reasons, want) {
		t.Errorf("refusals:\n got %q\nwant %q", reasons, want)
	}
}

func TestProfessionalMailboxNeedsEmailDelivery(t *testing.T) {
	e := newMailboxEnv(t, storetest.OpenSQLiteWith, false)
	p := e.principal(t, "marie@mairie.fr", "Mairie")
	if _, err := e.mb.SendCode(t.Context(), p, "192.0.2.1", "fr"); !errors.Is(err, notify.ErrNoChannel) {
		t.Errorf("without a notifier: %v", err)
	}
}
