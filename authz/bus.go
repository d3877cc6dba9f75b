package authz

import (
	"context"
	"sync"
)

// RevocationBus carries "this grant was revoked" between the parts of a
// process and, across replicas, between processes, so in-memory caches drop
// what storage no longer considers active.
//
// Messages are request IDs (fosite's grant identifiers, stable across refresh
// rotation). A message "client:<id>" means the client itself was deleted.
//
// The message FlushAll means "forget every cached token and client": a bus
// sends it whenever it may have missed messages (a replica's listener
// (re)connecting), so caches start again from storage.
//
// LocalBus serves a single process (the embedded SQLite default). Across
// PostgreSQL replicas, store/pgbus carries messages with LISTEN/NOTIFY.
type RevocationBus interface {
	// Publish announces revoked request IDs. It is called after the revoking
	// transaction committed.
	Publish(ctx context.Context, requestIDs ...string) error
	// Subscribe registers fn to be called for every published request ID.
	Subscribe(fn func(requestID string))
}

// FlushAll tells subscribers to drop every cached entry.
const FlushAll = "*"

// clientMessagePrefix marks a deleted client on the bus.
const clientMessagePrefix = "client:"

// LocalBus is an in-process RevocationBus: Publish calls every subscriber
// synchronously.
type LocalBus struct {
	mu   sync.RWMutex
	subs []func(string)
}

// NewLocalBus returns an empty in-process bus.
func NewLocalBus() *LocalBus { return &LocalBus{} }

// Publish calls the subscribers with each request ID.
func (b *LocalBus) Publish(_ context.Context, requestIDs ...string) error {
	b.mu.RLock()
	subs := b.subs
	b.mu.RUnlock()
	for _, id := range requestIDs {
		for _, fn := range subs {
			fn(id)
		}
	}
	return nil
}

// Subscribe adds fn.
func (b *LocalBus) Subscribe(fn func(string)) {
	b.mu.Lock()
	b.subs = append(b.subs[:len(b.subs):len(b.subs)], fn)
	b.mu.Unlock()
}
