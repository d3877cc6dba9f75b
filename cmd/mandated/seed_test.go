package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
)

func TestDevSeedFillsAStructureWithStaffAndHolders(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"dev", "seed", "--data-dir", dir, "--log-level", "error", "--structure", "France Services Tulle", "--staff", "30", "--holders", "40"}
	if err := run(t.Context(), args, &out, io.Discard); err != nil {
		t.Fatalf("dev seed: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "added 30 staff accounts and 40 holders") {
		t.Errorf("output: %s", out.String())
	}
	// A second run adds to the same structure.
	if err := run(t.Context(), args, io.Discard, io.Discard); err != nil {
		t.Fatalf("second dev seed: %v", err)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "mandated.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.FindStructureByName(t.Context(), "France Services Tulle")
	if err != nil {
		t.Fatal(err)
	}
	staff, err := st.ListStaff(t.Context(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.CountHolders(t.Context(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[people.StaffStatus]int{}
	for _, x := range staff {
		statuses[x.Status]++
		if x.PasswordHash != "" {
			t.Errorf("seeded account %s has a password", x.Email)
		}
	}
	if len(staff) != 60 || n != 80 || statuses[people.StaffActive] == 0 || statuses[people.StaffPending] == 0 || statuses[people.StaffDeactivated] == 0 {
		t.Errorf("after two runs: %d staff %v, %d holders", len(staff), statuses, n)
	}
	for _, bad := range [][]string{
		{"dev", "seed", "--data-dir", dir},
		{"dev", "seed", "--data-dir", dir, "--structure", "X", "--staff", "-1"},
	} {
		if err := run(t.Context(), bad, io.Discard, io.Discard); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}
