package people_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// newEnvRecording is newEnv with the service recording into what rec
// returns (built on the env's store and clock).
func newEnvRecording(t *testing.T, rec func(*store.Store, *storetest.Clock) people.Recorder) env {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock})
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	svc := people.NewService(st, sealer, clock, nil, people.Config{Recorder: rec(st, clock)})
	return env{svc: svc, store: st, clock: clock}
}

func TestSignInEventsAreAudited(t *testing.T) {
	var log *storetest.AuditLog
	e := newEnvRecording(t, func(st *store.Store, clock *storetest.Clock) people.Recorder {
		log = storetest.StartAuditLog(t, st, clock)
		return log
	})
	staff, secret := e.enrolled(t, "marie@example.org", "mairie-lyon")
	if _, err := e.svc.SignInStaff(t.Context(), "marie@example.org", "wrong password, long enough", e.code(t, secret), "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := e.svc.SignInStaff(t.Context(), "nobody@example.org", testPassword, "123456", "192.0.2.1"); !errors.Is(err, people.ErrSignInFailed) {
		t.Fatalf("unknown email: %v", err)
	}
	p, err := e.svc.SignInStaff(t.Context(), "marie@example.org", testPassword, e.code(t, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, err := e.svc.StartSession(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.EndSession(t.Context(), cookie); err != nil {
		t.Fatal(err)
	}

	page, err := log.Query(t.Context(), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		action    audit.Action
		outcome   audit.Outcome
		actor     audit.ActorKind
		actorID   string
		structure string
		reason    string
	}
	var got []row
	for _, ev := range slices.Backward(page.Events) {
		got = append(got, row{ev.Action, ev.Outcome, ev.Actor.Kind, ev.Actor.ID, ev.Structure, ev.Reason})
		if ev.Target != "" || ev.Actor.Name == "nobody@example.org" {
			t.Errorf("event %d holds more than it should: %+v", ev.Seq, ev)
		}
	}
	want := []row{
		{audit.ActionEnrolmentDone, audit.OutcomeSuccess, audit.ActorStaff, staff.ID, staff.StructureID, ""},
		{audit.ActionSignInFailed, audit.OutcomeDenied, audit.ActorStaff, staff.ID, "", "bad credentials"},
		{audit.ActionSignInFailed, audit.OutcomeDenied, audit.ActorUnknown, "", "", "bad credentials: unknown account"},
		{audit.ActionSignInSucceeded, audit.OutcomeSuccess, audit.ActorStaff, staff.ID, staff.StructureID, ""},
		{audit.ActionSessionEnded, audit.OutcomeSuccess, audit.ActorStaff, staff.ID, "", "signed out"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log:\n got %+v\nwant %+v", got, want)
	}
}

// switchRecorder records nothing until failing is set, then fails like a
// database that refuses writes.
type switchRecorder struct{ failing bool }

func (r *switchRecorder) Record(context.Context, audit.Event) (int64, error) {
	if r.failing {
		return 0, errors.New("database refuses writes")
	}
	return 0, nil
}

func TestNoSignInWithoutItsRecord(t *testing.T) {
	rec := &switchRecorder{}
	e := newEnvRecording(t, func(*store.Store, *storetest.Clock) people.Recorder { return rec })
	_, secret := e.enrolled(t, "marie@example.org", "mairie-lyon")
	rec.failing = true
	p, err := e.svc.SignInStaff(t.Context(), "marie@example.org", testPassword, e.code(t, secret), "192.0.2.1")
	if err == nil || errors.Is(err, people.ErrSignInFailed) || p.ID != "" {
		t.Fatalf("sign-in while the log refuses writes: %+v, %v", p, err)
	}
}
