package main

import (
	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/ui"
)

// registerEvents serves GET /api/events: resource servers holding
// events.read follow mandate endings as signed CAEP session-revoked events
// (docs/events.md). The hub carries endings from every replica (the
// revocation bus, followMandates); its streams end on shutdown.
func (a *app) registerEvents(e *echo.Echo, _ *ui.UI) error {
	a.events = api.RegisterEvents(e, api.EventsDeps{
		Tokens: a.authz, Mandates: a.mandates, Hub: a.hub, Clock: a.clock, Logger: a.log,
	})
	return nil
}
