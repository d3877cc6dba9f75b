package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // banner dates are days in Europe/Paris, whatever the host has

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// AdminPages are the structure administration pages: the admin home (staff,
// inactivity report, banners), the invitation form, the deactivation and
// reactivation confirmations, the banner form and, for platform admins, the
// structures. Every page asks people.Admin, which checks the permission.
type AdminPages struct {
	u   *UI
	adm *people.Admin
	loc *time.Location
}

// NewAdminPages returns the admin pages over u's sessions and rendering.
func NewAdminPages(u *UI, adm *people.Admin) *AdminPages {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		loc = time.UTC
	}
	return &AdminPages{u: u, adm: adm, loc: loc}
}

// AdminPagePaths are the GET pages Register adds (":id" is a staff id), for
// tests that walk them all.
var AdminPagePaths = []string{
	"/admin", "/admin/invite", "/admin/staff/:id/deactivate", "/admin/staff/:id/reactivate",
	"/admin/banners/new", "/admin/structures",
}

// Register adds the pages' routes.
func (a *AdminPages) Register(e *echo.Echo) {
	e.GET("/admin", a.home)
	e.GET("/admin/invite", a.invitePage)
	e.POST("/admin/invite", a.invite)
	e.GET("/admin/staff/:id/deactivate", a.confirmPage)
	e.POST("/admin/staff/:id/deactivate", a.changeStatus)
	e.GET("/admin/staff/:id/reactivate", a.confirmPage)
	e.POST("/admin/staff/:id/reactivate", a.changeStatus)
	e.GET("/admin/banners/new", a.bannerPage)
	e.POST("/admin/banners/new", a.postBanner)
	e.POST("/admin/banners/:id/delete", a.deleteBanner)
	e.GET("/admin/structures", a.structuresPage)
	e.POST("/admin/structures", a.createStructure)
}

// BannerView is one banner as a home page shows it.
type BannerView struct {
	Text string
	Lang string // the language of Text, for its lang attribute
}

// BannersFor returns the banners to show now on audience's home page to
// people of structureIDs, in the page's language. A failure is logged and
// shows no banner: banners never stop a page.
func (a *AdminPages) BannersFor(c echo.Context, audience people.Audience, structureIDs ...string) []BannerView {
	list, err := a.adm.BannersFor(c.Request().Context(), audience, structureIDs...)
	if err != nil {
		a.u.log.ErrorContext(c.Request().Context(), "load banners", "err", err)
		return nil
	}
	lang := a.u.lang(c)
	out := make([]BannerView, len(list))
	for i, b := range list {
		l := "fr"
		if lang == "en" && b.TextEN != "" {
			l = "en"
		}
		out[i] = BannerView{Text: b.Text(lang), Lang: l}
	}
	return out
}

// principal returns the signed-in staff member, or sends them to sign in.
func (a *AdminPages) principal(c echo.Context) (people.Principal, bool, error) {
	p, ok := a.u.CurrentPrincipal(c)
	if !ok {
		return p, false, a.u.SignInRedirect(c)
	}
	return p, true, nil
}

// adminStructureOf is the structure a page is about: the "structure" parameter
// (query or form), else the signed-in person's own.
func adminStructureOf(c echo.Context, p people.Principal) string {
	if s := c.FormValue("structure"); s != "" {
		return s
	}
	return p.StructureID
}

// fail shows err as a plain-language page: 403 for a role that may not
// use the page, 404 for another structure's records.
func (a *AdminPages) fail(c echo.Context, err error) error {
	switch {
	case errors.Is(err, people.ErrForbidden):
		return a.u.renderProblem(c, http.StatusForbidden, "admin.forbidden.title", "admin.forbidden.detail")
	case errors.Is(err, people.ErrNotFound):
		return a.u.renderProblem(c, http.StatusNotFound, "admin.notfound.title", "admin.notfound.detail")
	case errors.Is(err, people.ErrRoleNotAllowed):
		return a.u.renderProblem(c, http.StatusForbidden, "admin.forbidden.title", "admin.err.role")
	case errors.Is(err, people.ErrSelf):
		return a.u.renderProblem(c, http.StatusForbidden, "admin.forbidden.title", "admin.err.self")
	case errors.Is(err, people.ErrNotDeactivated):
		return a.u.renderProblem(c, http.StatusConflict, "admin.conflict.title", "admin.err.notdeactivated")
	}
	return a.u.internalError(c, err)
}

// adminHomeURL is the admin home of a structure, with a status to show.
func adminHomeURL(structureID, done string) string {
	q := url.Values{}
	if structureID != "" {
		q.Set("structure", structureID)
	}
	if done != "" {
		q.Set("done", done)
	}
	if len(q) == 0 {
		return "/admin"
	}
	return "/admin?" + q.Encode()
}

func adminPageURL(structureID string, page int) string {
	q := url.Values{"structure": {structureID}, "page": {strconv.Itoa(page)}}
	return "/admin?" + q.Encode() + "#staff-title"
}

type adminStaffItem struct {
	people.Staff
	RoleKey, StatusKey string
	Manageable         bool // the viewer may deactivate or reactivate them
	Deactivated        bool
}

// adminPageSize bounds the staff cards and the inactivity lines a page
// shows: a structure of 500 staff stays quick to render and to read on a
// phone.
const adminPageSize = 50

type adminHomeData struct {
	Structure     people.Structure
	Holders       int // -1: unknown
	StaffTotal    int
	Page, Pages   int
	PrevURL       string
	NextURL       string
	MoreInactive  int // inactive accounts not listed
	MoreStale     int // expired invitations not listed
	Staff         []adminStaffItem
	Inactivity    people.InactivityReport
	Banners       []adminBannerItem
	CanBanners    bool
	Platform      bool
	Structures    []people.Structure // platform admins: to switch structure
	PlatformQuery string             // "structure=…" of this page
}

type adminBannerItem struct {
	people.Banner
	CSRF        string
	Scope       string // the "structure" form value
	AudienceKey string
	StartDay    time.Time
	EndDay      time.Time // the last day shown
}

var adminDone = map[string]string{
	"invited": "admin.done.invited", "deactivated": "admin.done.deactivated", "reactivated": "admin.done.reactivated",
	"banner": "admin.done.banner", "bannerdeleted": "admin.done.bannerdeleted", "structure": "admin.done.structure",
}

func (a *AdminPages) home(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sid := adminStructureOf(c, p)
	ov, err := a.adm.Overview(ctx, p, sid)
	if err != nil {
		return a.fail(c, err)
	}
	d := adminHomeData{Structure: ov.Structure, Holders: ov.Holders, Inactivity: ov.Inactivity, Platform: p.Platform,
		CanBanners: people.Can(p, people.PermManageBanners, sid)}
	d.StaffTotal = len(ov.Staff)
	d.Pages = max(1, (len(ov.Staff)+adminPageSize-1)/adminPageSize)
	d.Page = 1
	if n, err := strconv.Atoi(c.QueryParam("page")); err == nil && n >= 1 && n <= d.Pages {
		d.Page = n
	}
	if d.Page > 1 {
		d.PrevURL = adminPageURL(sid, d.Page-1)
	}
	if d.Page < d.Pages {
		d.NextURL = adminPageURL(sid, d.Page+1)
	}
	if n := len(d.Inactivity.Inactive); n > adminPageSize {
		d.Inactivity.Inactive, d.MoreInactive = d.Inactivity.Inactive[:adminPageSize], n-adminPageSize
	}
	if n := len(d.Inactivity.StaleInvitations); n > adminPageSize {
		d.Inactivity.StaleInvitations, d.MoreStale = d.Inactivity.StaleInvitations[:adminPageSize], n-adminPageSize
	}
	first := (d.Page - 1) * adminPageSize
	for _, s := range ov.Staff[first:min(first+adminPageSize, len(ov.Staff))] {
		d.Staff = append(d.Staff, adminStaffItem{Staff: s, RoleKey: "role." + string(s.Role),
			StatusKey: "admin.status." + string(s.Status), Manageable: adminManageable(p, s),
			Deactivated: s.Status == people.StaffDeactivated})
	}
	pg := a.u.newPage(c)
	d.Banners = a.adminBannerItems(pg, ov.Banners)
	if p.Platform && people.Can(p, people.PermManageStructures, "") {
		if d.Structures, err = a.adm.Structures(ctx, p); err != nil {
			return a.fail(c, err)
		}
	}
	pg.Status = adminDone[c.QueryParam("done")]
	pg.Data = d
	return a.u.render(c, http.StatusOK, "admin-home.html", pg)
}

func (a *AdminPages) adminBannerItems(pg *page, list []people.Banner) []adminBannerItem {
	out := make([]adminBannerItem, len(list))
	for i, b := range list {
		scope := b.StructureID
		if scope == people.PlatformWide {
			scope = adminPlatformScope
		}
		out[i] = adminBannerItem{Banner: b, CSRF: pg.CSRF, Scope: scope, AudienceKey: "admin.audience." + string(b.Audience),
			StartDay: b.StartsAt.In(a.loc), EndDay: b.EndsAt.In(a.loc).Add(-time.Nanosecond)}
	}
	return out
}

// manageable mirrors people's rule for the buttons: not oneself, and
// admins or platform staff only by platform admins.
func adminManageable(p people.Principal, s people.Staff) bool {
	if s.ID == p.ID {
		return false
	}
	return p.Platform || (s.Role != people.RoleAdmin && !s.Platform)
}

// Invitation form.

type adminInviteData struct {
	Structure people.Structure
	Email     string
	Name      string
	Role      string
	Language  string
	Platform  bool // may invite admins
}

func (a *AdminPages) invitePage(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	st, err := a.adm.Structure(c.Request().Context(), p, adminStructureOf(c, p))
	if err != nil {
		return a.fail(c, err)
	}
	pg := a.u.newPage(c)
	pg.Data = adminInviteData{Structure: st, Role: string(people.RoleMediator), Language: pg.Lang, Platform: p.Platform}
	return a.u.render(c, http.StatusOK, "admin-invite.html", pg)
}

var adminInviteErrors = []struct {
	err          error
	field, key   string
	statusIfSole int
}{
	{people.ErrInvalidEmail, "email", "admin.err.email", http.StatusBadRequest},
	{people.ErrEmailTaken, "email", "admin.err.taken", http.StatusConflict},
	{people.ErrInvalidName, "name", "admin.err.name", http.StatusBadRequest},
	{people.ErrInvalidRole, "role-mediator", "admin.err.rolechoice", http.StatusBadRequest},
	{people.ErrRoleNotAllowed, "role-mediator", "admin.err.role", http.StatusForbidden},
	{people.ErrNoNotifier, "", "admin.err.nonotifier", http.StatusServiceUnavailable},
}

func (a *AdminPages) invite(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sid := adminStructureOf(c, p)
	d := adminInviteData{Email: c.FormValue("email"), Name: c.FormValue("name"), Role: c.FormValue("role"),
		Language: c.FormValue("language"), Platform: p.Platform}
	_, err = a.adm.Invite(ctx, p, sid, people.Invitation{Email: d.Email, Name: d.Name, Role: d.Role, Language: d.Language})
	if err == nil {
		return c.Redirect(http.StatusSeeOther, adminHomeURL(sid, "invited"))
	}
	for _, ie := range adminInviteErrors {
		if errors.Is(err, ie.err) {
			st, serr := a.adm.Structure(ctx, p, sid)
			if serr != nil {
				return a.fail(c, serr)
			}
			d.Structure = st
			pg := a.u.newPage(c)
			pg.Errors = []fieldError{{Field: ie.field, Key: ie.key}}
			pg.Data = d
			return a.u.render(c, ie.statusIfSole, "admin-invite.html", pg)
		}
	}
	if errors.Is(err, people.ErrForbidden) || errors.Is(err, people.ErrNotFound) {
		return a.fail(c, err)
	}
	a.u.log.ErrorContext(ctx, "invite", "err", err)
	return a.u.renderProblem(c, http.StatusBadGateway, "admin.err.send.title", "admin.err.send.detail")
}

// Deactivation and reactivation.

type adminConfirmData struct {
	Structure people.Structure
	Staff     people.Staff
	RoleKey   string
	Action    string // "deactivate" or "reactivate"
}

func adminActionOf(c echo.Context) string {
	if strings.HasSuffix(c.Path(), "/reactivate") {
		return "reactivate"
	}
	return "deactivate"
}

func (a *AdminPages) confirmPage(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sid := adminStructureOf(c, p)
	s, err := a.adm.StaffInStructure(ctx, p, sid, c.Param("id"))
	if err != nil {
		return a.fail(c, err)
	}
	if !adminManageable(p, s) {
		return a.fail(c, people.ErrRoleNotAllowed)
	}
	st, err := a.adm.Structure(ctx, p, sid)
	if err != nil {
		return a.fail(c, err)
	}
	pg := a.u.newPage(c)
	pg.Data = adminConfirmData{Structure: st, Staff: s, RoleKey: "role." + string(s.Role), Action: adminActionOf(c)}
	return a.u.render(c, http.StatusOK, "admin-confirm.html", pg)
}

func (a *AdminPages) changeStatus(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sid := adminStructureOf(c, p)
	do, done := a.adm.Deactivate, "deactivated"
	if adminActionOf(c) == "reactivate" {
		do, done = a.adm.Reactivate, "reactivated"
	}
	if err := do(ctx, p, sid, c.Param("id")); err != nil {
		return a.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, adminHomeURL(sid, done))
}

// Banners.

// adminPlatformScope is the "structure" value of the platform-wide banners.
const adminPlatformScope = "platform"

type adminBannerFormData struct {
	Structure people.Structure // zero for platform-wide
	Scope     string           // the hidden "structure" value
	Audience  string
	TextFR    string
	TextEN    string
	Start     string // YYYY-MM-DD
	End       string
}

func (a *AdminPages) bannerScope(c echo.Context, p people.Principal) (string, string) {
	s := adminStructureOf(c, p)
	if s == adminPlatformScope {
		return people.PlatformWide, adminPlatformScope
	}
	return s, s
}

func (a *AdminPages) bannerForm(ctx context.Context, p people.Principal, sid string, d *adminBannerFormData) error {
	if err := a.adm.CheckBannerScope(ctx, p, sid); err != nil {
		return err
	}
	if sid != people.PlatformWide {
		st, err := a.adm.Structure(ctx, p, sid)
		if err != nil {
			return err
		}
		d.Structure = st
	}
	return nil
}

func (a *AdminPages) bannerPage(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	sid, scope := a.bannerScope(c, p)
	today := a.adm.Now().In(a.loc)
	d := adminBannerFormData{Scope: scope, Audience: string(people.AudienceStaff),
		Start: today.Format(time.DateOnly), End: today.AddDate(0, 0, 7).Format(time.DateOnly)}
	if err := a.bannerForm(c.Request().Context(), p, sid, &d); err != nil {
		return a.fail(c, err)
	}
	pg := a.u.newPage(c)
	pg.Data = d
	return a.u.render(c, http.StatusOK, "admin-banner.html", pg)
}

var adminBannerErrors = []struct {
	err        error
	field, key string
}{
	{people.ErrInvalidAudience, "audience-staff", "admin.err.audience"},
	{people.ErrBannerTextFR, "text_fr", "admin.err.textfr"},
	{people.ErrBannerTextEN, "text_en", "admin.err.texten"},
	{people.ErrBannerDates, "end", "admin.err.dates"},
	{people.ErrBannerEndsInPast, "end", "admin.err.past"},
}

func (a *AdminPages) postBanner(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	sid, scope := a.bannerScope(c, p)
	d := adminBannerFormData{Scope: scope, Audience: c.FormValue("audience"), TextFR: c.FormValue("text_fr"),
		TextEN: c.FormValue("text_en"), Start: c.FormValue("start"), End: c.FormValue("end")}
	if err := a.bannerForm(ctx, p, sid, &d); err != nil {
		return a.fail(c, err)
	}
	in := people.BannerInput{Audience: d.Audience, TextFR: d.TextFR, TextEN: d.TextEN}
	start, err1 := time.ParseInLocation(time.DateOnly, d.Start, a.loc)
	end, err2 := time.ParseInLocation(time.DateOnly, d.End, a.loc)
	if err1 != nil || err2 != nil {
		err = people.ErrBannerDates
	} else {
		in.StartsAt, in.EndsAt = start, end.AddDate(0, 0, 1) // the end day is shown whole
		_, err = a.adm.PostBanner(ctx, p, sid, in)
	}
	if err == nil {
		return c.Redirect(http.StatusSeeOther, adminHomeURL(adminBannerHome(p, sid), "banner"))
	}
	for _, be := range adminBannerErrors {
		if errors.Is(err, be.err) {
			pg := a.u.newPage(c)
			pg.Errors = []fieldError{{Field: be.field, Key: be.key}}
			pg.Data = d
			return a.u.render(c, http.StatusBadRequest, "admin-banner.html", pg)
		}
	}
	return a.fail(c, err)
}

// adminBannerHome is where to go back after a banner change: the structure's
// admin home, or the platform admin's own for platform-wide banners.
func adminBannerHome(p people.Principal, sid string) string {
	if sid == people.PlatformWide {
		return p.StructureID
	}
	return sid
}

func (a *AdminPages) deleteBanner(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	sid, _ := a.bannerScope(c, p)
	if err := a.adm.DeleteBanner(c.Request().Context(), p, sid, c.Param("id")); err != nil {
		return a.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, adminHomeURL(adminBannerHome(p, sid), "bannerdeleted"))
}

// Structures (platform admins).

type adminStructuresData struct {
	Structures      []people.Structure
	Name            string
	PlatformBanners []adminBannerItem
}

func (a *AdminPages) structuresPage(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	return a.renderStructures(c, p, http.StatusOK, "", nil)
}

func (a *AdminPages) renderStructures(c echo.Context, p people.Principal, status int, name string, errs []fieldError) error {
	ctx := c.Request().Context()
	list, err := a.adm.Structures(ctx, p)
	if err != nil {
		return a.fail(c, err)
	}
	banners, err := a.adm.Banners(ctx, p, people.PlatformWide)
	if err != nil {
		return a.fail(c, err)
	}
	pg := a.u.newPage(c)
	pg.Status = adminDone[c.QueryParam("done")]
	pg.Errors = errs
	pg.Data = adminStructuresData{Structures: list, Name: name, PlatformBanners: a.adminBannerItems(pg, banners)}
	return a.u.render(c, status, "admin-structures.html", pg)
}

func (a *AdminPages) createStructure(c echo.Context) error {
	p, ok, err := a.principal(c)
	if !ok {
		return err
	}
	name := c.FormValue("name")
	st, err := a.adm.CreateStructure(c.Request().Context(), p, name)
	switch {
	case err == nil:
		return c.Redirect(http.StatusSeeOther, adminHomeURL(st.ID, "structure"))
	case errors.Is(err, people.ErrInvalidStructureName):
		return a.renderStructures(c, p, http.StatusBadRequest, name, []fieldError{{Field: "name", Key: "admin.err.structurename"}})
	case errors.Is(err, people.ErrStructureExists):
		return a.renderStructures(c, p, http.StatusConflict, name, []fieldError{{Field: "name", Key: "admin.err.structureexists"}})
	}
	return a.fail(c, err)
}
