package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
)

// auditorPageSize is how many events one page of the auditor page shows.
const auditorPageSize = 25

// auditorMaxBack bounds the "Plus récents" trail carried in the URL.
const auditorMaxBack = 20

// auditorActions are the actions the filter offers, in groups, each with its
// words in auditorMessages ("auditor.action.<action>"). Names the log does
// not know (audit.Action.Valid) are left out of the list.
var auditorActions = []audit.Action{
	"sign_in.succeeded", "sign_in.failed", "enrolment.completed", "session.ended",
	"password.reset.requested", "password.reset.completed",
	"holder.created", "holder.linked", "holders.imported",
	"code.sent", "code.verified", "code.refused",
	"client.registered", "client.deleted",
	"consent.granted", "consent.withdrawn",
	"token.issued", "token.refreshed", "token.revoked",
	"request.refused", "key.rotated", "audit.retention_applied",
	"trust.added", "trust.deleted",
	"mailbox.read", "mailbox.send", "mailbox.move", "mailbox.delete",
	"staff.invited", "staff.deactivated", "staff.reactivated", "structure.created",
	"banner.posted", "banner.changed", "banner.deleted",
	"mandate.requested", "mandate.request_refused", "mandate.approved", "mandate.refused",
	"mandate.unanswered", "mandate.activated", "mandate.presence_started", "mandate.presence_ended",
	"mandate.ended", "mandate.policy_changed",
}

var auditorOutcomes = []audit.Outcome{audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError}

// Auditor is the auditor page: GET /audit, the audit log filtered and paged,
// for staff allowed to read it (people.PermReadAudit). Staff of a structure
// see their structure's events only; platform staff see every structure.
type Auditor struct {
	ui      *UI
	log     *audit.Log
	css     []byte
	cssPath string
}

// NewAuditor builds the auditor page over the UI's sessions and rendering
// and the audit log.
func NewAuditor(u *UI, log *audit.Log) *Auditor {
	css, err := assets.ReadFile("static/auditor.css")
	if err != nil {
		panic(fmt.Sprintf("ui: %v", err))
	}
	sum := sha256.Sum256(css)
	return &Auditor{ui: u, log: log, css: css, cssPath: "/static/auditor-" + hex.EncodeToString(sum[:6]) + ".css"}
}

// Register adds the page and its stylesheet to e.
func (a *Auditor) Register(e *echo.Echo) {
	e.GET("/audit", a.page)
	e.GET(a.cssPath, a.static)
}

func (a *Auditor) static(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", a.css)
}

// auditorForm is the filter form as sent (and shown back).
type auditorForm struct {
	Holder, Actor, Structure, Mandate, Client, Action, Outcome, From, To string
}

// auditorRow is one event as the table shows it.
type auditorRow struct {
	Seq        int64
	Time       string // UTC, "2006-01-02 15:04:05"
	ActionKey  string
	OutcomeKey string
	Outcome    string
	ActorKey   string // kind, as a message key
	ActorName  string
	ActorID    string
	Holder     string
	Target     string
	Client     string
	Mandate    string
	Structure  string
	Reason     string
}

type auditorOption struct {
	Value, Key string
	Selected   bool
}

type auditorData struct {
	CSS      string
	Form     auditorForm
	Platform bool // shows the structure filter and column
	Actions  []auditorOption
	Outcomes []auditorOption
	Rows     []auditorRow
	Older    string // URL of the older page, or ""
	Newer    string // URL of the newer page, or ""
	JSONL    string // export URLs of the same selection
	CSV      string
}

func (a *Auditor) page(c echo.Context) error {
	u := a.ui
	pr, ok := u.CurrentPrincipal(c)
	if !ok {
		return u.SignInRedirect(c)
	}
	q := c.QueryParams()
	form := auditorForm{
		Holder: strings.TrimSpace(q.Get("holder")), Actor: strings.TrimSpace(q.Get("actor")),
		Structure: strings.TrimSpace(q.Get("structure")), Mandate: strings.TrimSpace(q.Get("mandate")),
		Client: strings.TrimSpace(q.Get("client")), Action: q.Get("action"), Outcome: q.Get("outcome"),
		From: q.Get("from"), To: q.Get("to"),
	}
	// The one permission check. Staff of a structure read their own
	// structure only: asking for another one answers "not found", as if it
	// did not exist.
	structure := pr.StructureID
	if pr.Platform {
		structure = form.Structure
	} else if form.Structure != "" && form.Structure != pr.StructureID {
		if people.Can(pr, people.PermReadAudit, pr.StructureID) {
			return u.renderProblem(c, http.StatusNotFound, "error.notfound.title", "error.notfound.detail")
		}
	}
	if !people.Can(pr, people.PermReadAudit, structure) {
		return u.renderProblem(c, http.StatusForbidden, "error.forbidden.title", "auditor.forbidden")
	}
	if !pr.Platform {
		form.Structure = ""
	}

	p := u.newPage(c)
	f := audit.Filter{
		Structure: structure, Actor: form.Actor, Holder: form.Holder, MandateID: form.Mandate,
		ClientID: form.Client, Action: audit.Action(form.Action), Outcome: audit.Outcome(form.Outcome),
		Limit: auditorPageSize,
	}
	p.Errors = checkAuditorForm(form, &f)
	cursor, back := parseAuditorCursor(q.Get("before"), q.Get("back"))
	f.Before = cursor

	data := auditorData{CSS: a.cssPath, Form: form, Platform: pr.Platform}
	for _, act := range auditorActions {
		if !act.Valid() {
			continue
		}
		data.Actions = append(data.Actions, auditorOption{Value: string(act), Key: actionKey(act), Selected: form.Action == string(act)})
	}
	for _, o := range auditorOutcomes {
		data.Outcomes = append(data.Outcomes, auditorOption{Value: string(o), Key: "auditor.outcome." + string(o), Selected: form.Outcome == string(o)})
	}
	status := http.StatusOK
	if len(p.Errors) > 0 {
		status = http.StatusBadRequest
	} else {
		page, err := a.log.Query(c.Request().Context(), f)
		if err != nil {
			if errors.Is(err, audit.ErrInvalid) {
				p.Errors = append(p.Errors, fieldError{Field: "action", Key: "auditor.err.action"})
				status = http.StatusBadRequest
			} else {
				return u.internalError(c, err)
			}
		}
		for _, e := range page.Events {
			data.Rows = append(data.Rows, toAuditorRow(e))
		}
		base := filterQuery(form, pr.Platform)
		if page.Next > 0 {
			v := cloneValues(base)
			v.Set("before", strconv.FormatInt(page.Next, 10))
			if nb := append(back, cursor); len(nb) > 0 {
				v.Set("back", joinCursors(trimBack(nb)))
			}
			data.Older = "/audit?" + v.Encode()
		}
		if cursor > 0 {
			v := cloneValues(base)
			if len(back) > 0 {
				prev := back[len(back)-1]
				if prev > 0 {
					v.Set("before", strconv.FormatInt(prev, 10))
				}
				if len(back) > 1 {
					v.Set("back", joinCursors(back[:len(back)-1]))
				}
			}
			data.Newer = "/audit"
			if enc := v.Encode(); enc != "" {
				data.Newer += "?" + enc
			}
		}
		data.JSONL, data.CSV = exportURLs(f, pr.Platform)
	}
	p.Data = data
	return u.render(c, status, "auditor.html", p)
}

// checkAuditorForm checks the filters and completes f's time range; it
// returns the form's mistakes.
func checkAuditorForm(form auditorForm, f *audit.Filter) []fieldError {
	var errs []fieldError
	for _, fld := range []struct{ id, v string }{
		{"holder", form.Holder}, {"actor", form.Actor}, {"structure", form.Structure},
		{"mandate", form.Mandate}, {"client", form.Client},
	} {
		if len(fld.v) > audit.MaxIDLen {
			errs = append(errs, fieldError{Field: fld.id, Key: "auditor.err.long"})
		}
	}
	if form.Action != "" && !audit.Action(form.Action).Valid() {
		errs = append(errs, fieldError{Field: "action", Key: "auditor.err.action"})
	}
	switch audit.Outcome(form.Outcome) {
	case "", audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError:
	default:
		errs = append(errs, fieldError{Field: "outcome", Key: "auditor.err.outcome"})
	}
	day := func(id, v string) (time.Time, bool) {
		if v == "" {
			return time.Time{}, true
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			errs = append(errs, fieldError{Field: id, Key: "auditor.err.date"})
			return time.Time{}, false
		}
		return t, true
	}
	from, okFrom := day("from", form.From)
	to, okTo := day("to", form.To)
	if okFrom && okTo && !from.IsZero() && !to.IsZero() && to.Before(from) {
		errs = append(errs, fieldError{Field: "to", Key: "auditor.err.range"})
	}
	f.Since = from
	if !to.IsZero() {
		f.Until = to.AddDate(0, 0, 1) // the "to" day is included
	}
	return errs
}

// filterQuery is the page's query for the form's filters (no cursor).
func filterQuery(form auditorForm, platform bool) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("holder", form.Holder)
	set("actor", form.Actor)
	if platform {
		set("structure", form.Structure)
	}
	set("mandate", form.Mandate)
	set("client", form.Client)
	set("action", form.Action)
	set("outcome", form.Outcome)
	set("from", form.From)
	set("to", form.To)
	return v
}

// exportURLs are the auditor API's exports of the same selection.
func exportURLs(f audit.Filter, platform bool) (jsonl, csv string) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	if platform {
		set("structure", f.Structure)
	}
	set("actor", f.Actor)
	set("holder", f.Holder)
	set("mandate", f.MandateID)
	set("client", f.ClientID)
	set("action", string(f.Action))
	set("outcome", string(f.Outcome))
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	q := ""
	if enc := v.Encode(); enc != "" {
		q = "?" + enc
	}
	return "/api/audit/events.jsonl" + q, "/api/audit/events.csv" + q
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// parseAuditorCursor reads the page's cursor (events before that sequence
// number; 0: the newest) and the trail of the newer pages' cursors. Bad
// values start from the newest page.
func parseAuditorCursor(before, back string) (int64, []int64) {
	cursor, err := strconv.ParseInt(before, 10, 64)
	if err != nil || cursor < 1 {
		return 0, nil
	}
	var trail []int64
	if back != "" && len(back) <= auditorMaxBack*21 {
		for _, s := range strings.Split(back, ".") {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return cursor, nil
			}
			trail = append(trail, n)
		}
	}
	return cursor, trimBack(trail)
}

func trimBack(trail []int64) []int64 {
	if len(trail) > auditorMaxBack {
		return trail[len(trail)-auditorMaxBack:]
	}
	return trail
}

func joinCursors(c []int64) string {
	s := make([]string, len(c))
	for i, n := range c {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ".")
}

func actionKey(a audit.Action) string { return "auditor.action." + string(a) }

func toAuditorRow(e audit.Event) auditorRow {
	r := auditorRow{
		Seq: e.Seq, Time: e.Time.UTC().Format("2006-01-02 15:04:05"),
		ActionKey: actionKey(e.Action), Outcome: string(e.Outcome),
		ActorKey: "auditor.actor." + string(e.Actor.Kind), ActorName: e.Actor.Name, ActorID: e.Actor.ID,
		Holder: e.Holder, Target: e.Target, Client: e.ClientID, Mandate: e.MandateID,
		Structure: e.Structure, Reason: e.Reason,
	}
	if _, ok := lookupMessage(r.ActionKey); !ok {
		r.ActionKey = "auditor.action.other"
	}
	switch e.Outcome {
	case audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError:
		r.OutcomeKey = "auditor.outcome." + string(e.Outcome)
	default:
		r.OutcomeKey = "auditor.outcome.other"
	}
	switch e.Actor.Kind {
	case audit.ActorStaff, audit.ActorHolder, audit.ActorClient, audit.ActorSystem, audit.ActorUnknown:
	default:
		r.ActorKey = "auditor.actor.other"
	}
	return r
}

// CanReadAudit reports whether the signed-in person may open the auditor
// page (for a link to it on other pages: {{if .CanReadAudit}}).
func (p *page) CanReadAudit() bool {
	return p.Principal != nil && people.Can(*p.Principal, people.PermReadAudit, p.Principal.StructureID)
}
