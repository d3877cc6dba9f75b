package authz

import (
	"testing"
	"time"

	"github.com/mandated/mandated/mandate"
)

func TestMandateCache(t *testing.T) {
	c := newMandateCache(2)
	m := mandate.Mandate{ID: "m1", State: mandate.StateActive}

	_, ok, gen := c.get("m1")
	if ok {
		t.Fatal("empty cache hit")
	}
	c.put(m, gen)
	if got, ok, _ := c.get("m1"); !ok || got.ID != "m1" {
		t.Fatal("put then get missed")
	}

	// A load that began before an invalidation does not store what it read.
	_, _, gen = c.get("m2")
	c.evict("m1")
	c.put(mandate.Mandate{ID: "m2"}, gen)
	if _, ok, _ := c.get("m2"); ok {
		t.Fatal("a stale load was stored after an invalidation")
	}
	if _, ok, _ := c.get("m1"); ok {
		t.Fatal("evicted entry still there")
	}

	// Flush forgets everything; a full cache starts again.
	_, _, gen = c.get("x")
	c.put(mandate.Mandate{ID: "a"}, gen)
	c.put(mandate.Mandate{ID: "b"}, gen)
	c.put(mandate.Mandate{ID: "c"}, gen)
	if n := c.len(); n != 1 {
		t.Fatalf("len after overflow = %d, want 1", n)
	}
	c.flush()
	if n := c.len(); n != 0 {
		t.Fatalf("len after flush = %d", n)
	}
}

func TestLeaseMayHaveMoved(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	live := mandate.Mandate{
		State: mandate.StateActive, Presence: mandate.PresenceRequired,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), LeaseUntil: now.Add(-time.Second),
	}
	tests := []struct {
		name string
		edit func(*mandate.Mandate)
		want bool
	}{
		{"active, lease looks lapsed", func(*mandate.Mandate) {}, true},
		{"approved, lease looks lapsed", func(m *mandate.Mandate) { m.State = mandate.StateApproved }, true},
		{"ended", func(m *mandate.Mandate) { m.State = mandate.StateEnded }, false},
		{"requested", func(m *mandate.Mandate) { m.State = mandate.StateRequested }, false},
		{"relaxed presence", func(m *mandate.Mandate) { m.Presence = mandate.PresenceRelaxed }, false},
		{"window closed", func(m *mandate.Mandate) { m.NotAfter = now }, false},
		{"window not open", func(m *mandate.Mandate) { m.NotBefore = now.Add(time.Second) }, false},
	}
	for _, tt := range tests {
		m := live
		tt.edit(&m)
		if got := leaseMayHaveMoved(m, now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
