package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// holdersConfig holds the holders settings (docs/holders.md): one-time
// codes and CSV imports.
type holdersConfig struct {
	CodeTTL         time.Duration
	CodeDigits      int
	CodesPerHour    int
	MaxImportRows   int
	CodesPreferMail bool
}

func (c *holdersConfig) register(fs *flag.FlagSet) {
	envInt := func(name string, def int) int {
		if v, err := strconv.Atoi(envOr(name, "")); err == nil {
			return v
		}
		return def
	}
	fs.DurationVar(&c.CodeTTL, "holder-code-ttl", envDuration("MANDATED_HOLDER_CODE_TTL", 10*time.Minute),
		"how long a holder's one-time code works, 1m to 30m [MANDATED_HOLDER_CODE_TTL]")
	fs.IntVar(&c.CodeDigits, "holder-code-digits", envInt("MANDATED_HOLDER_CODE_DIGITS", 8),
		"digits of a holder's one-time code, 6 to 8 [MANDATED_HOLDER_CODE_DIGITS]")
	fs.IntVar(&c.CodesPerHour, "holder-codes-per-hour", envInt("MANDATED_HOLDER_CODES_PER_HOUR", 5),
		"one-time codes sent to one holder per hour at most, 1 to 20 [MANDATED_HOLDER_CODES_PER_HOUR]")
	fs.IntVar(&c.MaxImportRows, "holder-import-max-rows", envInt("MANDATED_HOLDER_IMPORT_MAX_ROWS", 10000),
		"rows of a holders CSV import at most [MANDATED_HOLDER_IMPORT_MAX_ROWS]")
	fs.BoolVar(&c.CodesPreferMail, "holder-codes-prefer-email", envOr("MANDATED_HOLDER_CODES_PREFER_EMAIL", "false") == "true",
		"send holders' codes by email first, by SMS only to holders without email (default: SMS first; email first anyway when no SMS webhook is configured) [MANDATED_HOLDER_CODES_PREFER_EMAIL]")
}

func (c *holdersConfig) validate() error {
	switch {
	case c.CodeTTL < time.Minute || c.CodeTTL > 30*time.Minute:
		return fmt.Errorf("--holder-code-ttl %s must be between 1m and 30m", c.CodeTTL)
	case c.CodeDigits < 6 || c.CodeDigits > 8:
		return fmt.Errorf("--holder-code-digits %d must be between 6 and 8", c.CodeDigits)
	case c.CodesPerHour < 1 || c.CodesPerHour > 20:
		return fmt.Errorf("--holder-codes-per-hour %d must be between 1 and 20", c.CodesPerHour)
	case c.MaxImportRows < 1 || c.MaxImportRows > 100000:
		return fmt.Errorf("--holder-import-max-rows %d must be between 1 and 100000", c.MaxImportRows)
	}
	return nil
}

// importMaxBytes bounds a CSV import: under the import routes' request
// body limit (api.MaxImportBodyBytes, 2 MiB, set in serve.go), leaving room
// for the upload form's envelope; about 10,000 rows.
const importMaxBytes = api.MaxImportBodyBytes - 16<<10

// newHolders builds the holders service over the app: the store, the
// notifier, the one-time code key and the audit log. Other features (the
// passkey enrolment, which sends codes) build theirs with it too: the
// service keeps no state of its own.
func (a *app) newHolders() (*people.Holders, error) {
	c := a.cfg.Holders
	if err := c.validate(); err != nil {
		return nil, err
	}
	channels := []notify.Channel{notify.SMS, notify.Email}
	// Without an SMS gateway, "SMS" goes to the log notifier: prefer email.
	if c.CodesPreferMail || a.cfg.Notify.SMSWebhookURL == "" {
		channels = []notify.Channel{notify.Email, notify.SMS}
	}
	h, err := people.NewHolders(people.HoldersConfig{
		Store: a.store, Notifier: a.notifier, CodeKey: a.secrets.CodeKey, Recorder: a.audit,
		Clock: a.clock, Logger: a.log, Channels: channels,
		CodeTTL: c.CodeTTL, CodeDigits: c.CodeDigits, MaxCodesPerHour: c.CodesPerHour, MaxImportRows: c.MaxImportRows,
		ThrottleWindow: a.people.Config().ThrottleWindow,
		// A file travels in one request, which the server caps (api.Config.MaxBodyBytes).
		MaxImportBytes: importMaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("holders: %w", err)
	}
	return h, nil
}

func (a *app) registerHolders(e *echo.Echo, pages *ui.UI) error {
	h, err := a.newHolders()
	if err != nil {
		return err
	}
	// The holder's home shows the banners of every structure serving them;
	// /holder/history, what was done for them, from the audit log.
	ui.NewHolderPages(pages, h).WithBanners(a.newAdmin(), a.store).Register(e)
	ui.NewHolderHistory(pages, a.audit, a.store).Register(e)
	api.RegisterHolders(e, h, pages.CurrentPrincipal)
	return nil
}
