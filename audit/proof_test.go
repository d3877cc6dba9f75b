package audit_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
)

// countingStore counts the reads of the latest checkpoint.
type countingStore struct {
	*memStore
	mu     sync.Mutex
	latest int
}

func (s *countingStore) LatestAuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	s.mu.Lock()
	s.latest++
	s.mu.Unlock()
	return s.memStore.LatestAuditCheckpoint(ctx)
}

func (s *countingStore) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// TestProofsReuseARecentCheckpoint: an inclusion proof uses the checkpoint
// the log signed or read at most CheckpointEvery ago without reading it
// again, reads it again once it is older, and never proves against one that
// does not cover the event; the latest checkpoint follows the tree.
func TestProofsReuseARecentCheckpoint(t *testing.T) {
	ctx := context.Background()
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock := mandate.ClockFunc(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := &countingStore{memStore: newMemStore()}
	l, err := audit.New(ctx, audit.Config{Store: s, Sealer: sealer, Origin: "mandated.test/audit", Clock: clock,
		CheckpointEvery: time.Second,
		Tick:            func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }})
	if err != nil {
		t.Fatal(err)
	}
	defer runLog(l)()
	record := func(n int) {
		for i := range n {
			if _, err := l.Record(ctx, benchVerifyEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	prove := func(seq, wantSize int64) {
		t.Helper()
		b, err := l.InclusionProof(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyInclusion(b, l.VerifierKey()); err != nil {
			t.Fatal(err)
		}
		size, _, err := audit.OpenCheckpoint(b.Checkpoint, l.VerifierKey())
		if err != nil || size != wantSize {
			t.Fatalf("proof of %d against a checkpoint of %d events (%v), want %d", seq, size, err, wantSize)
		}
	}
	record(10)
	if _, err := l.Checkpoint(ctx); err != nil { // as the writer does every second
		t.Fatal(err)
	}
	base := s.reads()
	prove(3, 10)
	prove(9, 10)
	if got := s.reads() - base; got != 0 {
		t.Errorf("proofs within a second of the checkpoint read it %d times, want 0", got)
	}
	record(5)
	prove(12, 15) // not covered: a new checkpoint
	if c, err := l.Checkpoint(ctx); err != nil || c.Size != 15 {
		t.Fatalf("latest checkpoint: size %d (%v), want 15", c.Size, err)
	}
	record(1)
	if c, err := l.Checkpoint(ctx); err != nil || c.Size != 16 {
		t.Fatalf("latest checkpoint after the tree grew: size %d (%v), want 16", c.Size, err)
	}
	advance(2 * time.Second)
	base = s.reads()
	prove(3, 16)
	if got := s.reads() - base; got != 1 {
		t.Errorf("a proof after the checkpoint got older than CheckpointEvery read it %d times, want 1", got)
	}
}
