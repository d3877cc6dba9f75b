package people_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// adminEnv is an env with structure administration: invitations go to a
// real SMTP server, deactivation calls ender, events go to a real audit log.
type adminEnv struct {
	env
	adm   *people.Admin
	smtp  *notifytest.SMTPServer
	log   *storetest.AuditLog
	ender *recordingEnder
}

// recordingEnder is an AccessEnder that remembers whom it ended.
type recordingEnder struct {
	mu       sync.Mutex
	subjects []string
	fail     bool
}

func (r *recordingEnder) EndAccess(_ context.Context, subject string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subjects = append(r.subjects, subject)
	if r.fail {
		return 0, errors.New("token store unreachable")
	}
	return 3, nil
}

func newAdminEnv(t *testing.T) adminEnv {
	t.Helper()
	a := adminEnv{smtp: notifytest.StartSMTP(t), ender: &recordingEnder{}}
	a.env = newEnvRecording(t, func(st *store.Store, clock *storetest.Clock) people.Recorder {
		a.log = storetest.StartAuditLog(t, st, clock)
		return a.log
	})
	a.adm = people.NewAdmin(a.svc, a.store, people.AdminConfig{
		Notifier:       notifytest.SMTPNotifier(t, a.smtp),
		EnrolmentURL:   func(token string) string { return "https://id.example.fr/enrol?token=" + token },
		InactivityDays: 30,
		AccessEnders:   []people.AccessEnder{a.ender},
	})
	return a
}

// principalOf is how a signed-in staff member looks to the services.
func principalOf(s people.Staff) people.Principal {
	return people.Principal{Subject: people.StaffSubject(s.ID), Kind: "staff", ID: s.ID, DisplayName: s.DisplayName,
		Email: s.Email, Role: s.Role, StructureID: s.StructureID, Platform: s.Platform}
}

// enrolledAs creates and enrols an account with role in structure.
func (a adminEnv) enrolledAs(t *testing.T, email, role, structure string, platform bool) (people.Staff, string) {
	t.Helper()
	ctx := t.Context()
	_, token, err := a.svc.CreateStaff(ctx, email, role, structure, platform)
	if err != nil {
		t.Fatal(err)
	}
	view, err := a.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.CompleteEnrolment(ctx, token, "Nom "+email, testPassword, a.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	a.nextStep()
	st, err := a.store.FindStaffByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	return st, view.TOTP.Secret
}

var linkRE = regexp.MustCompile(`https://id\.example\.fr/enrol\?token=([A-Za-z0-9_-]+)`)

// mails waits for the n-th message to `to` and returns the messages to it.
func (a adminEnv) mails(t *testing.T, to string, n int) []notifytest.ReceivedMail {
	t.Helper()
	a.smtp.WaitFor(t, to)
	var out []notifytest.ReceivedMail
	for _, m := range a.smtp.Messages() {
		if slices.Contains(m.To, to) {
			out = append(out, m)
		}
	}
	if len(out) != n {
		t.Fatalf("%d messages to %s, want %d", len(out), to, n)
	}
	return out
}

func tokenIn(t *testing.T, m notifytest.ReceivedMail) string {
	t.Helper()
	got := linkRE.FindStringSubmatch(m.Text)
	if got == nil {
		t.Fatalf("no enrolment link in the invitation:\n%s", m.Text)
	}
	return got[1]
}

// events returns the audit events of action, oldest first.
func (a adminEnv) events(t *testing.T, action audit.Action) []audit.Event {
	t.Helper()
	page, err := a.log.Query(t.Context(), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range slices.Backward(page.Events) {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestInvitationIsEmailedInFrenchAndOnlyItsNewestLinkWorksOnce(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	p := principalOf(admin)

	st, err := a.adm.Invite(ctx, p, admin.StructureID, people.Invitation{Email: "Marie@Mairie.fr", Name: " Marie  Dupont ", Role: "mediator"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != people.StaffPending || st.Role != people.RoleMediator || st.StructureID != admin.StructureID || st.DisplayName != "Marie Dupont" {
		t.Fatalf("invited account = %+v", st)
	}
	first := a.mails(t, "marie@mairie.fr", 1)[0]
	if !strings.HasPrefix(first.Subject, "Votre accès") || !strings.HasPrefix(first.Text, "Bonjour Marie Dupont") ||
		!strings.Contains(first.Text, "Mairie de Tulle") || !strings.Contains(first.Text, "Hello Marie Dupont") ||
		strings.Index(first.Text, "Hello") < strings.Index(first.Text, "Bonjour") {
		t.Errorf("invitation: subject %q, text:\n%s", first.Subject, first.Text)
	}
	oldToken := tokenIn(t, first)

	// Inviting again sends a new link and cancels the older one.
	a.clock.Advance(time.Minute)
	if _, err := a.adm.Invite(ctx, p, admin.StructureID, people.Invitation{Email: "marie@mairie.fr", Name: "Marie Dupont", Role: "auditor", Language: "en"}); err != nil {
		t.Fatal(err)
	}
	second := a.mails(t, "marie@mairie.fr", 2)[1]
	if !strings.HasPrefix(second.Subject, "Your access") || !strings.HasPrefix(second.Text, "Hello") {
		t.Errorf("English-first invitation: %q\n%s", second.Subject, second.Text)
	}
	newToken := tokenIn(t, second)
	if _, err := a.svc.BeginEnrolment(ctx, oldToken); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("the older link after a new invitation: %v, want ErrEnrolmentLinkInvalid", err)
	}
	view, err := a.svc.BeginEnrolment(ctx, newToken)
	if err != nil {
		t.Fatalf("the newest link: %v", err)
	}
	if err := a.svc.CompleteEnrolment(ctx, newToken, "Marie Dupont", testPassword, a.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	// Used twice: refused, nothing changes.
	if _, err := a.svc.BeginEnrolment(ctx, newToken); !errors.Is(err, people.ErrEnrolmentLinkInvalid) {
		t.Fatalf("the link used twice: %v", err)
	}
	got, err := a.store.GetStaff(ctx, st.ID)
	if err != nil || got.Status != people.StaffActive || got.Role != people.RoleAuditor {
		t.Fatalf("after enrolment: %+v, %v", got, err)
	}
	// An active account cannot be invited again.
	if _, err := a.adm.Invite(ctx, p, admin.StructureID, people.Invitation{Email: "marie@mairie.fr", Name: "Marie", Role: "mediator"}); !errors.Is(err, people.ErrEmailTaken) {
		t.Fatalf("inviting an active account: %v", err)
	}

	evs := a.events(t, audit.ActionStaffInvited)
	if len(evs) != 2 {
		t.Fatalf("%d staff.invited events, want 2", len(evs))
	}
	for i, e := range evs {
		if e.Actor.ID != admin.ID || e.Actor.Kind != audit.ActorStaff || e.Structure != admin.StructureID ||
			e.Target != people.StaffSubject(st.ID) || strings.Contains(e.Reason, "marie") {
			t.Errorf("event %d = %+v", i, e)
		}
	}
}

func TestDeactivationEndsEverythingAtOnceAndReactivationBringsNothingBack(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	med, secret := a.enrolledAs(t, "marie@mairie.fr", "mediator", "Mairie de Tulle", false)
	p := principalOf(admin)
	cookie, _, err := a.svc.StartSession(ctx, principalOf(med))
	if err != nil {
		t.Fatal(err)
	}

	if err := a.adm.Deactivate(ctx, p, admin.StructureID, med.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.LookupSession(ctx, cookie); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("the session after deactivation: %v", err)
	}
	if !slices.Equal(a.ender.subjects, []string{people.StaffSubject(med.ID)}) {
		t.Errorf("access ended for %v", a.ender.subjects)
	}
	// A deactivated account hears so only after the right password and code.
	if _, err := a.svc.SignInStaff(ctx, med.Email, "wrong password, long enough", a.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Errorf("wrong password of a deactivated account: %v", err)
	}
	a.nextStep()
	if _, err := a.svc.SignInStaff(ctx, med.Email, testPassword, a.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrAccountDeactivated) {
		t.Errorf("sign-in of a deactivated account: %v", err)
	}

	if err := a.adm.Reactivate(ctx, p, admin.StructureID, med.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.adm.Reactivate(ctx, p, admin.StructureID, med.ID); !errors.Is(err, people.ErrNotDeactivated) {
		t.Errorf("reactivating twice: %v", err)
	}
	if _, _, err := a.svc.LookupSession(ctx, cookie); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("reactivation brought the session back: %v", err)
	}
	a.nextStep()
	if _, err := a.svc.SignInStaff(ctx, med.Email, testPassword, a.code(t, secret), "192.0.2.1"); err != nil {
		t.Errorf("sign-in after reactivation: %v", err)
	}

	for _, action := range []audit.Action{audit.ActionStaffDeactivated, audit.ActionStaffReactivated} {
		evs := a.events(t, action)
		if len(evs) != 1 || evs[0].Actor.ID != admin.ID || evs[0].Target != people.StaffSubject(med.ID) || evs[0].Structure != admin.StructureID {
			t.Errorf("%s events = %+v", action, evs)
		}
	}
}

func TestDeactivationThatCouldNotEndTokensFailsAndCanBeRunAgain(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	med, _ := a.enrolledAs(t, "marie@mairie.fr", "mediator", "Mairie de Tulle", false)
	a.ender.fail = true
	if err := a.adm.Deactivate(ctx, principalOf(admin), admin.StructureID, med.ID); err == nil {
		t.Fatal("deactivation reported success although tokens were not ended")
	}
	got, _ := a.store.GetStaff(ctx, med.ID)
	if got.Status != people.StaffDeactivated {
		t.Errorf("status = %s: the account must be refused even when tokens could not be ended yet", got.Status)
	}
	a.ender.fail = false
	if err := a.adm.Deactivate(ctx, principalOf(admin), admin.StructureID, med.ID); err != nil {
		t.Fatalf("deactivating again to finish: %v", err)
	}
	if len(a.ender.subjects) != 2 {
		t.Errorf("access ended %d times, want 2", len(a.ender.subjects))
	}
}

func TestAdministrationRefusesWhatTheCallerMayNotDo(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@tulle.fr", "admin", "Mairie de Tulle", false)
	admin2, _ := a.enrolledAs(t, "adjoint@tulle.fr", "admin", "Mairie de Tulle", false)
	med, _ := a.enrolledAs(t, "marie@tulle.fr", "mediator", "Mairie de Tulle", false)
	aud, _ := a.enrolledAs(t, "audit@tulle.fr", "auditor", "Mairie de Tulle", false)
	other, _ := a.enrolledAs(t, "chef@brive.fr", "admin", "CCAS de Brive", false)
	otherMed, _ := a.enrolledAs(t, "paul@brive.fr", "mediator", "CCAS de Brive", false)
	root, _ := a.enrolledAs(t, "root@plateforme.fr", "admin", "", true)
	tulle := admin.StructureID
	invite := func(p people.Principal, structure, email, role string) error {
		_, err := a.adm.Invite(ctx, p, structure, people.Invitation{Email: email, Name: "X", Role: role})
		return err
	}
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"mediator lists staff", func() error { _, err := a.adm.ListStaff(ctx, principalOf(med), tulle); return err }, people.ErrForbidden},
		{"auditor invites", func() error { return invite(principalOf(aud), tulle, "x@tulle.fr", "mediator") }, people.ErrForbidden},
		{"mediator deactivates", func() error { return a.adm.Deactivate(ctx, principalOf(med), tulle, aud.ID) }, people.ErrForbidden},
		{"admin lists another structure", func() error { _, err := a.adm.ListStaff(ctx, principalOf(other), tulle); return err }, people.ErrNotFound},
		{"admin invites into another structure", func() error { return invite(principalOf(other), tulle, "x@tulle.fr", "mediator") }, people.ErrNotFound},
		{"admin deactivates someone of another structure through their own", func() error {
			return a.adm.Deactivate(ctx, principalOf(other), other.StructureID, med.ID)
		}, people.ErrNotFound},
		{"admin deactivates through another structure", func() error { return a.adm.Deactivate(ctx, principalOf(other), tulle, med.ID) }, people.ErrNotFound},
		{"unknown structure", func() error { _, err := a.adm.ListStaff(ctx, principalOf(admin), "nope"); return err }, people.ErrNotFound},
		{"unknown staff", func() error { return a.adm.Deactivate(ctx, principalOf(admin), tulle, "nope") }, people.ErrNotFound},
		{"structure admin deactivates an admin", func() error { return a.adm.Deactivate(ctx, principalOf(admin), tulle, admin2.ID) }, people.ErrRoleNotAllowed},
		{"structure admin invites an admin", func() error { return invite(principalOf(admin), tulle, "x@tulle.fr", "admin") }, people.ErrRoleNotAllowed},
		{"admin deactivates themselves", func() error { return a.adm.Deactivate(ctx, principalOf(root), root.StructureID, root.ID) }, people.ErrSelf},
		{"email of another structure's account", func() error { return invite(principalOf(admin), tulle, "paul@brive.fr", "mediator") }, people.ErrEmailTaken},
		{"bad email", func() error { return invite(principalOf(admin), tulle, "not an email", "mediator") }, people.ErrInvalidEmail},
		{"bad role", func() error { return invite(principalOf(admin), tulle, "x@tulle.fr", "boss") }, people.ErrInvalidRole},
		{"structure admin lists structures", func() error { _, err := a.adm.Structures(ctx, principalOf(admin)); return err }, people.ErrForbidden},
		{"structure admin creates a structure", func() error { _, err := a.adm.CreateStructure(ctx, principalOf(admin), "Nouvelle"); return err }, people.ErrForbidden},
		{"structure admin posts platform-wide", func() error {
			_, err := a.adm.PostBanner(ctx, principalOf(admin), people.PlatformWide, people.BannerInput{})
			return err
		}, people.ErrForbidden},
		{"mediator posts a banner", func() error {
			_, err := a.adm.PostBanner(ctx, principalOf(med), tulle, people.BannerInput{})
			return err
		}, people.ErrForbidden},
		{"admin posts on another structure", func() error {
			_, err := a.adm.PostBanner(ctx, principalOf(other), tulle, people.BannerInput{})
			return err
		}, people.ErrNotFound},
		{"platform admin creates an existing structure", func() error {
			_, err := a.adm.CreateStructure(ctx, principalOf(root), "CCAS  de Brive")
			return err
		}, people.ErrStructureExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
	// Nothing changed: everyone still active, nobody invited, no access ended.
	for _, s := range []people.Staff{admin, admin2, med, aud, other, otherMed, root} {
		got, _ := a.store.GetStaff(ctx, s.ID)
		if got.Status != people.StaffActive {
			t.Errorf("%s is %s", s.Email, got.Status)
		}
	}
	if len(a.ender.subjects) != 0 || len(a.smtp.Messages()) != 0 {
		t.Errorf("refused actions ended access of %v and sent %d emails", a.ender.subjects, len(a.smtp.Messages()))
	}
	// The platform admin may do it all, anywhere.
	if err := a.adm.Deactivate(ctx, principalOf(root), tulle, admin2.ID); err != nil {
		t.Errorf("platform admin deactivates a structure admin: %v", err)
	}
	if err := invite(principalOf(root), other.StructureID, "chef2@brive.fr", "admin"); err != nil {
		t.Errorf("platform admin invites an admin: %v", err)
	}
	// ...and a structure admin cannot turn that pending admin into a mediator.
	if err := invite(principalOf(other), other.StructureID, "chef2@brive.fr", "mediator"); !errors.Is(err, people.ErrRoleNotAllowed) {
		t.Errorf("structure admin re-invites a pending admin: %v", err)
	}
}

func TestInactivityReportFlagsSilentStaffAndExpiredInvitations(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, secret := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	silent, _ := a.enrolledAs(t, "silent@mairie.fr", "mediator", "Mairie de Tulle", false)
	recent, recentSecret := a.enrolledAs(t, "recent@mairie.fr", "mediator", "Mairie de Tulle", false)
	gone, _ := a.enrolledAs(t, "gone@mairie.fr", "mediator", "Mairie de Tulle", false)
	p := principalOf(admin)
	if _, err := a.adm.Invite(ctx, p, admin.StructureID, people.Invitation{Email: "late@mairie.fr", Name: "Late", Role: "auditor"}); err != nil {
		t.Fatal(err)
	}
	if err := a.adm.Deactivate(ctx, p, admin.StructureID, gone.ID); err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(31 * 24 * time.Hour)
	if _, err := a.adm.Invite(ctx, p, admin.StructureID, people.Invitation{Email: "fresh@mairie.fr", Name: "Fresh", Role: "auditor"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ email, secret string }{{admin.Email, secret}, {recent.Email, recentSecret}} {
		a.nextStep()
		if _, err := a.svc.SignInStaff(ctx, s.email, testPassword, a.code(t, s.secret), "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}

	r, err := a.adm.Inactivity(ctx, p, admin.StructureID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Days != 30 || len(r.Inactive) != 1 || r.Inactive[0].ID != silent.ID {
		t.Errorf("inactive = %+v, want only %s", r.Inactive, silent.Email)
	}
	if len(r.StaleInvitations) != 1 || r.StaleInvitations[0].Staff.Email != "late@mairie.fr" {
		t.Errorf("stale invitations = %+v, want only late@", r.StaleInvitations)
	}
	if _, err := a.adm.Inactivity(ctx, principalOf(recent), admin.StructureID); !errors.Is(err, people.ErrForbidden) {
		t.Errorf("a mediator reads the report: %v", err)
	}
}

func TestBannersAreCheckedAndShownBetweenTheirDates(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	root, _ := a.enrolledAs(t, "root@plateforme.fr", "admin", "", true)
	p := principalOf(admin)
	now := a.clock.Now()
	day := 24 * time.Hour
	ok := people.BannerInput{Audience: "staff", TextFR: "Fermé lundi", StartsAt: now, EndsAt: now.Add(day)}
	bad := []struct {
		name string
		edit func(*people.BannerInput)
		want error
	}{
		{"no French", func(b *people.BannerInput) { b.TextFR = "  " }, people.ErrBannerTextFR},
		{"French too long", func(b *people.BannerInput) { b.TextFR = strings.Repeat("é", 501) }, people.ErrBannerTextFR},
		{"English too long", func(b *people.BannerInput) { b.TextEN = strings.Repeat("e", 501) }, people.ErrBannerTextEN},
		{"control character", func(b *people.BannerInput) { b.TextFR = "a\x07b" }, people.ErrBannerTextFR},
		{"unknown audience", func(b *people.BannerInput) { b.Audience = "everyone" }, people.ErrInvalidAudience},
		{"ends before it starts", func(b *people.BannerInput) { b.EndsAt = b.StartsAt.Add(-time.Second) }, people.ErrBannerDates},
		{"longer than a year", func(b *people.BannerInput) { b.EndsAt = b.StartsAt.Add(400 * day) }, people.ErrBannerDates},
		{"already over", func(b *people.BannerInput) { b.StartsAt, b.EndsAt = now.Add(-2*day), now.Add(-day) }, people.ErrBannerEndsInPast},
	}
	for _, tt := range bad {
		in := ok
		tt.edit(&in)
		if _, err := a.adm.PostBanner(ctx, p, admin.StructureID, in); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	b, err := a.adm.PostBanner(ctx, p, admin.StructureID, ok)
	if err != nil {
		t.Fatal(err)
	}
	later := ok
	later.StartsAt, later.EndsAt, later.TextEN = now.Add(day), now.Add(2*day), "Closed on Tuesday"
	if _, err := a.adm.PostBanner(ctx, p, admin.StructureID, later); err != nil {
		t.Fatal(err)
	}
	platform := ok
	platform.TextFR, platform.StartsAt = "Maintenance dimanche", now.Add(-time.Hour) // oldest start first
	if _, err := a.adm.PostBanner(ctx, principalOf(root), people.PlatformWide, platform); err != nil {
		t.Fatal(err)
	}
	texts := func(list []people.Banner) []string {
		var out []string
		for _, b := range list {
			out = append(out, b.Text("en"))
		}
		return out
	}
	shown, err := a.adm.BannersFor(ctx, people.AudienceStaff, admin.StructureID)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(shown); !slices.Equal(got, []string{"Maintenance dimanche", "Fermé lundi"}) {
		t.Errorf("shown today = %v", got)
	}
	a.clock.Advance(day + time.Hour)
	shown, _ = a.adm.BannersFor(ctx, people.AudienceStaff, admin.StructureID)
	if got := texts(shown); !slices.Equal(got, []string{"Closed on Tuesday"}) {
		t.Errorf("shown tomorrow = %v", got)
	}
	if shown, _ := a.adm.BannersFor(ctx, people.AudienceHolders, admin.StructureID); len(shown) != 0 {
		t.Errorf("holders see the staff banners: %v", texts(shown))
	}
	if err := a.adm.DeleteBanner(ctx, p, admin.StructureID, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := len(a.events(t, audit.ActionBannerPosted)); got != 3 {
		t.Errorf("%d banner.posted events, want 3", got)
	}
	if got := a.events(t, audit.ActionBannerDeleted); len(got) != 1 || strings.Contains(got[0].Reason, "Fermé") {
		t.Errorf("banner.deleted events = %+v", got)
	}
}

// A notifier that fails: the invitation fails, the account stays pending,
// and inviting again works.
type failingNotifier struct{}

func (failingNotifier) Send(context.Context, notify.Message) error {
	return errors.New("smtp: connection refused")
}

func TestInvitationWhoseEmailFailsCanBeSentAgain(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	admin, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)
	broken := people.NewAdmin(a.svc, a.store, people.AdminConfig{Notifier: failingNotifier{}})
	inv := people.Invitation{Email: "marie@mairie.fr", Name: "Marie", Role: "mediator"}
	if _, err := broken.Invite(ctx, principalOf(admin), admin.StructureID, inv); err == nil {
		t.Fatal("an invitation whose email failed reported success")
	}
	if _, err := a.adm.Invite(ctx, principalOf(admin), admin.StructureID, inv); err != nil {
		t.Fatalf("inviting again: %v", err)
	}
	a.mails(t, "marie@mairie.fr", 1)
}

func TestOnlyPlatformAdminsInvitePlatformWideAuditors(t *testing.T) {
	a := newAdminEnv(t)
	ctx := t.Context()
	root, _ := a.enrolledAs(t, "root@plateforme.fr", "admin", "Plateforme", true)
	local, _ := a.enrolledAs(t, "chef@mairie.fr", "admin", "Mairie de Tulle", false)

	inv := people.Invitation{Email: "audit@cnil.fr", Name: "Alice Audit", Role: "auditor", Platform: true}
	if _, err := a.adm.Invite(ctx, principalOf(local), local.StructureID, inv); !errors.Is(err, people.ErrRoleNotAllowed) {
		t.Fatalf("a structure admin inviting a platform auditor: %v, want ErrRoleNotAllowed", err)
	}
	mediator := people.Invitation{Email: "med@plateforme.fr", Name: "Max", Role: "mediator", Platform: true}
	if _, err := a.adm.Invite(ctx, principalOf(root), root.StructureID, mediator); !errors.Is(err, people.ErrRoleNotAllowed) {
		t.Fatalf("a platform-wide mediator: %v, want ErrRoleNotAllowed", err)
	}
	st, err := a.adm.Invite(ctx, principalOf(root), root.StructureID, inv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.store.GetStaff(ctx, st.ID)
	if err != nil || !got.Platform || got.Role != people.RoleAuditor {
		t.Fatalf("invited platform auditor = %+v, %v", got, err)
	}
	if _, err := a.store.FindStaffByEmail(ctx, "med@plateforme.fr"); err == nil {
		t.Error("a refused invitation created an account")
	}
}
