package store_test

import (
	"bytes"
	"context"
	"errors"
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
