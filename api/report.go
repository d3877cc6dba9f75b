package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
)

// PathAuditActions is where resource servers report mailbox actions.
const PathAuditActions = "/api/audit/actions"

// Report bounds (bytes). The whole body is at most reportMaxBody; a token
// is a compact JWT; the reporter's reason leaves room in audit.MaxReasonLen
// for the "reported by <client>" prefix.
const (
	reportMaxBody   = 16 << 10
	reportMaxToken  = 8 << 10
	reportMaxReason = 512
)

// ReportTokens checks reporters and the tokens they present;
// *authz.Server implements it.
type ReportTokens interface {
	ReportingClient(ctx context.Context, bearer string) (authz.ReportingClient, error)
	TokenForReporting(ctx context.Context, reporterToken, presentedToken string) (authz.ReportingClient, authz.ReportedToken, error)
}

var _ ReportTokens = (*authz.Server)(nil)

// ReportDeps are what the reporting endpoint needs.
type ReportDeps struct {
	Tokens ReportTokens
	// Recorder is the audit log (*audit.Log); Record returns once durable.
	Recorder authz.Recorder
	// StructureOf names the structure an actor works for ("" for none), so
	// a structure's auditors see its mediators' mailbox actions. Optional.
	StructureOf func(ctx context.Context, actor audit.Actor) (string, error)
	Logger      *slog.Logger
}

// RegisterAuditReporting mounts POST /api/audit/actions: a resource server
// (a client holding audit.write, authenticated by a bearer access token)
// reports one mailbox action done with a token it received. The event's
// actor, holder, mandate and client come from that token's claims, never
// from the body. See docs/endpoints.md.
//
// The endpoint is not a browser form: the CSRF middleware must skip it
// (ReportCSRFSkipper).
func RegisterAuditReporting(e *echo.Echo, d ReportDeps) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := reportHandler{d: d}
	e.POST(PathAuditActions, h.report)
}

// ReportCSRFSkipper exempts the reporting endpoint, authenticated by a
// bearer token in the Authorization header (never a cookie), from the CSRF
// middleware.
func ReportCSRFSkipper(c echo.Context) bool {
	return c.Request().URL.Path == PathAuditActions
}

type reportHandler struct{ d ReportDeps }

// reportResponse answers a recorded action.
type reportResponse struct {
	Seq int64 `json:"seq"`
}

func (h reportHandler) report(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	bearer, ok := bearerToken(r)
	if !ok {
		// RFC 6750 §3.1: no error code when the request has no credentials.
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", scope="audit.write"`)
		return WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "send an access token with scope audit.write as 'Authorization: Bearer <token>'"})
	}
	if len(bearer) > reportMaxToken {
		return h.tokenProblem(c, authz.ErrReporterToken)
	}
	if _, err := h.d.Tokens.ReportingClient(ctx, bearer); err != nil {
		return h.tokenProblem(c, err)
	}
	rep, err := readReport(c)
	if err != nil {
		return reportProblem(c, err)
	}
	rc, tok, err := h.d.Tokens.TokenForReporting(ctx, bearer, rep.Token)
	if err != nil {
		return h.tokenProblem(c, err)
	}
	e := audit.Event{
		Actor: tok.Actor, Holder: tok.Holder, Action: rep.Action, Target: rep.Target,
		MandateID: tok.MandateID, ClientID: tok.ClientID, Outcome: rep.Outcome,
		Reason:    reportReason(rc.ID, rep.Reason),
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID),
	}
	if len(e.RequestID) > audit.MaxIDLen {
		e.RequestID = ""
	}
	if h.d.StructureOf != nil {
		if e.Structure, err = h.d.StructureOf(ctx, tok.Actor); err != nil {
			h.d.Logger.ErrorContext(ctx, "audit report: structure of actor", "err", err)
			return unavailable(c)
		}
	}
	if err := e.Validate(); err != nil {
		// The token's claims (not the body, checked already) do not fit an event.
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity,
			Title: "Token claims cannot be recorded", Detail: err.Error()})
	}
	seq, err := h.d.Recorder.Record(ctx, e)
	if err != nil {
		h.d.Logger.ErrorContext(ctx, "audit report: record", "client_id", rc.ID, "err", err)
		return unavailable(c)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, reportResponse{Seq: seq})
}

// reportReason names the reporting resource server (a client id: not
// personal data) before the reporter's own reason.
func reportReason(reporter, reason string) string {
	r := "reported by " + reporter
	if reason != "" {
		r += ": " + reason
	}
	return r
}

func unavailable(c echo.Context) error {
	c.Response().Header().Set("Retry-After", "5")
	return WriteProblem(c, Problem{Status: http.StatusServiceUnavailable, Title: "Action not recorded",
		Detail: "the audit log cannot record right now; nothing was recorded, send the report again"})
}

// tokenProblem answers an authz reporting error: RFC 6750 errors for the
// reporter's own token, 422 for the presented token, 503 when the tokens
// could not be checked.
func (h reportHandler) tokenProblem(c echo.Context, err error) error {
	hdr := c.Response().Header()
	switch {
	case errors.Is(err, authz.ErrReporterToken):
		hdr.Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", error="invalid_token", error_description="The access token is not active."`)
		return WriteProblem(c, Problem{Status: http.StatusUnauthorized, Title: "Invalid token",
			Detail: "the bearer token is unknown, expired or revoked"})
	case errors.Is(err, authz.ErrReporterScope):
		hdr.Set(echo.HeaderWWWAuthenticate, `Bearer realm="mandated", error="insufficient_scope", scope="audit.write", error_description="Scope audit.write by client_credentials is required."`)
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Title: "Insufficient scope",
			Detail: "the bearer token must be issued to the resource server itself (client_credentials) with scope audit.write"})
	case errors.Is(err, authz.ErrPresentedToken):
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity, Title: "Presented token not active",
			Detail: "the token in the report is not an active access token this resource server may see (unknown, expired, revoked, or neither issued to it nor naming it in aud); nothing was recorded"})
	case errors.Is(err, authz.ErrReportUnavailable):
		return unavailable(c)
	}
	return err
}

// reportRequest is one reported action, as sent.
type reportRequest struct {
	Token   string        `json:"token"`
	Action  audit.Action  `json:"action"`
	Target  string        `json:"target"`
	Outcome audit.Outcome `json:"outcome"`
	Reason  string        `json:"reason"`
}

// reportError is a refused report: its status and words.
type reportError struct {
	status        int
	title, detail string
}

func (e *reportError) Error() string { return e.title + ": " + e.detail }

func badReport(status int, title, format string, args ...any) error {
	return &reportError{status: status, title: title, detail: fmt.Sprintf(format, args...)}
}

func reportProblem(c echo.Context, err error) error {
	var re *reportError
	if errors.As(err, &re) {
		return WriteProblem(c, Problem{Status: re.status, Title: re.title, Detail: re.detail})
	}
	return err
}

// readReport reads and checks the body: JSON, at most reportMaxBody bytes.
func readReport(c echo.Context) (reportRequest, error) {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return reportRequest{}, badReport(http.StatusUnsupportedMediaType, "Unsupported media type", "send the report as application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, reportMaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return reportRequest{}, badReport(http.StatusRequestEntityTooLarge, "Report too large", "a report is at most %d bytes", reportMaxBody)
		}
		return reportRequest{}, fmt.Errorf("read report: %w", err)
	}
	return parseReport(body)
}

// mailboxActions are the actions a resource server may report.
var mailboxActions = map[audit.Action]bool{
	audit.ActionMailboxRead: true, audit.ActionMailboxSend: true,
	audit.ActionMailboxMove: true, audit.ActionMailboxDelete: true,
}

// parseReport parses one report: a JSON object with exactly the known
// members, nothing after it. Batches (arrays) are refused: each report is
// one event, recorded or not as a whole.
func parseReport(body []byte) (reportRequest, error) {
	malformed := func(detail string, args ...any) (reportRequest, error) {
		return reportRequest{}, badReport(http.StatusBadRequest, "Malformed report", detail, args...)
	}
	invalid := func(detail string, args ...any) (reportRequest, error) {
		return reportRequest{}, badReport(http.StatusUnprocessableEntity, "Invalid report", detail, args...)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return malformed("send one action per request: batches are not accepted")
	}
	if !utf8.Valid(body) {
		return malformed("the body is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var rep reportRequest
	if err := dec.Decode(&rep); err != nil {
		return malformed("the body must be one JSON object with token, action, target, outcome and an optional reason: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("nothing may follow the JSON object")
	}
	switch {
	case rep.Token == "":
		return invalid("token is required: the access token the action was done with")
	case len(rep.Token) > reportMaxToken:
		return invalid("token is longer than %d bytes", reportMaxToken)
	case rep.Action == "":
		return invalid("action is required")
	case !mailboxActions[rep.Action]:
		return invalid("action must be one of mailbox.read, mailbox.send, mailbox.move, mailbox.delete")
	case rep.Target == "":
		return invalid("target is required: the message id or folder acted on")
	case len(rep.Target) > audit.MaxTargetLen:
		return invalid("target is longer than %d bytes", audit.MaxTargetLen)
	case len(rep.Reason) > reportMaxReason:
		return invalid("reason is longer than %d bytes", reportMaxReason)
	}
	switch rep.Outcome {
	case audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError:
	default:
		return invalid("outcome must be success, denied or error")
	}
	for name, v := range map[string]string{"token": rep.Token, "target": rep.Target, "reason": rep.Reason} {
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return invalid("%s holds a control character", name)
		}
		if strings.ContainsRune(v, utf8.RuneError) {
			return invalid("%s holds an invalid character", name)
		}
	}
	return rep, nil
}

// jsonProblem says what is wrong with a body without echoing its content.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s must be a string", typ.Field)
		}
		return "the body is not a JSON object"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "invalid JSON"
}

// bearerToken reads an RFC 6750 §2.1 bearer token from the Authorization
// header (the only method accepted: never the body or the query).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
