package ui

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// The structure's policy page, GET and POST /admin/policy: what its staff
// may ask of holders (mandate.Policy). Structure admins edit their own;
// platform admins name one with ?structure=.

// consolePolicyMinutes and consolePolicyHours are the maxima the page
// offers (the policy's current values are offered too).
var (
	consolePolicyMinutes = []int{5, 10, 15, 30, 45, 60, 90, 120, 180, 240}
	consolePolicyHours   = []int{24, 2 * 24, 3 * 24, 5 * 24, 7 * 24, 14 * 24, 21 * 24, 30 * 24, 60 * 24, 90 * 24}
)

type consolePolicyData struct {
	CSS         string
	Structure   people.Structure
	Scopes      []consoleScopeChoice
	Sessions    []consoleChoice
	Delegations []consoleChoice
	Relaxed     bool
	Updated     string // when and by whom it last changed; "" for the default
}

// consolePolicyForm is the policy as posted.
type consolePolicyForm struct {
	Scopes                []string
	SessionMin, DelegHour int
	Relaxed               bool
}

func consolePolicyFormOf(p mandate.Policy) consolePolicyForm {
	return consolePolicyForm{Scopes: p.AllowedScopes, SessionMin: int(p.MaxSessionDuration / time.Minute),
		DelegHour: int(p.MaxDelegationDuration / time.Hour), Relaxed: p.AllowRelaxedPresence}
}

// consoleWithCurrent is list with cur added in order when it is missing.
func consoleWithCurrent(list []int, cur int) []int {
	out := slices.Clone(list)
	if cur > 0 && !slices.Contains(out, cur) {
		out = append(out, cur)
		slices.Sort(out)
	}
	return out
}

func (cs *ConsoleSessions) policyData(lang string, st people.Structure, cur mandate.Policy, f consolePolicyForm) consolePolicyData {
	d := consolePolicyData{CSS: cs.cssPath, Structure: st, Relaxed: f.Relaxed}
	for _, s := range mandate.Scopes() {
		if !s.Service {
			d.Scopes = append(d.Scopes, consoleScopeChoice{Scope: s, Checked: slices.Contains(f.Scopes, s.Name)})
		}
	}
	curForm := consolePolicyFormOf(cur)
	for _, m := range consoleWithCurrent(consolePolicyMinutes, curForm.SessionMin) {
		d.Sessions = append(d.Sessions, consoleChoice{Value: strconv.Itoa(m), Label: consoleDuration(lang, time.Duration(m)*time.Minute),
			Selected: m == f.SessionMin})
	}
	for _, h := range consoleWithCurrent(consolePolicyHours, curForm.DelegHour) {
		d.Delegations = append(d.Delegations, consoleChoice{Value: strconv.Itoa(h), Label: consoleDuration(lang, time.Duration(h)*time.Hour),
			Selected: h == f.DelegHour})
	}
	if !cur.UpdatedAt.IsZero() {
		d.Updated = consoleDateTime(lang, cs.loc, cur.UpdatedAt)
	}
	return d
}

// policyAdmin returns the signed-in admin and the structure the page is
// about; otherwise it has answered.
func (cs *ConsoleSessions) policyAdmin(c echo.Context) (people.Principal, people.Structure, bool, error) {
	p, ok := cs.u.CurrentPrincipal(c)
	if !ok {
		if c.Request().Method == http.MethodGet {
			return p, people.Structure{}, false, cs.u.SignInRedirect(c)
		}
		return p, people.Structure{}, false, c.Redirect(http.StatusSeeOther, "/signin?return_to=%2Fadmin%2Fpolicy")
	}
	sid := adminStructureOf(c, p)
	if !people.Can(p, people.PermManageStaff, sid) || len(sid) > 100 {
		return p, people.Structure{}, false, cs.u.renderProblem(c, http.StatusForbidden, "admin.forbidden.title", "admin.forbidden.detail")
	}
	st, err := cs.u.people.Structure(c.Request().Context(), sid)
	if errors.Is(err, people.ErrNotFound) || errors.Is(err, mandate.ErrNotFound) {
		return p, st, false, cs.u.renderProblem(c, http.StatusNotFound, "admin.notfound.title", "admin.notfound.detail")
	}
	if err != nil {
		return p, st, false, cs.u.internalError(c, err)
	}
	return p, st, true, nil
}

func (cs *ConsoleSessions) policyPage(c echo.Context) error {
	_, st, ok, err := cs.policyAdmin(c)
	if !ok {
		return err
	}
	cur, err := cs.m.Policy(c.Request().Context(), st.ID)
	if err != nil {
		return cs.u.internalError(c, err)
	}
	pg := cs.u.newPage(c)
	if c.QueryParam("done") != "" {
		pg.Status = "policy.saved"
	}
	pg.Data = cs.policyData(pg.Lang, st, cur, consolePolicyFormOf(cur))
	return cs.u.render(c, http.StatusOK, "admin-policy.html", pg)
}

func (cs *ConsoleSessions) savePolicy(c echo.Context) error {
	p, st, ok, err := cs.policyAdmin(c)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	cur, err := cs.m.Policy(ctx, st.ID)
	if err != nil {
		return cs.u.internalError(c, err)
	}
	if err := c.Request().ParseForm(); err != nil {
		return cs.u.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
	}
	form := c.Request().PostForm
	f := consolePolicyForm{Scopes: form["scope"], Relaxed: form.Get("relaxed") != ""}
	f.SessionMin, _ = strconv.Atoi(form.Get("max_session"))
	f.DelegHour, _ = strconv.Atoi(form.Get("max_delegation"))
	curForm := consolePolicyFormOf(cur)
	var errs []fieldError
	if len(f.Scopes) == 0 {
		errs = append(errs, fieldError{Field: "scope-0", Key: "policy.err.scopes"})
	} else if mandate.ValidateScopes(f.Scopes) != nil || slices.ContainsFunc(f.Scopes, mandate.IsServiceScope) || len(f.Scopes) > 20 {
		errs = append(errs, fieldError{Field: "scope-0", Key: "policy.err.scopes.unknown"})
	}
	if !slices.Contains(consoleWithCurrent(consolePolicyMinutes, curForm.SessionMin), f.SessionMin) {
		errs = append(errs, fieldError{Field: "max_session", Key: "policy.err.session"})
	}
	if !slices.Contains(consoleWithCurrent(consolePolicyHours, curForm.DelegHour), f.DelegHour) {
		errs = append(errs, fieldError{Field: "max_delegation", Key: "policy.err.delegation"})
	}
	if len(errs) == 0 {
		_, err = cs.m.SetPolicy(ctx, consoleActor(p), mandate.Policy{
			StructureID: st.ID, AllowedScopes: f.Scopes,
			MaxSessionDuration:    time.Duration(f.SessionMin) * time.Minute,
			MaxDelegationDuration: time.Duration(f.DelegHour) * time.Hour,
			AllowRelaxedPresence:  f.Relaxed, UpdatedBy: p.ID,
		})
		switch {
		case err == nil:
			q := url.Values{"done": {"1"}}
			if st.ID != p.StructureID {
				q.Set("structure", st.ID)
			}
			return c.Redirect(http.StatusSeeOther, "/admin/policy?"+q.Encode())
		case errors.Is(err, mandate.ErrInvalidRequest):
			errs = append(errs, fieldError{Key: "policy.err.invalid"})
		case errors.Is(err, people.ErrForbidden):
			return cs.u.renderProblem(c, http.StatusForbidden, "admin.forbidden.title", "admin.forbidden.detail")
		default:
			return cs.u.internalError(c, err)
		}
	}
	if len(f.Scopes) > 20 {
		f.Scopes = nil
	}
	pg := cs.u.newPage(c)
	pg.Errors = errs
	pg.Data = cs.policyData(pg.Lang, st, cur, f)
	return cs.u.render(c, http.StatusUnprocessableEntity, "admin-policy.html", pg)
}
