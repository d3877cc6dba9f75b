package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// RegisterAudit adds the public, read-only transparency endpoints of the
// audit log: the latest signed checkpoint, the verifier key, and inclusion
// and consistency proofs. Leaves and proofs hold no personal data (only
// keyed commitments), so they need no authentication. The formats are in
// docs/audit-format.md.
func RegisterAudit(e *echo.Echo, log *audit.Log) {
	h := auditHandlers{log: log}
	e.GET("/audit/checkpoint", h.checkpoint)
	e.GET("/audit/key", h.key)
	e.GET("/audit/proof/inclusion", h.inclusion)
	e.GET("/audit/proof/consistency", h.consistency)
}

type auditHandlers struct{ log *audit.Log }

// checkpoint answers the latest checkpoint as a C2SP signed note, signing
// one first when the tree grew since the latest.
func (h auditHandlers) checkpoint(c echo.Context) error {
	cp, err := h.log.Checkpoint(c.Request().Context())
	if err != nil {
		return h.fail(c, err, "the audit log has no event yet")
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
}

func (h auditHandlers) key(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(h.log.VerifierKey()+"\n"))
}

func (h auditHandlers) inclusion(c echo.Context) error {
	seq, ok, err := queryInt(c, "seq", true)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	b, err := h.log.InclusionProof(c.Request().Context(), seq)
	if err != nil {
		return h.fail(c, err, "no event "+strconv.FormatInt(seq, 10)+" in the audit log")
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, b)
}

func (h auditHandlers) consistency(c echo.Context) error {
	old, ok, err := queryInt(c, "old", true)
	if err != nil || !ok {
		return err
	}
	newSize, ok, err := queryInt(c, "new", false)
	if err != nil || !ok {
		return err
	}
	if old < 1 {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "old must be a tree size of at least 1"})
	}
	if newSize != 0 && old > newSize {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "old must not be larger than new"})
	}
	b, err := h.log.ConsistencyProof(c.Request().Context(), old, newSize)
	if err != nil {
		return h.fail(c, err, "no signed checkpoint of that size, or old is beyond it")
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, b)
}

// fail answers 404 with notFound for mandate.ErrNotFound and hands any other
// error to the error handler (500, logged).
func (h auditHandlers) fail(c echo.Context, err error, notFound string) error {
	if errors.Is(err, mandate.ErrNotFound) {
		return WriteProblem(c, Problem{Status: http.StatusNotFound, Detail: notFound})
	}
	return err
}

// queryInt parses a non-negative decimal query parameter. When it answered
// a problem itself, ok is false and err is what the handler returns. An
// absent optional parameter is 0.
func queryInt(c echo.Context, name string, required bool) (n int64, ok bool, err error) {
	raw := c.QueryParam(name)
	if raw == "" && !required {
		return 0, true, nil
	}
	n, perr := strconv.ParseInt(raw, 10, 64)
	if perr != nil || n < 0 {
		return 0, false, WriteProblem(c, Problem{Status: http.StatusBadRequest,
			Detail: name + " must be a non-negative decimal integer"})
	}
	return n, true, nil
}
