package main

import (
	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/ui"
)

func (a *app) registerAuditReporting(e *echo.Echo, pages *ui.UI) error { return nil }
