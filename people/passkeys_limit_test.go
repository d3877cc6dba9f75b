package people_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
)

// limitedKeys is the passkey service of e with at most max holder sign-in
// ceremonies begun per address.
func limitedKeys(t *testing.T, e pkEnv, max int) *people.Passkeys {
	t.Helper()
	cfg := e.keys.Config()
	cfg.MaxBeginsPerIP = max
	keys, err := people.NewPasskeys(e.svc, e.store, e.store, e.holders, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func throttledBeginEvents(t *testing.T, e pkEnv) int {
	t.Helper()
	n := 0
	for _, ev := range e.events(t) {
		if ev.Action == audit.ActionPasskeyRefused && strings.Contains(ev.Reason, "begun too often") {
			if ev.Outcome != audit.OutcomeDenied || ev.Actor.Kind != audit.ActorUnknown {
				t.Errorf("throttle event %+v", ev)
			}
			n++
		}
	}
	return n
}

// TestHolderSignInBeginsAreLimitedPerAddress: anyone may begin a holder
// sign-in, and each begin stores a ceremony, so one address (one IPv6 /64)
// may begin only so many within the throttle window; then "too many
// attempts", nothing stored, the crossing audited once. Other addresses,
// and staff sign-in from the same address, are not affected.
func TestHolderSignInBeginsAreLimitedPerAddress(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	if got := e.keys.Config().MaxBeginsPerIP; got != people.DefaultMaxCeremonyBeginsPerIP {
		t.Errorf("default limit %d", got)
	}
	keys := limitedKeys(t, e, 3)
	_, staffSecret := e.enrolled(t, "marie@example.org", "mairie-lyon")

	tests := []struct {
		name, ip string
		wantErr  error
	}{
		{"first", "203.0.113.5", nil},
		{"second", "203.0.113.5", nil},
		{"third, the last allowed", "203.0.113.5", nil},
		{"fourth", "203.0.113.5", people.ErrTooManyAttempts},
		{"fifth", "203.0.113.5", people.ErrTooManyAttempts},
		{"another address", "203.0.113.6", nil},
		{"an IPv6 host", "2001:db8:1:2::1", nil},
		{"the same /64", "2001:db8:1:2::ffff", nil},
		{"the same /64 again", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", nil},
		{"the same /64, past the limit", "2001:db8:1:2::7", people.ErrTooManyAttempts},
		{"another /64", "2001:db8:1:3::1", nil},
	}
	for _, tt := range tests {
		id, opts, err := keys.BeginHolderSignIn(ctx, tt.ip)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Fatalf("%s (%s): %v, want %v", tt.name, tt.ip, err, tt.wantErr)
		}
		if tt.wantErr != nil && (id != "" || opts != nil) {
			t.Errorf("%s: a refused begin returned a ceremony", tt.name)
		}
		if tt.wantErr == nil && (id == "" || len(opts) == 0) {
			t.Errorf("%s: no ceremony", tt.name)
		}
	}
	if n := throttledBeginEvents(t, e); n != 2 { // 203.0.113.5 and 2001:db8:1:2::/64, once each
		t.Errorf("%d throttle events, want 2", n)
	}

	// The page's script posts the form without a ceremony when its begin
	// was refused: the answer says to wait, and counts nothing more.
	if _, err := keys.FinishHolderSignIn(ctx, "", nil, "203.0.113.5"); !errors.Is(err, people.ErrTooManyAttempts) {
		t.Errorf("finish without a ceremony from the throttled address: %v", err)
	}
	if _, err := keys.FinishHolderSignIn(ctx, "", nil, "203.0.113.6"); !errors.Is(err, people.ErrPasskeyRefused) {
		t.Errorf("finish without a ceremony from another address: %v", err)
	}
	// Staff sign-in from the throttled address still works: begins are not
	// sign-in failures.
	if _, err := e.svc.SignInStaff(ctx, "marie@example.org", testPassword, e.code(t, staffSecret), "203.0.113.5"); err != nil {
		t.Errorf("staff sign-in from the throttled address: %v", err)
	}

	// The window passes: the address may begin again.
	e.clock.Advance(e.svc.Config().ThrottleWindow + time.Second)
	if _, _, err := keys.BeginHolderSignIn(ctx, "203.0.113.5"); err != nil {
		t.Errorf("after the window: %v", err)
	}
	if n := throttledBeginEvents(t, e); n != 2 {
		t.Errorf("%d throttle events after the window, want 2", n)
	}
}

// platformStaff creates, enrols and signs in a platform staff member.
func (e pkEnv) platformStaff(t *testing.T, email, role string) people.Principal {
	t.Helper()
	ctx := t.Context()
	_, token, err := e.svc.CreateStaff(ctx, email, role, "", true)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CompleteEnrolment(ctx, token, "Claire Plateforme", testPassword, e.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	p, err := e.svc.SignInStaff(ctx, email, testPassword, e.code(t, view.TOTP.Secret), "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	if !p.Platform {
		t.Fatalf("%s is not platform staff: %+v", email, p)
	}
	return p
}

// TestPlatformStaffStartAnEnrolmentForAnyStructuresHolder: platform staff
// whose role may serve holders start a holder's enrolment in the holder's
// structure (recorded there), and the link works; a platform auditor, and
// a mediator of another structure, may not.
func TestPlatformStaffStartAnEnrolmentForAnyStructuresHolder(t *testing.T) {
	e := newPKEnv(t)
	ctx := t.Context()
	med := e.mediator(t, "marie@example.org", "mairie-lyon")
	other := e.mediator(t, "paul@example.org", "ccas-grenoble")
	h := e.holder(t, med, "jeanne@mail.example", "jeanne.contact@example.net")
	platformMediator := e.platformStaff(t, "claire@plateforme.example", "mediator")
	platformAdmin := e.platformStaff(t, "chef@plateforme.example", "admin")
	platformAuditor := e.platformStaff(t, "audit@plateforme.example", "auditor")

	for _, tt := range []struct {
		name    string
		by      people.Principal
		holder  string
		allowed bool
	}{
		{"platform mediator", platformMediator, h.ID, true},
		{"platform admin", platformAdmin, h.ID, true},
		{"platform auditor", platformAuditor, h.ID, false},
		{"platform mediator, unknown holder", platformMediator, "no-such-holder", false},
		{"another structure's mediator", other, h.ID, false},
		{"the holder's own mediator", med, h.ID, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.count(t, audit.ActionPasskeyEnrolment)
			got, structure, err := e.keys.HolderToEnrol(ctx, tt.by, tt.holder)
			link, serr := e.keys.StartHolderEnrolment(ctx, tt.by, tt.holder)
			if !tt.allowed {
				if !errors.Is(err, people.ErrForbidden) || !errors.Is(serr, people.ErrForbidden) {
					t.Fatalf("HolderToEnrol: %v; StartHolderEnrolment: %v", err, serr)
				}
				if e.count(t, audit.ActionPasskeyEnrolment) != before {
					t.Error("a refused enrolment was recorded")
				}
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("HolderToEnrol: %v; StartHolderEnrolment: %v", err, serr)
			}
			if got.ID != h.ID || structure != med.StructureID {
				t.Errorf("HolderToEnrol = %s in %q, want %s in %q", got.ID, structure, h.ID, med.StructureID)
			}
			events := e.events(t)
			last := events[len(events)-1]
			if last.Action != audit.ActionPasskeyEnrolment || last.Actor.ID != tt.by.ID || last.Holder != h.ID || last.Structure != med.StructureID {
				t.Errorf("enrolment event %+v", last)
			}
			// The link leads to the holder's own code, as for a mediator.
			if _, err := e.keys.OpenHolderEnrolment(ctx, tokenOf(t, link.URL), ""); err != nil {
				t.Errorf("open the link: %v", err)
			}
		})
	}
}
