package storetest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/store"
)

func testAuditRetention(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"ErasesWholePastPeriods", testAuditRetentionErasesPastPeriods},
		{"ErasureReachesOtherReplicas", testAuditErasureReachesOtherReplicas},
		{"OneReplicaAtATime", testAuditRetentionOneReplicaAtATime},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

func newEnvAt(t *testing.T, open Opener, start time.Time) env {
	t.Helper()
	c := NewClock(start)
	return env{s: open(t, store.Options{Clock: c}), clock: c}
}

// exportEntries exports [since, until), verifies it and returns its entries.
func exportEntries(t *testing.T, l *AuditLog, since, until time.Time) []audit.ExportEntry {
	t.Helper()
	var buf bytes.Buffer
	must(t, l.Export(t.Context(), since, until, &buf))
	if rep, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), l.VerifierKey()); err != nil {
		t.Fatalf("export [%v, %v) does not verify: %v\n%v", since, until, err, rep.Problems)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	out := make([]audit.ExportEntry, 0, len(lines)-1)
	for _, line := range lines[:len(lines)-1] {
		var e audit.ExportEntry
		must(t, json.Unmarshal([]byte(line), &e))
		out = append(out, e)
	}
	return out
}

func periodsOf(t *testing.T, s *store.Store, person string) map[string]bool {
	t.Helper()
	keys, err := s.AuditPersonKeys(t.Context(), []string{person}, nil)
	must(t, err)
	out := map[string]bool{}
	for _, k := range keys {
		out[k.Period] = true
	}
	return out
}

// testAuditRetentionErasesPastPeriods records events over three months and
// applies retention in the third: the first two months' keys and readable
// fields go, the tree, old checkpoints and proofs still verify, and the
// events read back with their personal fields empty.
func testAuditRetentionErasesPastPeriods(t *testing.T, open Opener) {
	start := time.Date(2030, 1, 20, 12, 0, 0, 0, time.UTC)
	e := newEnvAt(t, open, start)
	l := StartAuditLog(t, e.s, e.clock)
	// 30 events, one every three days: January 20 to April 16 (periods
	// 2030-01 .. 2030-04), holder-(i%5), staff-(i%3).
	seqTime := map[int64]time.Time{}
	for i := range 30 {
		seq, err := l.Record(t.Context(), auditEvent(i))
		must(t, err)
		seqTime[seq] = e.clock.Now()
		e.clock.Advance(72 * time.Hour)
	}
	if got := periodsOf(t, e.s, "holder-1"); !got["2030-01"] || !got["2030-02"] || !got["2030-03"] || !got["2030-04"] || len(got) != 4 {
		t.Fatalf("holder-1 key periods = %v, want one per month 2030-01..04", got)
	}
	old, err := l.Checkpoint(t.Context())
	must(t, err)
	before := exportEntries(t, l, time.Time{}, time.Time{})
	for _, en := range before {
		if len(en.Open) == 0 {
			t.Fatalf("event %d has no readable fields before retention", en.Index)
		}
	}

	cutoff := time.Date(2030, 3, 10, 0, 0, 0, 0, time.UTC) // erases 2030-01 and 2030-02 only
	plan, err := l.PlanRetention(t.Context(), cutoff)
	must(t, err)
	if plan.Period != "2030-03" || plan.Keys == 0 || plan.Readable == 0 {
		t.Fatalf("plan = %+v", plan)
	}
	if got := periodsOf(t, e.s, "holder-1"); len(got) != 4 {
		t.Fatalf("planning erased keys: %v", got)
	}
	var oldEvents int64
	oldKeys := map[string]bool{} // person and period
	for seq, at := range seqTime {
		if at.Before(time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)) {
			oldEvents++
			ev := auditEvent(int(seq))
			oldKeys[ev.Actor.ID+" "+audit.Period(at)] = true
			oldKeys[ev.Holder+" "+audit.Period(at)] = true
		}
	}
	if plan.Readable != 2*oldEvents { // a staff actor and a holder per event
		t.Errorf("plan erases %d readable rows, want %d (two people in each of %d events)", plan.Readable, 2*oldEvents, oldEvents)
	}
	if plan.Keys != int64(len(oldKeys)) {
		t.Errorf("plan erases %d keys, want %d", plan.Keys, len(oldKeys))
	}
	sizeBefore, err := e.s.AuditTreeSize(t.Context())
	must(t, err)

	got, err := l.ApplyRetention(t.Context(), cutoff)
	must(t, err)
	if got.RetentionCount != plan.RetentionCount || got.Skipped {
		t.Errorf("applied %+v, planned %+v", got, plan)
	}
	for _, person := range []string{"holder-1", "staff-2"} {
		if p := periodsOf(t, e.s, person); len(p) != 2 || !p["2030-03"] || !p["2030-04"] {
			t.Errorf("%s key periods after retention = %v, want 2030-03 and 2030-04", person, p)
		}
	}
	// The retention itself is an event, by the system, naming no one.
	size, err := e.s.AuditTreeSize(t.Context())
	must(t, err)
	if size != sizeBefore+1 {
		t.Fatalf("tree grew from %d to %d, want one retention event", sizeBefore, size)
	}
	page, err := l.Query(t.Context(), audit.Filter{Action: audit.ActionRetentionApplied})
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].Actor.Kind != audit.ActorSystem || !strings.Contains(page.Events[0].Reason, "2030-03") ||
		strings.Contains(page.Events[0].Reason, "holder") {
		t.Errorf("retention events = %+v", page.Events)
	}

	after := exportEntries(t, l, time.Time{}, time.Time{})
	for _, en := range after[:len(after)-1] {
		erased := seqTime[en.Index].Before(time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC))
		if erased != (len(en.Open) == 0) {
			t.Errorf("event %d (%v): opened fields %v after retention", en.Index, seqTime[en.Index], en.Open)
		}
		if !bytes.Equal(en.Leaf, before[en.Index].Leaf) {
			t.Errorf("event %d: leaf changed", en.Index)
		}
	}
	// An export of the erased months alone still verifies, with nothing to read.
	for _, en := range exportEntries(t, l, start, time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)) {
		if len(en.Open) != 0 {
			t.Errorf("old-range export opens event %d: %v", en.Index, en.Open)
		}
	}
	// Old checkpoints stay consistent with the new tree, old events provable.
	cb, err := l.ConsistencyProof(t.Context(), old.Size, 0)
	must(t, err)
	must(t, audit.VerifyConsistency(old.Note, cb, l.VerifierKey()))
	ib, err := l.InclusionProof(t.Context(), 0)
	must(t, err)
	must(t, audit.VerifyInclusion(ib, l.VerifierKey()))

	// Reading: old events have their personal fields empty, newer ones not.
	p, err := l.Query(t.Context(), audit.Filter{Holder: "holder-1"})
	must(t, err)
	for _, ev := range p.Events {
		if ev.Time.Before(time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("holder filter still finds erased event %d", ev.Seq)
		}
		if ev.Holder != "holder-1" || ev.Actor.ID == "" || ev.Target == "" {
			t.Errorf("kept event read back as %+v", ev)
		}
	}
	p, err = l.Query(t.Context(), audit.Filter{Before: 2, Limit: 2})
	must(t, err)
	for _, ev := range p.Events {
		if ev.Holder != "" || ev.Actor.ID != "" || ev.Actor.Name != "" || ev.Target != "" || ev.MandateID != "mandate-1" {
			t.Errorf("erased event read back as %+v", ev)
		}
	}

	// Again: nothing more to erase, and no event for it.
	again, err := l.ApplyRetention(t.Context(), cutoff)
	must(t, err)
	if again.Keys != 0 || again.Readable != 0 {
		t.Errorf("second run erased %+v", again)
	}
	if s2, _ := e.s.AuditTreeSize(t.Context()); s2 != size {
		t.Errorf("second run recorded an event: size %d, want %d", s2, size)
	}
	// A person of an erased month comes back: a key of the current month.
	_, err = l.Record(t.Context(), auditEvent(1))
	must(t, err)
	p, err = l.Query(t.Context(), audit.Filter{Limit: 1})
	must(t, err)
	if ev := p.Events[0]; ev.Holder != "holder-1" || ev.Actor.ID != "staff-1" {
		t.Errorf("event after retention read back as %+v", ev)
	}
	exportEntries(t, l, time.Time{}, time.Time{})
}

// testAuditErasureReachesOtherReplicas: a replica that used a person's key
// keeps it opened in memory; another replica erases the person; the first
// must not seal the person's next event under the erased key (it would be
// unreadable, and the erased key would live on): it makes a new one.
func testAuditErasureReachesOtherReplicas(t *testing.T, open Opener) {
	e := newEnv(t, open)
	a := StartAuditLog(t, e.s, e.clock)
	b := StartAuditLog(t, e.s, e.clock)
	_, err := a.Record(t.Context(), auditEvent(1))
	must(t, err)
	keysBefore, err := e.s.AuditPersonKeys(t.Context(), []string{"holder-1"}, nil)
	must(t, err)
	must(t, b.ErasePerson(t.Context(), "holder-1"))
	seq, err := a.Record(t.Context(), auditEvent(6)) // holder-1 again, same month
	must(t, err)
	keysAfter, err := e.s.AuditPersonKeys(t.Context(), []string{"holder-1"}, nil)
	must(t, err)
	if len(keysBefore) != 1 || len(keysAfter) != 1 || bytes.Equal(keysBefore[0].Sealed, keysAfter[0].Sealed) {
		t.Fatalf("keys before erasure %d, after %d: want a new one", len(keysBefore), len(keysAfter))
	}
	for _, l := range []*AuditLog{a, b} {
		p, err := l.Query(t.Context(), audit.Filter{Holder: "holder-1"})
		must(t, err)
		if len(p.Events) != 1 || p.Events[0].Seq != seq || p.Events[0].Target != "message-6" {
			t.Errorf("holder-1's events after erasure and a new event: %+v", p.Events)
		}
	}
	entries := exportEntries(t, b, time.Time{}, time.Time{})
	if _, ok := entries[0].Open["holder"]; ok {
		t.Error("the erased event still opens")
	}
	if f := entries[1].Open["holder"]; f.Value != "holder-1" {
		t.Errorf("the new event does not open: %+v", entries[1].Open)
	}
}

// testAuditRetentionOneReplicaAtATime runs retention on two replicas at once:
// together they erase exactly what was planned, and the log verifies. On
// PostgreSQL the advisory lock lets one record it.
func testAuditRetentionOneReplicaAtATime(t *testing.T, open Opener) {
	e := newEnvAt(t, open, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	logs := []*AuditLog{StartAuditLog(t, e.s, e.clock), StartAuditLog(t, e.s, e.clock)}
	for i := range 40 {
		_, err := logs[i%2].Record(t.Context(), auditEvent(i))
		must(t, err)
		e.clock.Advance(24 * time.Hour)
	}
	cutoff := e.clock.Now()
	plan, err := logs[0].PlanRetention(t.Context(), cutoff)
	must(t, err)
	var mu sync.Mutex
	var total audit.RetentionCount
	var wg sync.WaitGroup
	for _, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.ApplyRetention(t.Context(), cutoff)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total.Keys += r.Keys
			total.Readable += r.Readable
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != plan.RetentionCount {
		t.Errorf("replicas erased %+v together, planned %+v", total, plan.RetentionCount)
	}
	page, err := logs[0].Query(t.Context(), audit.Filter{Action: audit.ActionRetentionApplied})
	must(t, err)
	if n := len(page.Events); n < 1 || n > 2 || (e.s.Dialect() == store.DialectPostgres && n != 1) {
		t.Errorf("%d retention events recorded", n)
	}
	exportEntries(t, logs[1], time.Time{}, time.Time{})
}
