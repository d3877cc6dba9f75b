package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
)

func TestParseRetention(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"365d", 365 * 24 * time.Hour, true},
		{"8760h", 8760 * time.Hour, true},
		{"180d", 180 * 24 * time.Hour, true},
		{" 30d ", 30 * 24 * time.Hour, true},
		{"1095d", 1095 * 24 * time.Hour, true},
		{"29d", 0, false},
		{"24h", 0, false},
		{"0", 0, false},
		{"-365d", 0, false},
		{"1y", 0, false},
		{"", 0, false},
		{"d", 0, false},
	} {
		got, err := parseRetention(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseRetention(%q) = %v, %v", c.in, got, err)
		}
	}
	var p retentionPeriod
	if err := p.Set("180d"); err != nil || p.String() != "180d" {
		t.Errorf("180d reads back as %s, %v", p.String(), err)
	}
}

func TestRetentionSettings(t *testing.T) {
	parse := func(args ...string) (retentionConfig, error) {
		var c retentionConfig
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.register(fs)
		return c, fs.Parse(args)
	}
	c, err := parse()
	if err != nil || time.Duration(c.Audit) != 365*24*time.Hour || c.check() != nil {
		t.Errorf("default: %v %v %v", c.Audit.String(), err, c.check())
	}
	if _, err := parse("--audit-retention", "7d"); err == nil {
		t.Error("a week's retention accepted")
	}
	t.Setenv("MANDATED_AUDIT_RETENTION", "180d")
	if c, err := parse(); err != nil || c.Audit.String() != "180d" {
		t.Errorf("from the environment: %s %v", c.Audit.String(), err)
	}
	t.Setenv("MANDATED_AUDIT_RETENTION", "2d")
	if c, _ := parse(); c.check() == nil {
		t.Error("a bad environment value is not reported")
	}
}

// TestAuditRetentionCommand records events 400 days ago and now, then runs
// `mandated audit retention`: the old events' personal fields go, the new
// ones stay, and the export still verifies.
func TestAuditRetentionCommand(t *testing.T) {
	for name, newInstance := range map[string]func(*testing.T) *instance{
		"sqlite": newSQLiteInstance, "postgres": newPostgresInstance,
	} {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t)
			in.recordAt(time.Now().AddDate(0, 0, -400), 3)
			in.recordAt(time.Time{}, 2)
			out := in.cli("audit", "retention", "--dry-run")
			if !strings.HasPrefix(out, "would erase 4 person keys and 6 readable rows") {
				t.Fatalf("dry run: %s", out)
			}
			out = in.cli("audit", "retention", "--audit-retention", "180d")
			if !strings.HasPrefix(out, "erased 4 person keys and 6 readable rows") {
				t.Fatalf("retention: %s", out)
			}
			if out := in.cli("audit", "retention"); !strings.HasPrefix(out, "erased 0 person keys") {
				t.Fatalf("second run: %s", out)
			}
			key := strings.TrimSpace(in.cli("audit", "key"))
			file := filepath.Join(t.TempDir(), "audit.jsonl")
			in.cli("audit", "export", "--out", file)
			if out, err := verifyExport(t, file, key); err != nil {
				t.Fatalf("verify after retention: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var opened, closed int
			var retentionEvents int
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			for _, line := range lines[:len(lines)-1] {
				var e audit.ExportEntry
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatal(err)
				}
				fields, err := audit.ParseLeaf(e.Leaf)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case fields[audit.FieldAction] == string(audit.ActionRetentionApplied):
					retentionEvents++
				case fields[audit.FieldHolder+audit.CommitSuffix] == "":
				case len(e.Open) == 0:
					closed++
				default:
					opened++
				}
			}
			if closed != 3 || opened != 2 || retentionEvents != 1 {
				t.Errorf("after retention: %d events erased, %d readable, %d retention events; want 3, 2, 1", closed, opened, retentionEvents)
			}
		})
	}
}

// recordAt records n events at t (now when zero), in-process.
func (in *instance) recordAt(at time.Time, n int) {
	in.t.Helper()
	var cfg config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.registerCommon(fs)
	if err := fs.Parse(in.flags()); err != nil {
		in.t.Fatal(err)
	}
	a, err := openApp(in.t.Context(), &cfg, true)
	if err != nil {
		in.t.Fatal(err)
	}
	defer a.Close()
	for i := range n {
		if _, err := a.audit.Record(in.t.Context(), audit.Event{
			Time:  at,
			Actor: audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Agent"}, Holder: []string{"holder-1", "holder-2", "holder-3"}[i%3],
			Action: audit.ActionMailboxRead, Target: "message", Outcome: audit.OutcomeSuccess,
		}); err != nil {
			in.t.Fatal(err)
		}
	}
}

func TestAuditRetentionCommandRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "retention", "--before", "yesterday"},
		{"audit", "retention", "--audit-retention", "2d"},
		{"audit", "retention", "extra"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
	}
	in := newSQLiteInstance(t)
	var out strings.Builder
	err := run(t.Context(), append([]string{"audit", "retention", "--before", time.Now().Add(time.Hour).Format(time.RFC3339)}, in.flags()...), &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "future") {
		t.Errorf("a future cutoff: %v", err)
	}
}
