package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/mandated/mandated/audit"
)

func auditKey(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("audit key", "audit key [flags]\n\nPrints the note verifier key (name+hash+key) auditors check checkpoints and exports with;\nthe server also serves it at GET /audit/key. Its name is the log's origin, derived from --issuer.", out)
	cfg.registerCommon(fs)
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	_, err = fmt.Fprintln(out, a.audit.VerifierKey())
	return err
}

func auditExport(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("audit export", "audit export [--since RFC3339] [--until RFC3339] --out FILE [flags]", out)
	cfg.registerCommon(fs)
	since := fs.String("since", "", "export events recorded at or after this time (RFC 3339, e.g. 2025-01-31T00:00:00Z)")
	until := fs.String("until", "", "export events recorded before this time (RFC 3339)")
	outPath := fs.String("out", "", "file to write the export to (required; created with mode 0600, it holds personal data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit export: unexpected argument %q", fs.Arg(0))
	}
	if *outPath == "" {
		return errors.New("audit export: --out FILE is required")
	}
	from, err := parseTimeFlag("since", *since)
	if err != nil {
		return err
	}
	to, err := parseTimeFlag("until", *until)
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return errors.New("audit export: --since must be before --until")
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()

	// Write next to the target and rename, so a failed export leaves no
	// half-written file behind.
	tmp, err := os.CreateTemp(filepath.Dir(*outPath), ".audit-export-*")
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := a.audit.Export(ctx, from, to, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := os.Rename(tmp.Name(), *outPath); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	fmt.Fprintf(out, "wrote %s; check it with: mandated audit verify %s --key '%s'\n", *outPath, *outPath, a.audit.VerifierKey())
	return nil
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2025-01-31T00:00:00Z", name, v)
	}
	return t, nil
}

// auditVerify checks an export offline: it never opens the database.
func auditVerify(_ context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("audit verify", "audit verify FILE --key KEY\n\nChecks the checkpoint and range signatures, every entry's inclusion proof and leaf, every\nopened personal field, and that the entries are exactly the signed range, in order. Needs no\ndatabase. Exits non-zero and names every wrong entry when the export does not verify.", out)
	key := fs.String("key", "", "the log's verifier key, as printed by `mandated audit key` or served at /audit/key (required)")
	pos, err := parseWithPositionals(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("audit verify: give exactly one export FILE")
	}
	if *key == "" {
		return errors.New("audit verify: --key KEY is required")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	// Verifying makes ~2 KB of short-lived garbage per event (crypto/hmac
	// allocates its digests) over a live heap of a few MB: collecting at 4×
	// the live heap instead of 2× saves ~6 % of the time for ~40 MB more
	// (docs/benchmarks.md). GOGC, when set, still wins.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	rep, err := audit.VerifyExport(f, *key)
	if err != nil {
		fmt.Fprintf(out, "FAILED: %s does not verify\n", pos[0])
		for _, p := range rep.Problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		if len(rep.Problems) == 0 {
			fmt.Fprintf(out, "  %v\n", err)
		}
		return err
	}
	if rep.Entries == 0 {
		fmt.Fprintf(out, "OK: no events in the export; its signed checkpoint (%d events) verifies\n", rep.Size)
		return nil
	}
	fmt.Fprintf(out, "OK: %d events (%d to %d) verified against a signed checkpoint of %d events\n",
		rep.Entries, rep.From, rep.To-1, rep.Size)
	return nil
}

// auditRetention applies (or, with --dry-run, counts) the audit retention:
// the person keys and readable fields of whole UTC months before the cutoff
// are erased; leaves, hashes and checkpoints stay.
func auditRetention(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("audit retention", "audit retention [--before RFC3339] [--dry-run] [flags]\n\n"+
		"Erases, for every person, the audit keys and readable fields of the UTC months that ended\n"+
		"before the cutoff (default: now minus --audit-retention), and legacy keys whose events are\n"+
		"all older. The tree, checkpoints and every proof still verify; exports show those fields as\n"+
		"erased. `mandated serve` does this daily; the run is itself an audit event.", out)
	cfg.registerCommon(fs)
	cfg.Retention.register(fs)
	beforeFlag := fs.String("before", "", "cutoff (RFC 3339); default: now minus --audit-retention")
	dryRun := fs.Bool("dry-run", false, "only count what would be erased")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit retention: unexpected argument %q", fs.Arg(0))
	}
	before, err := parseTimeFlag("before", *beforeFlag)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	now := a.clock.Now()
	if before.IsZero() {
		if err := cfg.Retention.check(); err != nil {
			return err
		}
		before = cfg.Retention.retentionCutoff(now)
	} else if before.After(now) {
		return errors.New("audit retention: --before must not be in the future")
	}
	if *dryRun {
		r, err := a.audit.PlanRetention(ctx, before)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "would erase %d person keys and %d readable rows: months before %s, legacy keys with no event since %s\n",
			r.Keys, r.Readable, r.Period, r.Before.Format(time.RFC3339))
		return nil
	}
	r, err := a.audit.ApplyRetention(ctx, before)
	if err != nil {
		return err
	}
	if r.Skipped {
		fmt.Fprintln(out, "another process is applying the audit retention; nothing done")
		return nil
	}
	fmt.Fprintf(out, "erased %d person keys and %d readable rows: months before %s, legacy keys with no event since %s\n",
		r.Keys, r.Readable, r.Period, r.Before.Format(time.RFC3339))
	return nil
}
