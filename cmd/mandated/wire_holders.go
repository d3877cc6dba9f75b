package main

import (
	"flag"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/ui"
)

// holdersConfig holds the holders settings.
type holdersConfig struct{}

func (c *holdersConfig) register(fs *flag.FlagSet) {}

func (a *app) registerHolders(e *echo.Echo, pages *ui.UI) error { return nil }
