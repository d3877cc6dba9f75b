package main

import (
	"flag"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/ui"
)

// adminConfig holds the admin settings.
type adminConfig struct{}

func (c *adminConfig) register(fs *flag.FlagSet) {}

func (a *app) registerAdmin(e *echo.Echo, pages *ui.UI) error { return nil }
