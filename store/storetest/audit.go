package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"golang.org/x/mod/sumdb/note"
)

// AuditLog is a running audit.Log over s for tests, with a checkpoint
// ticker the test drives: Tick() returns once Run has handled the previous
// tick.
type AuditLog struct {
	*audit.Log
	tick chan time.Time
}

// Tick makes Run sign a checkpoint and waits until it took the tick.
func (a *AuditLog) Tick() { a.tick <- time.Time{} }

// StartAuditLog builds an audit.Log with origin "mandated.test/audit" on s
// and runs it until the test ends.
func StartAuditLog(t testing.TB, s *store.Store, clock mandate.Clock) *AuditLog {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	l, err := audit.New(t.Context(), audit.Config{
		Store: s, Sealer: sealer, Origin: "mandated.test/audit", Clock: clock,
		Tick: func(time.Duration) (<-chan time.Time, func()) { return tick, func() {} },
	})
	if err != nil {
		t.Fatalf("new audit log: %v", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return &AuditLog{Log: l, tick: tick}
}

func auditEvent(i int) audit.Event {
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: fmt.Sprintf("staff-%d", i%3), Name: fmt.Sprintf("Agent %d", i%3)},
		Holder: fmt.Sprintf("holder-%d", i%5), Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
		Target: fmt.Sprintf("message-%d", i), MandateID: "mandate-1", ClientID: "webmail",
		Outcome: audit.OutcomeSuccess, RequestID: fmt.Sprintf("req-%d", i),
	}
}

func exportVerifies(t *testing.T, l *AuditLog) (string, audit.Report) {
	t.Helper()
	var buf bytes.Buffer
	must(t, l.Export(t.Context(), time.Time{}, time.Time{}, &buf))
	rep, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), l.VerifierKey())
	if err != nil {
		t.Fatalf("export does not verify: %v\n%v", err, rep.Problems)
	}
	return buf.String(), rep
}

func testAuditConcurrentRecordsAreGapFree(t *testing.T, open Opener) {
	e := newEnv(t, open)
	// Two logs on one store stand for two replicas.
	logs := []*AuditLog{StartAuditLog(t, e.s, e.clock), StartAuditLog(t, e.s, e.clock)}
	if logs[0].VerifierKey() != logs[1].VerifierKey() {
		t.Fatal("replicas made different signer keys")
	}
	const writers, each = 16, 20
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				seq, err := logs[w%2].Record(t.Context(), auditEvent(w*each+i))
				if err != nil {
					t.Errorf("record: %v", err)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("sequence numbers have a gap or duplicate at %d: %v", i, seqs)
		}
	}
	size, err := e.s.AuditTreeSize(t.Context())
	must(t, err)
	if size != writers*each {
		t.Fatalf("tree size = %d, want %d", size, writers*each)
	}
	_, rep := exportVerifies(t, logs[0])
	if rep.Entries != writers*each || rep.Size != writers*each {
		t.Errorf("export has %d entries of %d, want %d", rep.Entries, rep.Size, writers*each)
	}
}

func testAuditProofs(t *testing.T, open Opener) {
	e := newEnv(t, open)
	l := StartAuditLog(t, e.s, e.clock)
	_, err := l.Checkpoint(t.Context())
	wantErr(t, err, mandate.ErrNotFound) // empty log: nothing to sign
	for i := range 10 {
		_, err := l.Record(t.Context(), auditEvent(i))
		must(t, err)
	}
	l.Tick()
	l.Tick() // returns once the first tick's checkpoint is stored
	old, err := l.LatestCheckpoint(t.Context())
	must(t, err)
	if old.Size != 10 {
		t.Fatalf("ticked checkpoint size = %d, want 10", old.Size)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	must(t, err)
	n, err := note.Open(old.Note, note.VerifierList(v))
	must(t, err)
	if !strings.HasPrefix(n.Text, "mandated.test/audit\n10\n") {
		t.Errorf("checkpoint body = %q", n.Text)
	}
	for i := 10; i < 17; i++ {
		_, err := l.Record(t.Context(), auditEvent(i))
		must(t, err)
	}
	for _, seq := range []int64{0, 3, 9, 16} {
		b, err := l.InclusionProof(t.Context(), seq)
		must(t, err)
		if err := audit.VerifyInclusion(b, l.VerifierKey()); err != nil {
			t.Errorf("inclusion of %d: %v", seq, err)
		}
		b.Leaf = bytes.Replace(b.Leaf, []byte("mailbox.read"), []byte("mailbox.send"), 1)
		if err := audit.VerifyInclusion(b, l.VerifierKey()); !errors.Is(err, audit.ErrVerify) {
			t.Errorf("altered leaf %d verified: %v", seq, err)
		}
	}
	_, err = l.InclusionProof(t.Context(), 17)
	wantErr(t, err, mandate.ErrNotFound)
	cb, err := l.ConsistencyProof(t.Context(), 10, 0)
	must(t, err)
	if err := audit.VerifyConsistency(old.Note, cb, l.VerifierKey()); err != nil {
		t.Errorf("consistency 10..17: %v", err)
	}
	mid, err := l.InclusionProof(t.Context(), 0) // any checkpoint other than old
	must(t, err)
	if err := audit.VerifyConsistency(mid.Checkpoint, cb, l.VerifierKey()); !errors.Is(err, audit.ErrVerify) {
		t.Errorf("consistency proof accepted for the wrong old checkpoint: %v", err)
	}
	other := StartAuditLogWithOrigin(t, e.s, e.clock, "someone.else/audit")
	if err := audit.VerifyInclusion(mid, other.VerifierKey()); !errors.Is(err, audit.ErrVerify) {
		t.Errorf("bundle verified with another log's key: %v", err)
	}
}

func testAuditErasureKeepsProofs(t *testing.T, open Opener) {
	e := newEnv(t, open)
	l := StartAuditLog(t, e.s, e.clock)
	for i := range 10 {
		_, err := l.Record(t.Context(), auditEvent(i))
		must(t, err)
	}
	before, _ := exportVerifies(t, l)
	if !strings.Contains(before, `"value":"holder-1"`) {
		t.Fatal("export before erasure lacks the holder's readable id")
	}
	must(t, l.ErasePerson(t.Context(), "holder-1"))
	if keys, err := e.s.AuditPersonKeys(t.Context(), []string{"holder-1"}, nil); err != nil || len(keys) != 0 {
		t.Fatalf("keys after erasure: %v, %v", keys, err)
	}
	after, _ := exportVerifies(t, l)
	if strings.Contains(after, "holder-1") || strings.Contains(after, "message-1\"") || strings.Contains(after, "message-6\"") {
		t.Error("export after erasure still names the erased holder or their targets")
	}
	if !strings.Contains(after, `"value":"holder-2"`) {
		t.Error("erasure removed another holder's fields")
	}
	b, err := l.InclusionProof(t.Context(), 1)
	must(t, err)
	must(t, audit.VerifyInclusion(b, l.VerifierKey()))
	// The person comes back: a new key, and the log still verifies.
	_, err = l.Record(t.Context(), auditEvent(1))
	must(t, err)
	exportVerifies(t, l)
}

func testAuditRefusesBadEvents(t *testing.T, open Opener) {
	e := newEnv(t, open)
	l := StartAuditLog(t, e.s, e.clock)
	bad := auditEvent(0)
	bad.Action = "mailbox.burn"
	_, err := l.Record(t.Context(), bad)
	wantErr(t, err, audit.ErrInvalid)
	bad = auditEvent(0)
	bad.Reason = strings.Repeat("x", audit.MaxReasonLen+1)
	_, err = l.Record(t.Context(), bad)
	wantErr(t, err, audit.ErrInvalid)
	size, err := e.s.AuditTreeSize(t.Context())
	must(t, err)
	if size != 0 {
		t.Errorf("tree size = %d after refused events, want 0", size)
	}
}

// StartAuditLogWithOrigin is StartAuditLog with another origin (another log).
func StartAuditLogWithOrigin(t testing.TB, s *store.Store, clock mandate.Clock, origin string) *AuditLog {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(t.Context(), audit.Config{Store: s, Sealer: sealer, Origin: origin, Clock: clock})
	if err != nil {
		t.Fatalf("new audit log: %v", err)
	}
	return &AuditLog{Log: l}
}

func testAudit(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"ConcurrentRecordsAreGapFree", testAuditConcurrentRecordsAreGapFree},
		{"Proofs", testAuditProofs},
		{"ErasureKeepsProofs", testAuditErasureKeepsProofs},
		{"RefusesBadEvents", testAuditRefusesBadEvents},
		{"Query", testAuditQuery},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

func testAuditQuery(t *testing.T, open Opener) {
	e := newEnv(t, open)
	l := StartAuditLog(t, e.s, e.clock)
	// 30 events, one a minute: auditEvent(i) has staff-(i%3), holder-(i%5).
	for i := range 30 {
		ev := auditEvent(i)
		if i%10 == 0 {
			ev.Actor = audit.Actor{Kind: audit.ActorClient, ID: "webmail", Name: "Webmail"}
			ev.Structure = "cd69"
			ev.Outcome = audit.OutcomeDenied
			ev.Action = audit.ActionRequestRefused
		}
		_, err := l.Record(t.Context(), ev)
		must(t, err)
		e.clock.Advance(time.Minute)
	}
	seqsOf := func(f audit.Filter) []int64 {
		t.Helper()
		p, err := l.Query(t.Context(), f)
		must(t, err)
		var out []int64
		for _, ev := range p.Events {
			out = append(out, ev.Seq)
		}
		return out
	}
	cases := []struct {
		name string
		f    audit.Filter
		want []int64
	}{
		{"structure", audit.Filter{Structure: "cd69"}, []int64{20, 10, 0}},
		{"client actor", audit.Filter{Actor: "webmail"}, []int64{20, 10, 0}},
		{"staff actor", audit.Filter{Actor: "staff-2", Since: t0.Add(10 * time.Minute)}, []int64{29, 26, 23, 17, 14, 11}},
		{"holder", audit.Filter{Holder: "holder-3"}, []int64{28, 23, 18, 13, 8, 3}},
		{"holder and outcome", audit.Filter{Holder: "holder-0", Outcome: audit.OutcomeDenied}, []int64{20, 10, 0}},
		{"action", audit.Filter{Action: audit.ActionRequestRefused, Before: 20}, []int64{10, 0}},
		{"time range", audit.Filter{Since: t0.Add(5 * time.Minute), Until: t0.Add(8 * time.Minute)}, []int64{7, 6, 5}},
		{"nobody", audit.Filter{Holder: "holder-9"}, nil},
	}
	for _, c := range cases {
		if got := seqsOf(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: seqs = %v, want %v", c.name, got, c.want)
		}
	}
	// Pages of 7 walk the whole log once, newest first.
	var all []int64
	f := audit.Filter{Limit: 7}
	for {
		p, err := l.Query(t.Context(), f)
		must(t, err)
		for _, ev := range p.Events {
			all = append(all, ev.Seq)
		}
		if p.Next == 0 {
			break
		}
		f.Before = p.Next
	}
	if len(all) != 30 || all[0] != 29 || all[29] != 0 || !slices.IsSortedFunc(all, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("paged seqs = %v", all)
	}
	p, err := l.Query(t.Context(), audit.Filter{Holder: "holder-1", Limit: 1})
	must(t, err)
	if ev := p.Events[0]; ev.Holder != "holder-1" || ev.Actor.ID != "staff-2" || ev.Actor.Name != "Agent 2" || ev.Target != "message-26" || ev.MandateID != "mandate-1" {
		t.Errorf("event read back = %+v", ev)
	}
	must(t, l.ErasePerson(t.Context(), "holder-1"))
	if got := seqsOf(audit.Filter{Holder: "holder-1"}); len(got) != 0 {
		t.Errorf("erased holder still found in %v", got)
	}
	p, err = l.Query(t.Context(), audit.Filter{Before: 27, Limit: 1})
	must(t, err)
	if ev := p.Events[0]; ev.Seq != 26 || ev.Holder != "" || ev.Target != "" || ev.Actor.ID != "staff-2" {
		t.Errorf("event of an erased holder read back as %+v", ev)
	}
	_, err = l.Query(t.Context(), audit.Filter{Action: "nope"})
	wantErr(t, err, audit.ErrInvalid)
}
