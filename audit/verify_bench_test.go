package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
	"golang.org/x/mod/sumdb/tlog"
)

// memStore keeps an audit log in memory: just what Record, Checkpoint and
// Export need, to make large exports quickly with the real writer, leaf
// encoding, sealing, proofs and checkpoint signing (a database would take
// ~15 min for 1,000,000 events on this machine; see docs/benchmarks.md).
type memStore struct {
	audit.Store // the methods not below panic (nil interface)

	mu       sync.Mutex
	leaves   []audit.Leaf
	hashes   []tlog.Hash
	readable []audit.SealedReadable // by Seq, in order
	keys     map[[2]string]audit.PersonKey
	cps      []audit.Checkpoint
	signer   *audit.SignerKey
}

func newMemStore() *memStore { return &memStore{keys: map[[2]string]audit.PersonKey{}} }

func (s *memStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *memStore) personKeys(persons, periods []string) []audit.PersonKey {
	var out []audit.PersonKey
	for _, p := range persons {
		for _, q := range periods {
			if k, ok := s.keys[[2]string{p, q}]; ok {
				out = append(out, k)
			}
		}
	}
	return out
}

func (s *memStore) AppendAudit(_ context.Context, build func(h audit.AppendHead) (audit.Batch, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := build(audit.AppendHead{
		Size: int64(len(s.leaves)), Hashes: s,
		Keys: func(persons, periods []string) ([]audit.PersonKey, error) { return s.personKeys(persons, periods), nil },
	})
	if err != nil {
		return err
	}
	if int64(len(s.hashes)) != tlog.StoredHashCount(int64(len(s.leaves))) {
		return fmt.Errorf("hashes out of step")
	}
	for _, k := range b.Keys {
		s.keys[[2]string{k.Person, k.Period}] = k
	}
	s.leaves = append(s.leaves, b.Leaves...)
	s.hashes = append(s.hashes, b.Hashes...)
	s.readable = append(s.readable, b.Readable...)
	return nil
}

func (s *memStore) AuditTreeSize(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.leaves)), nil
}

func (s *memStore) AuditHashReader(context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ReadHashes(ix)
	})
}

func (s *memStore) AuditLeaves(_ context.Context, from, to int64) ([]audit.Leaf, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	to = min(to, int64(len(s.leaves)))
	return slices.Clone(s.leaves[from:to]), nil
}

func (s *memStore) AuditSeqRange(_ context.Context, since, until time.Time) (int64, int64, error) {
	if !since.IsZero() || !until.IsZero() {
		return 0, 0, fmt.Errorf("memStore: no time range")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return 0, int64(len(s.leaves)), nil
}

func (s *memStore) AuditReadable(_ context.Context, from, to int64) ([]audit.SealedReadable, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, _ := slices.BinarySearchFunc(s.readable, from, func(r audit.SealedReadable, x int64) int { return int(r.Seq - x) })
	hi, _ := slices.BinarySearchFunc(s.readable, to, func(r audit.SealedReadable, x int64) int { return int(r.Seq - x) })
	return slices.Clone(s.readable[lo:hi]), nil
}

func (s *memStore) AuditPersonKeys(_ context.Context, persons, periods []string) ([]audit.PersonKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.personKeys(persons, periods), nil
}

func (s *memStore) SaveAuditCheckpoint(_ context.Context, c audit.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cps = append(s.cps, c)
	return nil
}

func (s *memStore) LatestAuditCheckpoint(context.Context) (audit.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cps) == 0 {
		return audit.Checkpoint{}, mandate.ErrNotFound
	}
	return s.cps[len(s.cps)-1], nil
}

func (s *memStore) AuditSignerKey(_ context.Context, name string) (audit.SignerKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer == nil || s.signer.Name != name {
		return audit.SignerKey{}, mandate.ErrNotFound
	}
	return *s.signer, nil
}

func (s *memStore) CreateAuditSignerKey(_ context.Context, k audit.SignerKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer = &k
	return nil
}

// runLog runs l's writer (Log.Run) until the returned stop is called, and
// waits for it to finish then.
func runLog(l *audit.Log) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	return func() { cancel(); <-done }
}

// benchVerifyEvent is the typical mailbox event of the store benchmarks: a
// staff member acting for a holder (two people: four commitments, four
// opened fields in the export).
func benchVerifyEvent(i int) audit.Event {
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-" + strconv.Itoa(i%50), Name: "Agent " + strconv.Itoa(i%50)},
		Holder: "holder-" + strconv.Itoa(i%2000), Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
		Target: "message-" + strconv.Itoa(i), MandateID: "mandate-" + strconv.Itoa(i%2000), ClientID: "webmail",
		Outcome: audit.OutcomeSuccess, RequestID: "req-" + strconv.Itoa(i),
	}
}

// writeExport records n events through a real audit.Log (Record from 256
// concurrent callers, the real writer) on a memStore and writes its full
// export (Log.Export) to path. It returns the verifier key.
func writeExport(tb testing.TB, n int, path string) string {
	tb.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	l, err := audit.New(ctx, audit.Config{Store: newMemStore(), Sealer: sealer, Origin: "mandated.test/audit"})
	if err != nil {
		tb.Fatal(err)
	}
	defer runLog(l)()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if _, err := l.Record(ctx, benchVerifyEvent(i)); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := l.Export(ctx, time.Time{}, time.Time{}, f); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return l.VerifierKey()
}

// TestWriteVerifyExport writes an export of MANDATED_BENCH_VERIFY_EVENTS
// events to MANDATED_BENCH_VERIFY_OUT and its key to that path + ".key",
// for timing `mandated audit verify` on it; skipped without them.
func TestWriteVerifyExport(t *testing.T) {
	out := os.Getenv("MANDATED_BENCH_VERIFY_OUT")
	n, _ := strconv.Atoi(os.Getenv("MANDATED_BENCH_VERIFY_EVENTS"))
	if out == "" || n <= 0 {
		t.Skip("set MANDATED_BENCH_VERIFY_OUT and MANDATED_BENCH_VERIFY_EVENTS to write an export")
	}
	start := time.Now()
	key := writeExport(t, n, out)
	if err := os.WriteFile(out+".key", []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d events to %s in %v", n, out, time.Since(start).Round(time.Second))
}

// BenchmarkVerify times VerifyExport on an export file, read as `mandated
// audit verify` reads it: MANDATED_BENCH_VERIFY_FILE (its key in FILE.key)
// when set, else an export of MANDATED_BENCH_VERIFY_EVENTS events (default
// 1,000,000: about 2.2 GB, a minute to write) that writeExport makes once in
// a temporary directory.
//
//	go test -run XXX -bench BenchmarkVerify -benchtime 3x ./audit
func BenchmarkVerify(b *testing.B) {
	path := os.Getenv("MANDATED_BENCH_VERIFY_FILE")
	var key string
	if path == "" {
		n := 1_000_000
		if v := os.Getenv("MANDATED_BENCH_VERIFY_EVENTS"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil {
				b.Fatal(err)
			}
		}
		path = filepath.Join(b.TempDir(), "export.jsonl")
		key = writeExport(b, n, path)
	} else {
		k, err := os.ReadFile(path + ".key")
		if err != nil {
			b.Fatal(err)
		}
		key = string(bytes.TrimSpace(k))
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	var entries int
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := audit.VerifyExport(f, key)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		entries = rep.Entries
	}
	b.ReportMetric(float64(entries), "events")
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
