package mandate_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mandated/mandated/mandate"
)

// drainAll reads what ch holds now, without waiting.
func drainAll(ch <-chan string) []string {
	var out []string
	for {
		select {
		case id := <-ch:
			out = append(out, id)
		default:
			return out
		}
	}
}

func TestSubscribeAllReceivesEveryNotifiedID(t *testing.T) {
	h := mandate.NewHub()
	all, cancel := h.SubscribeAll()
	one, cancelOne := h.Subscribe("m1")
	defer cancelOne()

	h.Notify("m1")
	h.Notify("m2")
	h.Notify("m1") // not collapsed: each notify is an id
	if got := drainAll(all); !slices.Equal(got, []string{"m1", "m2", "m1"}) {
		t.Fatalf("SubscribeAll got %v", got)
	}
	select { // the per-mandate subscription still works beside it
	case <-one:
	default:
		t.Fatal("Subscribe(m1) got no signal")
	}

	h.NotifyAll()
	if got := drainAll(all); !slices.Equal(got, []string{mandate.Resync}) {
		t.Fatalf("after NotifyAll: %v, want [Resync]", got)
	}

	if n := h.AllFollowers(); n != 1 {
		t.Fatalf("AllFollowers = %d", n)
	}
	cancel()
	cancel()
	if n := h.AllFollowers(); n != 0 {
		t.Fatalf("AllFollowers after cancel = %d", n)
	}
	h.Notify("m3")
	if got := drainAll(all); len(got) != 0 {
		t.Fatalf("cancelled subscription got %v", got)
	}
}

// A subscriber that falls behind loses ids but never the fact that it
// lost some: a Resync it has not read yet follows every dropped id.
func TestSubscribeAllOverflowEndsWithResync(t *testing.T) {
	h := mandate.NewHub()
	all, cancel := h.SubscribeAll()
	defer cancel()
	const n = 1000
	for i := range n {
		h.Notify(fmt.Sprintf("m%d", i))
	}
	got := drainAll(all)
	if len(got) < 2 || len(got) >= n {
		t.Fatalf("got %d ids from %d notifies: the buffer is not bounded", len(got), n)
	}
	last := got[len(got)-1]
	if last != mandate.Resync || slices.Contains(got[:len(got)-1], mandate.Resync) {
		t.Fatalf("the overflowing channel does not end with one Resync: ...%v", got[max(0, len(got)-3):])
	}
	for i, id := range got[:len(got)-1] {
		if id != fmt.Sprintf("m%d", i) {
			t.Fatalf("id %d = %s: the ids before the Resync are not the first ones, in order", i, id)
		}
	}

	// Once read, the channel takes ids again; a later overflow needs a
	// new Resync, and gets one.
	h.Notify("after")
	if got := drainAll(all); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("after draining: %v", got)
	}
	for i := range n {
		h.Notify(fmt.Sprintf("again%d", i))
	}
	if got := drainAll(all); got[len(got)-1] != mandate.Resync {
		t.Fatalf("second overflow does not end with Resync: %v", got[len(got)-1])
	}
}

// Readers and notifiers at once: ids a slow reader did not receive are
// covered by a Resync.
func TestSubscribeAllConcurrent(t *testing.T) {
	h := mandate.NewHub()
	all, cancel := h.SubscribeAll()
	defer cancel()
	var wg sync.WaitGroup
	const writers, each = 4, 500
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h.Notify(fmt.Sprintf("w%d-%d", w, i))
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	seen := map[string]bool{}
	resyncs := 0
	take := func(id string) {
		if id == mandate.Resync {
			resyncs++
		} else {
			seen[id] = true
		}
	}
	for running := true; running; {
		select {
		case id := <-all:
			take(id)
		case <-finished:
			running = false
		}
	}
	for _, id := range drainAll(all) {
		take(id)
	}
	if missing := writers*each - len(seen); missing > 0 && resyncs == 0 {
		t.Fatalf("%d ids missing and no Resync", missing)
	}
	if len(seen) > writers*each {
		t.Fatalf("seen %d ids, more than notified", len(seen))
	}
}
