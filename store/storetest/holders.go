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

// newHolder is a holder with every field set.
func (e env) newHolder(id, mailbox, name string) people.Holder {
	return people.Holder{
		ID: id, Mailbox: mailbox, DisplayName: name, Phone: "+33612345678", Email: "contact-" + id + "@example.net",
		Language: "fr", CreatedAt: e.clock.Now(),
	}
}

func testHolders(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s1", Name: "One", CreatedAt: t0}))
	must(t, e.s.CreateStructure(ctx, people.Structure{ID: "s2", Name: "Two", CreatedAt: t0}))
	staff := e.createStaff(t, "staff-1", "agent@example.org", "s1")

	confirmed := t0.Add(time.Minute)
	h1 := e.newHolder("h1", "Marie.Dupont@Example.ORG", "Marie Dupont")
	h1.StaffID = staff.ID
	h1.ContactConfirmedAt = &confirmed
	must(t, e.s.CreateHolder(ctx, h1, "s1"))

	t.Run("round trip, mailbox lower-cased, found in any case", func(t *testing.T) {
		want := h1
		want.Mailbox = "marie.dupont@example.org"
		for _, get := range []func() (people.Holder, error){
			func() (people.Holder, error) { return e.s.GetHolder(ctx, "h1") },
			func() (people.Holder, error) { return e.s.FindHolderByMailbox(ctx, "MARIE.dupont@example.org") },
		} {
			got, err := get()
			must(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("holder = %+v\nwant     %+v", got, want)
			}
		}
	})
	t.Run("unique and referential errors", func(t *testing.T) {
		wantErr(t, e.s.CreateHolder(ctx, e.newHolder("h9", "marie.dupont@EXAMPLE.org", "Other"), "s2"), mandate.ErrAlreadyExists)
		wantErr(t, e.s.CreateHolder(ctx, e.newHolder("h1", "new@example.org", "Other"), "s2"), mandate.ErrAlreadyExists)
		wantErr(t, e.s.CreateHolder(ctx, e.newHolder("h8", "nostructure@example.org", "Other"), "nope"), mandate.ErrNotFound)
		// The failed creation left nothing behind (one transaction).
		_, err := e.s.FindHolderByMailbox(ctx, "nostructure@example.org")
		wantErr(t, err, mandate.ErrNotFound)
		_, err = e.s.GetHolder(ctx, "nope")
		wantErr(t, err, mandate.ErrNotFound)
		wantErr(t, e.s.LinkHolder(ctx, "nope", "s1", t0), mandate.ErrNotFound)
		wantErr(t, e.s.LinkHolder(ctx, "h1", "nope", t0), mandate.ErrNotFound)
		wantErr(t, e.s.UpdateHolder(ctx, "nope", func(*people.Holder) error { return nil }), mandate.ErrNotFound)
	})
	t.Run("links: served by, structures, linking twice", func(t *testing.T) {
		served, err := e.s.HolderServedBy(ctx, "h1", "s2")
		must(t, err)
		if served {
			t.Fatal("h1 served by s2 before being linked")
		}
		must(t, e.s.LinkHolder(ctx, "h1", "s2", t0))
		must(t, e.s.LinkHolder(ctx, "h1", "s2", t0.Add(time.Hour))) // twice: no error
		for _, s := range []string{"s1", "s2"} {
			served, err := e.s.HolderServedBy(ctx, "h1", s)
			must(t, err)
			if !served {
				t.Errorf("h1 not served by %s", s)
			}
		}
		ids, err := e.s.HolderStructures(ctx, "h1")
		must(t, err)
		if !slices.Equal(ids, []string{"s1", "s2"}) {
			t.Errorf("HolderStructures = %v", ids)
		}
		served, err = e.s.HolderServedBy(ctx, "nope", "s1")
		must(t, err)
		if served {
			t.Error("unknown holder served")
		}
	})
	t.Run("update writes every field; fn's error aborts", func(t *testing.T) {
		must(t, e.s.UpdateHolder(ctx, "h1", func(h *people.Holder) error {
			h.ID = "changed" // ignored
			h.DisplayName = "Marie Martin"
			h.Phone = ""
			h.ContactConfirmedAt = nil
			h.StaffID = ""
			return nil
		}))
		got, err := e.s.GetHolder(ctx, "h1")
		must(t, err)
		if got.DisplayName != "Marie Martin" || got.Phone != "" || got.ContactConfirmedAt != nil || got.StaffID != "" || got.Email != h1.Email {
			t.Errorf("after update: %+v", got)
		}
		boom := errors.New("boom")
		wantErr(t, e.s.UpdateHolder(ctx, "h1", func(h *people.Holder) error { h.DisplayName = "Lost"; return boom }), boom)
		got, err = e.s.GetHolder(ctx, "h1")
		must(t, err)
		if got.DisplayName != "Marie Martin" {
			t.Errorf("an aborted update wrote %q", got.DisplayName)
		}
	})
	t.Run("list by structure, ordered by mailbox, paged, searched", func(t *testing.T) {
		for i, name := range []string{"Zoé Éléonore", "Ali Ben", "Chloé 100%_sûr", "Bob"} {
			must(t, e.s.CreateHolder(ctx, e.newHolder(fmt.Sprintf("l%d", i), fmt.Sprintf("m%d@example.org", 3-i), name), "s2"))
		}
		must(t, e.s.CreateHolder(ctx, e.newHolder("other", "a-other@example.org", "Elsewhere"), "s1"))
		ids := func(hs []people.Holder) []string {
			var out []string
			for _, h := range hs {
				out = append(out, h.ID)
			}
			return out
		}
		for _, tt := range []struct {
			name string
			q    people.HolderQuery
			want []string
		}{
			{"all", people.HolderQuery{Limit: 10}, []string{"l3", "l2", "l1", "l0", "h1"}},
			{"first page", people.HolderQuery{Limit: 2}, []string{"l3", "l2"}},
			{"after", people.HolderQuery{Limit: 2, After: "M0@example.org"}, []string{"l2", "l1"}},
			{"next page", people.HolderQuery{Limit: 2, After: "m2@example.org"}, []string{"l0", "h1"}},
			{"last page", people.HolderQuery{Limit: 2, After: "m3@example.org"}, []string{"h1"}},
			{"search mailbox, any case", people.HolderQuery{Search: "M2@EX", Limit: 10}, []string{"l1"}},
			{"search name, accents folded in case", people.HolderQuery{Search: "ÉLÉO", Limit: 10}, []string{"l0"}},
			{"search wildcards are literal", people.HolderQuery{Search: "%_", Limit: 10}, []string{"l2"}},
			{"search underscore alone", people.HolderQuery{Search: "_", Limit: 10}, []string{"l2"}},
			{"search and after", people.HolderQuery{Search: "example.org", After: "m1@example.org", Limit: 10}, []string{"l1", "l0", "h1"}},
			{"nothing found", people.HolderQuery{Search: "nobody", Limit: 10}, nil},
			{"search follows a renamed holder", people.HolderQuery{Search: "MARTIN", Limit: 10}, []string{"h1"}},
			{"search forgets the old name", people.HolderQuery{Search: "dupont ", Limit: 10}, nil},
		} {
			got, err := e.s.ListHolders(ctx, "s2", tt.q)
			must(t, err)
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("%s: ListHolders = %v, want %v", tt.name, ids(got), tt.want)
			}
		}
		list, err := e.s.ListHolders(ctx, "s1", people.HolderQuery{Limit: 10})
		must(t, err)
		if !slices.Equal(ids(list), []string{"other", "h1"}) {
			t.Errorf("s1 lists %v", ids(list))
		}
		for s, want := range map[string]int{"s1": 2, "s2": 5, "none": 0} {
			n, err := e.s.CountHolders(ctx, s)
			must(t, err)
			if n != want {
				t.Errorf("CountHolders(%s) = %d, want %d", s, n, want)
			}
		}
	})
	t.Run("a transaction's creations roll back together", func(t *testing.T) {
		tx, err := e.s.BeginTX(ctx)
		must(t, err)
		must(t, e.s.CreateHolder(tx, e.newHolder("tx1", "tx1@example.org", "In tx"), "s1"))
		must(t, e.s.LinkHolder(tx, "l0", "s1", t0))
		must(t, e.s.Rollback(tx))
		_, err = e.s.GetHolder(ctx, "tx1")
		wantErr(t, err, mandate.ErrNotFound)
		served, err := e.s.HolderServedBy(ctx, "l0", "s1")
		must(t, err)
		if served {
			t.Error("a rolled back link stayed")
		}
	})
	t.Run("concurrent creations of one mailbox: exactly one wins", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				errs[i] = e.s.CreateHolder(ctx, e.newHolder(fmt.Sprintf("race%d", i), "race@example.org", "Race"), "s1")
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, mandate.ErrAlreadyExists):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d creations won, want 1", won)
		}
	})
}
