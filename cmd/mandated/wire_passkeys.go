package main

import (
	"flag"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/ui"
)

// passkeysConfig holds the passkeys settings.
type passkeysConfig struct{}

func (c *passkeysConfig) register(fs *flag.FlagSet) {}

func (a *app) registerPasskeys(e *echo.Echo, pages *ui.UI) error { return nil }
