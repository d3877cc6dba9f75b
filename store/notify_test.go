package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/pgbus"
	"github.com/mandated/mandated/store/storetest"
)

func TestSQLiteRevocationBusIsInProcess(t *testing.T) {
	s := storetest.OpenSQLite(t)
	bus, err := s.RevocationBus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- bus.Run(context.WithoutCancel(t.Context())) }()
	var mu sync.Mutex
	var heard []string
	bus.Subscribe(func(id string) { mu.Lock(); heard = append(heard, id); mu.Unlock() })
	if err := bus.Publish(t.Context(), "req-1", "client:app"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(heard)
	mu.Unlock()
	if !slices.Equal(got, []string{"req-1", "client:app"}) { // synchronous, no flush message
		t.Errorf("subscriber heard %q", got)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v after Close", err)
	}
}

// TestPostgresRevocationBusReachesOtherReplica: two stores on one schema, as
// two replicas; a revocation published by one reaches the other's subscriber.
func TestPostgresRevocationBusReachesOtherReplica(t *testing.T) {
	dsn := storetest.PostgresSchema(t)
	heard := [2]chan string{make(chan string, 10), make(chan string, 10)}
	var buses [2]store.Bus
	for i := range buses {
		s, err := store.Open(t.Context(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		bus, err := s.RevocationBus(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		bus.Subscribe(func(id string) { heard[i] <- id })
		go bus.Run(context.WithoutCancel(t.Context()))
		t.Cleanup(func() { bus.Close() })
		buses[i] = bus
		next(t, heard[i], pgbus.FlushAll) // listening
	}
	if err := buses[0].Publish(t.Context(), "req-1"); err != nil {
		t.Fatal(err)
	}
	next(t, heard[0], "req-1")
	next(t, heard[1], "req-1")
}

func next(t *testing.T, c <-chan string, want string) {
	t.Helper()
	select {
	case got := <-c:
		if got != want {
			t.Fatalf("heard %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing heard, want %q", want)
	}
}
