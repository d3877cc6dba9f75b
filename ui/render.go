package ui

import (
	"bytes"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
)

// page is what every template receives; Data holds the page's own values.
type page struct {
	Lang      string
	CSS       string
	CSRF      string
	Principal *people.Principal
	// SwitchURL is this page in the other language.
	SwitchURL string
	// Status is a message key shown in a polite role="status" box.
	Status string
	Errors []fieldError
	Data   any
}

// fieldError is one mistake; Field is the input's id ("" for the whole form),
// Key a message key.
type fieldError struct{ Field, Key string }

// FieldError returns the message key of field's mistake, or "".
func (p *page) FieldError(field string) string {
	for _, e := range p.Errors {
		if e.Field == field {
			return e.Key
		}
	}
	return ""
}

// OtherLang is the language the switch link leads to.
func (p *page) OtherLang() string {
	if p.Lang == "en" {
		return "fr"
	}
	return "en"
}

// newPage fills what every page needs. The switch link keeps the query.
func (u *UI) newPage(c echo.Context) *page {
	lang := u.lang(c)
	p := &page{Lang: lang, CSS: u.cssPath}
	p.CSRF, _ = c.Get("csrf").(string)
	if pr, ok := u.CurrentPrincipal(c); ok {
		p.Principal = &pr
	}
	p.SwitchURL = switchURL(c.Request().URL.Path, c.Request().URL.Query(), p.OtherLang())
	return p
}

func switchURL(path string, q url.Values, lang string) string {
	q.Set("lang", lang)
	return path + "?" + q.Encode()
}

// render executes page name and answers with status. Pages are never cached.
func (u *UI) render(c echo.Context, status int, name string, p *page) error {
	t := u.pages[p.Lang][name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		u.log.ErrorContext(c.Request().Context(), "render page", "page", name, "err", err)
		return c.String(http.StatusInternalServerError, "internal error")
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", p.Lang)
	h.Add("Vary", "Accept-Language, Cookie")
	return c.HTMLBlob(status, buf.Bytes())
}

// internalError logs err and shows the plain "something went wrong" page.
func (u *UI) internalError(c echo.Context, err error) error {
	u.log.ErrorContext(c.Request().Context(), "page failed", "path", c.Request().URL.Path, "err", err)
	return u.renderProblem(c, http.StatusInternalServerError, "error.internal.title", "error.internal.detail")
}

func (u *UI) renderProblem(c echo.Context, status int, titleKey, detailKey string) error {
	p := u.newPage(c)
	p.Data = errorData{TitleKey: titleKey, DetailKey: detailKey}
	return u.render(c, status, "error.html", p)
}

// errorData: either message keys or literal texts (from a Problem).
type errorData struct {
	TitleKey, DetailKey string
	Title, Detail       string
}
