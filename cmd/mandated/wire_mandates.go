package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
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
// approval card, the live page with its heartbeat, receipts) and the
// mediator's console (wire_mandates.go).
func (a *app) registerMandates(e *echo.Echo, pages *ui.UI) error {
	ui.NewHolderMandatePages(pages, a.mandates, a.authz, people.NewDirectory(a.store), a.hub,
		ui.HolderMandateConfig{HeartbeatEvery: a.cfg.Mandates.HeartbeatEvery, Clock: a.clock}).Register(e)
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
