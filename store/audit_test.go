package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

var dialects = []struct {
	name string
	open func(testing.TB) *store.Store
}{
	{"SQLite", storetest.OpenSQLite},
	{"Postgres", storetest.OpenPostgres},
}

func recordSome(t testing.TB, l *storetest.AuditLog, n int) {
	t.Helper()
	for i := range n {
		_, err := l.Record(t.Context(), audit.Event{
			Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Agent"},
			Holder: "holder-1", Structure: "mairie", Action: audit.ActionMailboxRead,
			Target: "message-" + string(rune('a'+i%26)), Outcome: audit.OutcomeSuccess,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditTablesRejectUpdateAndDelete issues UPDATE, DELETE (and TRUNCATE
// on PostgreSQL) straight at the log tables: the triggers refuse each, and
// the log still verifies.
func TestAuditTablesRejectUpdateAndDelete(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := d.open(t)
			l := storetest.StartAuditLog(t, s, nil)
			recordSome(t, l, 5)
			if _, err := l.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			stmts := []string{
				"UPDATE audit_events SET action = 'mailbox.send' WHERE seq = 1",
				"DELETE FROM audit_events WHERE seq = 4",
				"UPDATE audit_hashes SET hash = hash",
				"DELETE FROM audit_hashes",
				"UPDATE audit_checkpoints SET note = note",
				"DELETE FROM audit_checkpoints",
				"UPDATE audit_tree_head SET size = 2",
				"DELETE FROM audit_tree_head",
			}
			if s.Dialect() == store.DialectPostgres {
				stmts = append(stmts, "TRUNCATE audit_events", "TRUNCATE audit_hashes", "TRUNCATE audit_checkpoints", "TRUNCATE audit_tree_head")
			}
			for _, q := range stmts {
				err := store.ExecAuditSQL(t.Context(), s, q)
				if err == nil || !strings.Contains(err.Error(), "append-only") && !strings.Contains(err.Error(), "only grows") && !strings.Contains(err.Error(), "permanent") {
					t.Errorf("%s: %v, want refused by a trigger", q, err)
				}
			}
			var buf bytes.Buffer
			if err := l.Export(t.Context(), time.Time{}, time.Time{}, &buf); err != nil {
				t.Fatal(err)
			}
			if rep, err := audit.VerifyExport(&buf, l.VerifierKey()); err != nil || rep.Entries != 5 {
				t.Fatalf("verify after refused statements: %d entries, %v", rep.Entries, err)
			}
		})
	}
}

// TestAuditRewriteWithTriggersDisabledIsCaught plays a superuser who
// disables the triggers and rewrites one leaf: the export no longer
// verifies and names that event.
func TestAuditRewriteWithTriggersDisabledIsCaught(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := d.open(t)
			l := storetest.StartAuditLog(t, s, nil)
			recordSome(t, l, 6)
			rewrite := []string{
				"DROP TRIGGER audit_events_no_update",
				"UPDATE audit_events SET leaf = CAST(replace(CAST(leaf AS TEXT), 'mailbox.read', 'mailbox.move') AS BLOB) WHERE seq = 2",
			}
			if s.Dialect() == store.DialectPostgres {
				rewrite = []string{
					"ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
					"UPDATE audit_events SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'mailbox.read', 'mailbox.move'), 'UTF8') WHERE seq = 2",
				}
			}
			for _, q := range rewrite {
				if err := store.ExecAuditSQL(t.Context(), s, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			var buf bytes.Buffer
			if err := l.Export(t.Context(), time.Time{}, time.Time{}, &buf); err != nil {
				t.Fatal(err)
			}
			leaves, err := s.AuditLeaves(t.Context(), 2, 3)
			if err != nil || !bytes.Contains(leaves[0].Data, []byte("mailbox.move")) {
				t.Fatalf("rewrite did not happen: %v", err)
			}
			rep, err := audit.VerifyExport(&buf, l.VerifierKey())
			if !errors.Is(err, audit.ErrVerify) {
				t.Fatalf("rewritten log verified: %v", err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Index != 2 {
				t.Errorf("problems = %v, want exactly event 2", rep.Problems)
			}
		})
	}
}

// TestAuditRecordFailsWhenTheDatabaseRefuses closes the database under a
// running log: Record reports the failure, so the caller can refuse.
func TestAuditRecordFailsWhenTheDatabaseRefuses(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := d.open(t)
			l := storetest.StartAuditLog(t, s, nil)
			recordSome(t, l, 1)
			if err := store.ExecAuditSQL(t.Context(), s, "DROP TABLE audit_readable"); err != nil {
				t.Fatal(err)
			}
			_, err := l.Record(t.Context(), audit.Event{
				Actor: audit.Actor{Kind: audit.ActorHolder, ID: "holder-1"}, Action: audit.ActionConsentGranted,
				Outcome: audit.OutcomeSuccess,
			})
			if err == nil {
				t.Fatal("Record succeeded though its readable fields could not be written")
			}
			if size, err := s.AuditTreeSize(t.Context()); err != nil || size != 1 {
				t.Errorf("tree size = %d (%v) after a failed batch, want 1: nothing half-way", size, err)
			}
		})
	}
}

// TestAuditTwoProcessesShareOnePostgresLog runs two stores (two processes'
// connection pools) on one schema, each with its own writer: the advisory
// lock serialises their batches and sequence numbers stay gap-free.
func TestAuditTwoProcessesShareOnePostgresLog(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	var logs []*storetest.AuditLog
	for range 2 {
		s, err := store.Open(t.Context(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, storetest.StartAuditLog(t, s, nil))
	}
	const n = 200
	seqs := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, err := logs[i%2].Record(t.Context(), audit.Event{
				Actor: audit.Actor{Kind: audit.ActorSystem}, Action: audit.ActionKeyRotated, Outcome: audit.OutcomeSuccess,
			})
			if err != nil {
				t.Error(err)
			}
			seqs[i] = seq
		}()
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("gap or duplicate at %d: %v", i, seqs)
		}
	}
	var buf bytes.Buffer
	if err := logs[1].Export(t.Context(), time.Time{}, time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.VerifyExport(&buf, logs[0].VerifierKey()); err != nil || rep.Entries != n {
		t.Fatalf("verify: %d entries, %v", rep.Entries, err)
	}
}

// TestAuditRecordAfterRunStopsFails: no writer, no record, and no hang.
func TestAuditRecordAfterRunStopsFails(t *testing.T) {
	s := storetest.OpenSQLite(t)
	sealer, err := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(t.Context(), audit.Config{Store: s, Sealer: sealer, Origin: "test/audit"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = l.Record(t.Context(), audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem}, Action: audit.ActionKeyRotated, Outcome: audit.OutcomeSuccess})
	if !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Record after Run stopped = %v, want ErrClosed", err)
	}
}

// BenchmarkAuditRecord measures durable Record throughput with parallel
// callers (b.SetParallelism(8) per core).
func BenchmarkAuditRecord(b *testing.B) {
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			s := d.open(b)
			l := storetest.StartAuditLog(b, s, nil)
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Record(b.Context(), audit.Event{
						Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Agent"},
						Holder: "holder-1", Action: audit.ActionMailboxRead, Outcome: audit.OutcomeSuccess,
						Target: "message", ClientID: "webmail",
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestAuditLegacyKeysSurviveMigration builds a log as the code before
// migration 00004 wrote it (one key per person, readable fields without
// period), migrates it, and checks that the legacy keys keep working (reads,
// exports, new events), that retention erases a person's legacy key only
// once all their legacy events are older than the cutoff, and that
// ErasePerson erases it.
func TestAuditLegacyKeysSurviveMigration(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize)) // StartAuditLog's
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"SQLite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "legacy.db") }},
		{"Postgres", func(t *testing.T) string { return storetest.PostgresSchema(t) }},
	} {
		t.Run(d.name, func(t *testing.T) {
			// Legacy events: January 10 to 19, 2030, one a day. "early" only
			// acts on the 10th; holder-0 and holder-1 every other day.
			clock := storetest.NewClock(time.Date(2030, 1, 10, 9, 0, 0, 0, time.UTC))
			src := storetest.OpenSQLite(t)
			srcLog := storetest.StartAuditLog(t, src, clock)
			for i := range 10 {
				ev := audit.Event{
					Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Agent"},
					Holder: fmt.Sprintf("holder-%d", i%2), Action: audit.ActionMailboxRead,
					Target: fmt.Sprintf("message-%d", i), Outcome: audit.OutcomeSuccess,
				}
				if i == 0 {
					ev.Holder = "early"
				}
				if _, err := srcLog.Record(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
				clock.Advance(24 * time.Hour)
			}
			old, err := store.Open(t.Context(), d.dsn(t), store.Options{Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { old.Close() })
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(store.MigrateTo(t.Context(), old, 3))
			must(store.CopyAuditAsLegacy(t.Context(), src, old, sealer))
			must(old.Migrate(t.Context()))

			clock.Advance(60 * 24 * time.Hour) // March 2030
			l := storetest.StartAuditLog(t, old, clock)
			keys, err := old.AuditPersonKeys(t.Context(), []string{"staff-1", "holder-0", "holder-1", "early"}, nil)
			must(err)
			for _, k := range keys {
				if k.Period != audit.LegacyPeriod {
					t.Errorf("migrated key of %s has period %q", k.Person, k.Period)
				}
			}
			if len(keys) != 4 {
				t.Fatalf("%d legacy keys after migration, want 4", len(keys))
			}
			opened := func() map[int64]map[string]audit.OpenedField {
				t.Helper()
				var buf bytes.Buffer
				must(l.Export(t.Context(), time.Time{}, time.Time{}, &buf))
				if _, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), l.VerifierKey()); err != nil {
					t.Fatalf("export does not verify: %v", err)
				}
				out := map[int64]map[string]audit.OpenedField{}
				lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
				for _, line := range lines[:len(lines)-1] {
					var e audit.ExportEntry
					must(json.Unmarshal([]byte(line), &e))
					out[e.Index] = e.Open
				}
				return out
			}
			if o := opened(); o[0]["holder"].Value != "early" || o[3]["holder"].Value != "holder-1" || o[3]["actor_id"].Value != "staff-1" {
				t.Fatalf("legacy fields do not open: %v", o)
			}
			// A new event of a legacy person: a key of its period, both read back.
			seq, err := l.Record(t.Context(), audit.Event{
				Actor: audit.Actor{Kind: audit.ActorHolder, ID: "holder-1"}, Action: audit.ActionConsentGranted, Outcome: audit.OutcomeSuccess,
			})
			must(err)
			p, err := l.Query(t.Context(), audit.Filter{Actor: "holder-1"})
			must(err)
			if len(p.Events) != 1 || p.Events[0].Seq != seq {
				t.Errorf("new event of a legacy person: %+v", p.Events)
			}
			p, err = l.Query(t.Context(), audit.Filter{Holder: "holder-1"})
			must(err)
			if len(p.Events) != 5 || p.Events[0].Target != "message-9" {
				t.Errorf("legacy events of holder-1: %+v", p.Events)
			}

			// Cutoff on the 15th: only "early" has no legacy event after it.
			r, err := l.ApplyRetention(t.Context(), time.Date(2030, 1, 15, 0, 0, 0, 0, time.UTC))
			must(err)
			if r.Keys != 1 || r.Readable != 1 {
				t.Errorf("retention on Jan 15 erased %+v, want early's key and field", r)
			}
			o := opened()
			if _, ok := o[0]["holder"]; ok || o[0]["actor_id"].Value != "staff-1" || o[1]["holder"].Value != "holder-1" {
				t.Errorf("after retention on Jan 15: %v", o)
			}
			// ErasePerson takes the legacy key too.
			must(l.ErasePerson(t.Context(), "holder-0"))
			if k, _ := old.AuditPersonKeys(t.Context(), []string{"holder-0"}, nil); len(k) != 0 {
				t.Errorf("holder-0 keys after erasure: %v", k)
			}
			// Cutoff on February 1: every legacy key goes, March's stays.
			r, err = l.ApplyRetention(t.Context(), time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC))
			must(err)
			if r.Keys != 2 { // staff-1 and holder-1's legacy keys
				t.Errorf("retention on Feb 1 erased %+v, want 2 keys", r)
			}
			keys, err = old.AuditPersonKeys(t.Context(), []string{"staff-1", "holder-0", "holder-1", "early"}, nil)
			must(err)
			if len(keys) != 1 || keys[0].Person != "holder-1" || keys[0].Period != "2030-03" {
				t.Errorf("keys left: %+v", keys)
			}
			o = opened()
			for seq, f := range o {
				if (len(f) > 0) != (seq == 10) {
					t.Errorf("event %d opens %v", seq, f)
				}
			}
		})
	}
}

// TestAuditPeriodsMigrationRollsBack: 00004 down keeps the legacy keys
// (and drops the period ones), and up again works.
func TestAuditPeriodsMigrationRollsBack(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := d.open(t)
			l := storetest.StartAuditLog(t, s, nil)
			recordSome(t, l, 3)
			if err := store.MigrateDownTo(t.Context(), s, 3); err != nil {
				t.Fatalf("down to 3: %v", err)
			}
			blob := "'k'"
			if s.Dialect() == store.DialectPostgres {
				blob = "convert_to('k', 'UTF8')"
			}
			if err := store.ExecAuditSQL(t.Context(), s, "INSERT INTO audit_person_keys (person, sealed, created_at) VALUES ('p', "+blob+", CURRENT_TIMESTAMP)"); err != nil {
				t.Fatalf("old person key table unusable: %v", err)
			}
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("up again: %v", err)
			}
			keys, err := s.AuditPersonKeys(t.Context(), []string{"p", "holder-1"}, nil)
			if err != nil || len(keys) != 1 || keys[0].Period != audit.LegacyPeriod {
				t.Fatalf("keys after down and up: %+v, %v", keys, err)
			}
		})
	}
}

// failingStore is the real store with one failure injected: the failAt-th
// AuditLeaves call fails.
type failingStore struct {
	*store.Store
	calls, failAt int
}

func (s *failingStore) AuditLeaves(ctx context.Context, from, to int64) ([]audit.Leaf, error) {
	s.calls++
	if s.calls == s.failAt {
		return nil, errors.New("injected failure: the database went away")
	}
	return s.Store.AuditLeaves(ctx, from, to)
}

// TestAuditExportFailingMidwayIsIncomplete: Export reports the failure, and
// what it wrote before has no trailer, so that no verifier takes it for a
// complete export.
func TestAuditExportFailingMidwayIsIncomplete(t *testing.T) {
	s := storetest.OpenSQLite(t)
	l := storetest.StartAuditLog(t, s, nil)
	const n = 1500 // two chunks of 1,000
	var wg sync.WaitGroup
	for w := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 15 {
				if _, err := l.Record(t.Context(), benchEvent(w*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	failing, err := audit.New(t.Context(), audit.Config{Store: &failingStore{Store: s, failAt: 2}, Sealer: sealer, Origin: "mandated.test/audit"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = failing.Export(t.Context(), time.Time{}, time.Time{}, &buf)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("export over a failing store: %v", err)
	}
	if _, verr := audit.VerifyExport(bytes.NewReader(buf.Bytes()), l.VerifierKey()); !errors.Is(verr, audit.ErrVerify) {
		t.Fatalf("a partial export (%d bytes) verified: %v", buf.Len(), verr)
	}
}
