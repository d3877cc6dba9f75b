package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/ui"
)

// registerAuditReporting adds the audit features beyond the log's own
// endpoints (wired in serve.go): the reporting endpoint for resource
// servers (POST /api/audit/actions, scope audit.write) and the auditor page
// (GET /audit).
func (a *app) registerAuditReporting(e *echo.Echo, pages *ui.UI) error {
	api.RegisterAuditReporting(e, api.ReportDeps{
		Tokens: a.authz, Recorder: a.audit, StructureOf: a.actorStructure, Logger: a.log,
	})
	ui.NewAuditor(pages, a.audit).Register(e)
	return nil
}

// actorStructure is the structure of a staff actor, so that a structure's
// auditors see the mailbox actions of its staff. Platform staff and
// non-staff actors belong to no structure. A staff account that no longer
// exists is recorded without a structure (the platform still sees it).
func (a *app) actorStructure(ctx context.Context, actor audit.Actor) (string, error) {
	if actor.Kind != audit.ActorStaff {
		return "", nil
	}
	st, err := a.store.GetStaff(ctx, actor.ID)
	if errors.Is(err, mandate.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("structure of staff %s: %w", actor.ID, err)
	}
	if st.Platform {
		return "", nil
	}
	return st.StructureID, nil
}
