package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// RegisterAdmin adds the structure administration API: structures
// (platform admins), a structure's staff (list, invite, deactivate,
// reactivate), its inactivity report and its banners, and the platform-wide
// banners. Callers authenticate with the UI session cookie (who); unsafe
// methods pass the CSRF middleware (a same-origin browser request, or the
// `_csrf` form or query parameter matching the mandated_csrf cookie).
// Errors are RFC 9457 problems: 401 without a session, 403 when the
// caller's role may never use the route, 404 for another structure's
// records (never told apart from records that do not exist).
func RegisterAdmin(e *echo.Echo, adm *people.Admin, who func(echo.Context) (people.Principal, bool)) {
	h := adminHandlers{adm: adm, who: who}
	e.GET("/api/structures", h.listStructures)
	e.POST("/api/structures", h.createStructure)
	e.GET("/api/structures/:id/staff", h.listStaff)
	e.POST("/api/structures/:id/staff", h.invite)
	e.POST("/api/structures/:id/staff/:staffID/deactivate", h.deactivate)
	e.POST("/api/structures/:id/staff/:staffID/reactivate", h.reactivate)
	e.GET("/api/structures/:id/inactive", h.inactive)
	e.GET("/api/structures/:id/banners", h.listBanners)
	e.POST("/api/structures/:id/banners", h.postBanner)
	e.GET("/api/structures/:id/banners/:bannerID", h.getBanner)
	e.PUT("/api/structures/:id/banners/:bannerID", h.changeBanner)
	e.DELETE("/api/structures/:id/banners/:bannerID", h.deleteBanner)
	e.GET("/api/banners", h.listBanners)
	e.POST("/api/banners", h.postBanner)
	e.GET("/api/banners/:bannerID", h.getBanner)
	e.PUT("/api/banners/:bannerID", h.changeBanner)
	e.DELETE("/api/banners/:bannerID", h.deleteBanner)
}

// AdminRoutes lists every route RegisterAdmin adds (method, path), for
// tests that walk them all.
var AdminRoutes = [][2]string{
	{http.MethodGet, "/api/structures"},
	{http.MethodPost, "/api/structures"},
	{http.MethodGet, "/api/structures/:id/staff"},
	{http.MethodPost, "/api/structures/:id/staff"},
	{http.MethodPost, "/api/structures/:id/staff/:staffID/deactivate"},
	{http.MethodPost, "/api/structures/:id/staff/:staffID/reactivate"},
	{http.MethodGet, "/api/structures/:id/inactive"},
	{http.MethodGet, "/api/structures/:id/banners"},
	{http.MethodPost, "/api/structures/:id/banners"},
	{http.MethodGet, "/api/structures/:id/banners/:bannerID"},
	{http.MethodPut, "/api/structures/:id/banners/:bannerID"},
	{http.MethodDelete, "/api/structures/:id/banners/:bannerID"},
	{http.MethodGet, "/api/banners"},
	{http.MethodPost, "/api/banners"},
	{http.MethodGet, "/api/banners/:bannerID"},
	{http.MethodPut, "/api/banners/:bannerID"},
	{http.MethodDelete, "/api/banners/:bannerID"},
}

type adminHandlers struct {
	adm *people.Admin
	who func(echo.Context) (people.Principal, bool)
}

type adminStructureJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

type adminStaffJSON struct {
	ID           string  `json:"id"`
	Email        string  `json:"email"`
	DisplayName  string  `json:"display_name"`
	Role         string  `json:"role"`
	Status       string  `json:"status"`
	Platform     bool    `json:"platform"`
	StructureID  string  `json:"structure_id"`
	CreatedAt    string  `json:"created_at"`
	LastSignInAt *string `json:"last_sign_in_at"`
}

type adminStaleJSON struct {
	Staff     adminStaffJSON `json:"staff"`
	InvitedAt string         `json:"invited_at"`
}

type adminInactivityJSON struct {
	Days             int              `json:"days"`
	Inactive         []adminStaffJSON `json:"inactive"`
	StaleInvitations []adminStaleJSON `json:"stale_invitations"`
}

type adminBannerJSON struct {
	ID          string  `json:"id"`
	StructureID *string `json:"structure_id"` // null: platform-wide
	Audience    string  `json:"audience"`
	TextFR      string  `json:"text_fr"`
	TextEN      string  `json:"text_en,omitempty"`
	StartsAt    string  `json:"starts_at"`
	EndsAt      string  `json:"ends_at"`
	CreatedAt   string  `json:"created_at"`
}

func adminTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toAdminStructureJSON(s people.Structure) adminStructureJSON {
	return adminStructureJSON{ID: s.ID, Name: s.Name, CreatedAt: adminTime(s.CreatedAt)}
}

func toAdminStaffJSON(s people.Staff) adminStaffJSON {
	j := adminStaffJSON{ID: s.ID, Email: s.Email, DisplayName: s.DisplayName, Role: string(s.Role), Status: string(s.Status),
		Platform: s.Platform, StructureID: s.StructureID, CreatedAt: adminTime(s.CreatedAt)}
	if s.LastSignInAt != nil {
		v := adminTime(*s.LastSignInAt)
		j.LastSignInAt = &v
	}
	return j
}

func toAdminBannerJSON(b people.Banner) adminBannerJSON {
	j := adminBannerJSON{ID: b.ID, Audience: string(b.Audience), TextFR: b.TextFR, TextEN: b.TextEN,
		StartsAt: adminTime(b.StartsAt), EndsAt: adminTime(b.EndsAt), CreatedAt: adminTime(b.CreatedAt)}
	if b.StructureID != people.PlatformWide {
		id := b.StructureID
		j.StructureID = &id
	}
	return j
}

// principal returns the signed-in staff member, or answers 401.
func (h adminHandlers) principal(c echo.Context) (people.Principal, bool, error) {
	p, ok := h.who(c)
	if !ok {
		c.Response().Header().Set("WWW-Authenticate", `Cookie realm="mandated"`)
		return p, false, WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "sign in first: this API uses the session of the pages"})
	}
	return p, true, nil
}

// fail answers err as a problem.
func (h adminHandlers) fail(c echo.Context, err error) error {
	status := http.StatusInternalServerError
	detail := "internal error"
	switch {
	case errors.Is(err, people.ErrForbidden), errors.Is(err, people.ErrRoleNotAllowed), errors.Is(err, people.ErrSelf):
		status, detail = http.StatusForbidden, err.Error()
		if errors.Is(err, people.ErrForbidden) {
			detail = "your role may not use this"
		}
	case errors.Is(err, people.ErrNotFound):
		status, detail = http.StatusNotFound, "there is no such record"
	case errors.Is(err, people.ErrEmailTaken), errors.Is(err, people.ErrStructureExists), errors.Is(err, people.ErrNotDeactivated):
		status, detail = http.StatusConflict, err.Error()
	case errors.Is(err, people.ErrNoNotifier):
		status, detail = http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, people.ErrInvalidEmail), errors.Is(err, people.ErrInvalidRole), errors.Is(err, people.ErrInvalidName),
		errors.Is(err, people.ErrInvalidStructureName), errors.Is(err, people.ErrInvalidAudience),
		errors.Is(err, people.ErrBannerTextFR), errors.Is(err, people.ErrBannerTextEN),
		errors.Is(err, people.ErrBannerDates), errors.Is(err, people.ErrBannerEndsInPast):
		status, detail = http.StatusBadRequest, err.Error()
	}
	if status == http.StatusInternalServerError {
		return err // the error handler logs it and answers a problem
	}
	return WriteProblem(c, Problem{Status: status, Detail: detail})
}

func adminBadRequest(c echo.Context, detail string) error {
	return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: detail})
}

func (h adminHandlers) listStructures(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	list, err := h.adm.Structures(c.Request().Context(), p)
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]adminStructureJSON, len(list))
	for i, s := range list {
		out[i] = toAdminStructureJSON(s)
	}
	return adminJSON(c, http.StatusOK, map[string]any{"structures": out})
}

func (h adminHandlers) createStructure(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	var in struct {
		Name string `json:"name" form:"name"`
	}
	if err := c.Bind(&in); err != nil {
		return adminBadRequest(c, "the body must be JSON with a name")
	}
	st, err := h.adm.CreateStructure(c.Request().Context(), p, in.Name)
	if err != nil {
		return h.fail(c, err)
	}
	c.Response().Header().Set("Location", "/api/structures/"+st.ID+"/staff")
	return adminJSON(c, http.StatusCreated, toAdminStructureJSON(st))
}

func (h adminHandlers) listStaff(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	list, err := h.adm.ListStaff(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]adminStaffJSON, len(list))
	for i, s := range list {
		out[i] = toAdminStaffJSON(s)
	}
	return adminJSON(c, http.StatusOK, map[string]any{"staff": out})
}

func (h adminHandlers) invite(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	var in struct {
		Email    string `json:"email" form:"email"`
		Name     string `json:"name" form:"name"`
		Role     string `json:"role" form:"role"`
		Language string `json:"language" form:"language"`
		Platform bool   `json:"platform" form:"platform"`
	}
	if err := c.Bind(&in); err != nil {
		return adminBadRequest(c, "the body must be JSON with email, name and role")
	}
	st, err := h.adm.Invite(c.Request().Context(), p, c.Param("id"),
		people.Invitation{Email: in.Email, Name: in.Name, Role: in.Role, Language: in.Language, Platform: in.Platform})
	if err != nil {
		return h.fail(c, err)
	}
	return adminJSON(c, http.StatusCreated, toAdminStaffJSON(st))
}

func (h adminHandlers) deactivate(c echo.Context) error {
	return h.changeStatus(c, h.adm.Deactivate)
}

func (h adminHandlers) reactivate(c echo.Context) error {
	return h.changeStatus(c, h.adm.Reactivate)
}

func (h adminHandlers) changeStatus(c echo.Context, do func(ctx context.Context, p people.Principal, structureID, staffID string) error) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	if err := do(ctx, p, c.Param("id"), c.Param("staffID")); err != nil {
		return h.fail(c, err)
	}
	st, err := h.adm.StaffInStructure(ctx, p, c.Param("id"), c.Param("staffID"))
	if err != nil {
		return h.fail(c, err)
	}
	return adminJSON(c, http.StatusOK, toAdminStaffJSON(st))
}

func (h adminHandlers) inactive(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	r, err := h.adm.Inactivity(c.Request().Context(), p, c.Param("id"))
	if err != nil {
		return h.fail(c, err)
	}
	out := adminInactivityJSON{Days: r.Days, Inactive: []adminStaffJSON{}, StaleInvitations: []adminStaleJSON{}}
	for _, s := range r.Inactive {
		out.Inactive = append(out.Inactive, toAdminStaffJSON(s))
	}
	for _, s := range r.StaleInvitations {
		out.StaleInvitations = append(out.StaleInvitations, adminStaleJSON{Staff: toAdminStaffJSON(s.Staff), InvitedAt: adminTime(s.InvitedAt)})
	}
	return adminJSON(c, http.StatusOK, out)
}

// adminBannerScope is the structure of a banner route: the :id parameter, or
// platform-wide under /api/banners.
func adminBannerScope(c echo.Context) string { return c.Param("id") }

type adminBannerBody struct {
	Audience string `json:"audience" form:"audience"`
	TextFR   string `json:"text_fr" form:"text_fr"`
	TextEN   string `json:"text_en" form:"text_en"`
	StartsAt string `json:"starts_at" form:"starts_at"`
	EndsAt   string `json:"ends_at" form:"ends_at"`
}

func (b adminBannerBody) input() (people.BannerInput, bool) {
	start, err1 := time.Parse(time.RFC3339, b.StartsAt)
	end, err2 := time.Parse(time.RFC3339, b.EndsAt)
	if err1 != nil || err2 != nil {
		return people.BannerInput{}, false
	}
	return people.BannerInput{Audience: b.Audience, TextFR: b.TextFR, TextEN: b.TextEN, StartsAt: start, EndsAt: end}, true
}

func (h adminHandlers) listBanners(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	list, err := h.adm.Banners(c.Request().Context(), p, adminBannerScope(c))
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]adminBannerJSON, len(list))
	for i, b := range list {
		out[i] = toAdminBannerJSON(b)
	}
	return adminJSON(c, http.StatusOK, map[string]any{"banners": out})
}

func (h adminHandlers) getBanner(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	b, err := h.adm.Banner(c.Request().Context(), p, adminBannerScope(c), c.Param("bannerID"))
	if err != nil {
		return h.fail(c, err)
	}
	return adminJSON(c, http.StatusOK, toAdminBannerJSON(b))
}

func (h adminHandlers) postBanner(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	in, ok, err := h.bannerInput(c, p)
	if !ok {
		return err
	}
	b, err := h.adm.PostBanner(c.Request().Context(), p, adminBannerScope(c), in)
	if err != nil {
		return h.fail(c, err)
	}
	return adminJSON(c, http.StatusCreated, toAdminBannerJSON(b))
}

func (h adminHandlers) changeBanner(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	in, ok, err := h.bannerInput(c, p)
	if !ok {
		return err
	}
	b, err := h.adm.ChangeBanner(c.Request().Context(), p, adminBannerScope(c), c.Param("bannerID"), in)
	if err != nil {
		return h.fail(c, err)
	}
	return adminJSON(c, http.StatusOK, toAdminBannerJSON(b))
}

// bannerInput reads a banner body. The permission is checked first, so a
// caller who may not post learns nothing from the validation.
func (h adminHandlers) bannerInput(c echo.Context, p people.Principal) (people.BannerInput, bool, error) {
	if err := h.adm.CheckBannerScope(c.Request().Context(), p, adminBannerScope(c)); err != nil {
		return people.BannerInput{}, false, h.fail(c, err)
	}
	var body adminBannerBody
	if err := c.Bind(&body); err != nil {
		return people.BannerInput{}, false, adminBadRequest(c, "the body must be JSON with audience, text_fr, starts_at and ends_at")
	}
	in, ok := body.input()
	if !ok {
		return people.BannerInput{}, false, adminBadRequest(c, "starts_at and ends_at must be RFC 3339 times")
	}
	return in, true, nil
}

func (h adminHandlers) deleteBanner(c echo.Context) error {
	p, ok, err := h.principal(c)
	if !ok {
		return err
	}
	if err := h.adm.DeleteBanner(c.Request().Context(), p, adminBannerScope(c), c.Param("bannerID")); err != nil {
		return h.fail(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

func adminJSON(c echo.Context, status int, v any) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, v)
}
