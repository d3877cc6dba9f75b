package mandate

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// allowed is the whole state machine, written out by hand: every
// (state, transition, end reason) that Next must accept and where it leads.
// Anything not listed must be refused.
var allowed = map[string]State{
	key(StateRequested, TransitionApprove, ""): StateApproved,
	key(StateRequested, TransitionRefuse, ""):  StateRefused,
	key(StateRequested, TransitionLapse, ""):   StateUnanswered,
	// A request nobody answered yet may be cancelled by the delegate, an
	// admin or offboarding; the holder refuses instead; expiry and presence
	// loss do not apply (it lapses).
	key(StateRequested, TransitionEnd, EndedByDelegate):    StateEnded,
	key(StateRequested, TransitionEnd, EndedByAdmin):       StateEnded,
	key(StateRequested, TransitionEnd, EndedByOffboarding): StateEnded,

	key(StateApproved, TransitionActivate, ""):            StateActive,
	key(StateApproved, TransitionEnd, EndedByHolder):      StateEnded,
	key(StateApproved, TransitionEnd, EndedByDelegate):    StateEnded,
	key(StateApproved, TransitionEnd, EndedByAdmin):       StateEnded,
	key(StateApproved, TransitionEnd, EndedByOffboarding): StateEnded,
	key(StateApproved, TransitionEnd, EndedByExpiry):      StateEnded,
	key(StateApproved, TransitionEnd, EndedByPresence):    StateEnded,
	key(StateActive, TransitionEnd, EndedByHolder):        StateEnded,
	key(StateActive, TransitionEnd, EndedByDelegate):      StateEnded,
	key(StateActive, TransitionEnd, EndedByAdmin):         StateEnded,
	key(StateActive, TransitionEnd, EndedByOffboarding):   StateEnded,
	key(StateActive, TransitionEnd, EndedByExpiry):        StateEnded,
	key(StateActive, TransitionEnd, EndedByPresence):      StateEnded,
}

func key(s State, t Transition, r EndReason) string { return fmt.Sprintf("%s|%s|%s", s, t, r) }

// The lists the exhaustive test walks, written out rather than taken from
// States(), Transitions() and EndReasons() — which are checked against them.
var (
	allStates      = []State{"requested", "approved", "refused", "expired_unanswered", "active", "ended"}
	allTransitions = []Transition{"approve", "refuse", "lapse", "activate", "end"}
	allReasons     = []EndReason{"holder", "delegate", "admin", "offboarding", "expiry", "presence_lost"}
	// Reasons also tried: none, an unknown one, a near miss.
	otherReasons = []EndReason{"", "bogus", "Holder"}
)

func TestListsAreComplete(t *testing.T) {
	if !slices.Equal(States(), allStates) {
		t.Errorf("States() = %v, want %v", States(), allStates)
	}
	if !slices.Equal(Transitions(), allTransitions) {
		t.Errorf("Transitions() = %v, want %v", Transitions(), allTransitions)
	}
	if !slices.Equal(EndReasons(), allReasons) {
		t.Errorf("EndReasons() = %v, want %v", EndReasons(), allReasons)
	}
	for _, r := range allReasons {
		if !r.Valid() {
			t.Errorf("%q is not valid", r)
		}
	}
	for _, r := range otherReasons {
		if r.Valid() {
			t.Errorf("%q is valid", r)
		}
	}
	for _, s := range allStates {
		want := s == "refused" || s == "expired_unanswered" || s == "ended"
		if s.Final() != want {
			t.Errorf("%s.Final() = %v, want %v", s, s.Final(), want)
		}
	}
	for _, s := range []State{"", "Requested", "bogus"} {
		if s.Final() {
			t.Errorf("%q.Final() = true", s)
		}
	}
}

func TestStateMachineIsExactlyTheTable(t *testing.T) {
	states := append(slices.Clone(allStates), "", "bogus")
	transitions := append(slices.Clone(allTransitions), "", "bogus")
	reasons := append(slices.Clone(allReasons), otherReasons...)
	accepted := 0
	for _, s := range states {
		for _, tr := range transitions {
			for _, r := range reasons {
				got, err := Next(s, tr, r)
				want, ok := allowed[key(s, tr, r)]
				switch {
				case ok && err != nil:
					t.Errorf("Next(%q, %q, %q) refused: %v; want %s", s, tr, r, err, want)
				case ok && got != want:
					t.Errorf("Next(%q, %q, %q) = %s, want %s", s, tr, r, got, want)
				case ok:
					accepted++
				case err == nil:
					t.Errorf("Next(%q, %q, %q) = %s, want refused", s, tr, r, got)
				default:
					if !errors.Is(err, ErrInvalidTransition) || !errors.Is(err, ErrConflict) {
						t.Errorf("Next(%q, %q, %q) error %v wraps neither ErrInvalidTransition nor ErrConflict", s, tr, r, err)
					}
					if got != s {
						t.Errorf("Next(%q, %q, %q) refused but returned state %q, want the unchanged %q", s, tr, r, got, s)
					}
				}
			}
		}
	}
	if accepted != len(allowed) {
		t.Fatalf("accepted %d transitions, the table has %d", accepted, len(allowed))
	}
}

func TestFinalStatesHaveNoExit(t *testing.T) {
	reasons := append(slices.Clone(allReasons), otherReasons...)
	for _, s := range []State{StateRefused, StateUnanswered, StateEnded} {
		for _, tr := range allTransitions {
			for _, r := range reasons {
				if got, err := Next(s, tr, r); err == nil {
					t.Errorf("final %s left by %s (%q) to %s", s, tr, r, got)
				}
			}
		}
	}
}

func TestEveryNonFinalStateHasAnExit(t *testing.T) {
	for _, s := range []State{StateRequested, StateApproved, StateActive} {
		if s.Final() {
			t.Fatalf("%s is final", s)
		}
		found := false
		for k := range allowed {
			if len(k) > len(s) && k[:len(s)+1] == string(s)+"|" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no exit in the table", s)
		}
	}
}

func TestLive(t *testing.T) {
	t0 := time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)
	session := Mandate{
		State: StateActive, Presence: PresenceRequired,
		NotBefore: t0, NotAfter: t0.Add(30 * time.Minute), LeaseUntil: t0.Add(15 * time.Second),
	}
	relaxed := session
	relaxed.Presence = PresenceRelaxed
	relaxed.LeaseUntil = time.Time{}
	with := func(m Mandate, f func(*Mandate)) Mandate { f(&m); return m }
	tests := []struct {
		name string
		m    Mandate
		at   time.Time
		want bool
	}{
		{"active, inside the window, lease alive", session, t0.Add(time.Second), true},
		{"at NotBefore exactly", session, t0, true},
		{"before NotBefore", session, t0.Add(-time.Nanosecond), false},
		{"at NotAfter exactly", with(session, func(m *Mandate) { m.LeaseUntil = t0.Add(time.Hour) }), t0.Add(30 * time.Minute), false},
		{"one instant before NotAfter", with(session, func(m *Mandate) { m.LeaseUntil = t0.Add(time.Hour) }), t0.Add(30*time.Minute - time.Nanosecond), true},
		{"at the lease's end", session, t0.Add(15 * time.Second), false},
		{"after the lease's end", session, t0.Add(16 * time.Second), false},
		{"no lease at all", with(session, func(m *Mandate) { m.LeaseUntil = time.Time{} }), t0.Add(time.Second), false},
		{"approved (the first token)", with(session, func(m *Mandate) { m.State = StateApproved }), t0.Add(time.Second), true},
		{"requested", with(session, func(m *Mandate) { m.State = StateRequested }), t0.Add(time.Second), false},
		{"refused", with(session, func(m *Mandate) { m.State = StateRefused }), t0.Add(time.Second), false},
		{"unanswered", with(session, func(m *Mandate) { m.State = StateUnanswered }), t0.Add(time.Second), false},
		{"ended", with(session, func(m *Mandate) { m.State = StateEnded }), t0.Add(time.Second), false},
		{"relaxed presence needs no lease", relaxed, t0.Add(20 * time.Minute), true},
		{"relaxed presence still ends with its window", relaxed, t0.Add(30 * time.Minute), false},
		{"relaxed presence still waits for its window", relaxed, t0.Add(-time.Second), false},
		{"zero mandate", Mandate{}, t0, false},
	}
	for _, tt := range tests {
		if got := tt.m.Live(tt.at); got != tt.want {
			t.Errorf("%s: Live = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPresent(t *testing.T) {
	t0 := time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)
	m := Mandate{LeaseUntil: t0.Add(15 * time.Second)}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{t0, true},
		{t0.Add(15*time.Second - time.Nanosecond), true},
		{t0.Add(15 * time.Second), false},
		{t0.Add(time.Minute), false},
	} {
		if got := m.Present(tt.at); got != tt.want {
			t.Errorf("Present(%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if (Mandate{}).Present(t0) || (Mandate{}).Present(time.Time{}.Add(-time.Hour)) {
		t.Error("a mandate without a lease is present")
	}
}

func TestKindAndCategoryValidity(t *testing.T) {
	for _, k := range []Kind{KindSession, KindDelegation} {
		if !k.Valid() {
			t.Errorf("%s invalid", k)
		}
	}
	for _, k := range []Kind{"", "Session", "other"} {
		if k.Valid() {
			t.Errorf("%q valid", k)
		}
	}
	want := []PurposeCategory{"social", "tax", "housing", "health", "employment", "absence", "other"}
	if !slices.Equal(PurposeCategories(), want) {
		t.Errorf("PurposeCategories() = %v, want %v", PurposeCategories(), want)
	}
	for _, c := range want {
		if !c.Valid() {
			t.Errorf("%s invalid", c)
		}
	}
	for _, c := range []PurposeCategory{"", "Tax", "bogus"} {
		if c.Valid() {
			t.Errorf("%q valid", c)
		}
	}
}
