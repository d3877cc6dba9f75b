package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

type homeData struct {
	Structure   string
	RoleKey     string
	HasConsents bool
}

// home shows who is signed in (holders have their own home, /holder);
// everyone else goes to the sign-in page.
func (u *UI) home(c echo.Context) error {
	pr, ok := u.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	if pr.Kind == "holder" {
		return c.Redirect(http.StatusSeeOther, "/holder")
	}
	st, err := u.people.Structure(c.Request().Context(), pr.StructureID)
	if err != nil {
		return u.internalError(c, err)
	}
	p := u.newPage(c)
	p.Data = homeData{Structure: st.Name, RoleKey: "role." + string(pr.Role), HasConsents: u.consents != nil}
	return u.render(c, http.StatusOK, "home.html", p)
}
