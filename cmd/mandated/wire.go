package main

import (
	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/ui"
)

// registerFeatures adds each feature's routes and pages, each wired in its
// own wire_*.go file.
func (a *app) registerFeatures(e *echo.Echo, pages *ui.UI) error {
	for _, register := range []func(*echo.Echo, *ui.UI) error{
		a.registerHolders,        // wire_holders.go
		a.registerPasskeys,       // wire_passkeys.go
		a.registerAdmin,          // wire_admin.go
		a.registerAccount,        // wire_account.go
		a.registerAuditReporting, // wire_audit.go
		a.registerMandates,       // wire_mandates.go
		a.registerEvents,         // wire_events.go
	} {
		if err := register(e, pages); err != nil {
			return err
		}
	}
	return nil
}
