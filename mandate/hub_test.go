package mandate_test

import (
	"sync"
	"testing"

	"github.com/mandated/mandated/mandate"
)

func TestHub(t *testing.T) {
	h := mandate.NewHub()
	a, cancelA := h.Subscribe("m1")
	b, cancelB := h.Subscribe("m1")
	other, cancelOther := h.Subscribe("m2")
	defer cancelOther()

	h.Notify("m1")
	h.Notify("m1") // collapses into the pending signal
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Fatalf("%s got no signal", name)
		}
		select {
		case <-ch:
			t.Fatalf("%s got two signals for collapsed notifies", name)
		default:
		}
	}
	select {
	case <-other:
		t.Fatal("m2's subscriber was signalled for m1")
	default:
	}

	cancelA()
	cancelA() // twice is harmless
	if n := h.Followers("m1"); n != 1 {
		t.Fatalf("followers after cancel = %d, want 1", n)
	}
	h.NotifyAll()
	select {
	case <-b:
	default:
		t.Fatal("NotifyAll missed b")
	}
	select {
	case <-other:
	default:
		t.Fatal("NotifyAll missed m2")
	}
	cancelB()
	if n := h.Followers("m1"); n != 0 {
		t.Fatalf("followers = %d, want 0", n)
	}
}

func TestHubConcurrent(t *testing.T) {
	h := mandate.NewHub()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, cancel := h.Subscribe("m")
			cancel()
		}()
		go func() { defer wg.Done(); h.Notify("m") }()
	}
	wg.Wait()
	if n := h.Followers("m"); n != 0 {
		t.Fatalf("followers = %d", n)
	}
}
