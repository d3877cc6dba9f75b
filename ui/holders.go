package ui

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// HolderPages are the holders' pages: sign-in with a one-time code on the
// holder's phone and the holder's home, the mediators' console where they
// add and find the holders their structure serves, and the structure
// admin's CSV import.
type HolderPages struct {
	u *UI
	h *people.Holders
	// banners and structures show the holder's home banners: none when nil.
	banners    BannerSource
	structures HolderStructureLister
}

// HolderStructureLister lists the structures serving a holder
// (people.HolderStore).
type HolderStructureLister interface {
	HolderStructures(ctx context.Context, holderID string) ([]string, error)
}

// NewHolderPages returns the holders' pages.
func NewHolderPages(u *UI, h *people.Holders) *HolderPages {
	return &HolderPages{u: u, h: h}
}

// WithBanners makes the holder's home show the banners live now for holders
// in every structure serving them (and the platform-wide ones); it returns hp.
func (hp *HolderPages) WithBanners(b BannerSource, structures HolderStructureLister) *HolderPages {
	hp.banners, hp.structures = b, structures
	return hp
}

// Register adds the pages' routes to e.
func (hp *HolderPages) Register(e *echo.Echo) {
	e.GET("/holder/signin", hp.signInPage)
	e.POST("/holder/signin", hp.sendCode)
	e.POST("/holder/signin/code", hp.verifyCode)
	e.GET("/holder/signin/code", func(c echo.Context) error { // a reload or a bookmark: start again
		return c.Redirect(http.StatusSeeOther, "/holder/signin")
	})
	e.POST("/holder/signout", hp.signOut)
	e.GET("/holder", hp.home)

	e.GET("/console/holders", hp.listPage)
	e.GET("/console/holders/new", hp.newPage)
	e.POST("/console/holders/new", hp.create)
	e.GET("/console/holders/:id", hp.showPage)

	e.GET("/admin/holders/import", hp.importPage)
	e.POST("/admin/holders/import", hp.importCSV)
}

// holderSignInData is what the two sign-in steps show.
type holderSignInData struct {
	Mailbox  string
	ReturnTo string
	// CodeLength is how many digits the code has.
	CodeLength int
}

func (hp *HolderPages) signInData(mailbox, returnTo string) holderSignInData {
	m := strings.TrimSpace(mailbox)
	if len(m) > 254 {
		m = ""
	}
	return holderSignInData{Mailbox: m, ReturnTo: returnTo, CodeLength: hp.h.Config().CodeDigits}
}

func (hp *HolderPages) signInPage(c echo.Context) error {
	returnTo := safeReturnTo(c.QueryParam("return_to"))
	if p, ok := hp.u.CurrentPrincipal(c); ok && p.Kind == "holder" {
		return c.Redirect(http.StatusSeeOther, orHolderHome(returnTo))
	}
	pg := hp.u.newPage(c)
	if c.QueryParam("signedout") != "" {
		pg.Status = "holder.signin.signedout"
	}
	pg.Data = hp.signInData("", returnTo)
	return hp.u.render(c, http.StatusOK, "holder-signin.html", pg)
}

// sendCode is step one: the same answer whether or not the mailbox is known.
func (hp *HolderPages) sendCode(c echo.Context) error {
	returnTo := safeReturnTo(c.FormValue("return_to"))
	mailbox := c.FormValue("mailbox")
	pg := hp.u.newPage(c)
	pg.Data = hp.signInData(mailbox, returnTo)
	if _, err := people.NormalizeEmail(mailbox); err != nil {
		pg.Errors = []fieldError{{Field: "mailbox", Key: "holder.signin.err.mailbox"}}
		return hp.u.render(c, http.StatusUnprocessableEntity, "holder-signin.html", pg)
	}
	send, err := hp.h.PrepareSignInCode(c.Request().Context(), mailbox, c.RealIP())
	if errors.Is(err, people.ErrTooManyCodes) {
		pg.Errors = []fieldError{{Key: "holder.signin.toomany"}}
		return hp.u.render(c, http.StatusTooManyRequests, "holder-signin.html", pg)
	}
	if err != nil {
		return hp.u.internalError(c, err)
	}
	// Sent in the background, so that neither the answer nor its timing
	// tells whether the mailbox is known.
	go func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := send(ctx); err != nil {
			hp.u.log.ErrorContext(ctx, "send sign-in code", "err", err)
		}
	}(context.WithoutCancel(c.Request().Context()))
	pg.Status = "holder.code.sent"
	return hp.u.render(c, http.StatusOK, "holder-code.html", pg)
}

// verifyCode is step two.
func (hp *HolderPages) verifyCode(c echo.Context) error {
	ctx := c.Request().Context()
	returnTo := safeReturnTo(c.FormValue("return_to"))
	mailbox := c.FormValue("mailbox")
	holder, err := hp.h.SignInWithCode(ctx, mailbox, c.FormValue("code"), c.RealIP())
	if err != nil {
		status, key := http.StatusUnprocessableEntity, "holder.code.failed"
		switch {
		case errors.Is(err, people.ErrSignInFailed):
		case errors.Is(err, people.ErrTooManyAttempts):
			status, key = http.StatusTooManyRequests, "holder.code.throttled"
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(hp.h.Config().ThrottleWindow.Seconds())))
		case errors.Is(err, context.Canceled):
			return err
		default:
			return hp.u.internalError(c, err)
		}
		pg := hp.u.newPage(c)
		pg.Data = hp.signInData(mailbox, returnTo)
		pg.Errors = []fieldError{{Field: "code", Key: key}}
		return hp.u.render(c, status, "holder-code.html", pg)
	}
	if old, err := c.Cookie(hp.u.cookieName); err == nil { // never reuse a session across sign-ins
		_ = hp.u.people.EndSession(ctx, old.Value)
	}
	cookie, _, err := hp.u.people.StartSession(ctx, people.HolderPrincipal(holder))
	if err != nil {
		return hp.u.internalError(c, err)
	}
	hp.u.setSessionCookie(c, cookie)
	return c.Redirect(http.StatusSeeOther, orHolderHome(returnTo))
}

func (hp *HolderPages) signOut(c echo.Context) error {
	if ck, err := c.Cookie(hp.u.cookieName); err == nil {
		if err := hp.u.people.EndSession(c.Request().Context(), ck.Value); err != nil {
			return hp.u.internalError(c, err)
		}
	}
	hp.u.clearSessionCookie(c)
	return c.Redirect(http.StatusSeeOther, "/holder/signin?signedout=1")
}

func orHolderHome(returnTo string) string {
	if returnTo == "" {
		return "/holder"
	}
	return returnTo
}

func (hp *HolderPages) home(c echo.Context) error {
	p, ok := hp.u.CurrentPrincipal(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/holder/signin?return_to=%2Fholder")
	}
	if p.Kind != "holder" {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	pg := hp.u.newPage(c)
	var d holderHomeData
	if hp.banners != nil && hp.structures != nil {
		ctx := c.Request().Context()
		ids, err := hp.structures.HolderStructures(ctx, p.ID)
		if err != nil {
			return hp.u.internalError(c, err)
		}
		list, err := hp.banners.BannersFor(ctx, people.AudienceHolders, ids...)
		if err != nil {
			return hp.u.internalError(c, err)
		}
		for _, b := range list {
			lang := pg.Lang
			if lang == "en" && b.TextEN == "" {
				lang = "fr"
			}
			d.Banners = append(d.Banners, holderBanner{Lang: lang, Text: b.Text(pg.Lang)})
		}
	}
	pg.Data = d
	return hp.u.render(c, http.StatusOK, "holder-home.html", pg)
}

// holderHomeData is what the holder's home shows besides who they are.
type holderHomeData struct {
	Banners []holderBanner
}

// holderBanner is a banner in the page's language (Lang: the text's own).
type holderBanner struct{ Lang, Text string }

// staff returns the signed-in staff member allowed perm on their own
// structure; otherwise it answers (sign-in redirect or refusal page) and
// returns ok false.
func (hp *HolderPages) staff(c echo.Context, perm people.Permission) (people.Principal, bool, error) {
	p, ok := hp.u.CurrentPrincipal(c)
	if !ok {
		return people.Principal{}, false, hp.u.SignInRedirect(c)
	}
	if !people.Can(p, perm, p.StructureID) {
		return people.Principal{}, false, hp.u.renderProblem(c, http.StatusForbidden, "holders.forbidden.title", "holders.forbidden.detail")
	}
	return p, true, nil
}

// holderItem is a holder as the console shows it: contacts masked.
type holderItem struct {
	ID, Mailbox, DisplayName string
	Phone, Email             string // masked
	LanguageKey              string
	Confirmed                bool
	CreatedAt                time.Time
}

func toHolderItem(h people.Holder) holderItem {
	it := holderItem{ID: h.ID, Mailbox: h.Mailbox, DisplayName: h.DisplayName, LanguageKey: "holders.lang." + h.Language,
		Confirmed: h.ContactConfirmedAt != nil, CreatedAt: h.CreatedAt}
	if h.Phone != "" {
		it.Phone = people.MaskPhone(h.Phone)
	}
	if h.Email != "" {
		it.Email = people.MaskEmail(h.Email)
	}
	return it
}

type holderListData struct {
	Search  string
	Total   int
	Holders []holderItem
	NextURL string
}

func (hp *HolderPages) listPage(c echo.Context) error {
	p, ok, err := hp.staff(c, people.PermServeHolders)
	if !ok {
		return err
	}
	ctx := c.Request().Context()
	q := people.HolderQuery{Search: c.QueryParam("q"), After: c.QueryParam("after"), Limit: 50}
	page, err := hp.h.List(ctx, p, p.StructureID, q)
	if err != nil {
		return hp.u.internalError(c, err)
	}
	total, err := hp.h.Count(ctx, p, p.StructureID)
	if err != nil {
		return hp.u.internalError(c, err)
	}
	d := holderListData{Search: strings.TrimSpace(q.Search), Total: total}
	for _, h := range page.Holders {
		d.Holders = append(d.Holders, toHolderItem(h))
	}
	if page.Next != "" {
		v := url.Values{"after": {page.Next}}
		if d.Search != "" {
			v.Set("q", d.Search)
		}
		d.NextURL = "/console/holders?" + v.Encode()
	}
	pg := hp.u.newPage(c)
	pg.Data = d
	return hp.u.render(c, http.StatusOK, "console-holders.html", pg)
}

type holderFormData struct {
	Values people.HolderInput
}

func (hp *HolderPages) newPage(c echo.Context) error {
	if _, ok, err := hp.staff(c, people.PermServeHolders); !ok {
		return err
	}
	pg := hp.u.newPage(c)
	pg.Data = holderFormData{Values: people.HolderInput{Language: "fr"}}
	return hp.u.render(c, http.StatusOK, "console-holder-new.html", pg)
}

// holderFieldKeys are the message keys of the holder fields' mistakes.
var holderFieldKeys = map[error]string{
	people.ErrInvalidMailbox:      "holders.err.mailbox",
	people.ErrInvalidDisplayName:  "holders.err.name",
	people.ErrInvalidPhone:        "holders.err.phone",
	people.ErrInvalidContactEmail: "holders.err.email",
	people.ErrInvalidLanguage:     "holders.err.language",
	people.ErrNoContact:           "holders.err.nocontact",
	people.ErrFieldCount:          "holders.err.fieldcount",
	people.ErrDuplicateInFile:     "holders.err.duplicate",
}

func holderErrKey(err error) string {
	for target, key := range holderFieldKeys {
		if errors.Is(err, target) {
			return key
		}
	}
	return "holders.err.row"
}

func (hp *HolderPages) create(c echo.Context) error {
	p, ok, err := hp.staff(c, people.PermServeHolders)
	if !ok {
		return err
	}
	in := people.HolderInput{
		Mailbox: c.FormValue("mailbox"), DisplayName: c.FormValue("display_name"),
		Phone: c.FormValue("phone"), Email: c.FormValue("email"), Language: c.FormValue("language"),
	}
	res, err := hp.h.Create(c.Request().Context(), p, p.StructureID, in)
	var inv *people.InvalidHolderError
	if errors.As(err, &inv) {
		pg := hp.u.newPage(c)
		for _, f := range inv.Fields {
			pg.Errors = append(pg.Errors, fieldError{Field: f.Field, Key: holderErrKey(f.Err)})
		}
		if len(in.Mailbox) > 254 || len(in.DisplayName) > 400 || len(in.Phone) > 40 || len(in.Email) > 254 {
			in = people.HolderInput{Language: in.Language}
		}
		pg.Data = holderFormData{Values: in}
		return hp.u.render(c, http.StatusUnprocessableEntity, "console-holder-new.html", pg)
	}
	if err != nil {
		return hp.u.internalError(c, err)
	}
	done := "created"
	if res.Linked {
		done = "linked"
	}
	return c.Redirect(http.StatusSeeOther, "/console/holders/"+url.PathEscape(res.Holder.ID)+"?done="+done)
}

type holderShowData struct {
	Holder      holderItem
	PasskeyURL  string
	ListURL     string
	CodeDigits  int
	CodeMinutes int
}

func (hp *HolderPages) showPage(c echo.Context) error {
	p, ok, err := hp.staff(c, people.PermServeHolders)
	if !ok {
		return err
	}
	h, err := hp.h.Get(c.Request().Context(), p, p.StructureID, c.Param("id"))
	if errors.Is(err, mandate.ErrNotFound) {
		return hp.u.renderProblem(c, http.StatusNotFound, "holders.notfound.title", "holders.notfound.detail")
	}
	if err != nil {
		return hp.u.internalError(c, err)
	}
	pg := hp.u.newPage(c)
	switch c.QueryParam("done") {
	case "created":
		pg.Status = "holders.created"
	case "linked":
		pg.Status = "holders.linked"
	}
	pg.Data = holderShowData{Holder: toHolderItem(h), PasskeyURL: "/holders/" + url.PathEscape(h.ID) + "/passkey",
		ListURL: "/console/holders"}
	return hp.u.render(c, http.StatusOK, "console-holder.html", pg)
}

// importRowView is one bad row as the import page shows it.
type importRowView struct {
	Line      int
	FieldKey  string // message key of the column; "" for the whole row
	Key       string // message key of the mistake
	FirstLine int
}

type importData struct {
	DryRun, KeepGoing bool
	Done              bool // a report is shown
	Report            people.ImportReport
	Bad               []importRowView
	// FileErrorKey is a mistake about the whole file; FileErrorLine its line.
	FileErrorKey  string
	FileErrorLine int
	MaxKB         int64
}

func (hp *HolderPages) importPage(c echo.Context) error {
	if _, ok, err := hp.staff(c, people.PermImportHolders); !ok {
		return err
	}
	pg := hp.u.newPage(c)
	pg.Data = importData{DryRun: true, MaxKB: hp.maxKB()}
	return hp.u.render(c, http.StatusOK, "admin-holders-import.html", pg)
}

func (hp *HolderPages) maxKB() int64 { return hp.h.Config().MaxImportBytes >> 10 }

func (hp *HolderPages) importCSV(c echo.Context) error {
	p, ok, err := hp.staff(c, people.PermImportHolders)
	if !ok {
		return err
	}
	d := importData{DryRun: c.FormValue("dry_run") != "", KeepGoing: c.FormValue("on_error") == "keep_going", MaxKB: hp.maxKB()}
	pg := hp.u.newPage(c)
	pg.Data = &d
	var r io.Reader
	fh, err := c.FormFile("file")
	if err == nil {
		f, ferr := fh.Open()
		if ferr != nil {
			return hp.u.internalError(c, ferr)
		}
		defer f.Close()
		r = f
	} else {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			d.FileErrorKey = "holders.import.err.large"
		} else {
			d.FileErrorKey = "holders.import.err.nofile"
		}
		pg.Errors = []fieldError{{Field: "file", Key: d.FileErrorKey}}
		return hp.u.render(c, http.StatusUnprocessableEntity, "admin-holders-import.html", pg)
	}
	report, err := hp.h.Import(c.Request().Context(), p, p.StructureID, r, people.ImportOptions{DryRun: d.DryRun, KeepGoing: d.KeepGoing})
	var fe *people.ImportFormatError
	status := http.StatusOK
	switch {
	case err == nil, errors.Is(err, people.ErrImportHasErrors):
		d.Done, d.Report = true, report
		for _, b := range report.Bad {
			v := importRowView{Line: b.Line, Key: holderErrKey(b.Err), FirstLine: b.FirstLine}
			if v.Key == "holders.err.mailbox" { // without the example address, which is too wide for a table on a phone
				v.Key = "holders.err.mailbox.short"
			}
			if b.Field != "" {
				v.FieldKey = "holders.col." + b.Field
			}
			d.Bad = append(d.Bad, v)
		}
		if err != nil {
			status = http.StatusUnprocessableEntity
		}
	case errors.As(err, &fe):
		d.FileErrorKey, d.FileErrorLine = "holders.import.err.format", fe.Line
	case errors.Is(err, people.ErrImportTooLarge):
		d.FileErrorKey = "holders.import.err.large"
	case errors.Is(err, people.ErrImportNotUTF8):
		d.FileErrorKey = "holders.import.err.utf8"
	case errors.Is(err, people.ErrImportEmpty):
		d.FileErrorKey = "holders.import.err.empty"
	default:
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			return hp.u.internalError(c, err)
		}
		d.FileErrorKey = "holders.import.err.large"
	}
	if d.FileErrorKey != "" {
		status = http.StatusUnprocessableEntity
		pg.Errors = []fieldError{{Field: "file", Key: d.FileErrorKey}}
	}
	return hp.u.render(c, status, "admin-holders-import.html", pg)
}
