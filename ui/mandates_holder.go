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
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"rsc.io/qr"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// UserCodes finds the mandate an RFC 8628 user code stands for
// (*authz.Server): errors wrap authz.ErrUserCodeUnknown, ErrUserCodeUsed or
// ErrUserCodeThrottled.
type UserCodes interface {
	LookupUserCode(ctx context.Context, userCode, remoteIP string) (mandate.Mandate, error)
}

// HolderMandates is what the holder's pages ask of the mandate service
// (*mandate.Service).
type HolderMandates interface {
	Get(ctx context.Context, id string) (mandate.Mandate, error)
	Approve(ctx context.Context, holderID, hmMandateID string, a mandate.Approval) (mandate.Mandate, error)
	Refuse(ctx context.Context, holderID, hmMandateID, hmRequestID string) (mandate.Mandate, error)
	End(ctx context.Context, hmMandateID string, reason mandate.EndReason, by mandate.Actor, hmRequestID string) (mandate.Mandate, error)
	Heartbeat(ctx context.Context, holderID, hmMandateID string) (time.Time, error)
	StartPresence(ctx context.Context, holderID, hmMandateID, hmRequestID string) (time.Time, error)
	Leave(ctx context.Context, holderID, hmMandateID, hmRequestID string) (mandate.Mandate, error)
	List(ctx context.Context, q mandate.Query) ([]mandate.Mandate, error)
}

// HolderMandateConfig tunes the holder's mandate pages; zero fields take
// the defaults.
type HolderMandateConfig struct {
	// HeartbeatEvery is how often the live page renews the presence lease;
	// 5 s. It must be well under the service's LeaseLapse.
	HeartbeatEvery time.Duration
	// Clock is the time the pages count down from; the system clock.
	Clock mandate.Clock
	// KeepAlive is how often an idle event stream sends a comment, so that
	// proxies keep it open; 25 s.
	KeepAlive time.Duration
	// Receipts signs the receipt page's stored bytes (*authz.Server); nil:
	// the page shows no signature.
	Receipts ReceiptSigner
	// ReceiptKeysURL is where the keys that verify a signed receipt are
	// published (the issuer's /oauth2/jwks.json): the page names it.
	ReceiptKeysURL string
	// Events is the audit log (*audit.Log) the list's "Derniers accès"
	// reads; nil: the list has no such section.
	Events HolderEvents
}

// ReceiptSigner signs a consent receipt's canonical bytes as a compact JWS
// (*authz.Server).
type ReceiptSigner interface {
	SignReceipt(ctx context.Context, canonical []byte) (string, error)
}

// HolderEvents queries the audit log (*audit.Log), as the holder's
// history does.
type HolderEvents interface {
	Query(ctx context.Context, f audit.Filter) (audit.Page, error)
}

// HolderMandatePages are the holder's side of mandates, on their phone:
// the RFC 8628 verification page where they type the user code (GET/POST
// /device), the approval card, the live page that keeps the presence lease
// alive (presence.js: heartbeats, and a beacon when the page is closed; for
// a colleague's delegation, a "Je suis disponible" button that starts the
// lease again), the list of their mandates with a one-tap stop, and the
// printable consent receipt as it was approved. Every route checks that
// the signed-in holder is the mandate's holder; anyone else gets "not
// found", and nothing changes.
type HolderMandatePages struct {
	u     *UI
	svc   HolderMandates
	codes UserCodes
	dir   mandate.Directory
	hub   *mandate.Hub
	cfg   HolderMandateConfig
	loc   *time.Location
}

// NewHolderMandatePages returns the pages. codes may be nil (no device
// flow: /device is not served); hub may be nil (the live page then learns
// of an end from its next heartbeat instead of at once).
func NewHolderMandatePages(u *UI, svc HolderMandates, codes UserCodes, dir mandate.Directory, hub *mandate.Hub, cfg HolderMandateConfig) *HolderMandatePages {
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = mandate.SystemClock{}
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 25 * time.Second
	}
	loc, err := time.LoadLocation("Europe/Paris") // time/tzdata: imported by account.go
	if err != nil {
		loc = time.UTC
	}
	return &HolderMandatePages{u: u, svc: svc, codes: codes, dir: dir, hub: hub, cfg: cfg, loc: loc}
}

// Register adds the pages' routes to e.
func (hm *HolderMandatePages) Register(e *echo.Echo) {
	if hm.codes != nil {
		e.GET(authz.PathDeviceVerification, hm.devicePage)
		e.POST(authz.PathDeviceVerification, hm.deviceSubmit)
	}
	e.GET("/holder/mandates", hm.listPage)
	e.GET("/holder/mandates/:id/approve", hm.approvePage)
	e.POST("/holder/mandates/:id/approve", hm.approve)
	e.POST("/holder/mandates/:id/refuse", hm.refuse)
	e.GET("/holder/mandates/:id/live", hm.livePage)
	e.POST("/holder/mandates/:id/end", hm.end)
	e.POST("/holder/mandates/:id/presence", hm.startPresence)
	e.POST("/holder/mandates/:id/heartbeat", hm.heartbeat)
	e.POST("/holder/mandates/:id/leave", hm.leave)
	e.GET("/holder/mandates/:id/receipt", hm.receiptPage)
	if hm.hub != nil {
		e.GET("/holder/mandates/:id/events", hm.events)
	}
}

// --- who may ----------------------------------------------------------------

// holder returns the signed-in holder. Otherwise it has answered: a page
// or a form leads to the holder's sign-in, coming back to back; a script
// gets a 401 problem.
func (hm *HolderMandatePages) holder(c echo.Context, back string, script bool) (people.Principal, bool, error) {
	p, ok := hm.u.CurrentPrincipal(c)
	if ok && p.Kind == "holder" && p.ID != "" {
		return p, true, nil
	}
	if script {
		return p, false, hmProblem(c, http.StatusUnauthorized, "sign in again")
	}
	target := "/holder/signin"
	if rt := safeReturnTo(back); rt != "" {
		target += "?return_to=" + url.QueryEscape(rt)
	}
	return p, false, c.Redirect(http.StatusSeeOther, target)
}

// hmMandateID is the route's id, or "" when it cannot be one.
func hmMandateID(c echo.Context) string {
	id := c.Param("id")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#%") {
		return ""
	}
	return id
}

// mine returns the signed-in holder and their mandate of the route's id.
// It has answered when ok is false: sign-in, or "not found" for a mandate
// that does not exist or is someone else's.
func (hm *HolderMandatePages) mine(c echo.Context, back string) (people.Principal, mandate.Mandate, bool, error) {
	p, ok, err := hm.holder(c, back, false)
	if !ok {
		return p, mandate.Mandate{}, false, err
	}
	id := hmMandateID(c)
	if id == "" {
		return p, mandate.Mandate{}, false, hm.notFound(c)
	}
	m, err := hm.svc.Get(c.Request().Context(), id)
	if errors.Is(err, mandate.ErrNotFound) || (err == nil && m.HolderID != p.ID) {
		return p, mandate.Mandate{}, false, hm.notFound(c)
	}
	if err != nil {
		return p, mandate.Mandate{}, false, hm.u.internalError(c, err)
	}
	return p, m, true, nil
}

func (hm *HolderMandatePages) notFound(c echo.Context) error {
	return hm.u.renderProblem(c, http.StatusNotFound, "hm.notfound.title", "hm.notfound.detail")
}

func hmBase(id string) string { return "/holder/mandates/" + url.PathEscape(id) }

func hmRequestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

func hmHolderActor(p people.Principal) mandate.Actor {
	return mandate.Actor{Kind: mandate.ActorHolder, ID: p.ID, Name: p.DisplayName}
}

// hmProblem answers an RFC 9457 problem document (for presence.js).
func hmProblem(c echo.Context, status int, detail string) error {
	body, err := json.Marshal(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(status, "application/problem+json", body)
}

// --- the verification page (RFC 8628 §3.3) ------------------------------------

type hmDeviceData struct {
	Code string
	// Prefilled: the code came in the link (verification_uri_complete);
	// the page asks to check it against the mediator's screen.
	Prefilled bool
}

func (hm *HolderMandatePages) devicePage(c echo.Context) error {
	code := c.QueryParam("user_code")
	back := authz.PathDeviceVerification
	if code != "" {
		back += "?" + url.Values{"user_code": {code}}.Encode()
	}
	if _, ok, err := hm.holder(c, back, false); !ok {
		return err
	}
	d := hmDeviceData{}
	if n := authz.NormaliseUserCode(code); n != "" {
		d.Code, d.Prefilled = n, true
	}
	pg := hm.u.newPage(c)
	pg.Data = d
	return hm.u.render(c, http.StatusOK, "device.html", pg)
}

func (hm *HolderMandatePages) deviceSubmit(c echo.Context) error {
	typed := c.FormValue("user_code")
	p, ok, err := hm.holder(c, authz.PathDeviceVerification, false)
	if !ok {
		return err
	}
	fail := func(status int, key string) error {
		pg := hm.u.newPage(c)
		code := strings.TrimSpace(typed)
		if len(code) > 20 {
			code = ""
		}
		pg.Data = hmDeviceData{Code: code}
		pg.Errors = []fieldError{{Field: "user_code", Key: key}}
		return hm.u.render(c, status, "device.html", pg)
	}
	if strings.TrimSpace(typed) == "" {
		return fail(http.StatusUnprocessableEntity, "hm.device.err.empty")
	}
	m, err := hm.codes.LookupUserCode(c.Request().Context(), typed, c.RealIP())
	switch {
	case errors.Is(err, authz.ErrUserCodeThrottled):
		c.Response().Header().Set("Retry-After", "900")
		return fail(http.StatusTooManyRequests, "hm.device.err.toomany")
	case errors.Is(err, authz.ErrUserCodeUsed):
		return fail(http.StatusUnprocessableEntity, "hm.device.err.used")
	case errors.Is(err, authz.ErrUserCodeUnknown):
		return fail(http.StatusUnprocessableEntity, "hm.device.err.wrong")
	case err != nil:
		return hm.u.internalError(c, err)
	}
	if m.HolderID != p.ID { // someone else's request: no different answer
		return fail(http.StatusUnprocessableEntity, "hm.device.err.wrong")
	}
	return c.Redirect(http.StatusSeeOther, hmBase(m.ID)+"/approve")
}

// --- what the pages show of a mandate -------------------------------------------

// hmView is a mandate in the page's language.
type hmView struct {
	ID         string
	Base       string
	Session    bool
	KindKey    string
	StateKey   string
	EndKey     string // why it ended, "" unless ended
	Delegate   string
	Structure  string
	Mailbox    string
	Scopes     []mandate.Scope
	Personal   bool // messages marked personal are reached too
	PurposeKey string
	Purpose    string
	Duration   string // sessions: how long once approved
	From, To   string // the window, once set
	AnswerBy   string
	Presence   bool // the holder's presence is required
	Waiting    bool // requested, still answerable
	Live       bool // under way (hmLive); a delegation for its whole window
	Paused     bool // a delegation under way waiting for the holder's presence (hmPaused)
	Soon       bool // a delegation approved ahead of its window
	CanStop    bool
	HasReceipt bool
	Asked      string // date asked
	Ended      string // date ended
}

// hmViewer turns mandates into views, looking each delegate and structure up
// once per page.
type hmViewer struct {
	hm         *HolderMandatePages
	ctx        context.Context
	lang       string
	now        time.Time
	delegates  map[string]string
	structures map[string]string
}

func (hm *HolderMandatePages) newViewer(c echo.Context, lang string) *hmViewer {
	return &hmViewer{hm: hm, ctx: c.Request().Context(), lang: lang, now: hm.cfg.Clock.Now(),
		delegates: map[string]string{}, structures: map[string]string{}}
}

func (v *hmViewer) tr(key string, args ...any) string {
	m, ok := lookupMessage(key)
	if !ok {
		return key
	}
	s := m.fr
	if v.lang == "en" {
		s = m.en
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s
}

func (v *hmViewer) delegate(id string) string {
	if name, ok := v.delegates[id]; ok {
		return name
	}
	name := ""
	if v.hm.dir != nil {
		if p, err := v.hm.dir.Delegate(v.ctx, id); err == nil {
			name = p.DisplayName
		}
	}
	if name == "" {
		name = v.tr("hm.someone")
	}
	v.delegates[id] = name
	return name
}

func (v *hmViewer) structure(id string) string {
	if name, ok := v.structures[id]; ok {
		return name
	}
	name := ""
	if v.hm.dir != nil {
		if n, err := v.hm.dir.StructureName(v.ctx, id); err == nil {
			name = n
		}
	}
	v.structures[id] = name
	return name
}

// when is a date and time, Paris time, in words.
func (v *hmViewer) when(t time.Time) string {
	t = t.In(v.hm.loc)
	return v.tr("hm.at", formatDate(v.lang, t), t.Format("15:04"))
}

func (v *hmViewer) duration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return v.tr("hm.duration.days", int(d/(24*time.Hour)))
	case d == time.Hour:
		return v.tr("hm.duration.hour")
	case d >= time.Hour && d%time.Hour == 0:
		return v.tr("hm.duration.hours", int(d/time.Hour))
	case d >= time.Hour:
		return v.tr("hm.duration.hm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return v.tr("hm.duration.minutes", int(d.Round(time.Minute)/time.Minute))
}

// hmLive reports whether m is under way, as far as the holder should be
// told: approved or active, inside its window, and — for a session that
// needs presence — with a lease alive (a session ends when its lease
// lapses). A delegation lives for its whole window: presence gates only
// its tokens (hmPaused).
func hmLive(m mandate.Mandate, now time.Time) bool {
	if m.State != mandate.StateApproved && m.State != mandate.StateActive {
		return false
	}
	if !m.NotBefore.IsZero() && now.Before(m.NotBefore) {
		return false
	}
	if !m.NotAfter.IsZero() && !now.Before(m.NotAfter) {
		return false
	}
	if m.Kind == mandate.KindDelegation {
		return true
	}
	return m.Presence != mandate.PresenceRequired || m.Present(now)
}

// hmPaused reports whether m is a delegation under way that needs the
// holder's presence and has no lease alive: its tokens do not work.
func hmPaused(m mandate.Mandate, now time.Time) bool {
	return m.Kind == mandate.KindDelegation && m.Presence == mandate.PresenceRequired && hmLive(m, now) && !m.Present(now)
}

// hmSoon reports whether m is a delegation approved ahead of its window.
func hmSoon(m mandate.Mandate, now time.Time) bool {
	return m.Kind == mandate.KindDelegation && (m.State == mandate.StateApproved || m.State == mandate.StateActive) &&
		now.Before(m.NotBefore)
}

func (v *hmViewer) view(m mandate.Mandate) hmView {
	mv := hmView{
		ID: m.ID, Base: hmBase(m.ID), Session: m.Kind == mandate.KindSession,
		KindKey: "hm.kind." + string(m.Kind), StateKey: "hm.state." + string(m.State),
		Delegate: v.delegate(m.DelegateID), Structure: v.structure(m.StructureID), Mailbox: m.Mailbox,
		Personal: true, Purpose: m.Purpose, Presence: m.Presence == mandate.PresenceRequired,
		HasReceipt: m.ConsentHash != "", Asked: formatDate(v.lang, m.CreatedAt.In(v.hm.loc)),
	}
	if _, ok := lookupMessage(mv.KindKey); !ok {
		mv.KindKey = "hm.kind.session"
	}
	if _, ok := lookupMessage(mv.StateKey); !ok {
		mv.StateKey = "hm.state.ended"
	}
	if m.PurposeCategory.Valid() {
		mv.PurposeKey = "hm.purpose." + string(m.PurposeCategory)
	}
	for _, name := range m.Scopes {
		if s, ok := mandate.LookupScope(name); ok && !s.Service {
			mv.Scopes = append(mv.Scopes, s)
		}
	}
	for _, x := range m.Exclusions {
		if x == mandate.ExcludePersonal {
			mv.Personal = false
		}
	}
	if m.Kind == mandate.KindSession && m.Duration > 0 {
		mv.Duration = v.duration(m.Duration)
	}
	if !m.NotBefore.IsZero() && !m.NotAfter.IsZero() {
		mv.From, mv.To = v.when(m.NotBefore), v.when(m.NotAfter)
	}
	if !m.AnswerBy.IsZero() {
		mv.AnswerBy = v.when(m.AnswerBy)
	}
	mv.Waiting = m.State == mandate.StateRequested && v.now.Before(m.AnswerBy)
	mv.Live, mv.Paused, mv.Soon = hmLive(m, v.now), hmPaused(m, v.now), hmSoon(m, v.now)
	mv.CanStop = m.State == mandate.StateApproved || m.State == mandate.StateActive
	if m.State == mandate.StateEnded {
		if m.EndReason.Valid() {
			mv.EndKey = "hm.end." + string(m.EndReason)
		}
		if !m.EndedAt.IsZero() {
			mv.Ended = formatDate(v.lang, m.EndedAt.In(v.hm.loc))
		}
	}
	return mv
}

// --- the approval card ------------------------------------------------------------

type hmApproveData struct {
	M hmView
	// IncludePersonal is the checkbox as sent back after a mistake.
	IncludePersonal bool
}

func (hm *HolderMandatePages) approvePage(c echo.Context) error {
	_, m, ok, err := hm.mine(c, c.Request().RequestURI)
	if !ok {
		return err
	}
	return hm.showApprove(c, http.StatusOK, m, "", "")
}

func (hm *HolderMandatePages) showApprove(c echo.Context, status int, m mandate.Mandate, statusKey, errKey string) error {
	pg := hm.u.newPage(c)
	v := hm.newViewer(c, pg.Lang)
	d := hmApproveData{M: v.view(m), IncludePersonal: c.FormValue("include_personal") == "1"}
	if !d.M.Waiting && statusKey == "" && errKey == "" {
		statusKey = "hm.approve.notwaiting"
		if m.State == mandate.StateRequested {
			errKey = "hm.approve.err.late"
			statusKey = ""
		}
	}
	pg.Status = statusKey
	if errKey != "" {
		pg.Errors = []fieldError{{Key: errKey}}
	}
	pg.Data = d
	return hm.u.render(c, status, "mandate-approve.html", pg)
}

func (hm *HolderMandatePages) approve(c echo.Context) error {
	p, m, ok, err := hm.mine(c, hmBase(c.Param("id"))+"/approve")
	if !ok {
		return err
	}
	a := mandate.Approval{IncludePersonal: c.FormValue("include_personal") == "1", RequestID: hmRequestID(c)}
	approved, err := hm.svc.Approve(c.Request().Context(), p.ID, m.ID, a)
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return hm.notFound(c)
	case errors.Is(err, mandate.ErrConflict):
		return hm.answerTooLate(c, m)
	case err != nil:
		return hm.u.internalError(c, err)
	}
	if approved.Presence == mandate.PresenceRequired {
		return c.Redirect(http.StatusSeeOther, hmBase(m.ID)+"/live")
	}
	return c.Redirect(http.StatusSeeOther, "/holder/mandates?done=approved")
}

// answerTooLate shows the card again when an answer came after the
// request moved on (answered elsewhere, lapsed, cancelled).
func (hm *HolderMandatePages) answerTooLate(c echo.Context, m mandate.Mandate) error {
	if now, err := hm.svc.Get(c.Request().Context(), m.ID); err == nil {
		m = now
	}
	key := "hm.approve.err.late"
	if m.State != mandate.StateRequested && m.State != mandate.StateUnanswered {
		key = "hm.approve.notwaiting"
	}
	return hm.showApprove(c, http.StatusConflict, m, "", key)
}

func (hm *HolderMandatePages) refuse(c echo.Context) error {
	p, m, ok, err := hm.mine(c, hmBase(c.Param("id"))+"/approve")
	if !ok {
		return err
	}
	_, err = hm.svc.Refuse(c.Request().Context(), p.ID, m.ID, hmRequestID(c))
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return hm.notFound(c)
	case errors.Is(err, mandate.ErrConflict):
		return hm.answerTooLate(c, m)
	case err != nil:
		return hm.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/holder/mandates?done=refused")
}

// --- the live page and the presence lease -------------------------------------------

type hmLiveData struct {
	M        hmView
	TitleKey string
	// Until is the end time in words; Remaining the seconds left at render
	// time, and RemainingText the same as the countdown shows it.
	Until         string
	Remaining     int64
	RemainingText string
	Script        string
	HeartbeatMS   int64
	Events        string // the event stream's URL, "" when there is none
	// Starts is when a delegation approved ahead of its window starts.
	Starts string
}

func (hm *HolderMandatePages) livePage(c echo.Context) error {
	_, m, ok, err := hm.mine(c, c.Request().RequestURI)
	if !ok {
		return err
	}
	if m.State == mandate.StateRequested {
		return c.Redirect(http.StatusSeeOther, hmBase(m.ID)+"/approve")
	}
	pg := hm.u.newPage(c)
	v := hm.newViewer(c, pg.Lang)
	d := hmLiveData{M: v.view(m), TitleKey: "hm.live.title.over"}
	switch {
	case d.M.Live && d.M.Session:
		d.TitleKey = "hm.live.title.session"
	case d.M.Live:
		d.TitleKey = "hm.live.title.delegation"
	case d.M.Soon:
		d.TitleKey = "hm.live.title.soon"
		d.Starts = v.when(m.NotBefore)
	}
	if d.M.Live {
		left := m.NotAfter.Sub(v.now)
		d.Until = v.when(m.NotAfter)
		d.Remaining = int64(left / time.Second)
		d.RemainingText = hmClock(d.Remaining)
		if d.M.Presence {
			d.Script = hm.u.ScriptPath("presence.js")
			d.HeartbeatMS = hm.cfg.HeartbeatEvery.Milliseconds()
			if hm.hub != nil {
				d.Events = d.M.Base + "/events"
			}
		}
	}
	pg.Data = d
	return hm.u.render(c, http.StatusOK, "mandate-live.html", pg)
}

// hmClock is seconds as the countdown shows them: "H:MM:SS" or "MM:SS".
func hmClock(s int64) string {
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s%3600/60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

func (hm *HolderMandatePages) end(c echo.Context) error {
	fromList := c.FormValue("from") == "list"
	back := hmBase(c.Param("id")) + "/live"
	if fromList {
		back = "/holder/mandates"
	}
	p, m, ok, err := hm.mine(c, back)
	if !ok {
		return err
	}
	done := "stopped"
	_, err = hm.svc.End(c.Request().Context(), m.ID, mandate.EndedByHolder, hmHolderActor(p), hmRequestID(c))
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return hm.notFound(c)
	case errors.Is(err, mandate.ErrConflict): // already over: say so
		done = "already"
	case err != nil:
		return hm.u.internalError(c, err)
	}
	if fromList {
		return c.Redirect(http.StatusSeeOther, "/holder/mandates?done="+done)
	}
	return c.Redirect(http.StatusSeeOther, back)
}

// startPresence is the "Je suis disponible" button of a delegation that
// needs the holder's presence: it starts the lease again, and the live
// page beats on. A delegation that cannot start (over, outside its window)
// shows its live page as it is.
func (hm *HolderMandatePages) startPresence(c echo.Context) error {
	back := hmBase(c.Param("id")) + "/live"
	p, m, ok, err := hm.mine(c, back)
	if !ok {
		return err
	}
	_, err = hm.svc.StartPresence(c.Request().Context(), p.ID, m.ID, hmRequestID(c))
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return hm.notFound(c)
	case err != nil && !errors.Is(err, mandate.ErrConflict):
		return hm.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, back)
}

// hmLeaseJSON is the heartbeat's and leave's answer.
type hmLeaseJSON struct {
	LeaseUntil string `json:"lease_until"`
}

func hmLeaseAnswer(c echo.Context, until time.Time) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	s := ""
	if !until.IsZero() {
		s = until.UTC().Format(time.RFC3339)
	}
	return c.JSON(http.StatusOK, hmLeaseJSON{LeaseUntil: s})
}

// leaseProblem answers a heartbeat or leave that failed.
func (hm *HolderMandatePages) leaseProblem(c echo.Context, err error) error {
	switch {
	case errors.Is(err, mandate.ErrNotFound):
		return hmProblem(c, http.StatusNotFound, "no such session")
	case errors.Is(err, mandate.ErrConflict):
		return hmProblem(c, http.StatusConflict, "the session is over")
	}
	hm.u.log.ErrorContext(c.Request().Context(), "presence", "path", c.Path(), "err", err)
	return hmProblem(c, http.StatusInternalServerError, "internal error")
}

func (hm *HolderMandatePages) heartbeat(c echo.Context) error {
	p, ok, err := hm.holder(c, "", true)
	if !ok {
		return err
	}
	id := hmMandateID(c)
	if id == "" {
		return hmProblem(c, http.StatusNotFound, "no such session")
	}
	until, err := hm.svc.Heartbeat(c.Request().Context(), p.ID, id)
	if err != nil {
		return hm.leaseProblem(c, err)
	}
	return hmLeaseAnswer(c, until)
}

// leave is the beacon presence.js sends when the page goes away.
func (hm *HolderMandatePages) leave(c echo.Context) error {
	p, ok, err := hm.holder(c, "", true)
	if !ok {
		return err
	}
	id := hmMandateID(c)
	if id == "" {
		return hmProblem(c, http.StatusNotFound, "no such session")
	}
	m, err := hm.svc.Leave(context.WithoutCancel(c.Request().Context()), p.ID, id, hmRequestID(c))
	if err != nil {
		return hm.leaseProblem(c, err)
	}
	return hmLeaseAnswer(c, m.LeaseUntil)
}

// hmStateJSON is one event of the live page's stream. Live: tokens work
// (mandate.Mandate.Live). Over: nothing more will happen (ended, refused,
// lapsed, past its window, or a session whose lease lapsed); a delegation
// that is neither live nor over waits for the holder's presence.
type hmStateJSON struct {
	State      string `json:"state"`
	Live       bool   `json:"live"`
	Over       bool   `json:"over"`
	LeaseUntil string `json:"lease_until,omitempty"`
}

// events streams the mandate's state to the live page (server-sent
// events): once at once, then at every change the hub signals, until the
// session is over or the page goes away.
func (hm *HolderMandatePages) events(c echo.Context) error {
	p, ok, err := hm.holder(c, "", true)
	if !ok {
		return err
	}
	id := hmMandateID(c)
	ctx := c.Request().Context()
	m, err := hm.svc.Get(ctx, id)
	if id == "" || errors.Is(err, mandate.ErrNotFound) || (err == nil && m.HolderID != p.ID) {
		return hmProblem(c, http.StatusNotFound, "no such session")
	}
	if err != nil {
		return hm.leaseProblem(c, err)
	}
	signals, cancel := hm.hub.Subscribe(id)
	defer cancel()
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(s string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(hm.cfg.KeepAlive + 10*time.Second))
		if _, err := w.Write([]byte(s)); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func(m mandate.Mandate) (bool, error) {
		now := hm.cfg.Clock.Now()
		s := hmStateJSON{State: string(m.State), Live: m.Live(now),
			Over: !hmLive(m, now) && !hmSoon(m, now) && m.State != mandate.StateRequested}
		if !m.LeaseUntil.IsZero() {
			s.LeaseUntil = m.LeaseUntil.UTC().Format(time.RFC3339)
		}
		b, _ := json.Marshal(s)
		return !s.Over, write("event: state\ndata: " + string(b) + "\n\n")
	}
	more, err := send(m)
	if err != nil || !more {
		return nil
	}
	tick := time.NewTicker(hm.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if write(": keep-alive\n\n") != nil {
				return nil
			}
		case <-signals:
			now, err := hm.svc.Get(ctx, id)
			if err != nil {
				return nil
			}
			if more, err := send(now); err != nil || !more {
				return nil
			}
		}
	}
}

// --- the holder's list -------------------------------------------------------------

type hmListData struct {
	Live, Waiting, Past []hmView
	Older               string
	Empty               bool
	// Accesses are the latest accesses under the holder's delegations
	// (first page only); Delegations says whether they have any.
	Accesses    []historyRow
	Delegations bool
}

// hmAccessesShown is how many accesses the list shows at most, found among
// the holder's hmAccessesScanned latest events.
const (
	hmAccessesShown   = 5
	hmAccessesScanned = 200
)

const hmPageSize = 30

func (hm *HolderMandatePages) listPage(c echo.Context) error {
	p, ok, err := hm.holder(c, "/holder/mandates", false)
	if !ok {
		return err
	}
	q := mandate.Query{HolderID: p.ID, Limit: hmPageSize + 1}
	if t, err := time.Parse(time.RFC3339Nano, c.QueryParam("before")); err == nil {
		if id := c.QueryParam("before_id"); id != "" && len(id) <= 64 {
			q.BeforeCreated, q.BeforeID = t, id
		}
	}
	list, err := hm.svc.List(c.Request().Context(), q)
	if err != nil {
		return hm.u.internalError(c, err)
	}
	pg := hm.u.newPage(c)
	switch c.QueryParam("done") {
	case "refused":
		pg.Status = "hm.approve.refused"
	case "approved":
		pg.Status = "hm.approve.approved"
	case "stopped":
		pg.Status = "hm.list.stopped"
	case "already":
		pg.Status = "hm.list.already"
	}
	var d hmListData
	if len(list) > hmPageSize {
		last := list[hmPageSize-1]
		list = list[:hmPageSize]
		d.Older = "/holder/mandates?" + url.Values{"before": {last.CreatedAt.UTC().Format(time.RFC3339Nano)}, "before_id": {last.ID}}.Encode()
	}
	v := hm.newViewer(c, pg.Lang)
	for _, m := range list {
		if m.HolderID != p.ID { // the query's own guarantee, checked again
			continue
		}
		mv := v.view(m)
		switch {
		case mv.Waiting:
			d.Waiting = append(d.Waiting, mv)
		case mv.CanStop:
			d.Live = append(d.Live, mv)
		default:
			d.Past = append(d.Past, mv)
		}
	}
	d.Empty = len(d.Live)+len(d.Waiting)+len(d.Past) == 0
	if q.BeforeID == "" && hm.cfg.Events != nil {
		if d.Accesses, err = hm.recentAccesses(c, p, pg.Lang, list); err != nil {
			// The list stands without them: the history has them all.
			hm.u.log.ErrorContext(c.Request().Context(), "latest accesses", "holder_id", p.ID, "err", err)
		}
		for _, m := range list {
			d.Delegations = d.Delegations || m.Kind == mandate.KindDelegation
		}
		d.Delegations = d.Delegations || len(d.Accesses) > 0
	}
	pg.Data = d
	return hm.u.render(c, http.StatusOK, "holder-mandates.html", pg)
}

// hmAccess reports whether e is an access to a mailbox: tokens issued or
// refreshed, and what resource servers report done in it.
func hmAccess(e audit.Event) bool {
	return e.Action == audit.ActionTokenIssued || e.Action == audit.ActionTokenRefreshed ||
		strings.HasPrefix(string(e.Action), "mailbox.")
}

// recentAccesses are the latest accesses under the holder's colleague
// delegations, newest first, as the holder's history words them: from the
// holder's latest events in the audit log (the history's query), those of
// a delegation of theirs. Sessions are left out: the holder was there.
func (hm *HolderMandatePages) recentAccesses(c echo.Context, p people.Principal, lang string, list []mandate.Mandate) ([]historyRow, error) {
	ctx := c.Request().Context()
	res, err := hm.cfg.Events.Query(ctx, audit.Filter{Holder: p.ID, Limit: hmAccessesScanned})
	if err != nil {
		return nil, err
	}
	delegation := map[string]bool{}
	for _, m := range list {
		if m.HolderID == p.ID {
			delegation[m.ID] = m.Kind == mandate.KindDelegation
		}
	}
	n := namer{h: &HolderHistory{ui: hm.u, staff: hmStaff{hm.dir}, loc: hm.loc}, ctx: ctx, lang: lang,
		structures: map[string]string{}, staff: map[string]people.Staff{}}
	var rows []historyRow
	for _, e := range res.Events {
		if e.Holder != p.ID || e.MandateID == "" || !hmAccess(e) {
			continue
		}
		is, known := delegation[e.MandateID]
		if !known { // a mandate older than the list's page
			m, err := hm.svc.Get(ctx, e.MandateID)
			is = err == nil && m.HolderID == p.ID && m.Kind == mandate.KindDelegation
			delegation[e.MandateID] = is
		}
		if !is {
			continue
		}
		rows = append(rows, n.row(e, p.ID))
		if len(rows) == hmAccessesShown {
			break
		}
	}
	return rows, nil
}

// hmStaff names staff from the mandate directory, for the history's
// sentences.
type hmStaff struct{ dir mandate.Directory }

func (s hmStaff) GetStaff(ctx context.Context, id string) (people.Staff, error) {
	if s.dir == nil {
		return people.Staff{}, mandate.ErrNotFound
	}
	p, err := s.dir.Delegate(ctx, id)
	if err != nil {
		return people.Staff{}, err
	}
	return people.Staff{ID: p.ID, DisplayName: p.DisplayName, StructureID: p.StructureID}, nil
}

// --- the consent receipt ------------------------------------------------------------

type hmReceiptData struct {
	M        hmView
	Holder   string
	Approved string
	Version  string
	Text     []string // the consent text the holder approved, by line; nil when unknown
	Hash     string
	QR       template.URL
	// Canonical is the receipt's canonical JSON as stored at approval,
	// whose SHA-256 is Hash; "" when the stored bytes do not verify (the
	// page then says so and shows what the mandate says today).
	Canonical string
	// Signature is Canonical signed by the server (a compact JWS, ES256),
	// verifiable with the keys published at KeysURL; "" when unsigned.
	Signature string
	KeysURL   string
}

// receiptPage shows the receipt as the holder approved it: the canonical
// bytes stored at approval, checked against the consent hash (which the
// audit log holds) and read back, so that renaming the holder, the
// delegate or the structure since changes neither what it says nor its
// hash.
func (hm *HolderMandatePages) receiptPage(c echo.Context) error {
	p, m, ok, err := hm.mine(c, c.Request().RequestURI)
	if !ok {
		return err
	}
	if m.ConsentHash == "" {
		return hm.u.renderProblem(c, http.StatusNotFound, "hm.receipt.title", "hm.receipt.none")
	}
	pg := hm.u.newPage(c)
	v := hm.newViewer(c, pg.Lang)
	d := hmReceiptData{M: v.view(m), Holder: p.DisplayName, Version: m.ConsentVersion, Hash: m.ConsentHash}
	if r, err := hmStoredReceipt(m); err != nil {
		hm.u.log.ErrorContext(c.Request().Context(), "consent receipt", "mandate_id", m.ID, "err", err)
		pg.Errors = []fieldError{{Key: "hm.receipt.unverified"}}
		if !m.DecidedAt.IsZero() {
			d.Approved = v.when(m.DecidedAt)
		}
	} else {
		d.M = v.receiptView(m, r)
		d.Holder, d.Version, d.Approved = r.HolderName, r.Version, v.when(r.ApprovedAt)
		d.Canonical = string(m.ConsentReceipt)
		d.Signature, d.KeysURL = hm.signReceipt(c.Request().Context(), m)
	}
	if text, ok := mandate.ConsentText(d.Version, pg.Lang); ok {
		d.Text = strings.Split(strings.TrimSpace(text), "\n")
	}
	code, err := qr.Encode(hmReceiptTarget(m.ConsentHash), qr.M)
	if err != nil {
		return hm.u.internalError(c, err)
	}
	code.Scale = 4
	d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG()))
	pg.Data = d
	return hm.u.render(c, http.StatusOK, "mandate-receipt.html", pg)
}

// signReceipt signs m's stored receipt bytes (already checked against its
// hash) and says where its keys are published; "" when there is no signer
// or signing failed (logged: the receipt stands without it).
func (hm *HolderMandatePages) signReceipt(ctx context.Context, m mandate.Mandate) (jws, keysURL string) {
	if hm.cfg.Receipts == nil {
		return "", ""
	}
	jws, err := hm.cfg.Receipts.SignReceipt(ctx, m.ConsentReceipt)
	if err != nil {
		hm.u.log.ErrorContext(ctx, "sign consent receipt", "mandate_id", m.ID, "err", err)
		return "", ""
	}
	keysURL = hm.cfg.ReceiptKeysURL
	if keysURL == "" {
		keysURL = authz.PathJWKS
	}
	return jws, keysURL
}

// hmStoredReceipt reads back m's receipt as stored at approval, after
// checking that its bytes hash to m.ConsentHash and name m.
func hmStoredReceipt(m mandate.Mandate) (mandate.Receipt, error) {
	if len(m.ConsentReceipt) == 0 {
		return mandate.Receipt{}, errors.New("no stored receipt")
	}
	sum := sha256.Sum256(m.ConsentReceipt)
	if hex.EncodeToString(sum[:]) != m.ConsentHash {
		return mandate.Receipt{}, errors.New("the stored receipt does not hash to the consent hash")
	}
	r, err := mandate.ParseReceipt(m.ConsentReceipt)
	if err != nil {
		return mandate.Receipt{}, err
	}
	if r.MandateID != m.ID {
		return mandate.Receipt{}, fmt.Errorf("the stored receipt is mandate %q's", r.MandateID)
	}
	return r, nil
}

// receiptView is m as its receipt says it was approved (who, what, for
// how long, why, with the names of then), in its state of today.
func (v *hmViewer) receiptView(m mandate.Mandate, r mandate.Receipt) hmView {
	as := m
	as.Kind, as.Mailbox, as.Purpose, as.PurposeCategory, as.Presence = r.Kind, r.Mailbox, r.Purpose, r.PurposeCategory, r.Presence
	as.Scopes = nil
	for _, s := range mandate.Scopes() { // in catalogue order, as the card showed them
		for _, rs := range r.Scopes {
			if rs.Name == s.Name {
				as.Scopes = append(as.Scopes, s.Name)
			}
		}
	}
	as.Exclusions = r.Exclusions
	as.NotBefore, as.NotAfter = r.NotBefore, r.NotAfter
	mv := v.view(as)
	mv.Delegate, mv.Structure = r.DelegateName, r.StructureName
	if mv.Delegate == "" {
		mv.Delegate = v.tr("hm.someone")
	}
	return mv
}

// hmReceiptTarget is what the receipt's QR code holds: the approval event's
// target in the audit log.
func hmReceiptTarget(hash string) string { return "receipt:" + hash }
