package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// mandatesConfig holds the settings of mandates and presence (docs/mandates.md).
type mandatesConfig struct {
	// LeaseLapse ends a session whose holder's page sent no heartbeat for that long.
	LeaseLapse time.Duration
	// HeartbeatEvery is how often the holder's page beats.
	HeartbeatEvery time.Duration
	// AnswerWithin is how long a holder has to answer (the device code's lifetime).
	AnswerWithin time.Duration
	// SweepEvery is how often lapsed leases, unanswered requests and ended
	// windows are looked for.
	SweepEvery time.Duration
	// Audience lists the client ids of the mail servers every mandate token
	// is for (they may introspect it), comma-separated.
	Audience string
}

// audience returns the configured mandate audience.
func (c *mandatesConfig) audience() []string {
	var out []string
	for _, a := range strings.Split(c.Audience, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c *mandatesConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.LeaseLapse, "presence-lapse", envDuration("MANDATED_PRESENCE_LAPSE", 15*time.Second),
		"end a session when the holder's page sent no heartbeat for this long, between 3s and 5m [MANDATED_PRESENCE_LAPSE]")
	fs.DurationVar(&c.HeartbeatEvery, "presence-heartbeat", envDuration("MANDATED_PRESENCE_HEARTBEAT", 5*time.Second),
		"how often the holder's page beats; at most a third of --presence-lapse [MANDATED_PRESENCE_HEARTBEAT]")
	fs.DurationVar(&c.AnswerWithin, "mandate-answer-within", envDuration("MANDATED_MANDATE_ANSWER_WITHIN", 10*time.Minute),
		"how long a holder has to answer a request (device code lifetime), between 1m and 1h [MANDATED_MANDATE_ANSWER_WITHIN]")
	fs.StringVar(&c.Audience, "mandate-audience", envOr("MANDATED_MANDATE_AUDIENCE", ""),
		"comma-separated client ids of the mail servers every mandate token is for: they may introspect it, whichever client got it [MANDATED_MANDATE_AUDIENCE]")
	fs.DurationVar(&c.SweepEvery, "mandate-sweep", envDuration("MANDATED_MANDATE_SWEEP", time.Second),
		"how often lapsed leases and ended windows are looked for, between 100ms and 10s [MANDATED_MANDATE_SWEEP]")
}

func (c *mandatesConfig) check() error {
	switch {
	case c.LeaseLapse == 0 && c.HeartbeatEvery == 0 && c.AnswerWithin == 0 && c.SweepEvery == 0:
		return nil // administration commands: the service's defaults
	case c.LeaseLapse < 3*time.Second || c.LeaseLapse > 5*time.Minute:
		return fmt.Errorf("--presence-lapse %s must be between 3s and 5m", c.LeaseLapse)
	case c.HeartbeatEvery <= 0 || 3*c.HeartbeatEvery > c.LeaseLapse:
		return fmt.Errorf("--presence-heartbeat %s must be positive and at most a third of --presence-lapse %s", c.HeartbeatEvery, c.LeaseLapse)
	case c.AnswerWithin < time.Minute || c.AnswerWithin > time.Hour:
		return fmt.Errorf("--mandate-answer-within %s must be between 1m and 1h", c.AnswerWithin)
	case c.SweepEvery < 100*time.Millisecond || c.SweepEvery > 10*time.Second:
		return fmt.Errorf("--mandate-sweep %s must be between 100ms and 10s", c.SweepEvery)
	}
	return nil
}

// mandateMessagePrefix marks "this mandate changed" on the revocation bus:
// authz drops its cached copy, the hub wakes the pages following it.
const mandateMessagePrefix = authz.MandateMessagePrefix

// busWatchers tells every replica, through the revocation bus, that a
// mandate changed. Publish delivers locally first, then to other replicas.
type busWatchers struct {
	bus authz.RevocationBus
	log *slog.Logger
}

func (w busWatchers) MandateChanged(ctx context.Context, id string) {
	if err := w.bus.Publish(context.WithoutCancel(ctx), mandateMessagePrefix+id); err != nil {
		w.log.WarnContext(ctx, "publish mandate change", "mandate", id, "err", err)
	}
}

// followMandates hands the bus's mandate messages to the hub.
func followMandates(bus authz.RevocationBus, hub *mandate.Hub) {
	bus.Subscribe(func(msg string) {
		if id, ok := strings.CutPrefix(msg, mandateMessagePrefix); ok {
			hub.Notify(id)
		} else if msg == authz.FlushAll {
			hub.NotifyAll() // messages may have been missed: everyone re-reads
		}
	})
}

// lateRevoker revokes through the authorization server, which is built
// after the mandate service (it needs the service for the device flow).
type lateRevoker struct{ a *app }

func (r lateRevoker) RevokeGrant(ctx context.Context, grantID string) error {
	if r.a.authz == nil {
		return errors.New("authorization server not ready")
	}
	return r.a.authz.RevokeGrant(ctx, grantID)
}

// mandateEnder ends a deactivated staff member's mandates (offboarding):
// a people.AccessEnder.
type mandateEnder struct{ svc *mandate.Service }

func (m mandateEnder) EndAccess(ctx context.Context, subject string) (int, error) {
	kind, id, ok := people.ParseSubject(subject)
	if !ok || kind != "staff" {
		return 0, nil
	}
	return m.svc.EndAllOfDelegate(ctx, id, mandate.EndedByOffboarding, mandate.Actor{Kind: "system"})
}

// openMandates builds the mandate service; openApp calls it before the
// authorization server.
func (a *app) openMandates() error {
	if err := a.cfg.Mandates.check(); err != nil {
		return err
	}
	a.hub = mandate.NewHub()
	followMandates(a.bus, a.hub)
	svc, err := mandate.NewService(mandate.Deps{
		Store:    a.store,
		Dir:      people.NewDirectory(a.store),
		Revoker:  lateRevoker{a},
		Watchers: busWatchers{bus: a.bus, log: a.log},
		Recorder: audit.MandateRecorder(a.audit),
		Clock:    a.clock,
		Log:      a.log,
	}, mandate.ServiceConfig{AnswerWithin: a.cfg.Mandates.AnswerWithin, LeaseLapse: a.cfg.Mandates.LeaseLapse})
	if err != nil {
		return fmt.Errorf("mandate service: %w", err)
	}
	a.mandates = svc
	return nil
}

// runMandateSweep ends lapsed leases and closed windows and lapses
// unanswered requests, every --mandate-sweep, until ctx ends.
func (a *app) runMandateSweep(ctx context.Context) {
	every := a.cfg.Mandates.SweepEvery
	if every <= 0 {
		every = time.Second
	}
	if err := a.mandates.Run(ctx, every); err != nil && ctx.Err() == nil {
		a.log.Error("mandate sweep stopped", "err", err)
	}
}

// registerMandates serves the holder's side of mandates (/device, the
// approval card, the live page with its heartbeat, the list with the
// latest accesses, signed receipts) and the mediator's console
// (wire_mandates.go).
func (a *app) registerMandates(e *echo.Echo, pages *ui.UI) error {
	ui.NewHolderMandatePages(pages, a.mandates, a.authz, people.NewDirectory(a.store), a.hub,
		ui.HolderMandateConfig{HeartbeatEvery: a.cfg.Mandates.HeartbeatEvery, Clock: a.clock,
			Receipts: a.authz, ReceiptKeysURL: a.authz.Config().URL(authz.PathJWKS), Events: a.audit}).Register(e)
	h, err := a.newHolders()
	if err != nil {
		return err
	}
	a.console = ui.NewConsoleSessions(pages, ui.ConsoleDeps{Mandates: a.mandates, Device: a.authz, Holders: h,
		Hub: a.hub, Sealer: a.secrets.Sealer, Clock: a.clock})
	a.console.Register(e)
	api.RegisterMandates(e, a.mandates, a.clock, pages.CurrentPrincipal)
	return nil
}

// accessNoticeEvery is the least time between two notices of one
// delegation to its holder.
const accessNoticeEvery = 15 * time.Minute

// accessNoticeTimeout bounds the sending of one notice (the SMS webhook
// retries for up to about 10 s, SMTP answers within --smtp-timeout).
const accessNoticeTimeout = time.Minute

// accessNotices tells a holder each time a colleague gets access to their
// mailbox under a delegation (docs/mandates.md, "Notices to the holder"):
// the authorization server's token hook, after the tokens are stored and
// recorded. At most one notice per delegation per accessNoticeEvery, by an
// in-memory limiter of this process (each replica has its own: with N
// replicas a holder may get up to N notices in a quarter of an hour, and a
// restart forgets the quarter). The notice is sent in the background:
// the token answer never waits for the SMTP server or the SMS gateway, and
// a failed notice is only logged (the access is in the audit log, and the
// next one tries again). Sessions, where the holder is there, are not
// told.
//
// It also tells a holder when a colleague asks for a delegation on their
// mailbox (requested): the request awaits their answer, and they may be
// away from the colleague. At most one such notice per holder per
// requestNoticeEvery (a colleague cannot flood a holder's phone); the
// request is in the holder's list all the same.
type accessNotices struct {
	a        *app
	limiter  *people.NoticeLimiter // accesses, by mandate
	requests *people.NoticeLimiter // requests, by holder
	wg       sync.WaitGroup        // notices being sent
}

// requestNoticeEvery is the least time between two request notices to one
// holder.
const requestNoticeEvery = 5 * time.Minute

func (a *app) newAccessNotices() *accessNotices {
	return &accessNotices{a: a, limiter: people.NewNoticeLimiter(accessNoticeEvery, a.clock),
		requests: people.NewNoticeLimiter(requestNoticeEvery, a.clock)}
}

// noticeMandates is the mandate service as the authorization server sees
// it: a delegation asked through the device flow is told to its holder.
type noticeMandates struct {
	*mandate.Service
	n *accessNotices
}

// mandatesForAuthz is the mandate service the authorization server is
// given (authz.WithMandates).
func (a *app) mandatesForAuthz() noticeMandates { return noticeMandates{a.mandates, a.notices} }

func (m noticeMandates) Request(ctx context.Context, req mandate.Request) (mandate.Mandate, error) {
	got, err := m.Service.Request(ctx, req)
	if err == nil {
		m.n.requested(ctx, got)
	}
	return got, err
}

// requested tells the holder of delegation request m that it awaits their
// answer, in the background; sessions are not told (the holder is there or
// on the phone, and gets the code from the mediator).
func (n *accessNotices) requested(ctx context.Context, m mandate.Mandate) {
	if m.Kind != mandate.KindDelegation || !n.requests.Allow(m.HolderID) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessNoticeTimeout)
		defer cancel()
		colleague, structure := n.names(ctx, m)
		holders, err := n.a.newHolders()
		if err == nil {
			err = holders.NotifyRequest(ctx, people.RequestNotice{HolderID: m.HolderID, Colleague: colleague, Structure: structure,
				Mailbox: m.Mailbox, From: m.NotBefore, To: m.NotAfter,
				Link: strings.TrimSuffix(n.a.cfg.Issuer, "/") + "/holder/mandates/" + m.ID + "/approve"})
		}
		if err != nil {
			if !errors.Is(err, people.ErrNoContactForNotice) {
				n.requests.Forget(m.HolderID)
			}
			n.a.log.WarnContext(ctx, "request notice not sent", "mandate_id", m.ID, "err", err)
		}
	}()
}

// hook is called on the token request: it takes the limiter's slot and
// leaves the rest to a goroutine.
func (n *accessNotices) hook(ctx context.Context, mandateID string, refreshed bool) {
	if !n.limiter.Allow(mandateID) {
		return
	}
	at := n.a.clock.Now()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessNoticeTimeout)
		defer cancel()
		m, err := n.a.mandates.Get(ctx, mandateID)
		switch {
		case err != nil:
			n.limiter.Forget(mandateID)
			n.a.log.WarnContext(ctx, "access notice not sent", "mandate_id", mandateID, "err", err)
			return
		case m.Kind != mandate.KindDelegation:
			// A session: the holder is there. The slot stays taken, so
			// a session costs one look per quarter of an hour at most.
			return
		case at.Before(m.NotBefore):
			// Exchanged ahead of the window: the token carries nbf and
			// works later. The slot goes back, so the first real access
			// (a refresh inside the window) is told.
			n.limiter.Forget(mandateID)
			return
		}
		if err := n.send(ctx, m, at); err != nil {
			// Tried again at the next access; a holder with no contact
			// is not an incident and keeps the slot (logged once a
			// quarter of an hour at most).
			if !errors.Is(err, people.ErrNoContactForNotice) {
				n.limiter.Forget(mandateID)
			}
			n.a.log.WarnContext(ctx, "access notice not sent", "mandate_id", mandateID, "refreshed", refreshed, "err", err)
		}
	}()
}

// send tells the holder of delegation m that its colleague got access at
// at: the colleague's and structure's names of today, the mailbox, the
// link to the holder's mandates.
func (n *accessNotices) send(ctx context.Context, m mandate.Mandate, at time.Time) error {
	notice := people.AccessNotice{HolderID: m.HolderID, Mailbox: m.Mailbox, At: at,
		Link: strings.TrimSuffix(n.a.cfg.Issuer, "/") + "/holder/mandates"}
	notice.Colleague, notice.Structure = n.names(ctx, m)
	holders, err := n.a.newHolders()
	if err != nil {
		return err
	}
	return holders.NotifyAccess(ctx, notice)
}

// names are m's delegate's and structure's names of today; "" for a name
// that cannot be read (logged: the notice says it in other words).
func (n *accessNotices) names(ctx context.Context, m mandate.Mandate) (colleague, structure string) {
	dir := people.NewDirectory(n.a.store)
	if p, err := dir.Delegate(ctx, m.DelegateID); err == nil {
		colleague = p.DisplayName
	} else {
		n.a.log.WarnContext(ctx, "notice: colleague's name", "mandate_id", m.ID, "err", err)
	}
	if name, err := dir.StructureName(ctx, m.StructureID); err == nil {
		structure = name
	} else {
		n.a.log.WarnContext(ctx, "notice: structure's name", "mandate_id", m.ID, "err", err)
	}
	return colleague, structure
}

// wait waits for the notices being sent (tests).
func (n *accessNotices) wait() { n.wg.Wait() }

// noticesDrain is how long Close waits for notices under way; a notice
// still unsent then may be lost (docs/mandates.md says so).
const noticesDrain = 5 * time.Second

// waitFor waits for the notices being sent, at most d.
func (n *accessNotices) waitFor(d time.Duration) {
	if n == nil {
		return
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
