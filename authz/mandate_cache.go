package authz

import (
	"sync"

	"github.com/mandated/mandated/mandate"
)

// MandateMessagePrefix marks "this mandate changed" on the revocation bus
// ("mandate:<id>"). The mandate service's watchers publish it after every
// committed change; this server drops its cached copy of the mandate, and
// the pages following it wake (cmd/mandated/wire_mandates.go).
const MandateMessagePrefix = "mandate:"

// mandateCache keeps the mandates introspection asked about, so a hot
// token introspects from memory. Entries are dropped by "mandate:<id>"
// messages on the bus (every state change), by FlushAll, and read again
// from storage when their presence lease looks lapsed: heartbeats move a
// lease forward without a bus message, so a cached lease end is a lower
// bound, and only its passing needs a fresh look (once per lease period per
// mandate).
//
// A load races with invalidation: a load that started before an
// invalidation must not store what it read. Every invalidation bumps gen,
// and put stores only when gen did not move since the load began.
type mandateCache struct {
	mu      sync.RWMutex
	entries map[string]mandate.Mandate
	gen     uint64
	max     int
}

func newMandateCache(max int) *mandateCache {
	return &mandateCache{entries: map[string]mandate.Mandate{}, max: max}
}

func (c *mandateCache) get(id string) (mandate.Mandate, bool, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.entries[id]
	return m, ok, c.gen
}

// put stores m unless an invalidation happened since gen was read.
func (c *mandateCache) put(m mandate.Mandate, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.entries) >= c.max {
		clear(c.entries) // rare: start again rather than track recency
	}
	c.entries[m.ID] = m
}

func (c *mandateCache) evict(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, id)
}

func (c *mandateCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func (c *mandateCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
