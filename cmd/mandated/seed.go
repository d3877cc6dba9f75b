package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mandated/mandated/people"
)

// devSeed fills a structure with a synthetic data set (staff accounts and
// holders) to measure the administration pages. Development only: nothing
// is audited and the accounts cannot sign in (no password).
func devSeed(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("dev seed", "dev seed --structure NAME [--staff N] [--holders N]", out)
	cfg.registerCommon(fs)
	structure := fs.String("structure", "", "the structure to fill, created if needed (required)")
	staff := fs.Int("staff", 500, "how many staff accounts to add (one admin, mediators, auditors; some pending, some deactivated)")
	holders := fs.Int("holders", 10000, "how many holders the structure serves to add")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *structure == "" || *staff < 0 || *holders < 0 || *staff > 100000 || *holders > 1000000 {
		return fmt.Errorf("dev seed needs --structure, and --staff (≤ 100000) and --holders (≤ 1000000) not negative")
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := people.SeedStructure(ctx, a.store, a.clock, *structure, *staff, *holders)
	if err != nil {
		return fmt.Errorf("seed %q (%d staff, %d holders so far): %w", *structure, r.Staff, r.Holders, err)
	}
	fmt.Fprintf(out, "structure %q (%s): added %d staff accounts and %d holders\n", r.Structure.Name, r.Structure.ID, r.Staff, r.Holders)
	return nil
}
