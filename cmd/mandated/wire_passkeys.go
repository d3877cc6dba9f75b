package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// passkeysConfig holds the passkeys (WebAuthn) settings; docs/passkeys.md
// explains them.
type passkeysConfig struct {
	RPID         string
	Origins      string
	EnrolmentTTL time.Duration
}

func (c *passkeysConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.RPID, "webauthn-rp-id", envOr("MANDATED_WEBAUTHN_RP_ID", ""), "WebAuthn relying party id: the domain passkeys belong to (default: the issuer's host name) [MANDATED_WEBAUTHN_RP_ID]")
	fs.StringVar(&c.Origins, "webauthn-origins", envOr("MANDATED_WEBAUTHN_ORIGINS", ""), "comma-separated origins passkey responses may come from, on the relying party id (default: the issuer's origin) [MANDATED_WEBAUTHN_ORIGINS]")
	fs.DurationVar(&c.EnrolmentTTL, "passkey-enrolment-ttl", envDuration("MANDATED_PASSKEY_ENROLMENT_TTL", 15*time.Minute), "how long a holder's passkey enrolment link (the QR code a mediator shows) works [MANDATED_PASSKEY_ENROLMENT_TTL]")
}

// settings are the people.PasskeyConfig the flags describe, with the
// defaults taken from the issuer.
func (c *passkeysConfig) settings(issuer string) (people.PasskeyConfig, error) {
	if c.EnrolmentTTL <= 0 || c.EnrolmentTTL > 24*time.Hour {
		return people.PasskeyConfig{}, fmt.Errorf("passkey enrolment link lifetime %s must be between 1s and 24h", c.EnrolmentTTL)
	}
	cfg := people.PasskeyConfig{RPID: strings.TrimSpace(c.RPID), EnrolmentTTL: c.EnrolmentTTL}
	for _, o := range strings.Split(c.Origins, ",") {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	return people.PasskeyDefaults(cfg, issuer)
}

// registerPasskeys serves the passkey pages. When the relying party comes
// from an issuer on an IP address (the development default,
// http://127.0.0.1:8080), browsers cannot use passkeys: the pages are left
// out with a warning, and staff sign in with their TOTP code.
func (a *app) registerPasskeys(e *echo.Echo, pages *ui.UI) error {
	cfg, err := a.cfg.Passkeys.settings(a.cfg.Issuer)
	if err != nil {
		if a.cfg.Passkeys.RPID == "" && a.cfg.Passkeys.Origins == "" {
			a.log.Warn("passkeys are off: the issuer has no domain name", "err", err)
			ui.NewPasskeyPages(pages, nil, nil).Register(e)
			return nil
		}
		return err
	}
	holders, err := a.newHolders() // wire_holders.go: the same settings as the code sign-in
	if err != nil {
		return fmt.Errorf("passkeys: %w", err)
	}
	keys, err := people.NewPasskeys(a.people, a.store, a.store, holders, cfg)
	if err != nil {
		return err
	}
	ui.NewPasskeyPages(pages, keys, holders).Register(e)
	a.log.Info("passkeys on", "rp_id", cfg.RPID, "origins", strings.Join(cfg.Origins, ","))
	return nil
}
