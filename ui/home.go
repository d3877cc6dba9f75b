package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

type homeData struct {
	Structure   string
	RoleKey     string
	HasConsents bool
	// What the signed-in staff member may open, from people.Can.
	CanAdmin, CanServeHolders, CanImportHolders bool
	Banners                                     []bannerView
}

// bannerView is a banner in the page's language.
type bannerView struct{ Lang, Text string }

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
	data := homeData{
		Structure: st.Name, RoleKey: "role." + string(pr.Role), HasConsents: u.consents != nil,
		CanAdmin:         people.Can(pr, people.PermManageStaff, pr.StructureID),
		CanServeHolders:  people.Can(pr, people.PermServeHolders, pr.StructureID),
		CanImportHolders: people.Can(pr, people.PermImportHolders, pr.StructureID),
	}
	if u.banners != nil {
		list, err := u.banners.BannersFor(c.Request().Context(), people.AudienceStaff, pr.StructureID)
		if err != nil {
			return u.internalError(c, err)
		}
		for _, b := range list {
			lang := p.Lang
			if lang == "en" && b.TextEN == "" {
				lang = "fr"
			}
			data.Banners = append(data.Banners, bannerView{Lang: lang, Text: b.Text(p.Lang)})
		}
	}
	p.Data = data
	return u.render(c, http.StatusOK, "home.html", p)
}
