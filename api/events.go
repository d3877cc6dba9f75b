package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
)

// PathEvents is where resource servers follow security events (server-sent
// events). See docs/events.md.
const PathEvents = "/api/events"

// Event stream defaults and bounds.
const (
	// DefaultEventsKeepAlive is how often an idle stream sends a comment
	// line and checks that the subscriber's token is still active.
	DefaultEventsKeepAlive = 15 * time.Second
	// DefaultEventsMaxReplay is how far back ?since= may reach.
	DefaultEventsMaxReplay = 7 * 24 * time.Hour
	// eventsReplayPage is how many endings one store read replays.
	eventsReplayPage = 500
	// eventsSkew widens a resync's window for clocks that differ between
	// replicas (EndedAt is the ending replica's time).
	eventsSkew = time.Minute
)

// EventTokens authenticates subscribers and signs their events;
// *authz.Server implements it.
type EventTokens interface {
	EventSubscriber(ctx context.Context, bearer string) (authz.Subscriber, error)
	MandateEndedSET(ctx context.Context, subscriber string, m mandate.Mandate) (string, bool, error)
}

var _ EventTokens = (*authz.Server)(nil)

// EventMandates reads mandates; *mandate.Service implements it.
type EventMandates interface {
	Get(ctx context.Context, id string) (mandate.Mandate, error)
	EndedSince(ctx context.Context, since time.Time, limit int) ([]mandate.Mandate, error)
}

var _ EventMandates = (*mandate.Service)(nil)

// EventsDeps are what the event stream needs.
type EventsDeps struct {
	Tokens   EventTokens
	Mandates EventMandates
	// Hub signals every mandate change on this replica, including those
	// that arrived from other replicas on the revocation bus.
	Hub   *mandate.Hub
	Clock mandate.Clock
	// KeepAlive: DefaultEventsKeepAlive when zero.
	KeepAlive time.Duration
	// MaxReplay: DefaultEventsMaxReplay when zero.
	MaxReplay time.Duration
	Logger    *slog.Logger
}

// EventStreams serves GET /api/events.
type EventStreams struct {
	d    EventsDeps
	done chan struct{}
	once sync.Once
}

// RegisterEvents mounts GET /api/events: a resource server (a client
// holding events.read, authenticated by a bearer access token it obtained
// by client_credentials) receives, as server-sent events, a Security
// Event Token (CAEP session-revoked) for every mandate that ends whose
// tokens were issued to it or for it. ?since=<RFC 3339> first replays the
// endings since then. Call Shutdown when the server stops.
func RegisterEvents(e *echo.Echo, d EventsDeps) *EventStreams {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = mandate.SystemClock{}
	}
	if d.KeepAlive <= 0 {
		d.KeepAlive = DefaultEventsKeepAlive
	}
	if d.MaxReplay <= 0 {
		d.MaxReplay = DefaultEventsMaxReplay
	}
	s := &EventStreams{d: d, done: make(chan struct{})}
	e.GET(PathEvents, s.serve)
	return s
}

// Shutdown ends every stream, so that a server shutting down does not wait
// for them (http.Server.RegisterOnShutdown). Safe to call more than once.
func (s *EventStreams) Shutdown() { s.once.Do(func() { close(s.done) }) }

func (s *EventStreams) serve(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	hdr := c.Response().Header()
	bearer, ok := bearerToken(r)
	if !ok {
		// RFC 6750 §3.1: no error code when the request has no credentials.
		hdr.Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", scope="events.read"`)
		return WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "send an access token with scope events.read as 'Authorization: Bearer <token>'"})
	}
	sub, err := s.d.Tokens.EventSubscriber(ctx, bearer)
	if err != nil {
		return s.tokenProblem(c, err)
	}
	now := s.d.Clock.Now()
	var since time.Time
	if v := c.QueryParam("since"); v != "" {
		since, err = time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return WriteProblem(c, Problem{Status: http.StatusBadRequest, Title: "Invalid since",
				Detail: "since is an RFC 3339 date and time, such as 2030-03-04T10:00:00Z"})
		}
		if since.Before(now.Add(-s.d.MaxReplay)) {
			return WriteProblem(c, Problem{Status: http.StatusBadRequest, Title: "since is too old",
				Detail: "since reaches back at most " + s.d.MaxReplay.String()})
		}
	}

	// Subscribed before anything is read, so no ending falls between the
	// replay and the live signals.
	signals, cancel := s.d.Hub.SubscribeAll()
	defer cancel()
	st := &eventStream{s: s, w: c.Response(), rc: http.NewResponseController(c.Response()),
		sub: sub, sent: map[string]bool{}}
	// A resync re-reads the endings since the connection (or since, when
	// earlier): what this stream may have missed.
	resyncFrom := now.Add(-eventsSkew)
	if !since.IsZero() && since.Before(resyncFrom) {
		resyncFrom = since
	}
	hdr.Set(echo.HeaderContentType, "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	c.Response().WriteHeader(http.StatusOK)
	if st.write(": mandated security events\nretry: 5000\n\n") != nil {
		return nil
	}
	s.d.Logger.InfoContext(ctx, "event stream opened", "client_id", sub.ID, "since", since)
	defer s.d.Logger.InfoContext(ctx, "event stream closed", "client_id", sub.ID)
	if !since.IsZero() && st.replay(ctx, since) != nil {
		return nil
	}

	tick := time.NewTicker(s.d.KeepAlive)
	defer tick.Stop()
	var expired <-chan time.Time
	if !sub.Expires.IsZero() {
		t := time.NewTimer(max(sub.Expires.Sub(s.d.Clock.Now()), 0))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-expired:
			return nil // the client comes back with a new token and ?since=
		case <-tick.C:
			if _, err := s.d.Tokens.EventSubscriber(ctx, bearer); errors.Is(err, authz.ErrSubscriberToken) || errors.Is(err, authz.ErrSubscriberScope) {
				return nil // revoked, or the client was deleted
			}
			if st.pending {
				st.pending = false
				if st.replay(ctx, resyncFrom) != nil {
					return nil
				}
			}
			if st.write(": keep-alive\n\n") != nil {
				return nil
			}
		case id := <-signals:
			if id == mandate.Resync {
				if st.replay(ctx, resyncFrom) != nil {
					return nil
				}
				continue
			}
			if st.sent[id] {
				continue
			}
			m, err := s.d.Mandates.Get(ctx, id)
			if errors.Is(err, mandate.ErrNotFound) {
				continue
			}
			if err != nil {
				s.d.Logger.WarnContext(ctx, "event stream: read mandate; resync at the next tick", "mandate_id", id, "err", err)
				st.pending = true
				continue
			}
			if st.emit(ctx, m) != nil {
				return nil
			}
		}
	}
}

// eventStream is one subscriber's open stream.
type eventStream struct {
	s   *EventStreams
	w   *echo.Response
	rc  *http.ResponseController
	sub authz.Subscriber
	// sent are the mandates this stream told about or found it may not
	// see: each ending once per connection.
	sent map[string]bool
	// pending: a read failed; the next tick resyncs.
	pending bool
}

// write sends one block; an error means the subscriber is gone.
func (st *eventStream) write(block string) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.s.d.KeepAlive + 10*time.Second))
	if _, err := st.w.Write([]byte(block)); err != nil {
		return err
	}
	return st.rc.Flush()
}

// emit sends m's SET if m ended and the subscriber may see it. Only a
// failed write is returned; other failures are logged and resynced.
func (st *eventStream) emit(ctx context.Context, m mandate.Mandate) error {
	if m.State != mandate.StateEnded || st.sent[m.ID] {
		return nil
	}
	set, ok, err := st.s.d.Tokens.MandateEndedSET(ctx, st.sub.ID, m)
	if err != nil {
		st.s.d.Logger.ErrorContext(ctx, "event stream: sign event; resync at the next tick", "mandate_id", m.ID, "err", err)
		st.pending = true
		return nil
	}
	st.sent[m.ID] = true
	if !ok {
		return nil
	}
	return st.write("event: secevent\ndata: " + set + "\n\n")
}

// replay sends the endings since from (EndedSince, a page at a time).
// Only a failed write is returned; a failed read is logged and retried at
// the next tick.
func (st *eventStream) replay(ctx context.Context, from time.Time) error {
	for {
		list, err := st.s.d.Mandates.EndedSince(ctx, from, eventsReplayPage)
		if err != nil {
			if ctx.Err() == nil {
				st.s.d.Logger.WarnContext(ctx, "event stream: replay; again at the next tick", "err", err)
			}
			st.pending = true
			return nil
		}
		for _, m := range list {
			if err := st.emit(ctx, m); err != nil {
				return err
			}
		}
		if len(list) < eventsReplayPage || !list[len(list)-1].EndedAt.After(from) {
			return nil
		}
		from = list[len(list)-1].EndedAt
	}
}

// tokenProblem answers an authentication failure: RFC 6750 errors, 503
// when the token could not be checked.
func (s *EventStreams) tokenProblem(c echo.Context, err error) error {
	hdr := c.Response().Header()
	switch {
	case errors.Is(err, authz.ErrSubscriberToken):
		hdr.Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", error="invalid_token", error_description="The access token is not active."`)
		return WriteProblem(c, Problem{Status: http.StatusUnauthorized, Title: "Invalid token",
			Detail: "the bearer token is unknown, expired or revoked"})
	case errors.Is(err, authz.ErrSubscriberScope):
		hdr.Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", error="insufficient_scope", scope="events.read", error_description="Scope events.read by client_credentials is required."`)
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Title: "Insufficient scope",
			Detail: "the bearer token must be issued to the resource server itself (client_credentials) with scope events.read"})
	case errors.Is(err, authz.ErrSubscriberUnavailable):
		s.d.Logger.ErrorContext(c.Request().Context(), "event stream: token check", "err", err)
		c.Response().Header().Set("Retry-After", "5")
		return WriteProblem(c, Problem{Status: http.StatusServiceUnavailable, Title: "Try again",
			Detail: "the token could not be checked right now"})
	}
	return err
}
