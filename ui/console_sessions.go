package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"rsc.io/qr"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// ConsoleClientID is the OAuth2 client of the mediators' console: a
// first-party public client with the device code grant, registered at
// startup (authz.Server.EnsureConsoleClient). The console's script asks the
// token endpoint for tokens under it.
const ConsoleClientID = authz.ConsoleClientID

// ConsoleMandates is what the console needs of the mandate service
// (*mandate.Service).
type ConsoleMandates interface {
	Get(ctx context.Context, id string) (mandate.Mandate, error)
	List(ctx context.Context, q mandate.Query) ([]mandate.Mandate, error)
	End(ctx context.Context, mandateID string, reason mandate.EndReason, by mandate.Actor, consoleRequestID string) (mandate.Mandate, error)
	Policy(ctx context.Context, structureID string) (mandate.Policy, error)
	SetPolicy(ctx context.Context, by mandate.Actor, p mandate.Policy) (mandate.Policy, error)
}

// DeviceStarter starts an RFC 8628 device authorization for the console
// (*authz.Server): the mandate request the holder answers on their phone.
type DeviceStarter interface {
	AuthorizeDevice(ctx context.Context, req authz.DeviceRequest) (authz.DeviceResponse, error)
}

// ConsoleHolders lists the holders a structure serves, for the new-session
// form's choice (*people.Holders).
type ConsoleHolders interface {
	List(ctx context.Context, by people.Principal, structureID string, q people.HolderQuery) (people.HolderPage, error)
}

// CookieSealer seals the device cookie (*seal.Sealer): its content is
// secret and bound to one mandate.
type CookieSealer interface {
	Seal(plaintext []byte, purpose string) ([]byte, error)
	Open(sealed []byte, purpose string) ([]byte, error)
}

// ConsoleDeps are the console's collaborators; all but Heartbeat are
// required.
type ConsoleDeps struct {
	Mandates ConsoleMandates
	Device   DeviceStarter
	Holders  ConsoleHolders
	// Hub tells the live streams that a mandate changed.
	Hub    *mandate.Hub
	Sealer CookieSealer
	Clock  mandate.Clock
	// Heartbeat is how often a live stream sends a comment so that proxies
	// keep it open; 15 s when zero.
	Heartbeat time.Duration
}

// ConsoleSessions are the mediator's pages for assisted sessions: start one
// (the device authorization whose QR code the holder scans), follow it live,
// end it, and the list of one's sessions (a structure's, for its admins).
//
// The device_code and user_code exist only in the device authorization's
// answer. The console keeps them in a cookie of the browser that asked,
// sealed with the server's key and bound to the mandate (purpose), HttpOnly,
// SameSite=Strict, scoped to the session's path and living as long as the
// codes: a reload shows them again, any other browser (an admin's) sees the
// state only, and no one can plant another mandate's codes in the page.
type ConsoleSessions struct {
	u         *UI
	m         ConsoleMandates
	device    DeviceStarter
	holders   ConsoleHolders
	hub       *mandate.Hub
	sealer    CookieSealer
	clock     mandate.Clock
	heartbeat time.Duration
	loc       *time.Location // where times are told: Europe/Paris
	css       []byte         // static/console.css, served at cssPath
	cssPath   string
	// done ends every live stream (Shutdown).
	done chan struct{}
}

// NewConsoleSessions returns the console's session pages.
func NewConsoleSessions(u *UI, d ConsoleDeps) *ConsoleSessions {
	if d.Heartbeat <= 0 {
		d.Heartbeat = 15 * time.Second
	}
	if d.Clock == nil {
		d.Clock = mandate.SystemClock{}
	}
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		loc = time.UTC
	}
	css, err := assets.ReadFile("static/console.css")
	if err != nil {
		panic(fmt.Sprintf("ui: %v", err))
	}
	sum := sha256.Sum256(css)
	return &ConsoleSessions{u: u, m: d.Mandates, device: d.Device, holders: d.Holders, hub: d.Hub,
		sealer: d.Sealer, clock: d.Clock, heartbeat: d.Heartbeat, loc: loc, done: make(chan struct{}),
		css: css, cssPath: "/static/console-" + hex.EncodeToString(sum[:6]) + ".css"}
}

// Register adds the pages' routes to e: the sessions console and the
// structure's policy page.
func (cs *ConsoleSessions) Register(e *echo.Echo) {
	e.GET(cs.cssPath, cs.static)
	e.GET("/console/sessions", cs.listPage)
	e.GET("/console/sessions/events", cs.listEvents)
	e.GET("/console/sessions/new", cs.newPage)
	e.POST("/console/sessions/new", cs.create)
	e.GET("/console/sessions/:id", cs.showPage)
	e.GET("/console/sessions/:id/events", cs.events)
	e.POST("/console/sessions/:id/end", cs.end)
	e.GET("/admin/policy", cs.policyPage)
	e.POST("/admin/policy", cs.savePolicy)
}

func (cs *ConsoleSessions) static(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", cs.css)
}

// Shutdown ends every live stream, so that a server shutting down does not
// wait for them (http.Server.RegisterOnShutdown). Call it once.
func (cs *ConsoleSessions) Shutdown() { close(cs.done) }

// CanUseConsole reports whether the signed-in person may open the sessions
// console: mediators (their sessions) and admins (their structure's).
func (p *page) CanUseConsole() bool {
	if p.Principal == nil {
		return false
	}
	return people.Can(*p.Principal, people.PermRequestMandates, p.Principal.StructureID) ||
		people.Can(*p.Principal, people.PermManageStaff, p.Principal.StructureID)
}

func consoleRequestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

func consoleActor(p people.Principal) mandate.Actor {
	return mandate.Actor{Kind: mandate.ActorStaff, ID: p.ID, Name: p.DisplayName}
}

// --- who may see and end a session ------------------------------------------

// consoleMayRead: the delegate, staff of the mandate's structure who manage it or
// read its audit log, and platform staff with those rights.
func consoleMayRead(p people.Principal, m mandate.Mandate) bool {
	if p.Kind != "staff" {
		return false
	}
	return m.DelegateID == p.ID || people.Can(p, people.PermManageStaff, m.StructureID) ||
		people.Can(p, people.PermReadAudit, m.StructureID)
}

// consoleEndReason is the reason p ends m with: the delegate's own, or an
// admin's; "" when p may not end it.
func consoleEndReason(p people.Principal, m mandate.Mandate) mandate.EndReason {
	switch {
	case p.Kind != "staff":
		return ""
	case m.DelegateID == p.ID:
		return mandate.EndedByDelegate
	case people.Can(p, people.PermManageStaff, m.StructureID):
		return mandate.EndedByAdmin
	}
	return ""
}

// visible returns the mandate of the path when the signed-in staff member
// may see it; otherwise it has answered (sign-in, or 404 for everything
// else, so that another structure's ids tell nothing).
func (cs *ConsoleSessions) visible(c echo.Context) (people.Principal, mandate.Mandate, bool, error) {
	p, ok := cs.u.CurrentPrincipal(c)
	if !ok {
		if c.Request().Method == http.MethodGet {
			return p, mandate.Mandate{}, false, cs.u.SignInRedirect(c)
		}
		return p, mandate.Mandate{}, false, c.Redirect(http.StatusSeeOther, "/signin")
	}
	id := c.Param("id")
	notFound := func() error {
		return cs.u.renderProblem(c, http.StatusNotFound, "console.notfound.title", "console.notfound.detail")
	}
	if id == "" || len(id) > 100 {
		return p, mandate.Mandate{}, false, notFound()
	}
	m, err := cs.m.Get(c.Request().Context(), id)
	if errors.Is(err, mandate.ErrNotFound) || (err == nil && !consoleMayRead(p, m)) {
		return p, mandate.Mandate{}, false, notFound()
	}
	if err != nil {
		return p, mandate.Mandate{}, false, cs.u.internalError(c, err)
	}
	return p, m, true, nil
}

// --- the new-session form -----------------------------------------------------

// requester returns the signed-in staff member who may ask for mandates,
// and their structure's policy; otherwise it has answered.
func (cs *ConsoleSessions) requester(c echo.Context) (people.Principal, mandate.Policy, bool, error) {
	p, ok := cs.u.CurrentPrincipal(c)
	if !ok {
		if c.Request().Method == http.MethodGet {
			return p, mandate.Policy{}, false, cs.u.SignInRedirect(c)
		}
		return p, mandate.Policy{}, false, c.Redirect(http.StatusSeeOther, "/signin?return_to=%2Fconsole%2Fsessions%2Fnew")
	}
	if !people.Can(p, people.PermRequestMandates, p.StructureID) {
		return p, mandate.Policy{}, false, cs.u.renderProblem(c, http.StatusForbidden, "console.forbidden.title", "console.forbidden.detail")
	}
	pol, err := cs.m.Policy(c.Request().Context(), p.StructureID)
	if err != nil {
		return p, pol, false, cs.u.internalError(c, err)
	}
	return p, pol, true, nil
}

// consoleHolderChoices is how many holders the form's list offers; beyond,
// the mediator types the mailbox.
const consoleHolderChoices = people.MaxHolderPage

type consoleHolderChoice struct {
	ID, Label string
	Selected  bool
}

type consoleScopeChoice struct {
	Scope   mandate.Scope
	Checked bool
}

type consoleChoice struct {
	Value, Label string
	Selected     bool
}

type consoleFormData struct {
	CSS             string
	Holders         []consoleHolderChoice
	MoreHolders     bool // the structure serves more holders than listed
	Mailbox         string
	Scopes          []consoleScopeChoice
	Durations       []consoleChoice
	Categories      []consoleChoice
	Purpose         string
	IncludePersonal bool
	MaxPurpose      int
}

// consoleForm is the form as posted (or its defaults).
type consoleForm struct {
	HolderID, Mailbox string
	Scopes            []string
	Minutes           int
	Category          string
	Purpose           string
	IncludePersonal   bool
}

// consoleDurations are the lengths the form offers, up to the policy's
// maximum (which is offered too when it is none of them).
var consoleDurations = []time.Duration{15 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour,
	90 * time.Minute, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour}

func consoleDurationChoices(max time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range consoleDurations {
		if d >= mandate.MinSessionDuration && d <= max {
			out = append(out, d)
		}
	}
	if max >= mandate.MinSessionDuration && !slices.Contains(out, max) {
		out = append(out, max)
	}
	return out
}

func consoleDefaultMinutes(choices []time.Duration) int {
	if slices.Contains(choices, mandate.DefaultSessionDuration) {
		return int(mandate.DefaultSessionDuration / time.Minute)
	}
	if len(choices) == 0 {
		return 0
	}
	return int(choices[0] / time.Minute)
}

// consoleAllowedScopes are the policy's scopes in catalogue order.
func consoleAllowedScopes(pol mandate.Policy) []mandate.Scope {
	var out []mandate.Scope
	for _, s := range mandate.Scopes() {
		if !s.Service && slices.Contains(pol.AllowedScopes, s.Name) {
			out = append(out, s)
		}
	}
	return out
}

func (cs *ConsoleSessions) formData(ctx context.Context, lang string, p people.Principal, pol mandate.Policy, f consoleForm) (consoleFormData, error) {
	d := consoleFormData{CSS: cs.cssPath, Mailbox: f.Mailbox, Purpose: f.Purpose, IncludePersonal: f.IncludePersonal, MaxPurpose: mandate.MaxPurposeLen}
	page, err := cs.holders.List(ctx, p, p.StructureID, people.HolderQuery{Limit: consoleHolderChoices})
	if err != nil {
		return d, fmt.Errorf("list holders: %w", err)
	}
	d.MoreHolders = page.Next != ""
	for _, h := range page.Holders {
		d.Holders = append(d.Holders, consoleHolderChoice{ID: h.ID, Label: h.DisplayName + " · " + h.Mailbox, Selected: h.ID == f.HolderID})
	}
	for _, s := range consoleAllowedScopes(pol) {
		d.Scopes = append(d.Scopes, consoleScopeChoice{Scope: s, Checked: slices.Contains(f.Scopes, s.Name)})
	}
	for _, dur := range consoleDurationChoices(pol.MaxSessionDuration) {
		m := int(dur / time.Minute)
		d.Durations = append(d.Durations, consoleChoice{Value: strconv.Itoa(m), Label: consoleDuration(lang, dur), Selected: m == f.Minutes})
	}
	for _, c := range mandate.PurposeCategories() {
		d.Categories = append(d.Categories, consoleChoice{Value: string(c), Label: consoleText(lang, "console.purpose."+string(c)),
			Selected: string(c) == f.Category})
	}
	return d, nil
}

func (cs *ConsoleSessions) newPage(c echo.Context) error {
	p, pol, ok, err := cs.requester(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	f := consoleForm{HolderID: c.QueryParam("holder"), Minutes: consoleDefaultMinutes(consoleDurationChoices(pol.MaxSessionDuration))}
	if slices.Contains(pol.AllowedScopes, mandate.ScopeMailRead) {
		f.Scopes = []string{mandate.ScopeMailRead}
	}
	pg := cs.u.newPage(c)
	if pg.Data, err = cs.formData(ctx, pg.Lang, p, pol, f); err != nil {
		return cs.u.internalError(c, err)
	}
	return cs.u.render(c, http.StatusOK, "console-session-new.html", pg)
}

// check validates the form against the policy, naming each mistake.
func (f consoleForm) check(pol mandate.Policy) []fieldError {
	var errs []fieldError
	switch {
	case f.HolderID == "" && f.Mailbox == "":
		errs = append(errs, fieldError{Field: "holder", Key: "console.err.holder"})
	case f.HolderID != "" && f.Mailbox != "":
		errs = append(errs, fieldError{Field: "holder", Key: "console.err.holder.both"})
	case f.Mailbox != "":
		if _, err := people.NormalizeEmail(f.Mailbox); err != nil {
			errs = append(errs, fieldError{Field: "mailbox", Key: "console.err.mailbox"})
		}
	}
	if len(f.Scopes) == 0 {
		errs = append(errs, fieldError{Field: "scope-0", Key: "console.err.scopes"})
	} else {
		for _, s := range f.Scopes {
			if mandate.IsServiceScope(s) || !slices.Contains(pol.AllowedScopes, s) {
				errs = append(errs, fieldError{Field: "scope-0", Key: "console.err.scopes.policy"})
				break
			}
		}
	}
	if !slices.Contains(consoleDurationChoices(pol.MaxSessionDuration), time.Duration(f.Minutes)*time.Minute) {
		errs = append(errs, fieldError{Field: "duration", Key: "console.err.duration"})
	}
	if !mandate.PurposeCategory(f.Category).Valid() {
		errs = append(errs, fieldError{Field: "category", Key: "console.err.category"})
	}
	switch {
	case strings.TrimSpace(f.Purpose) == "":
		errs = append(errs, fieldError{Field: "purpose", Key: "console.err.purpose"})
	case len(f.Purpose) > mandate.MaxPurposeLen:
		errs = append(errs, fieldError{Field: "purpose", Key: "console.err.purpose.long"})
	}
	return errs
}

// consoleDeviceCookie is what the console keeps of a device authorization, in a
// sealed cookie of the browser that asked for it.
type consoleDeviceCookie struct {
	MandateID   string `json:"m"`
	DeviceCode  string `json:"d"`
	UserCode    string `json:"u"`
	URI         string `json:"v"`
	URIComplete string `json:"c"`
	Interval    int64  `json:"i"`
	Expires     int64  `json:"e"` // Unix seconds
}

const consoleDeviceCookieName = "mandated_device"

func consoleDeviceCookiePurpose(mandateID string) string { return "ui.console.device:" + mandateID }

func consoleSessionPath(id string) string { return "/console/sessions/" + url.PathEscape(id) }

func (cs *ConsoleSessions) setDeviceCookie(c echo.Context, resp authz.DeviceResponse) error {
	dc := consoleDeviceCookie{MandateID: resp.MandateID, DeviceCode: resp.DeviceCode, UserCode: resp.UserCode,
		URI: resp.VerificationURI, URIComplete: resp.VerificationURIComplete, Interval: resp.Interval,
		Expires: cs.clock.Now().Add(time.Duration(resp.ExpiresIn) * time.Second).Unix()}
	plain, err := json.Marshal(dc)
	if err != nil {
		return err
	}
	sealed, err := cs.sealer.Seal(plain, consoleDeviceCookiePurpose(resp.MandateID))
	if err != nil {
		return fmt.Errorf("seal the device cookie: %w", err)
	}
	c.SetCookie(&http.Cookie{Name: consoleDeviceCookieName, Value: base64.RawURLEncoding.EncodeToString(sealed),
		Path: consoleSessionPath(resp.MandateID), MaxAge: int(resp.ExpiresIn), HttpOnly: true, Secure: cs.u.secure,
		SameSite: http.SameSiteStrictMode})
	return nil
}

// deviceOf opens the device cookie of mandate id; false when this browser
// has none, or one that is not for this mandate, tampered or expired.
func (cs *ConsoleSessions) deviceOf(c echo.Context, id string) (consoleDeviceCookie, bool) {
	ck, err := c.Cookie(consoleDeviceCookieName)
	if err != nil || len(ck.Value) > 4096 {
		return consoleDeviceCookie{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return consoleDeviceCookie{}, false
	}
	plain, err := cs.sealer.Open(sealed, consoleDeviceCookiePurpose(id))
	if err != nil {
		return consoleDeviceCookie{}, false
	}
	var dc consoleDeviceCookie
	if json.Unmarshal(plain, &dc) != nil || dc.MandateID != id || cs.clock.Now().Unix() >= dc.Expires {
		return consoleDeviceCookie{}, false
	}
	return dc, true
}

func (cs *ConsoleSessions) clearDeviceCookie(c echo.Context, id string) {
	c.SetCookie(&http.Cookie{Name: consoleDeviceCookieName, Value: "", Path: consoleSessionPath(id), MaxAge: -1,
		HttpOnly: true, Secure: cs.u.secure, SameSite: http.SameSiteStrictMode})
}

func (cs *ConsoleSessions) create(c echo.Context) error {
	p, pol, ok, err := cs.requester(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	if err := c.Request().ParseForm(); err != nil {
		return cs.u.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
	}
	form := c.Request().PostForm
	f := consoleForm{HolderID: strings.TrimSpace(form.Get("holder")), Mailbox: strings.TrimSpace(form.Get("mailbox")),
		Scopes: form["scope"], Category: form.Get("category"), Purpose: strings.TrimSpace(form.Get("purpose")),
		IncludePersonal: form.Get("include_personal") != ""}
	f.Minutes, _ = strconv.Atoi(form.Get("duration"))
	if len(f.Scopes) > 20 {
		f.Scopes = f.Scopes[:20]
	}
	errs := f.check(pol)
	var resp authz.DeviceResponse
	if len(errs) == 0 {
		req := authz.DeviceRequest{
			ClientID: ConsoleClientID, Scopes: f.Scopes, Kind: mandate.KindSession,
			HolderID: f.HolderID, HolderMailbox: f.Mailbox,
			Duration: time.Duration(f.Minutes) * time.Minute, Purpose: f.Purpose,
			PurposeCategory: mandate.PurposeCategory(f.Category), Presence: mandate.PresenceRequired,
			IncludePersonal: f.IncludePersonal, ActorStaffID: p.ID, ActorStructure: p.StructureID,
			RequestID: consoleRequestID(c),
		}
		resp, err = cs.device.AuthorizeDevice(ctx, req)
		switch {
		case err == nil:
		case errors.Is(err, mandate.ErrNotFound):
			field := "holder"
			if f.HolderID == "" {
				field = "mailbox"
			}
			errs = append(errs, fieldError{Field: field, Key: "console.err.holder.unknown"})
		case errors.Is(err, mandate.ErrPolicy):
			errs = append(errs, fieldError{Key: "console.err.policy"})
		case errors.Is(err, mandate.ErrInvalidRequest):
			errs = append(errs, fieldError{Key: "console.err.invalid"})
		case errors.Is(err, people.ErrForbidden):
			return cs.u.renderProblem(c, http.StatusForbidden, "console.forbidden.title", "console.forbidden.detail")
		default:
			return cs.u.internalError(c, err)
		}
	}
	if len(errs) > 0 {
		pg := cs.u.newPage(c)
		pg.Errors = errs
		if len(f.Mailbox) > 254 || len(f.Purpose) > 4*mandate.MaxPurposeLen {
			f.Mailbox, f.Purpose = "", ""
		}
		if pg.Data, err = cs.formData(ctx, pg.Lang, p, pol, f); err != nil {
			return cs.u.internalError(c, err)
		}
		return cs.u.render(c, http.StatusUnprocessableEntity, "console-session-new.html", pg)
	}
	if err := cs.setDeviceCookie(c, resp); err != nil {
		return cs.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, consoleSessionPath(resp.MandateID))
}

// --- one session ---------------------------------------------------------------

// consoleSessionView is a mandate as the console shows it.
type consoleSessionView struct {
	ID              string
	State           string
	StateKey        string
	EndKey          string // "" unless ended
	Final           bool
	Live            bool // approved or active: the countdown runs
	KindKey         string
	Mailbox         string
	Scopes          []mandate.Scope
	PersonalAllowed bool
	Purpose         string
	PurposeLabel    string
	Duration        string
	Created         string
	Remaining       int64 // seconds until NotAfter, when Live
	Countdown       string
	CanEnd          bool
	Mine            bool
}

func consoleStateKey(s mandate.State) string { return "console.state." + string(s) }

func (cs *ConsoleSessions) view(lang string, p people.Principal, m mandate.Mandate) consoleSessionView {
	v := consoleSessionView{ID: m.ID, State: string(m.State), StateKey: consoleStateKey(m.State), Final: m.State.Final(),
		KindKey: "console.kind." + string(m.Kind), Mailbox: m.Mailbox, Purpose: m.Purpose,
		PurposeLabel: consoleText(lang, "console.purpose."+string(m.PurposeCategory)),
		Duration:     consoleDuration(lang, m.Duration), Created: consoleDateTime(lang, cs.loc, m.CreatedAt),
		PersonalAllowed: !slices.Contains(m.Exclusions, mandate.ExcludePersonal),
		CanEnd:          !m.State.Final() && consoleEndReason(p, m) != "", Mine: m.DelegateID == p.ID}
	if m.Kind == mandate.KindDelegation {
		v.Duration = consoleDuration(lang, m.NotAfter.Sub(m.NotBefore))
	}
	if m.State == mandate.StateEnded && m.EndReason != "" {
		v.EndKey = "console.ended." + string(m.EndReason)
	}
	for _, name := range m.Scopes {
		if s, ok := mandate.LookupScope(name); ok {
			v.Scopes = append(v.Scopes, s)
		}
	}
	if m.State == mandate.StateApproved || m.State == mandate.StateActive {
		v.Live = true
		v.Remaining = max(0, int64(m.NotAfter.Sub(cs.clock.Now())/time.Second))
		v.Countdown = consoleCountdown(lang, v.Remaining)
	}
	return v
}

func consoleCountdown(lang string, seconds int64) string {
	return fmt.Sprintf(consoleText(lang, "console.countdown"), seconds/60, seconds%60)
}

// consoleDevice is what the mediator shows the holder: the QR code of
// verification_uri_complete and the user_code beside it.
type consoleDevice struct {
	QR          template.URL // data:image/png;base64,...
	UserCode    string
	URI         string
	URIComplete string
	DeviceCode  string
	Interval    int64
}

type consoleSessionData struct {
	CSS       string
	Session   consoleSessionView
	Device    *consoleDevice // nil: not this browser's, or no longer needed
	Script    string
	Events    string
	ClientID  string
	TokenURL  string
	GrantType string
	Back      string
}

var consoleDone = map[string]string{"ended": "console.done.ended", "already": "console.done.already"}

func (cs *ConsoleSessions) showPage(c echo.Context) error {
	p, m, ok, err := cs.visible(c)
	if !ok {
		return err
	}
	pg := cs.u.newPage(c)
	d := consoleSessionData{CSS: cs.cssPath, Session: cs.view(pg.Lang, p, m), Script: cs.u.ScriptPath("console.js"),
		Events: consoleSessionPath(m.ID) + "/events", ClientID: ConsoleClientID, TokenURL: authz.PathToken,
		GrantType: authz.GrantTypeDeviceCode, Back: "/console/sessions"}
	if dc, ok := cs.deviceOf(c, m.ID); ok && (m.State == mandate.StateRequested || m.State == mandate.StateApproved) {
		code, err := qr.Encode(dc.URIComplete, qr.M)
		if err != nil {
			return cs.u.internalError(c, err)
		}
		code.Scale = 6
		d.Device = &consoleDevice{QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG())),
			UserCode: dc.UserCode, URI: dc.URI, URIComplete: dc.URIComplete, DeviceCode: dc.DeviceCode, Interval: max(dc.Interval, 1)}
	}
	pg.Status = consoleDone[c.QueryParam("done")]
	pg.Data = d
	return cs.u.render(c, http.StatusOK, "console-session.html", pg)
}

func (cs *ConsoleSessions) end(c echo.Context) error {
	p, m, ok, err := cs.visible(c)
	if !ok {
		return err
	}
	reason := consoleEndReason(p, m)
	if reason == "" {
		return cs.u.renderProblem(c, http.StatusForbidden, "console.forbidden.title", "console.end.forbidden")
	}
	back := consoleSessionPath(m.ID)
	if c.FormValue("return") == "list" {
		back = "/console/sessions"
	}
	done := "ended"
	_, err = cs.m.End(c.Request().Context(), m.ID, reason, consoleActor(p), consoleRequestID(c))
	switch {
	case errors.Is(err, mandate.ErrConflict):
		done = "already"
	case err != nil:
		return cs.u.internalError(c, err)
	}
	cs.clearDeviceCookie(c, m.ID)
	return c.Redirect(http.StatusSeeOther, back+"?done="+done)
}

// --- live state: server-sent events -------------------------------------------

// consoleStateEvent is the data of a "state" event.
type consoleStateEvent struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	EndReason string `json:"end_reason"`
	NotAfter  string `json:"not_after,omitempty"` // RFC 3339, once approved
	// Remaining is the seconds left until NotAfter by the server's clock,
	// so that the page's countdown does not depend on the computer's.
	Remaining int64 `json:"remaining"`
}

func (cs *ConsoleSessions) stateOf(m mandate.Mandate) consoleStateEvent {
	ev := consoleStateEvent{ID: m.ID, State: string(m.State), EndReason: string(m.EndReason)}
	if !m.NotAfter.IsZero() {
		ev.NotAfter = m.NotAfter.UTC().Format(time.RFC3339)
		if m.State == mandate.StateApproved || m.State == mandate.StateActive {
			ev.Remaining = max(0, int64(m.NotAfter.Sub(cs.clock.Now())/time.Second))
		}
	}
	return ev
}

// events streams one session's state: one "state" event at once and after
// every change, a comment every heartbeat, and the end of the stream once
// the mandate is final.
func (cs *ConsoleSessions) events(c echo.Context) error {
	_, m, ok, err := cs.visible(c)
	if !ok {
		return err
	}
	return cs.stream(c, []string{m.ID})
}

// consoleListStreamMax bounds how many sessions one list stream follows.
const consoleListStreamMax = consoleListPage

// listEvents streams the state of the list page's unfinished sessions
// (?id=…, repeated): the same events, each naming its session; ids the
// caller may not see are left out.
func (cs *ConsoleSessions) listEvents(c echo.Context) error {
	p, ok := cs.u.CurrentPrincipal(c)
	if !ok || p.Kind != "staff" {
		return c.NoContent(http.StatusUnauthorized)
	}
	ids := c.QueryParams()["id"]
	if len(ids) == 0 || len(ids) > consoleListStreamMax {
		return c.NoContent(http.StatusBadRequest)
	}
	var follow []string
	for _, id := range ids {
		if len(id) > 100 || slices.Contains(follow, id) {
			continue
		}
		m, err := cs.m.Get(c.Request().Context(), id)
		if err == nil && consoleMayRead(p, m) {
			follow = append(follow, id)
		} else if err != nil && !errors.Is(err, mandate.ErrNotFound) {
			return err
		}
	}
	if len(follow) == 0 {
		return c.NoContent(http.StatusNotFound)
	}
	return cs.stream(c, follow)
}

// stream follows ids until all are final, the client leaves, or Shutdown.
func (cs *ConsoleSessions) stream(c echo.Context, ids []string) error {
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	// Subscribe first, then read: a change between the two is not lost.
	changed := make(chan string, len(ids))
	for _, id := range ids {
		ch, unsubscribe := cs.hub.Subscribe(id)
		defer unsubscribe()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-ch:
					select {
					case changed <- id:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(s string) error {
		// The server's write timeout would cut a long stream: each write
		// gets its own deadline instead.
		_ = rc.SetWriteDeadline(time.Now().Add(2*cs.heartbeat + 10*time.Second))
		if _, err := w.Write([]byte(s)); err != nil {
			return err
		}
		return rc.Flush()
	}
	live := map[string]bool{}
	send := func(id string) error {
		m, err := cs.m.Get(ctx, id)
		if err != nil {
			return err
		}
		body, err := json.Marshal(cs.stateOf(m))
		if err != nil {
			return err
		}
		if m.State.Final() {
			delete(live, id)
		}
		return write("event: state\ndata: " + string(body) + "\n\n")
	}
	// The browser waits this long before reconnecting a dropped stream.
	if err := write("retry: 3000\n\n"); err != nil {
		return nil
	}
	for _, id := range ids {
		live[id] = true
		if err := send(id); err != nil {
			return cs.streamEnd(ctx, err)
		}
	}
	beat := time.NewTicker(cs.heartbeat)
	defer beat.Stop()
	for len(live) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-cs.done:
			return nil
		case id := <-changed:
			if err := send(id); err != nil {
				return cs.streamEnd(ctx, err)
			}
		case <-beat.C:
			if err := write(": keep-alive\n\n"); err != nil {
				return nil
			}
		}
	}
	return nil
}

// streamEnd logs why a stream stopped, unless the client left.
func (cs *ConsoleSessions) streamEnd(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		cs.u.log.ErrorContext(ctx, "session stream", "err", err)
	}
	return nil
}

// --- the list -------------------------------------------------------------------

// consoleListPage is how many sessions one page of the list shows.
const consoleListPage = 25

type consoleListData struct {
	CSS       string
	Structure bool // the structure's sessions (admins), not one's own
	Sessions  []consoleSessionView
	NextURL   string
	Events    string // the stream of the unfinished sessions shown
	Script    string
	CanNew    bool
	CanPolicy bool
	CSRF      string
}

// consoleListCursor is "before" of the list: the last session of the previous
// page, as "<unix nanoseconds>.<id>".
func consoleListCursor(m mandate.Mandate) string {
	return strconv.FormatInt(m.CreatedAt.UnixNano(), 10) + "." + m.ID
}

func consoleParseCursor(s string) (time.Time, string, bool) {
	ns, id, ok := strings.Cut(s, ".")
	if !ok || id == "" || len(id) > 100 {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(0, n).UTC(), id, true
}

func (cs *ConsoleSessions) listPage(c echo.Context) error {
	p, ok := cs.u.CurrentPrincipal(c)
	if !ok {
		return cs.u.SignInRedirect(c)
	}
	admin := people.Can(p, people.PermManageStaff, p.StructureID)
	if !admin && !people.Can(p, people.PermRequestMandates, p.StructureID) {
		return cs.u.renderProblem(c, http.StatusForbidden, "console.forbidden.title", "console.forbidden.detail")
	}
	q := mandate.Query{StructureID: p.StructureID, Limit: consoleListPage + 1}
	if !admin {
		q.DelegateID = p.ID
	}
	if b := c.QueryParam("before"); b != "" {
		t, id, ok := consoleParseCursor(b)
		if !ok {
			return cs.u.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
		}
		q.BeforeCreated, q.BeforeID = t, id
	}
	list, err := cs.m.List(c.Request().Context(), q)
	if err != nil {
		return cs.u.internalError(c, err)
	}
	pg := cs.u.newPage(c)
	d := consoleListData{CSS: cs.cssPath, Structure: admin, Script: cs.u.ScriptPath("console.js"), CSRF: pg.CSRF,
		CanNew: people.Can(p, people.PermRequestMandates, p.StructureID), CanPolicy: admin}
	if len(list) > consoleListPage {
		list = list[:consoleListPage]
		d.NextURL = "/console/sessions?before=" + url.QueryEscape(consoleListCursor(list[len(list)-1]))
	}
	ev := url.Values{}
	for _, m := range list {
		d.Sessions = append(d.Sessions, cs.view(pg.Lang, p, m))
		if !m.State.Final() {
			ev.Add("id", m.ID)
		}
	}
	if len(ev) > 0 {
		d.Events = "/console/sessions/events?" + ev.Encode()
	}
	pg.Status = consoleDone[c.QueryParam("done")]
	pg.Data = d
	return cs.u.render(c, http.StatusOK, "console-sessions.html", pg)
}

// --- words ----------------------------------------------------------------------

// consoleText is a catalogue message in lang, formatted with args.
func consoleText(lang, key string, args ...any) string {
	m, ok := lookupMessage(key)
	if !ok {
		return key
	}
	s := m.fr
	if lang == "en" {
		s = m.en
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s
}

// consoleDuration says a duration in words: "45 minutes", "1 h 30",
// "2 heures", "14 jours".
func consoleDuration(lang string, d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		n := int(d / day)
		if n == 1 {
			return consoleText(lang, "console.dur.day")
		}
		return consoleText(lang, "console.dur.days", n)
	case d >= time.Hour && d%time.Hour == 0:
		n := int(d / time.Hour)
		if n == 1 {
			return consoleText(lang, "console.dur.hour")
		}
		return consoleText(lang, "console.dur.hours", n)
	case d > time.Hour:
		return consoleText(lang, "console.dur.hm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return consoleText(lang, "console.dur.minutes", int(d/time.Minute))
}

// consoleDateTime is a date and time of day in loc: "4 mars 2030 à 10:05".
func consoleDateTime(lang string, loc *time.Location, t time.Time) string {
	t = t.In(loc)
	return consoleText(lang, "console.datetime", formatDate(lang, t), t.Format("15:04"))
}
