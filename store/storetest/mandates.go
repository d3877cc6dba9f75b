package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

func testMandates(t *testing.T, open Opener) {
	t.Run("CreateGet", func(t *testing.T) { testMandateCreateGet(t, open) })
	t.Run("Update", func(t *testing.T) { testMandateUpdate(t, open) })
	t.Run("ConcurrentUpdate", func(t *testing.T) { testMandateConcurrentUpdate(t, open) })
	t.Run("ExtendLease", func(t *testing.T) { testMandateExtendLease(t, open) })
	t.Run("DueMandates", func(t *testing.T) { testDueMandates(t, open) })
	t.Run("List", func(t *testing.T) { testListMandates(t, open) })
	t.Run("Policy", func(t *testing.T) { testMandatePolicy(t, open) })
}

// mandateEnv is an env with two structures (s1, s2), delegates d1 and d2
// of s1 and d3 of s2, holders h1 and h2 served by s1 and h3 by s2, and the
// client "console".
func mandateEnv(t *testing.T, open Opener) env {
	t.Helper()
	e := newEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One", CreatedAt: t0}))
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Two", CreatedAt: t0}))
	e.createStaff(t, "d1", "d1@example.org", "s1")
	e.createStaff(t, "d2", "d2@example.org", "s1")
	e.createStaff(t, "d3", "d3@example.org", "s2")
	for _, h := range []struct{ id, structure string }{{"h1", "s1"}, {"h2", "s1"}, {"h3", "s2"}} {
		must(t, e.s.CreateHolder(ctx, e.newHolder(h.id, h.id+"@example.net", "Holder "+h.id), h.structure))
	}
	e.createClient(t, "console")
	return e
}

// newMandate is an active presence session of h1 for d1 in s1, with every
// field set, live at t0 (window t0-1m..t0+29m, lease until t0+10s).
func newMandate(id string) mandate.Mandate {
	return mandate.Mandate{
		ID: id, Kind: mandate.KindSession, StructureID: "s1", HolderID: "h1", Mailbox: "h1@example.net",
		DelegateID: "d1", ClientID: "console",
		Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}, Exclusions: []string{mandate.ExcludePersonal},
		Purpose: "Dossier CAF : « attestation » n°42", PurposeCategory: mandate.PurposeSocial,
		Presence: mandate.PresenceRequired, Duration: 30 * time.Minute,
		NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(29 * time.Minute), AnswerBy: t0.Add(-time.Minute),
		State: mandate.StateActive, GrantID: "grant-" + id, ConsentVersion: "2030-01",
		ConsentHash:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ConsentReceipt: receiptBytes,
		LeaseUntil:     t0.Add(10 * time.Second), CreatedAt: t0.Add(-2 * time.Minute),
		DecidedAt: t0.Add(-time.Minute), ActivatedAt: t0.Add(-time.Minute + time.Second), Version: 1,
	}
}

// receiptBytes stand for a stored consent receipt: they must come back
// byte for byte (a NUL, bytes that are not UTF-8, a trailing space).
var receiptBytes = []byte("{\"purpose\":\"Dossier CAF : « attestation »\"}\x00\xff\xfe ")

// requested is a fresh request: no window, no lease, no decision.
func requested(id string) mandate.Mandate {
	m := newMandate(id)
	m.State = mandate.StateRequested
	m.NotBefore, m.NotAfter, m.LeaseUntil, m.DecidedAt, m.ActivatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	m.AnswerBy = t0.Add(5 * time.Minute)
	m.GrantID, m.ConsentHash, m.ConsentVersion, m.ConsentReceipt = "", "", "", nil
	return m
}

func getMandate(t *testing.T, e env, id string) mandate.Mandate {
	t.Helper()
	m, err := e.s.GetMandate(t.Context(), id)
	must(t, err)
	return m
}

func mandateIDs(ms []mandate.Mandate) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func testMandateCreateGet(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()

	t.Run("every field round-trips, in UTC", func(t *testing.T) {
		m := newMandate("full")
		m.Version = 7 // ignored: a new mandate is version 1
		m.State, m.EndReason, m.EndedBy, m.EndedAt = mandate.StateEnded, mandate.EndedByAdmin, "d2", t0
		paris := time.FixedZone("Paris", 3600)
		m.NotAfter = m.NotAfter.In(paris)
		must(t, e.s.CreateMandate(ctx, m))
		want := m
		want.Version = 1
		want.NotAfter = m.NotAfter.UTC()
		if got := getMandate(t, e, "full"); !reflect.DeepEqual(got, want) {
			t.Errorf("mandate = %+v\nwant      %+v", got, want)
		}
	})
	t.Run("unset fields stay unset; CreatedAt defaults to now", func(t *testing.T) {
		m := requested("bare")
		m.ClientID, m.Exclusions, m.Purpose, m.AnswerBy, m.CreatedAt = "", nil, "", time.Time{}, time.Time{}
		must(t, e.s.CreateMandate(ctx, m))
		want := m
		want.CreatedAt = e.clock.Now()
		if got := getMandate(t, e, "bare"); !reflect.DeepEqual(got, want) {
			t.Errorf("mandate = %+v\nwant      %+v", got, want)
		}
	})
	t.Run("taken id, missing references, unstorable scopes", func(t *testing.T) {
		wantErr(t, e.s.CreateMandate(ctx, newMandate("full")), mandate.ErrAlreadyExists)
		for _, tt := range []struct {
			name string
			edit func(*mandate.Mandate)
		}{
			{"structure", func(m *mandate.Mandate) { m.StructureID = "nope" }},
			{"holder", func(m *mandate.Mandate) { m.HolderID = "nope" }},
			{"delegate", func(m *mandate.Mandate) { m.DelegateID = "nope" }},
			{"client", func(m *mandate.Mandate) { m.ClientID = "nope" }},
		} {
			m := newMandate("missing-" + tt.name)
			tt.edit(&m)
			if err := e.s.CreateMandate(ctx, m); !errors.Is(err, mandate.ErrNotFound) {
				t.Errorf("unknown %s: error = %v, want ErrNotFound", tt.name, err)
			}
		}
		for _, scopes := range [][]string{{"mail.read mail.send"}, {""}, {"mail.read", "a\tb"}} {
			m := newMandate("bad-scopes")
			m.Scopes = scopes
			if err := e.s.CreateMandate(ctx, m); err == nil {
				t.Errorf("scopes %q stored", scopes)
			}
		}
		if err := e.s.CreateMandate(ctx, mandate.Mandate{}); err == nil {
			t.Error("a mandate without an id was stored")
		}
		for _, id := range []string{"missing-structure", "missing-holder", "missing-delegate", "missing-client", "bad-scopes", "nope"} {
			_, err := e.s.GetMandate(ctx, id)
			wantErr(t, err, mandate.ErrNotFound)
		}
	})
	t.Run("deleting its client keeps the mandate", func(t *testing.T) {
		e.createClient(t, "gone")
		m := newMandate("of-gone-client")
		m.ClientID = "gone"
		must(t, e.s.CreateMandate(ctx, m))
		must(t, e.s.DeleteClient(ctx, "gone"))
		if got := getMandate(t, e, m.ID); got.ClientID != "" || got.HolderID != "h1" {
			t.Errorf("after client deletion: %+v", got)
		}
	})
}

func testMandateUpdate(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateMandate(ctx, requested("m")))

	t.Run("writes every field and bumps the version", func(t *testing.T) {
		var want mandate.Mandate
		got, err := e.s.UpdateMandate(ctx, "m", func(m *mandate.Mandate) error {
			next, err := mandate.Next(m.State, mandate.TransitionApprove, "")
			if err != nil {
				return err
			}
			m.ID, m.Version = "changed", 99 // ignored
			m.State, m.DecidedAt = next, t0
			m.NotBefore, m.NotAfter, m.LeaseUntil = t0, t0.Add(m.Duration), t0.Add(10*time.Second)
			m.Exclusions = nil
			m.Scopes = []string{mandate.ScopeMailRead}
			m.ClientID = ""
			m.ConsentVersion, m.ConsentHash = "2030-02", "abc"
			m.ConsentReceipt = []byte(`{"version":"2030-02"}`)
			want = *m
			return nil
		})
		must(t, err)
		want.ID, want.Version = "m", 2
		if !reflect.DeepEqual(got, want) {
			t.Errorf("returned %+v\nwant     %+v", got, want)
		}
		if stored := getMandate(t, e, "m"); !reflect.DeepEqual(stored, want) {
			t.Errorf("stored %+v\nwant   %+v", stored, want)
		}
	})
	t.Run("empty receipt bytes read back as nil", func(t *testing.T) {
		must(t, e.s.CreateMandate(ctx, requested("empty-receipt")))
		got, err := e.s.UpdateMandate(ctx, "empty-receipt", func(m *mandate.Mandate) error {
			m.ConsentReceipt = []byte{}
			return nil
		})
		must(t, err)
		if got.ConsentReceipt != nil || getMandate(t, e, "empty-receipt").ConsentReceipt != nil {
			t.Errorf("empty receipt read back as %q", got.ConsentReceipt)
		}
	})
	t.Run("fn's error aborts, returned as is", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := e.s.UpdateMandate(ctx, "m", func(m *mandate.Mandate) error {
			m.Purpose = "lost"
			return boom
		})
		if err != boom {
			t.Errorf("error = %v, want boom itself", err)
		}
		_, err = e.s.UpdateMandate(ctx, "m", func(m *mandate.Mandate) error {
			_, err := mandate.Next(m.State, mandate.TransitionRefuse, "") // approved cannot be refused
			return err
		})
		wantErr(t, err, mandate.ErrInvalidTransition)
		wantErr(t, err, mandate.ErrConflict)
		if got := getMandate(t, e, "m"); got.Version != 2 || got.Purpose == "lost" || got.State != mandate.StateApproved {
			t.Errorf("an aborted update wrote: %+v", got)
		}
	})
	t.Run("unknown mandate", func(t *testing.T) {
		called := false
		_, err := e.s.UpdateMandate(ctx, "nope", func(*mandate.Mandate) error { called = true; return nil })
		wantErr(t, err, mandate.ErrNotFound)
		if called {
			t.Error("fn called for an unknown mandate")
		}
	})
	t.Run("inside a caller's transaction", func(t *testing.T) {
		tx, err := e.s.BeginTX(ctx)
		must(t, err)
		_, err = e.s.UpdateMandate(tx, "m", func(m *mandate.Mandate) error { m.Purpose = "rolled back"; return nil })
		must(t, err)
		if got, err := e.s.GetMandate(tx, "m"); err != nil || got.Purpose != "rolled back" || got.Version != 3 {
			t.Errorf("inside the transaction: %+v, %v", got, err)
		}
		must(t, e.s.Rollback(tx))
		if got := getMandate(t, e, "m"); got.Purpose == "rolled back" || got.Version != 2 {
			t.Errorf("after rollback: %+v", got)
		}
	})
}

// updaters is how many concurrent UpdateMandate calls race.
const updaters = 20

// raceUpdates runs fn in updaters goroutines released together.
func raceUpdates(fn func(i int) error) []error {
	errs := make([]error, updaters)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range updaters {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func testMandateConcurrentUpdate(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()

	t.Run("one transition wins", func(t *testing.T) {
		must(t, e.s.CreateMandate(ctx, requested("race")))
		transitions := []mandate.Transition{mandate.TransitionApprove, mandate.TransitionRefuse, mandate.TransitionLapse}
		errs := raceUpdates(func(i int) error {
			_, err := e.s.UpdateMandate(ctx, "race", func(m *mandate.Mandate) error {
				next, err := mandate.Next(m.State, transitions[i%len(transitions)], "")
				if err != nil {
					return err
				}
				m.State, m.DecidedAt = next, t0
				m.EndedBy = fmt.Sprint(i)
				return nil
			})
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("updates %d and %d both won", winner, i)
				}
				winner = i
			case !errors.Is(err, mandate.ErrInvalidTransition):
				t.Errorf("update %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no update won")
		}
		got := getMandate(t, e, "race")
		want, _ := mandate.Next(mandate.StateRequested, transitions[winner%len(transitions)], "")
		if got.Version != 2 || got.State != want || got.EndedBy != fmt.Sprint(winner) {
			t.Errorf("after the race: version %d, state %s, by %q; want 2, %s, %d", got.Version, got.State, got.EndedBy, want, winner)
		}
	})
	t.Run("no update is lost", func(t *testing.T) {
		m := requested("counter")
		m.Duration = 0
		must(t, e.s.CreateMandate(ctx, m))
		errs := raceUpdates(func(int) error {
			_, err := e.s.UpdateMandate(ctx, "counter", func(m *mandate.Mandate) error {
				m.Duration += time.Second
				return nil
			})
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		if got := getMandate(t, e, "counter"); got.Duration != updaters*time.Second || got.Version != updaters+1 {
			t.Errorf("after %d increments: duration %s, version %d", updaters, got.Duration, got.Version)
		}
	})
}

func testMandateExtendLease(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()
	now := t0
	until := now.Add(15 * time.Second)

	t.Run("moves a live lease without a new version", func(t *testing.T) {
		for _, st := range []mandate.State{mandate.StateActive, mandate.StateApproved} {
			m := newMandate("live-" + string(st))
			m.State = st
			must(t, e.s.CreateMandate(ctx, m))
			must(t, e.s.ExtendLease(ctx, m.ID, "h1", now, until))
			got := getMandate(t, e, m.ID)
			if !got.LeaseUntil.Equal(until) || got.Version != 1 {
				t.Errorf("%s: lease until %v, version %d; want %v, 1", st, got.LeaseUntil, got.Version, until)
			}
			want := m
			want.LeaseUntil = until
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: extending changed more than the lease: %+v", st, got)
			}
		}
	})
	t.Run("a delegation's lease moves like a session's", func(t *testing.T) {
		m := newMandate("delegation-beating")
		m.Kind = mandate.KindDelegation
		must(t, e.s.CreateMandate(ctx, m))
		must(t, e.s.ExtendLease(ctx, m.ID, "h1", now, until))
		if got := getMandate(t, e, m.ID); !got.LeaseUntil.Equal(until) {
			t.Errorf("delegation lease until %v, want %v", got.LeaseUntil, until)
		}
	})
	t.Run("refusals change nothing", func(t *testing.T) {
		for i, tt := range []struct {
			name   string
			edit   func(*mandate.Mandate)
			id     string // "" for the created one
			holder string // "" for h1
			want   error
		}{
			{name: "another holder's mandate", holder: "h2", want: mandate.ErrNotFound},
			{name: "unknown mandate", id: "nope", want: mandate.ErrNotFound},
			{name: "lease lapsed", edit: func(m *mandate.Mandate) { m.LeaseUntil = now.Add(-time.Second) }, want: mandate.ErrConflict},
			{name: "lease lapses right now", edit: func(m *mandate.Mandate) { m.LeaseUntil = now }, want: mandate.ErrConflict},
			{name: "no lease", edit: func(m *mandate.Mandate) { m.LeaseUntil = time.Time{} }, want: mandate.ErrConflict},
			{name: "ended", edit: func(m *mandate.Mandate) {
				m.State, m.EndReason, m.EndedAt = mandate.StateEnded, mandate.EndedByHolder, now.Add(-time.Second)
			}, want: mandate.ErrConflict},
			{name: "still requested", edit: func(m *mandate.Mandate) { m.State = mandate.StateRequested }, want: mandate.ErrConflict},
			{name: "refused", edit: func(m *mandate.Mandate) { m.State = mandate.StateRefused }, want: mandate.ErrConflict},
			{name: "relaxed presence", edit: func(m *mandate.Mandate) {
				m.Kind, m.Presence = mandate.KindDelegation, mandate.PresenceRelaxed
			}, want: mandate.ErrConflict},
			{name: "past its window", edit: func(m *mandate.Mandate) { m.NotAfter = now.Add(-time.Second) }, want: mandate.ErrConflict},
			{name: "window closes right now", edit: func(m *mandate.Mandate) { m.NotAfter = now }, want: mandate.ErrConflict},
		} {
			m := newMandate(fmt.Sprintf("refused-%d", i))
			if tt.edit != nil {
				tt.edit(&m)
			}
			must(t, e.s.CreateMandate(ctx, m))
			id, holder := m.ID, "h1"
			if tt.id != "" {
				id = tt.id
			}
			if tt.holder != "" {
				holder = tt.holder
			}
			err := e.s.ExtendLease(ctx, id, holder, now, until)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: error = %v, want %v", tt.name, err, tt.want)
			}
			if tt.want == mandate.ErrConflict && errors.Is(err, mandate.ErrNotFound) {
				t.Errorf("%s: error = %v is also ErrNotFound", tt.name, err)
			}
			if got := getMandate(t, e, m.ID); !reflect.DeepEqual(got, m) {
				t.Errorf("%s: a refused extension wrote %+v", tt.name, got)
			}
		}
	})
	t.Run("a lease end not after now is refused", func(t *testing.T) {
		m := newMandate("backwards")
		must(t, e.s.CreateMandate(ctx, m))
		for _, u := range []time.Time{now, now.Add(-time.Second)} {
			if err := e.s.ExtendLease(ctx, m.ID, "h1", now, u); err == nil || errors.Is(err, mandate.ErrNotFound) || errors.Is(err, mandate.ErrConflict) {
				t.Errorf("until %v: error = %v, want a plain error", u, err)
			}
		}
		if got := getMandate(t, e, m.ID); !got.LeaseUntil.Equal(m.LeaseUntil) {
			t.Errorf("lease moved to %v", got.LeaseUntil)
		}
	})
	t.Run("heartbeats keep a lease alive until one is missed", func(t *testing.T) {
		m := newMandate("beating")
		must(t, e.s.CreateMandate(ctx, m))
		at := now
		for range 5 {
			at = at.Add(8 * time.Second) // the lease lasts 10 s, moved 10 s ahead each time
			must(t, e.s.ExtendLease(ctx, m.ID, "h1", at, at.Add(10*time.Second)))
		}
		at = at.Add(10 * time.Second) // missed
		wantErr(t, e.s.ExtendLease(ctx, m.ID, "h1", at, at.Add(10*time.Second)), mandate.ErrConflict)
	})
}

func testDueMandates(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()
	now := t0
	past, future := now.Add(-time.Second), now.Add(time.Second)
	created := 0
	add := func(id string, edit func(*mandate.Mandate)) {
		t.Helper()
		m := newMandate(id)
		edit(&m)
		m.CreatedAt = t0.Add(-time.Hour + time.Duration(created)*time.Second) // creation order is the sweep's order
		created++
		must(t, e.s.CreateMandate(ctx, m))
	}
	ended := func(m *mandate.Mandate) {
		m.State, m.EndReason, m.EndedAt = mandate.StateEnded, mandate.EndedByExpiry, past
	}
	// Due: one per condition, boundaries included.
	add("due-unanswered", func(m *mandate.Mandate) { *m = requested(m.ID); m.AnswerBy = past })
	add("due-unanswered-now", func(m *mandate.Mandate) { *m = requested(m.ID); m.AnswerBy = now })
	add("due-window-active", func(m *mandate.Mandate) { m.NotAfter = past })
	add("due-window-approved-now", func(m *mandate.Mandate) { m.State, m.NotAfter = mandate.StateApproved, now })
	add("due-window-relaxed", func(m *mandate.Mandate) {
		m.Kind, m.Presence, m.LeaseUntil, m.NotAfter = mandate.KindDelegation, mandate.PresenceRelaxed, time.Time{}, past
	})
	add("due-lease-active", func(m *mandate.Mandate) { m.LeaseUntil = past })
	add("due-lease-approved-now", func(m *mandate.Mandate) { m.State, m.LeaseUntil = mandate.StateApproved, now })
	add("due-lease-never-started", func(m *mandate.Mandate) { m.State, m.LeaseUntil = mandate.StateApproved, time.Time{} })
	add("due-window-delegation", func(m *mandate.Mandate) { m.Kind, m.LeaseUntil, m.NotAfter = mandate.KindDelegation, past, now })
	// Not due.
	add("live-active", func(m *mandate.Mandate) { m.LeaseUntil, m.NotAfter = future, future })
	add("live-approved", func(m *mandate.Mandate) { m.State = mandate.StateApproved })
	add("live-relaxed", func(m *mandate.Mandate) {
		m.Kind, m.Presence, m.LeaseUntil = mandate.KindDelegation, mandate.PresenceRelaxed, time.Time{}
	})
	add("pending-request", func(m *mandate.Mandate) { *m = requested(m.ID); m.AnswerBy = future })
	add("request-past-window", func(m *mandate.Mandate) { // a requested delegation is due by AnswerBy only
		*m = requested(m.ID)
		m.NotBefore, m.NotAfter, m.AnswerBy = past.Add(-time.Hour), past, future
	})
	add("ended", ended)
	add("ended-request", func(m *mandate.Mandate) { *m = requested(m.ID); ended(m); m.AnswerBy = past })
	add("refused", func(m *mandate.Mandate) {
		*m = requested(m.ID)
		m.State, m.AnswerBy, m.DecidedAt = mandate.StateRefused, past, past
	})
	add("unanswered", func(m *mandate.Mandate) {
		*m = requested(m.ID)
		m.State, m.AnswerBy, m.DecidedAt = mandate.StateUnanswered, past, past
	})
	add("ended-lapsed", func(m *mandate.Mandate) { ended(m); m.LeaseUntil, m.NotAfter = past, past })
	// A delegation outlives its lease: lapsed, ended now, or never started.
	delegation := func(m *mandate.Mandate) { m.Kind, m.PurposeCategory = mandate.KindDelegation, mandate.PurposeAbsence }
	add("delegation-lease-lapsed", func(m *mandate.Mandate) { delegation(m); m.LeaseUntil = past })
	add("delegation-lease-lapses-now", func(m *mandate.Mandate) { delegation(m); m.State, m.LeaseUntil = mandate.StateApproved, now })
	add("delegation-lease-never-started", func(m *mandate.Mandate) {
		delegation(m)
		m.State, m.LeaseUntil, m.NotBefore = mandate.StateApproved, time.Time{}, future
	})

	wantDue := []string{
		"due-unanswered", "due-unanswered-now", "due-window-active", "due-window-approved-now", "due-window-relaxed",
		"due-lease-active", "due-lease-approved-now", "due-lease-never-started", "due-window-delegation",
	}
	due, err := e.s.DueMandates(ctx, now, 100)
	must(t, err)
	if got := mandateIDs(due); !slices.Equal(got, wantDue) {
		t.Errorf("DueMandates = %v\nwant           %v", got, wantDue)
	}
	if len(due) > 0 && !reflect.DeepEqual(due[0], getMandate(t, e, due[0].ID)) {
		t.Errorf("due mandate %+v differs from the stored one", due[0])
	}
	for _, tt := range []struct {
		limit int
		want  []string
	}{{3, wantDue[:3]}, {1, wantDue[:1]}, {0, wantDue[:1]}, {-5, wantDue[:1]}} {
		due, err := e.s.DueMandates(ctx, now, tt.limit)
		must(t, err)
		if got := mandateIDs(due); !slices.Equal(got, tt.want) {
			t.Errorf("DueMandates(limit %d) = %v, want %v", tt.limit, got, tt.want)
		}
	}
	due, err = e.s.DueMandates(ctx, now.Add(-time.Hour), 100)
	must(t, err)
	if got := mandateIDs(due); !slices.Equal(got, []string{"due-lease-never-started"}) {
		t.Errorf("DueMandates an hour earlier = %v, want only the lease that never started", got)
	}
}

func testListMandates(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()
	type spec struct {
		id, structure, holder, delegate string
		state                           mandate.State
		created                         time.Duration // after t0; equal ones are ordered by id
	}
	specs := []spec{
		{"a", "s1", "h1", "d1", mandate.StateActive, 1},
		{"b", "s1", "h1", "d2", mandate.StateEnded, 2},
		{"c", "s1", "h2", "d1", mandate.StateRequested, 2},
		{"d", "s2", "h3", "d3", mandate.StateActive, 2},
		{"e", "s1", "h2", "d2", mandate.StateRefused, 3},
		{"B", "s1", "h1", "d1", mandate.StateEnded, 3}, // "B" < "e" in byte order, on both dialects
		{"f", "s2", "h3", "d3", mandate.StateRequested, 4},
	}
	for _, sp := range specs {
		m := newMandate(sp.id)
		m.StructureID, m.HolderID, m.DelegateID, m.State = sp.structure, sp.holder, sp.delegate, sp.state
		m.CreatedAt = t0.Add(sp.created * time.Second)
		must(t, e.s.CreateMandate(ctx, m))
	}
	for _, tt := range []struct {
		name string
		q    mandate.Query
		want []string
	}{
		{"all, newest first, ties by id descending", mandate.Query{}, []string{"f", "e", "B", "d", "c", "b", "a"}},
		{"structure", mandate.Query{StructureID: "s1"}, []string{"e", "B", "c", "b", "a"}},
		{"holder", mandate.Query{HolderID: "h1"}, []string{"B", "b", "a"}},
		{"delegate", mandate.Query{DelegateID: "d2"}, []string{"e", "b"}},
		{"states", mandate.Query{States: []mandate.State{mandate.StateRequested, mandate.StateActive}}, []string{"f", "d", "c", "a"}},
		{"combined", mandate.Query{StructureID: "s1", DelegateID: "d1", States: []mandate.State{mandate.StateEnded}}, []string{"B"}},
		{"nothing", mandate.Query{HolderID: "h3", StructureID: "s1"}, nil},
		{"cursor inside a tie", mandate.Query{BeforeCreated: t0.Add(2 * time.Second), BeforeID: "c"}, []string{"b", "a"}},
		{"cursor with a filter", mandate.Query{HolderID: "h1", BeforeCreated: t0.Add(3 * time.Second), BeforeID: "B"}, []string{"b", "a"}},
	} {
		tt.q.Limit = 10
		got, err := e.s.ListMandates(ctx, tt.q)
		must(t, err)
		if !slices.Equal(mandateIDs(got), tt.want) {
			t.Errorf("%s: ListMandates = %v, want %v", tt.name, mandateIDs(got), tt.want)
		}
	}
	t.Run("pages cover everything once", func(t *testing.T) {
		for _, limit := range []int{1, 2, 3, 7} {
			var all []string
			q := mandate.Query{Limit: limit}
			for range 10 {
				page, err := e.s.ListMandates(ctx, q)
				must(t, err)
				if len(page) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(page))
				}
				if len(page) == 0 {
					break
				}
				all = append(all, mandateIDs(page)...)
				last := page[len(page)-1]
				q.BeforeCreated, q.BeforeID = last.CreatedAt, last.ID
			}
			if want := []string{"f", "e", "B", "d", "c", "b", "a"}; !slices.Equal(all, want) {
				t.Errorf("limit %d: pages = %v, want %v", limit, all, want)
			}
		}
	})
	t.Run("listed mandates are complete", func(t *testing.T) {
		got, err := e.s.ListMandates(ctx, mandate.Query{HolderID: "h3", States: []mandate.State{mandate.StateActive}, Limit: 1})
		must(t, err)
		if len(got) != 1 || !reflect.DeepEqual(got[0], getMandate(t, e, "d")) {
			t.Errorf("listed %+v", got)
		}
	})
	t.Run("limit clamped to 1..500", func(t *testing.T) {
		tx, err := e.s.BeginTX(ctx)
		must(t, err)
		for i := range 501 {
			m := requested(fmt.Sprintf("bulk-%03d", i))
			m.CreatedAt = t0.Add(-time.Hour)
			must(t, e.s.CreateMandate(tx, m))
		}
		must(t, e.s.Commit(tx))
		for _, tt := range []struct{ limit, want int }{{0, 1}, {-1, 1}, {1, 1}, {500, 500}, {501, 500}, {10000, 500}} {
			got, err := e.s.ListMandates(ctx, mandate.Query{Limit: tt.limit})
			must(t, err)
			if len(got) != tt.want {
				t.Errorf("limit %d: %d mandates, want %d", tt.limit, len(got), tt.want)
			}
		}
	})
}

func testMandatePolicy(t *testing.T, open Opener) {
	e := mandateEnv(t, open)
	ctx := t.Context()
	_, err := e.s.GetPolicy(ctx, "s1")
	wantErr(t, err, mandate.ErrNotFound)

	p := mandate.DefaultPolicy("s1")
	p.AllowRelaxedPresence = true
	p.MaxSessionDuration = 90*time.Minute + 500*time.Millisecond
	p.UpdatedAt, p.UpdatedBy = t0, "d1"
	must(t, e.s.PutPolicy(ctx, p))
	got, err := e.s.GetPolicy(ctx, "s1")
	must(t, err)
	if !reflect.DeepEqual(got, p) {
		t.Errorf("policy = %+v\nwant    %+v", got, p)
	}

	// Replaced, not added; UpdatedAt defaults to now.
	e.clock.Advance(time.Hour)
	q := mandate.Policy{StructureID: "s1", AllowedScopes: []string{mandate.ScopeMailRead},
		MaxSessionDuration: mandate.MinSessionDuration, MaxDelegationDuration: mandate.MaxDelegationDurationCap, UpdatedBy: "d2"}
	must(t, e.s.PutPolicy(ctx, q))
	q.UpdatedAt = e.clock.Now()
	got, err = e.s.GetPolicy(ctx, "s1")
	must(t, err)
	if !reflect.DeepEqual(got, q) {
		t.Errorf("replaced policy = %+v\nwant             %+v", got, q)
	}
	_, err = e.s.GetPolicy(ctx, "s2")
	wantErr(t, err, mandate.ErrNotFound)
	wantErr(t, e.s.PutPolicy(ctx, mandate.DefaultPolicy("nope")), mandate.ErrNotFound)
}
