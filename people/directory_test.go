package people_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
)

func TestDirectory(t *testing.T) {
	ctx := t.Context()
	st := storetest.OpenSQLite(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"A", "B"} {
		if err := st.CreateStructure(ctx, people.Structure{ID: s, Name: "Structure " + s, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []people.Staff{
		{ID: "active", Email: "a@example.org", DisplayName: "Awa", Role: people.RoleMediator, StructureID: "A", Status: people.StaffActive, CreatedAt: now},
		{ID: "gone", Email: "g@example.org", DisplayName: "Gilles", Role: people.RoleMediator, StructureID: "A", Status: people.StaffDeactivated, CreatedAt: now},
	} {
		if err := st.CreateStaff(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	h := people.Holder{ID: "h1", Mailbox: "marie@example.org", DisplayName: "Marie", Email: "marie.perso@example.net", Language: "fr", CreatedAt: now}
	if err := st.CreateHolder(ctx, h, "A"); err != nil {
		t.Fatal(err)
	}
	d := people.NewDirectory(st)

	p, err := d.Delegate(ctx, "active")
	if err != nil || !p.Active || p.StructureID != "A" || p.DisplayName != "Awa" {
		t.Fatalf("Delegate(active) = %+v, %v", p, err)
	}
	if p, err := d.Delegate(ctx, "gone"); err != nil || p.Active {
		t.Fatalf("Delegate(gone) = %+v, %v; want inactive", p, err)
	}
	if _, err := d.Delegate(ctx, "nobody"); !errors.Is(err, mandate.ErrNotFound) {
		t.Fatalf("Delegate(nobody) err = %v", err)
	}
	if p, err := d.Holder(ctx, "A", "h1"); err != nil || p.Mailbox != "marie@example.org" || p.DisplayName != "Marie" {
		t.Fatalf("Holder(A) = %+v, %v", p, err)
	}
	if p, err := d.HolderByMailbox(ctx, "A", "  Marie@Example.org "); err != nil || p.ID != "h1" {
		t.Fatalf("HolderByMailbox = %+v, %v", p, err)
	}
	// Another structure sees nobody: the same error as an unknown holder.
	for _, err := range []error{
		func() error { _, err := d.Holder(ctx, "B", "h1"); return err }(),
		func() error { _, err := d.HolderByMailbox(ctx, "B", "marie@example.org"); return err }(),
		func() error { _, err := d.Holder(ctx, "A", "nobody"); return err }(),
	} {
		if !errors.Is(err, mandate.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if name, err := d.StructureName(ctx, "B"); err != nil || name != "Structure B" {
		t.Fatalf("StructureName = %q, %v", name, err)
	}
}
