package mandate_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
)

func TestEndedSince(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testEndedSince(t, newWorldOn(t, b.open)) })
	}
}

func testEndedSince(t *testing.T, w *world) {
	ctx := t.Context()
	holderEnds := mandate.Actor{Kind: mandate.ActorHolder, ID: holder1}

	// a is created first and ends last; b ends before the cut; c is
	// refused (final, not ended); d is still active.
	a := w.approved(t)
	b := w.approved(t)
	c := w.request(t, session())
	d := w.approved(t)
	w.clock.Advance(time.Minute)
	_, err := w.svc.End(ctx, b.ID, mandate.EndedByHolder, holderEnds, "")
	must(t, err)
	w.clock.Advance(time.Minute)
	cut := w.clock.Now()
	_, err = w.svc.Refuse(ctx, holder1, c.ID, "")
	must(t, err)
	e := w.approved(t) // created after the cut, ends before a
	_, err = w.svc.End(ctx, e.ID, mandate.EndedByDelegate, mandate.Actor{Kind: mandate.ActorStaff, ID: mediator}, "")
	must(t, err)
	w.clock.Advance(time.Second)
	_, err = w.svc.End(ctx, a.ID, mandate.EndedByAdmin, mandate.Actor{Kind: mandate.ActorStaff, ID: admin}, "")
	must(t, err)

	ids := func(ms []mandate.Mandate) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	got, err := w.svc.EndedSince(ctx, cut, 10)
	must(t, err)
	if !slices.Equal(ids(got), []string{e.ID, a.ID}) {
		t.Fatalf("ended since the cut = %v, want [e a] = %v", ids(got), []string{e.ID, a.ID})
	}
	if got[1].EndReason != mandate.EndedByAdmin || got[1].State != mandate.StateEnded {
		t.Errorf("a = %+v", got[1])
	}
	got, err = w.svc.EndedSince(ctx, cut.Add(-time.Hour), 10)
	must(t, err)
	if !slices.Equal(ids(got), []string{b.ID, e.ID, a.ID}) {
		t.Fatalf("ended in the last hour = %v", ids(got))
	}
	got, err = w.svc.EndedSince(ctx, cut.Add(-time.Hour), 2)
	must(t, err)
	if !slices.Equal(ids(got), []string{b.ID, e.ID}) {
		t.Fatalf("limit 2 = %v, want the two earliest endings", ids(got))
	}
	// The bound is inclusive: since = a's EndedAt gives a.
	got, err = w.svc.EndedSince(ctx, w.get(t, a.ID).EndedAt, 10)
	must(t, err)
	if !slices.Equal(ids(got), []string{a.ID}) {
		t.Fatalf("since a's ending = %v", ids(got))
	}
	if got, _ := w.svc.EndedSince(ctx, w.clock.Now().Add(time.Second), 10); len(got) != 0 {
		t.Fatalf("ended in the future = %v", ids(got))
	}
	_ = d
	for _, bad := range []int{0, -1, 501} {
		_, err := w.svc.EndedSince(ctx, cut, bad)
		wantErr(t, err, mandate.ErrInvalidRequest)
	}
}

// More ended mandates than one store page, created in the opposite order
// of their endings: every one is found, earliest ending first.
func TestEndedSinceReadsEveryPage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testEndedSinceReadsEveryPage(t, newWorldOn(t, b.open)) })
	}
}

func testEndedSinceReadsEveryPage(t *testing.T, w *world) {
	ctx := t.Context()
	t0 := w.clock.Now()
	const n = 520
	var want []string
	for i := range n {
		m := mandate.Mandate{
			ID: fmt.Sprintf("m%04d", i), Kind: mandate.KindSession, StructureID: structure1, HolderID: holder1,
			Mailbox: "awa.diallo@example.org", DelegateID: mediator, ClientID: client, Scopes: []string{mandate.ScopeMailRead},
			PurposeCategory: mandate.PurposeSocial, Presence: mandate.PresenceRequired, Duration: time.Hour,
			AnswerBy: t0.Add(time.Hour), State: mandate.StateEnded, EndReason: mandate.EndedByExpiry,
			CreatedAt: t0.Add(time.Duration(i) * time.Second), EndedAt: t0.Add(time.Duration(2*n-i) * time.Second), Version: 1,
		}
		must(t, w.store.CreateMandate(ctx, m))
		if i < n-10 { // the ten created last end first, before since
			want = append(want, m.ID)
		}
	}
	slices.Reverse(want)
	since := t0.Add(time.Duration(2*n-(n-11)) * time.Second)
	got, err := w.svc.EndedSince(ctx, since, 500)
	must(t, err)
	if len(got) != 500 {
		t.Fatalf("got %d, want 500 (the limit)", len(got))
	}
	for i, m := range got {
		if m.ID != want[i] {
			t.Fatalf("ending %d is %s, want %s", i, m.ID, want[i])
		}
	}
	rest, err := w.svc.EndedSince(ctx, got[len(got)-1].EndedAt, 500)
	must(t, err)
	if len(rest) != len(want)-499 || rest[0].ID != got[len(got)-1].ID || rest[len(rest)-1].ID != want[len(want)-1] {
		t.Fatalf("the next page has %d, from %s to %s", len(rest), rest[0].ID, rest[len(rest)-1].ID)
	}
}
