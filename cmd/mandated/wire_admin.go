package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// adminConfig holds the admin settings.
type adminConfig struct {
	// InactivityDays: the admin home flags staff not signed in for that many days.
	InactivityDays int
}

func (c *adminConfig) register(fs *flag.FlagSet) {
	def := 90
	if v, err := strconv.Atoi(envOr("MANDATED_INACTIVITY_DAYS", "")); err == nil {
		def = v
	}
	fs.IntVar(&c.InactivityDays, "inactivity-days", def, "the admin home flags staff not signed in for this many days [MANDATED_INACTIVITY_DAYS]")
}

// newAdmin is structure administration over the app: invitations sent by
// the app's notifier, deactivation ending sessions, tokens and consents
// (authz) at once.
func (a *app) newAdmin() *people.Admin {
	issuer := a.cfg.Issuer
	return people.NewAdmin(a.people, a.store, people.AdminConfig{
		Notifier:       a.notifier,
		EnrolmentURL:   func(token string) string { return ui.EnrolmentURL(issuer, token) },
		InactivityDays: a.cfg.Admin.InactivityDays,
		AccessEnders:   []people.AccessEnder{a.authz, mandateEnder{a.mandates}},
	})
}

func (a *app) registerAdmin(e *echo.Echo, pages *ui.UI) error {
	if d := a.cfg.Admin.InactivityDays; d < 1 || d > 3650 {
		return fmt.Errorf("--inactivity-days %d must be between 1 and 3650", d)
	}
	adm := a.newAdmin()
	ui.NewAdminPages(pages, adm).Register(e)
	api.RegisterAdmin(e, adm, pages.CurrentPrincipal)
	return nil
}
