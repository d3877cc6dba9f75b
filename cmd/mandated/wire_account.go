package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// accountConfig holds the settings of a person's own account: sessions and
// the staff password reset by email (docs/account.md).
type accountConfig struct {
	SessionIdleTimeout time.Duration
	ResetTTL           time.Duration
}

// maxSessionIdle is the absolute lifetime of a session (people.Config.SessionTTL):
// an idle timeout longer than that would never apply.
const maxSessionIdle = 12 * time.Hour

func (c *accountConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.SessionIdleTimeout, "session-idle-timeout", envDuration("MANDATED_SESSION_IDLE_TIMEOUT", people.DefaultSessionIdleTimeout),
		"end a browser session (staff or holder) unused for this long, between 1m and 12h; sessions end after 12h in any case [MANDATED_SESSION_IDLE_TIMEOUT]")
	fs.DurationVar(&c.ResetTTL, "password-reset-ttl", envDuration("MANDATED_PASSWORD_RESET_TTL", 30*time.Minute),
		"how long a staff password-reset link sent by email works, between 5m and 24h [MANDATED_PASSWORD_RESET_TTL]")
}

func (c *accountConfig) check() error {
	if c.SessionIdleTimeout != 0 && (c.SessionIdleTimeout < time.Minute || c.SessionIdleTimeout > maxSessionIdle) {
		return fmt.Errorf("session idle timeout %s must be between 1m and 12h", c.SessionIdleTimeout)
	}
	if c.ResetTTL != 0 && (c.ResetTTL < 5*time.Minute || c.ResetTTL > 24*time.Hour) {
		return fmt.Errorf("password reset link lifetime %s must be between 5m and 24h", c.ResetTTL)
	}
	return nil
}

// registerAccount serves /account/sessions (every signed-in person) and the
// staff password reset by email (/account/reset...), which sends through the
// configured notifier (wire_notify.go); without one, the reset pages say it
// is not available.
func (a *app) registerAccount(e *echo.Echo, pages *ui.UI) error {
	if err := a.cfg.Account.check(); err != nil {
		return err
	}
	acc := people.NewAccount(a.people, a.store, people.AccountConfig{
		Notifier: a.notifier,
		ResetURL: func(token string) string { return ui.ResetURL(a.cfg.Issuer, token) },
		ResetTTL: a.cfg.Account.ResetTTL,
	})
	if !acc.ResetAvailable() {
		a.log.Warn("no email delivery configured: staff password reset by email is off")
	}
	ui.NewAccount(pages, acc).Register(e)
	return a.registerStaffMailbox(e, pages)
}

// registerStaffMailbox serves « Ma boîte professionnelle » (/account/mailbox
// and /api/me/mailbox): a staff member becomes the holder of the mailbox they
// sign in with, proven by a one-time code sent there with the holders' code
// settings (docs/holders.md).
func (a *app) registerStaffMailbox(e *echo.Echo, pages *ui.UI) error {
	h, err := a.newHolders()
	if err != nil {
		return err
	}
	svc := people.NewStaffMailboxes(a.people, h)
	ui.NewMailboxPages(pages, svc).Register(e)
	api.RegisterStaffMailbox(e, svc, pages.CurrentPrincipal, a.people.Config().ThrottleWindow)
	return nil
}
