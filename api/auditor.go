package api

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
)

// Auditor read API bounds.
const (
	auditorDefaultLimit = 100
	auditorMaxLimit     = 500
	// auditorExportPage is how many events an export reads per Query.
	auditorExportPage = 500
)

// RegisterAuditor adds the auditor read API of the audit log: a paginated,
// filtered JSON listing and JSON Lines and CSV exports. Only signed-in staff
// with the auditor or admin role may read; staff of a structure see only
// their structure's events, platform staff see all. who returns the
// signed-in principal of a request (the UI session).
//
// An export that fails after its first bytes were sent is logged (with
// slog.Default) and its connection aborted, so that the client sees an
// incomplete transfer instead of a clean-looking truncated file.
func RegisterAuditor(e *echo.Echo, log *audit.Log, who func(echo.Context) (people.Principal, bool)) {
	registerAuditor(e, log, who, auditorExportPage, slog.Default())
}

// registerAuditor is RegisterAuditor with the export page size (tests make
// it small to export across several pages) and the logger.
func registerAuditor(e *echo.Echo, log *audit.Log, who func(echo.Context) (people.Principal, bool), exportPage int, logger *slog.Logger) {
	h := auditorHandlers{log: log, who: who, exportPage: exportPage, logger: logger}
	e.GET("/api/audit/events", h.list)
	e.GET("/api/audit/events.jsonl", h.exportJSONL)
	e.GET("/api/audit/events.csv", h.exportCSV)
}

type auditorHandlers struct {
	log        *audit.Log
	who        func(echo.Context) (people.Principal, bool)
	exportPage int
	logger     *slog.Logger
}

// auditorEvent is the JSON form of an audit event.
type auditorEvent struct {
	Seq       int64  `json:"seq"`
	Time      string `json:"time"`
	ActorKind string `json:"actor_kind"`
	ActorID   string `json:"actor_id,omitempty"`
	ActorName string `json:"actor_name,omitempty"`
	Holder    string `json:"holder,omitempty"`
	Structure string `json:"structure,omitempty"`
	Action    string `json:"action"`
	Target    string `json:"target,omitempty"`
	MandateID string `json:"mandate_id,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

func toAuditorEvent(e audit.Event) auditorEvent {
	return auditorEvent{
		Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano),
		ActorKind: string(e.Actor.Kind), ActorID: e.Actor.ID, ActorName: e.Actor.Name,
		Holder: e.Holder, Structure: e.Structure, Action: string(e.Action), Target: e.Target,
		MandateID: e.MandateID, ClientID: e.ClientID, Outcome: string(e.Outcome),
		Reason: e.Reason, RequestID: e.RequestID,
	}
}

// csvHeader names the CSV columns, in the order of csvRow.
var csvHeader = []string{"seq", "time", "actor_kind", "actor_id", "actor_name", "holder", "structure",
	"action", "target", "mandate_id", "client_id", "outcome", "reason", "request_id"}

func csvRow(e auditorEvent) []string {
	row := []string{strconv.FormatInt(e.Seq, 10), e.Time, e.ActorKind, e.ActorID, e.ActorName,
		e.Holder, e.Structure, e.Action, e.Target, e.MandateID, e.ClientID, e.Outcome, e.Reason, e.RequestID}
	for i, v := range row {
		row[i] = csvSafe(v)
	}
	return row
}

// csvSafe guards against CSV (formula) injection: a cell a spreadsheet
// would read as a formula is prefixed with a single quote.
func csvSafe(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + v
	}
	return v
}

type auditorListResponse struct {
	Events     []auditorEvent `json:"events"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func (h auditorHandlers) list(c echo.Context) error {
	f, ok, err := h.filter(c, true)
	if err != nil || !ok {
		return err
	}
	page, err := h.log.Query(c.Request().Context(), f)
	if err != nil {
		return h.queryFailed(c, err)
	}
	resp := auditorListResponse{Events: make([]auditorEvent, 0, len(page.Events))}
	for _, e := range page.Events {
		resp.Events = append(resp.Events, toAuditorEvent(e))
	}
	if page.Next > 0 {
		resp.NextCursor = encodeCursor(page.Next)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, resp)
}

func (h auditorHandlers) exportJSONL(c echo.Context) error {
	return h.export(c, "application/jsonl; charset=utf-8", "audit-events.jsonl",
		func(w http.ResponseWriter) (func(auditorEvent) error, func() error) {
			enc := json.NewEncoder(w)
			return func(e auditorEvent) error { return enc.Encode(e) }, func() error { return nil }
		})
}

func (h auditorHandlers) exportCSV(c echo.Context) error {
	return h.export(c, "text/csv; charset=utf-8", "audit-events.csv",
		func(w http.ResponseWriter) (func(auditorEvent) error, func() error) {
			cw := csv.NewWriter(w)
			_ = cw.Write(csvHeader) // buffered; an error shows in cw.Error
			return func(e auditorEvent) error { return cw.Write(csvRow(e)) },
				func() error { cw.Flush(); return cw.Error() }
		})
}

// export streams every event matching the request's filters, newest first,
// paging through Query. The first page is read before anything is written,
// so that an error there still answers a problem.
func (h auditorHandlers) export(c echo.Context, contentType, filename string,
	newWriter func(http.ResponseWriter) (write func(auditorEvent) error, flush func() error)) error {
	f, ok, err := h.filter(c, false)
	if err != nil || !ok {
		return err
	}
	ctx := c.Request().Context()
	f.Limit = h.exportPage
	page, err := h.log.Query(ctx, f)
	if err != nil {
		return h.queryFailed(c, err)
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, contentType)
	res.Header().Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", filename))
	res.Header().Set("Cache-Control", "no-store")
	res.WriteHeader(http.StatusOK)
	write, flush := newWriter(res)
	for {
		for _, e := range page.Events {
			if err := write(toAuditorEvent(e)); err != nil {
				h.abort(c, err)
			}
		}
		if page.Next == 0 {
			break
		}
		if err := flush(); err != nil {
			h.abort(c, err)
		}
		res.Flush()
		f.Before = page.Next
		if page, err = h.log.Query(ctx, f); err != nil {
			h.abort(c, err)
		}
	}
	if err := flush(); err != nil {
		h.abort(c, err)
	}
	res.Flush()
	return nil
}

// abort ends an export that failed after its status line was sent: a
// problem can no longer be answered, and a body that just stops would look
// complete (a JSON Lines or CSV file has no end marker). It logs the error
// and panics with http.ErrAbortHandler, which the recover middleware lets
// through and net/http answers by closing the connection without the
// final chunk (HTTP/1.1) or with a stream reset (HTTP/2): clients report an
// incomplete transfer (curl: exit 18; Go: unexpected EOF).
func (h auditorHandlers) abort(c echo.Context, err error) {
	ctx := c.Request().Context()
	level := slog.LevelError
	if ctx.Err() != nil {
		level = slog.LevelInfo // the client went away
	}
	h.logger.Log(ctx, level, "audit export failed after the response started; aborting the connection",
		"err", err, "path", c.Request().URL.Path, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	panic(http.ErrAbortHandler)
}

func (h auditorHandlers) queryFailed(c echo.Context, err error) error {
	if errors.Is(err, audit.ErrInvalid) {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "invalid filter"})
	}
	return err
}

// authorize is the one access check of the auditor API: signed-in staff
// with the auditor or admin role. It returns the structure the reader is
// confined to ("" for platform staff, who see every structure). When it
// answered a problem itself, ok is false and err is what the handler returns.
func (h auditorHandlers) authorize(c echo.Context) (structure string, ok bool, err error) {
	p, signedIn := h.who(c)
	if !signedIn {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Cookie realm="mandated"`)
		return "", false, WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "sign in as an auditor or administrator to read the audit log"})
	}
	if p.Kind != "staff" || (p.Role != people.RoleAuditor && p.Role != people.RoleAdmin) {
		return "", false, WriteProblem(c, Problem{Status: http.StatusForbidden,
			Detail: "only auditors and administrators may read the audit log"})
	}
	if p.Platform {
		return "", true, nil
	}
	if p.StructureID == "" {
		// Not platform staff and no structure: confining them is impossible.
		return "", false, WriteProblem(c, Problem{Status: http.StatusForbidden,
			Detail: "your account belongs to no structure"})
	}
	return p.StructureID, true, nil
}

// filter checks access and parses the request's filters. paged says
// whether limit and cursor apply (the listing) or not (exports).
func (h auditorHandlers) filter(c echo.Context, paged bool) (audit.Filter, bool, error) {
	confined, ok, err := h.authorize(c)
	if err != nil || !ok {
		return audit.Filter{}, false, err
	}
	bad := func(detail string) (audit.Filter, bool, error) {
		return audit.Filter{}, false, WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: detail})
	}
	q := c.QueryParams()
	f := audit.Filter{
		Structure: q.Get("structure"), Actor: q.Get("actor"), Holder: q.Get("holder"),
		MandateID: q.Get("mandate"), ClientID: q.Get("client"),
		Action: audit.Action(q.Get("action")), Outcome: audit.Outcome(q.Get("outcome")),
	}
	for name, v := range map[string]string{"structure": f.Structure, "actor": f.Actor, "holder": f.Holder,
		"mandate": f.MandateID, "client": f.ClientID} {
		if len(v) > audit.MaxIDLen {
			return bad(fmt.Sprintf("%s must be at most %d bytes", name, audit.MaxIDLen))
		}
	}
	if confined != "" {
		if f.Structure != "" && f.Structure != confined {
			return audit.Filter{}, false, WriteProblem(c, Problem{Status: http.StatusForbidden,
				Detail: "you may read only your own structure's events"})
		}
		f.Structure = confined
	}
	if f.Action != "" && !f.Action.Valid() {
		return bad("action is not a known audit action")
	}
	switch f.Outcome {
	case "", audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError:
	default:
		return bad("outcome must be success, denied or error")
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		raw := q.Get(t.name)
		if raw == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return bad(t.name + " must be an RFC 3339 date-time, e.g. 2025-03-01T09:00:00Z")
		}
		*t.dst = v
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return bad("since must be before until")
	}
	if !paged {
		return f, true, nil
	}
	f.Limit = auditorDefaultLimit
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > auditorMaxLimit {
			return bad(fmt.Sprintf("limit must be an integer from 1 to %d", auditorMaxLimit))
		}
		f.Limit = n
	}
	if raw := q.Get("cursor"); raw != "" {
		seq, ok := decodeCursor(raw)
		if !ok {
			return bad("cursor is not one this server gave")
		}
		f.Before = seq
	}
	return f, true, nil
}

// Cursors are opaque to clients: the sequence number to read before,
// prefixed with a version, in unpadded base64url.
const cursorPrefix = "v1:"

func encodeCursor(before int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(before, 10)))
}

func decodeCursor(s string) (int64, bool) {
	if len(s) > 64 {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) <= len(cursorPrefix) || string(b[:len(cursorPrefix)]) != cursorPrefix {
		return 0, false
	}
	digits := string(b[len(cursorPrefix):])
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != digits {
		return 0, false
	}
	return n, true
}
