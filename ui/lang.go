package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/language"
)

const langCookie = "mandated_lang"

var matcher = language.NewMatcher([]language.Tag{language.French, language.English})

// lang picks the page language: ?lang=fr|en (remembered in a cookie), then
// that cookie, then the browser's Accept-Language; French by default.
func (u *UI) lang(c echo.Context) string {
	if l, ok := c.Get("lang").(string); ok {
		return l
	}
	l := u.pickLang(c)
	c.Set("lang", l)
	return l
}

func (u *UI) pickLang(c echo.Context) string {
	if q := c.QueryParam("lang"); q == "fr" || q == "en" {
		c.SetCookie(&http.Cookie{Name: langCookie, Value: q, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: u.secure, SameSite: http.SameSiteLaxMode})
		return q
	}
	if ck, err := c.Cookie(langCookie); err == nil && (ck.Value == "fr" || ck.Value == "en") {
		return ck.Value
	}
	return acceptLanguage(c.Request().Header.Get("Accept-Language"))
}

// acceptLanguage returns "en" when the header prefers English over French,
// "fr" otherwise.
func acceptLanguage(header string) string {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil || len(tags) == 0 {
		return "fr"
	}
	tag, _, conf := matcher.Match(tags...)
	if base, _ := tag.Base(); base.String() == "en" && conf != language.No {
		return "en"
	}
	return "fr"
}
