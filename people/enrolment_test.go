package people_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mandated/mandated/people"
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
