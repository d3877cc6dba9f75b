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
