package people_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

func TestEnrolmentLinkWorksOnce(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	_, token, err := e.svc.CreateStaff(ctx, "marie@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CompleteEnrolment(ctx, token, "Marie", testPassword, e.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	if err := e.svc.CompleteEnrolment(ctx, token, "Mallory", "another long password", e.code(t, view.TOTP.Secret)); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := e.svc.BeginEnrolment(ctx, token); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("reopening a used link: %v", err)
	}
	if _, err := e.svc.BeginEnrolment(ctx, "unknown-token"); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("unknown link: %v", err)
	}
}

func TestExpiredEnrolmentLinkIsRefused(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	_, token, err := e.svc.CreateStaff(ctx, "marie@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(72 * time.Hour)
	if err := e.svc.CompleteEnrolment(ctx, token, "Marie", testPassword, e.code(t, view.TOTP.Secret)); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("expired link completes: %v", err)
	}
	if _, err := e.svc.BeginEnrolment(ctx, token); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("expired link opens: %v", err)
	}
	fresh, err := e.svc.NewEnrolmentLink(ctx, "marie@mairie.fr")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.BeginEnrolment(ctx, fresh); err != nil {
		t.Fatalf("fresh link: %v", err)
	}
}

func TestEnrolmentShowsTheSameSecretOnReload(t *testing.T) {
	e := newEnv(t, people.Config{})
	_, token, err := e.svc.CreateStaff(t.Context(), "marie@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.svc.BeginEnrolment(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.BeginEnrolment(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if a.TOTP.Secret != b.TOTP.Secret {
		t.Error("reloading the enrolment page changed the secret")
	}
}

func TestEnrolmentMistakesChangeNothing(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	staff, token, err := e.svc.CreateStaff(ctx, "marie@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	good := e.code(t, view.TOTP.Secret)
	wrong := "000000"
	if good == wrong {
		wrong = "111111"
	}
	tests := []struct {
		name, display, password, code string
		want                          error
	}{
		{"no name", "  ", testPassword, good, people.ErrInvalidName},
		{"short password", "Marie", "court", good, people.ErrPasswordTooShort},
		{"password is the email", "Marie", "marie@mairie.fr", good, people.ErrPasswordIsEmail},
		{"wrong code", "Marie", testPassword, wrong, people.ErrInvalidCode},
	}
	for _, tt := range tests {
		if err := e.svc.CompleteEnrolment(ctx, token, tt.display, tt.password, tt.code); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if st, _ := e.store.GetStaff(ctx, staff.ID); st.Status != people.StaffPending || st.PasswordHash != "" {
		t.Fatalf("a refused enrolment changed the account: %+v", st)
	}
	if err := e.svc.CompleteEnrolment(ctx, token, "Marie", testPassword, good); err != nil {
		t.Fatalf("the link still works after mistakes: %v", err)
	}
}

func TestCreateStaff(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	for _, tt := range []struct{ email, role string }{
		{"not an email", "admin"}, {"Marie <marie@mairie.fr>", "admin"}, {"marie@localhost", "admin"},
	} {
		if _, _, err := e.svc.CreateStaff(ctx, tt.email, tt.role, "", false); !errors.Is(err, people.ErrInvalidEmail) {
			t.Errorf("email %q: %v", tt.email, err)
		}
	}
	if _, _, err := e.svc.CreateStaff(ctx, "marie@mairie.fr", "boss", "", false); !errors.Is(err, people.ErrInvalidRole) {
		t.Errorf("role boss: %v", err)
	}
	a, _, err := e.svc.CreateStaff(ctx, "a@mairie.fr", "admin", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := e.svc.CreateStaff(ctx, "b@mairie.fr", "auditor", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	if a.StructureID != b.StructureID {
		t.Error("two accounts of one structure got two structures")
	}
	if _, _, err := e.svc.CreateStaff(ctx, "A@mairie.fr", "admin", "Mairie", false); err == nil {
		t.Error("the same email twice was accepted")
	}
	p, _, err := e.svc.CreateStaff(ctx, "root@plateforme.fr", "admin", "", false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.Structure(ctx, p.StructureID)
	if !p.Platform || err != nil || st.Name != people.PlatformStructure {
		t.Errorf("staff without structure: platform=%v structure=%+v, %v", p.Platform, st, err)
	}
}

func TestBootstrapPlatformAdminOnlyOnAnEmptyDatabase(t *testing.T) {
	e := newEnv(t, people.Config{})
	ctx := t.Context()
	if has, err := e.svc.HasStaff(ctx); err != nil || has {
		t.Fatalf("HasStaff on empty = %v, %v", has, err)
	}
	admin, token, err := e.svc.BootstrapPlatformAdmin(ctx, "admin@example.fr")
	if err != nil || token == "" || admin.Role != people.RoleAdmin || !admin.Platform {
		t.Fatalf("bootstrap = %+v, %q, %v", admin, token, err)
	}
	if has, _ := e.svc.HasStaff(ctx); !has {
		t.Fatal("HasStaff after bootstrap = false")
	}
	if _, _, err := e.svc.BootstrapPlatformAdmin(ctx, "other@example.fr"); !errors.Is(err, people.ErrAlreadyBootstrapped) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if _, err := e.svc.NewEnrolmentLink(ctx, "admin@example.fr"); err != nil {
		t.Fatalf("new link for a pending account: %v", err)
	}
}

func TestRefusedEnrolmentLinksAreRecordedUntilTheAddressIsThrottled(t *testing.T) {
	var log *storetest.AuditLog
	e := newEnvRecording(t, func(st *store.Store, clock *storetest.Clock) people.Recorder {
		log = storetest.StartAuditLog(t, st, clock)
		return log
	})
	ctx := people.WithClient(t.Context(), people.Client{IP: "192.0.2.7"})
	used, token, err := e.svc.CreateStaff(ctx, "marie@mairie.fr", "mediator", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CompleteEnrolment(ctx, token, "Marie", testPassword, e.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	late, lateToken, err := e.svc.CreateStaff(ctx, "paul@mairie.fr", "mediator", "Mairie", false)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(73 * time.Hour)
	before, err := e.store.GetStaff(ctx, late.ID)
	if err != nil {
		t.Fatal(err)
	}

	type row struct {
		outcome         audit.Outcome
		actor           audit.ActorKind
		actorID, reason string
		structure       string
	}
	steps := []struct {
		name string
		do   func() error
		want row
	}{
		{"used link opened", func() error { _, err := e.svc.BeginEnrolment(ctx, token); return err },
			row{audit.OutcomeDenied, audit.ActorStaff, used.ID, "enrolment link used", used.StructureID}},
		{"used link submitted", func() error {
			return e.svc.CompleteEnrolment(ctx, token, "Mallory", "another long password", "123456")
		}, row{audit.OutcomeDenied, audit.ActorStaff, used.ID, "enrolment link used", used.StructureID}},
		{"expired link opened", func() error { _, err := e.svc.BeginEnrolment(ctx, lateToken); return err },
			row{audit.OutcomeDenied, audit.ActorStaff, late.ID, "enrolment link expired or replaced", late.StructureID}},
		{"unknown link opened", func() error { _, err := e.svc.BeginEnrolment(ctx, "made-up-token"); return err },
			row{audit.OutcomeDenied, audit.ActorUnknown, "", "enrolment link unknown", ""}},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
			t.Fatalf("%s: %v, want ErrEnrolmentLinkInvalid", s.name, err)
		}
	}
	if after, _ := e.store.GetStaff(ctx, late.ID); after.Status != before.Status || after.PasswordHash != before.PasswordHash {
		t.Errorf("a refused link changed the account: %+v", after)
	}

	events := func() []row {
		page, err := log.Query(t.Context(), audit.Filter{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		for _, ev := range slices.Backward(page.Events) {
			if ev.Action == audit.ActionEnrolmentDone && ev.Outcome == audit.OutcomeDenied {
				out = append(out, row{ev.Outcome, ev.Actor.Kind, ev.Actor.ID, ev.Reason, ev.Structure})
			}
		}
		return out
	}
	got := events()
	var want []row
	for _, s := range steps {
		want = append(want, s.want)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("refusals recorded:\n got %+v\nwant %+v", got, want)
	}

	// A flood of made-up links from one address: recorded up to the
	// address's limit (the one that reaches it says so), refused after.
	limit := e.svc.Config().MaxIPFailures
	for i := len(steps); i < limit+10; i++ {
		if _, err := e.svc.BeginEnrolment(ctx, fmt.Sprintf("made-up-%d", i)); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
			t.Fatalf("made-up link %d: %v", i, err)
		}
	}
	got = events()
	if len(got) != limit {
		t.Fatalf("%d refusals recorded from one address, want the limit %d", len(got), limit)
	}
	if last := got[len(got)-1].reason; !strings.HasSuffix(last, "; address throttled, further refusals not recorded") {
		t.Errorf("the last recorded refusal says %q", last)
	}
	// Another address is recorded again; the same one after the window too.
	other := people.WithClient(t.Context(), people.Client{IP: "198.51.100.1"})
	if _, err := e.svc.BeginEnrolment(other, "made-up-elsewhere"); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatal(err)
	}
	e.clock.Advance(e.svc.Config().ThrottleWindow + time.Second)
	if _, err := e.svc.BeginEnrolment(ctx, "made-up-later"); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatal(err)
	}
	if n := len(events()); n != limit+2 {
		t.Errorf("%d refusals recorded, want %d", n, limit+2)
	}
	// Refusals of links do not lock the address's staff sign-ins.
	if _, err := e.svc.SignInStaff(t.Context(), "marie@mairie.fr", testPassword, e.code(t, view.TOTP.Secret), "192.0.2.7"); err != nil {
		t.Errorf("sign-in from the address after refused links: %v", err)
	}
}
