package mandate

import "sync"

// Hub fans "mandate changed" signals out to the pages and streams of this
// process that follow a mandate (the mediator's console, the holder's live
// page, server-sent events). Across replicas the signal arrives on the
// revocation bus and is handed to Notify.
//
// A signal carries no state: a subscriber re-reads the mandate. Channels
// have room for one pending signal; more signals before the subscriber
// reads collapse into that one.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
	// all are the SubscribeAll channels (nil until the first).
	all map[chan string]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe follows mandateID until cancel is called.
func (h *Hub) Subscribe(mandateID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.subs[mandateID]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.subs[mandateID] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(set, ch)
			if len(set) == 0 && h.subs[mandateID] != nil && len(h.subs[mandateID]) == 0 {
				delete(h.subs, mandateID)
			}
			h.mu.Unlock()
		})
	}
}

// Notify signals every subscriber of mandateID without blocking.
func (h *Hub) Notify(mandateID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offerAll(mandateID)
	for ch := range h.subs[mandateID] {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// NotifyAll signals every subscriber (the bus may have missed messages).
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offerAll(Resync)
	for _, set := range h.subs {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Followers returns how many subscriptions follow mandateID.
func (h *Hub) Followers(mandateID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[mandateID])
}

// Resync is what a SubscribeAll channel carries in place of ids it had no
// room for, and after NotifyAll: changes may have been missed, so the
// subscriber re-reads everything it follows from storage. Mandate ids are
// never "*".
const Resync = "*"

// allBuffer is how many ids a SubscribeAll channel holds before Resync
// stands for the rest.
const allBuffer = 256

// SubscribeAll receives the id of every mandate notified (Notify), until
// cancel is called; it is for streams that follow every mandate rather
// than one (the resource servers' event stream).
//
// The channel is bounded and never blocks the hub. When a subscriber falls
// behind, ids that find no room are dropped and Resync takes the channel's
// last place instead: a dropped id is always followed, in the channel, by
// a Resync the subscriber has not read yet. NotifyAll sends Resync.
func (h *Hub) SubscribeAll() (<-chan string, func()) {
	ch := make(chan string, allBuffer)
	h.mu.Lock()
	if h.all == nil {
		h.all = map[chan string]struct{}{}
	}
	h.all[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.all, ch)
			h.mu.Unlock()
		})
	}
}

// offerAll hands id to every SubscribeAll channel without blocking; h.mu
// is held. Only the hub sends, under h.mu, so a channel's length can only
// shrink between the check and the send. An id goes in while more than one
// place is free; the last place is for Resync; a full channel already ends
// with an unread Resync (nothing else can fill its last place), which
// stands for id.
func (h *Hub) offerAll(id string) {
	for ch := range h.all {
		switch n := len(ch); {
		case n < cap(ch)-1:
			ch <- id
		case n < cap(ch):
			ch <- Resync
		}
	}
}

// AllFollowers returns how many SubscribeAll subscriptions are open.
func (h *Hub) AllFollowers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}
