package notify

import (
	"context"
	"fmt"
)

// Router sends each message to the notifier of its channel.
type Router map[Channel]Notifier

// Send hands m to the notifier of m.Channel, or returns ErrNoChannel.
func (r Router) Send(ctx context.Context, m Message) error {
	n, ok := r[m.Channel]
	if !ok || n == nil {
		return fmt.Errorf("send %q message: %w", m.Channel, ErrNoChannel)
	}
	return n.Send(ctx, m)
}

// Describer is implemented by the notifiers of this package: Describe says
// where messages go, without secrets, for the start-up log.
type Describer interface {
	Describe() string
}

// Describe returns, per channel, where its messages go.
func (r Router) Describe() map[Channel]string {
	out := make(map[Channel]string, len(r))
	for ch, n := range r {
		if d, ok := n.(Describer); ok {
			out[ch] = d.Describe()
		} else {
			out[ch] = fmt.Sprintf("%T", n)
		}
	}
	return out
}
