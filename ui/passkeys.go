package ui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"rsc.io/qr"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/people"
)

// HolderLookup finds a holder the signed-in staff member's structure serves
// (*people.Holders implements it): people.ErrForbidden or a
// mandate.ErrNotFound otherwise.
type HolderLookup interface {
	Get(ctx context.Context, by people.Principal, structureID, id string) (people.Holder, error)
}

// PasskeyPages are the passkey pages: a holder's enrolment on their phone
// (from the QR code a mediator shows), a holder's sign-in with a passkey,
// the lists where holders and staff add and remove their passkeys, the
// mediator's page that starts an enrolment, and the staff sign-in step that
// uses a passkey instead of the TOTP code.
type PasskeyPages struct {
	u       *UI
	keys    *people.Passkeys
	holders HolderLookup
}

// NewPasskeyPages returns the passkey pages; holders may be nil (the
// mediator's page then names the holder by id only). With nil keys
// (passkeys are off), only the staff sign-in form's passkey button is
// answered, with a message to use the code.
func NewPasskeyPages(u *UI, keys *people.Passkeys, holders HolderLookup) *PasskeyPages {
	return &PasskeyPages{u: u, keys: keys, holders: holders}
}

// Register adds the pages' routes to e.
func (pp *PasskeyPages) Register(e *echo.Echo) {
	if pp.keys == nil {
		e.POST("/signin/passkey", func(c echo.Context) error {
			return pp.staffSignInPage(c, http.StatusUnprocessableEntity, safeReturnTo(c.FormValue("return_to")), c.FormValue("email"), "passkey.staff.off")
		})
		return
	}
	e.GET("/holder/signin/passkey", pp.holderSignInPage)
	e.POST("/holder/signin/passkey/begin", pp.holderSignInBegin)
	e.POST("/holder/signin/passkey", pp.holderSignIn)

	e.GET("/holder/enrol", pp.enrolPage)
	e.POST("/holder/enrol/code", pp.enrolSendCode)
	e.POST("/holder/enrol/verify", pp.enrolVerify)
	e.POST("/holder/enrol/begin", pp.enrolBegin)
	e.POST("/holder/enrol/finish", pp.enrolFinish)

	e.GET("/holder/passkeys", pp.listPage)
	e.POST("/holder/passkeys/begin", pp.addBegin)
	e.POST("/holder/passkeys/add", pp.add)
	e.POST("/holder/passkeys/remove", pp.remove)
	e.GET("/account/passkeys", pp.listPage)
	e.POST("/account/passkeys/begin", pp.addBegin)
	e.POST("/account/passkeys/add", pp.add)
	e.POST("/account/passkeys/remove", pp.remove)

	e.GET("/console/holders/:id/passkey", pp.mediatorPage)
	e.POST("/console/holders/:id/passkey", pp.mediatorStart)
	e.GET("/holders/:id/passkey", func(c echo.Context) error { // the holder page's link
		return c.Redirect(http.StatusSeeOther, "/console/holders/"+url.PathEscape(c.Param("id"))+"/passkey")
	})

	e.POST("/signin/passkey", pp.staffBegin)
	e.POST("/signin/passkey/finish", pp.staffFinish)
}

// enrolCookie carries the secret of the browser that typed the code.
const enrolCookie = "mandated_enrol"

// passkeyForm is what the passkey forms carry.
type passkeyForm struct {
	Script   string
	ReturnTo string
	Token    string
	Name     string
	Options  string // for the staff step: the request options, inline
	Ceremony string
}

// beginJSON answers a begin step: the ceremony id and the options to pass
// to navigator.credentials.
func beginJSON(c echo.Context, ceremony string, options []byte) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]any{"ceremony": ceremony, "options": json.RawMessage(options)})
}

func beginRefused(c echo.Context, status int) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, map[string]string{"error": http.StatusText(status)})
}

// response is the credential JSON the script put in the form.
func response(c echo.Context) []byte { return []byte(c.FormValue("credential")) }

// startSession ends any session of this browser and opens one for pr.
func (pp *PasskeyPages) startSession(c echo.Context, pr people.Principal) error {
	ctx := c.Request().Context()
	if old, err := c.Cookie(pp.u.cookieName); err == nil {
		_ = pp.u.people.EndSession(ctx, old.Value)
	}
	cookie, _, err := pp.u.people.StartSession(ctx, pr)
	if err != nil {
		return err
	}
	pp.u.setSessionCookie(c, cookie)
	return nil
}

// --- holder sign-in ---------------------------------------------------------

func (pp *PasskeyPages) holderSignInPage(c echo.Context) error {
	returnTo := safeReturnTo(c.QueryParam("return_to"))
	if pr, ok := pp.u.CurrentPrincipal(c); ok && pr.Kind == "holder" {
		return c.Redirect(http.StatusSeeOther, passkeyHolderHome(returnTo))
	}
	return pp.showHolderSignIn(c, http.StatusOK, returnTo, "")
}

func (pp *PasskeyPages) showHolderSignIn(c echo.Context, status int, returnTo, errKey string) error {
	p := pp.u.newPage(c)
	if errKey != "" {
		p.Errors = []fieldError{{Key: errKey}}
	}
	p.Data = passkeyForm{Script: pp.u.ScriptPath("passkeys.js"), ReturnTo: returnTo}
	return pp.u.render(c, status, "passkey-signin.html", p)
}

func passkeyHolderHome(returnTo string) string {
	if returnTo == "" {
		return "/holder"
	}
	return returnTo
}

func (pp *PasskeyPages) holderSignInBegin(c echo.Context) error {
	id, opts, err := pp.keys.BeginHolderSignIn(c.Request().Context(), c.RealIP())
	if errors.Is(err, people.ErrPasskeysUnavailable) {
		return beginRefused(c, http.StatusNotFound)
	}
	if errors.Is(err, people.ErrTooManyAttempts) {
		// The script then posts the form, whose page says to wait.
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(pp.u.people.Config().ThrottleWindow.Seconds())))
		return beginRefused(c, http.StatusTooManyRequests)
	}
	if err != nil {
		pp.u.log.ErrorContext(c.Request().Context(), "begin passkey sign-in", "err", err)
		return beginRefused(c, http.StatusInternalServerError)
	}
	return beginJSON(c, id, opts)
}

func (pp *PasskeyPages) holderSignIn(c echo.Context) error {
	ctx := c.Request().Context()
	returnTo := safeReturnTo(c.FormValue("return_to"))
	pr, err := pp.keys.FinishHolderSignIn(ctx, c.FormValue("ceremony"), response(c), c.RealIP())
	switch {
	case errors.Is(err, people.ErrPasskeyRefused), errors.Is(err, people.ErrPasskeysUnavailable):
		return pp.showHolderSignIn(c, http.StatusUnprocessableEntity, returnTo, "passkey.signin.refused")
	case errors.Is(err, people.ErrTooManyAttempts):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(pp.u.people.Config().ThrottleWindow.Seconds())))
		return pp.showHolderSignIn(c, http.StatusTooManyRequests, returnTo, "signin.throttled")
	case err != nil:
		return pp.u.internalError(c, err)
	}
	if err := pp.startSession(c, pr); err != nil {
		return pp.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, passkeyHolderHome(returnTo))
}

// --- holder enrolment (on the holder's phone) -------------------------------

type enrolPageData struct {
	passkeyForm
	Verified bool
	CodeSent bool
	Channel  string // "email" or "sms": where the code went
}

func (pp *PasskeyPages) deviceSecret(c echo.Context) string {
	if ck, err := c.Cookie(enrolCookie); err == nil {
		return ck.Value
	}
	return ""
}

func (pp *PasskeyPages) linkInvalid(c echo.Context, err error) error {
	if errors.Is(err, people.ErrPasskeyLinkInvalid) || errors.Is(err, people.ErrPasskeysUnavailable) {
		return pp.u.renderProblem(c, http.StatusGone, "passkey.link.invalid.title", "passkey.link.invalid.detail")
	}
	return pp.u.internalError(c, err)
}

func (pp *PasskeyPages) enrolPage(c echo.Context) error {
	return pp.showEnrol(c, http.StatusOK, c.QueryParam("token"), c.QueryParam("sent"), nil, "")
}

// showEnrol draws the enrolment page in its current step.
func (pp *PasskeyPages) showEnrol(c echo.Context, status int, token, sent string, errs []fieldError, name string) error {
	view, err := pp.keys.OpenHolderEnrolment(c.Request().Context(), token, pp.deviceSecret(c))
	if err != nil {
		return pp.linkInvalid(c, err)
	}
	p := pp.u.newPage(c)
	p.Errors = errs
	d := enrolPageData{
		passkeyForm: passkeyForm{Script: pp.u.ScriptPath("passkeys.js"), Token: token, Name: name},
		Verified:    view.Verified,
	}
	switch notify.Channel(sent) {
	case notify.Email, notify.SMS:
		d.CodeSent, d.Channel = true, sent
	}
	if d.Name == "" {
		d.Name = defaultPasskeyName(p.Lang)
	}
	if view.Verified {
		p.Status = "passkey.enrol.verified"
	} else if d.CodeSent && len(errs) == 0 {
		p.Status = "passkey.enrol.sent." + d.Channel
	}
	p.Data = d
	return pp.u.render(c, status, "passkey-enrol.html", p)
}

func defaultPasskeyName(lang string) string {
	if lang == "en" {
		return "My phone"
	}
	return "Mon téléphone"
}

func enrolURL(token string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("token", token)
	return "/holder/enrol?" + q.Encode()
}

func (pp *PasskeyPages) enrolSendCode(c echo.Context) error {
	token := c.FormValue("token")
	ch, err := pp.keys.SendEnrolmentCode(c.Request().Context(), token, c.RealIP())
	switch {
	case errors.Is(err, people.ErrTooManyCodes):
		return pp.showEnrol(c, http.StatusTooManyRequests, token, "", []fieldError{{Key: "passkey.enrol.toomanycodes"}}, "")
	case errors.Is(err, people.ErrNoContactForCodes), errors.Is(err, notify.ErrNoChannel):
		return pp.showEnrol(c, http.StatusUnprocessableEntity, token, "", []fieldError{{Key: "passkey.enrol.nocontact"}}, "")
	case errors.Is(err, people.ErrPasskeyLinkInvalid), errors.Is(err, people.ErrPasskeysUnavailable):
		return pp.linkInvalid(c, err)
	case err != nil:
		return pp.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, enrolURL(token, url.Values{"sent": {string(ch)}}))
}

func (pp *PasskeyPages) enrolVerify(c echo.Context) error {
	token := c.FormValue("token")
	sent := c.FormValue("sent")
	secret, err := pp.keys.VerifyEnrolmentCode(c.Request().Context(), token, c.FormValue("code"), c.RealIP())
	switch {
	case errors.Is(err, people.ErrInvalidCode):
		return pp.showEnrol(c, http.StatusUnprocessableEntity, token, sent, []fieldError{{Field: "code", Key: "passkey.enrol.badcode"}}, "")
	case errors.Is(err, people.ErrTooManyAttempts):
		c.Response().Header().Set("Retry-After", "900")
		return pp.showEnrol(c, http.StatusTooManyRequests, token, sent, []fieldError{{Key: "passkey.enrol.locked"}}, "")
	case err != nil:
		return pp.linkInvalid(c, err)
	}
	c.SetCookie(&http.Cookie{Name: enrolCookie, Value: secret, Path: "/holder/enrol", MaxAge: int(pp.keys.Config().EnrolmentTTL / time.Second),
		HttpOnly: true, Secure: pp.u.secure, SameSite: http.SameSiteLaxMode})
	return c.Redirect(http.StatusSeeOther, enrolURL(token, nil))
}

func (pp *PasskeyPages) enrolBegin(c echo.Context) error {
	id, opts, err := pp.keys.BeginHolderEnrolment(c.Request().Context(), c.FormValue("token"), pp.deviceSecret(c))
	switch {
	case errors.Is(err, people.ErrPasskeyLinkInvalid), errors.Is(err, people.ErrPasskeysUnavailable):
		return beginRefused(c, http.StatusGone)
	case errors.Is(err, people.ErrTooManyPasskeys):
		return beginRefused(c, http.StatusConflict)
	case err != nil:
		pp.u.log.ErrorContext(c.Request().Context(), "begin passkey enrolment", "err", err)
		return beginRefused(c, http.StatusInternalServerError)
	}
	return beginJSON(c, id, opts)
}

func (pp *PasskeyPages) enrolFinish(c echo.Context) error {
	token, name := c.FormValue("token"), c.FormValue("name")
	_, err := pp.keys.FinishHolderEnrolment(c.Request().Context(), token, pp.deviceSecret(c), c.FormValue("ceremony"), response(c), name)
	if len(name) > 200 {
		name = ""
	}
	switch {
	case errors.Is(err, people.ErrInvalidPasskeyName):
		return pp.showEnrol(c, http.StatusUnprocessableEntity, token, "", []fieldError{{Field: "name", Key: "passkey.name.invalid"}}, name)
	case errors.Is(err, people.ErrPasskeyRefused):
		return pp.showEnrol(c, http.StatusUnprocessableEntity, token, "", []fieldError{{Key: "passkey.create.refused"}}, name)
	case errors.Is(err, people.ErrTooManyPasskeys):
		return pp.showEnrol(c, http.StatusConflict, token, "", []fieldError{{Key: "passkey.toomany"}}, name)
	case err != nil:
		return pp.linkInvalid(c, err)
	}
	c.SetCookie(&http.Cookie{Name: enrolCookie, Value: "", Path: "/holder/enrol", MaxAge: -1,
		HttpOnly: true, Secure: pp.u.secure, SameSite: http.SameSiteLaxMode})
	p := pp.u.newPage(c)
	return pp.u.render(c, http.StatusOK, "passkey-enrolled.html", p)
}

// --- lists: a holder's or a staff member's own passkeys ---------------------

type passkeyItem struct {
	ID       string // credential id, base64url
	Name     string
	Created  time.Time
	LastUsed *time.Time
	Synced   bool // backed up (synced passkey)
}

type listData struct {
	passkeyForm
	Base  string // "/holder/passkeys" or "/account/passkeys"
	Home  string // "/holder" or "/"
	Items []passkeyItem
}

// owner returns the signed-in person whose list this path is, or false
// (and has answered) when nobody of that kind is signed in.
func (pp *PasskeyPages) owner(c echo.Context) (people.Principal, string, bool, error) {
	base, kind := "/account/passkeys", "staff"
	if len(c.Path()) >= 8 && c.Path()[:8] == "/holder/" {
		base, kind = "/holder/passkeys", "holder"
	}
	pr, ok := pp.u.CurrentPrincipal(c)
	if ok && pr.Kind == kind {
		return pr, base, true, nil
	}
	if kind == "holder" {
		return people.Principal{}, base, false, c.Redirect(http.StatusSeeOther, "/holder/signin/passkey?return_to="+url.QueryEscape(base))
	}
	if c.Request().Method == http.MethodGet {
		return people.Principal{}, base, false, pp.u.SignInRedirect(c)
	}
	return people.Principal{}, base, false, c.Redirect(http.StatusSeeOther, "/signin?return_to="+url.QueryEscape(base))
}

func (pp *PasskeyPages) listPage(c echo.Context) error {
	pr, base, ok, err := pp.owner(c)
	if !ok {
		return err
	}
	status := ""
	switch {
	case c.QueryParam("added") != "":
		status = "passkey.list.added"
	case c.QueryParam("removed") != "":
		status = "passkey.list.removed"
	}
	return pp.showList(c, http.StatusOK, pr, base, status, nil, "")
}

func (pp *PasskeyPages) showList(c echo.Context, code int, pr people.Principal, base, status string, errs []fieldError, name string) error {
	list, err := pp.keys.List(c.Request().Context(), pr.Subject)
	if err != nil {
		return pp.u.internalError(c, err)
	}
	p := pp.u.newPage(c)
	p.Status, p.Errors = status, errs
	d := listData{Base: base, Home: "/", passkeyForm: passkeyForm{Script: pp.u.ScriptPath("passkeys.js"), Name: name}}
	if d.Name == "" {
		d.Name = defaultPasskeyName(p.Lang)
	}
	if pr.Kind == "holder" {
		d.Home = "/holder"
	}
	for _, k := range list {
		d.Items = append(d.Items, passkeyItem{
			ID: base64.RawURLEncoding.EncodeToString(k.CredentialID), Name: k.Name,
			Created: k.CreatedAt, LastUsed: k.LastUsedAt, Synced: k.BackupState,
		})
	}
	p.Data = d
	return pp.u.render(c, code, "passkey-list.html", p)
}

func (pp *PasskeyPages) addBegin(c echo.Context) error {
	pr, ok := pp.u.CurrentPrincipal(c)
	if !ok {
		return beginRefused(c, http.StatusUnauthorized)
	}
	id, opts, err := pp.keys.BeginRegistration(c.Request().Context(), pr)
	if errors.Is(err, people.ErrTooManyPasskeys) {
		return beginRefused(c, http.StatusConflict)
	}
	if err != nil {
		pp.u.log.ErrorContext(c.Request().Context(), "begin passkey registration", "err", err)
		return beginRefused(c, http.StatusInternalServerError)
	}
	return beginJSON(c, id, opts)
}

func (pp *PasskeyPages) add(c echo.Context) error {
	pr, base, ok, err := pp.owner(c)
	if !ok {
		return err
	}
	name := c.FormValue("name")
	_, err = pp.keys.FinishRegistration(c.Request().Context(), pr, c.FormValue("ceremony"), response(c), name)
	if len(name) > 200 {
		name = ""
	}
	switch {
	case err == nil:
		return c.Redirect(http.StatusSeeOther, base+"?added=1")
	case errors.Is(err, people.ErrInvalidPasskeyName):
		return pp.showList(c, http.StatusUnprocessableEntity, pr, base, "", []fieldError{{Field: "name", Key: "passkey.name.invalid"}}, name)
	case errors.Is(err, people.ErrPasskeyRefused):
		return pp.showList(c, http.StatusUnprocessableEntity, pr, base, "", []fieldError{{Key: "passkey.create.refused"}}, name)
	case errors.Is(err, people.ErrTooManyPasskeys):
		return pp.showList(c, http.StatusConflict, pr, base, "", []fieldError{{Key: "passkey.toomany"}}, name)
	}
	return pp.u.internalError(c, err)
}

func (pp *PasskeyPages) remove(c echo.Context) error {
	pr, base, ok, err := pp.owner(c)
	if !ok {
		return err
	}
	id, err := base64.RawURLEncoding.DecodeString(c.FormValue("id"))
	if err != nil || len(id) == 0 || len(id) > 1024 {
		return pp.u.renderProblem(c, http.StatusBadRequest, "error.badrequest.title", "error.badrequest.detail")
	}
	err = pp.keys.Remove(c.Request().Context(), pr, id)
	if errors.Is(err, mandate.ErrNotFound) {
		return pp.u.renderProblem(c, http.StatusNotFound, "passkey.gone.title", "passkey.gone.detail")
	}
	if err != nil {
		return pp.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, base+"?removed=1")
}

// --- the mediator starts a holder's enrolment --------------------------------

type mediatorData struct {
	HolderID   string
	HolderName string
	Mailbox    string
	QR         template.URL // data:image/png;base64,...
	URL        string
	Minutes    int
}

// servedHolder checks that a mediator is signed in and may serve the
// holder; it has answered when ok is false.
func (pp *PasskeyPages) servedHolder(c echo.Context) (people.Principal, mediatorData, bool, error) {
	pr, ok := pp.u.CurrentPrincipal(c)
	if !ok {
		if c.Request().Method == http.MethodGet {
			return pr, mediatorData{}, false, pp.u.SignInRedirect(c)
		}
		return pr, mediatorData{}, false, c.Redirect(http.StatusSeeOther, "/signin")
	}
	id := c.Param("id")
	d := mediatorData{HolderID: id, Minutes: int(pp.keys.Config().EnrolmentTTL / time.Minute)}
	notFound := func() error {
		return pp.u.renderProblem(c, http.StatusNotFound, "passkey.holder.notfound.title", "passkey.holder.notfound.detail")
	}
	if !people.Can(pr, people.PermServeHolders, pr.StructureID) || len(id) > 100 {
		return pr, d, false, notFound()
	}
	if pp.holders != nil {
		// The mediator's structure, or for platform staff any structure
		// serving the holder (people.Passkeys.HolderToEnrol).
		h, _, err := pp.keys.HolderToEnrol(c.Request().Context(), pr, id)
		if errors.Is(err, people.ErrForbidden) || errors.Is(err, mandate.ErrNotFound) {
			return pr, d, false, notFound()
		}
		if err != nil {
			return pr, d, false, pp.u.internalError(c, err)
		}
		d.HolderName, d.Mailbox = h.DisplayName, h.Mailbox
	}
	return pr, d, true, nil
}

func (pp *PasskeyPages) mediatorPage(c echo.Context) error {
	_, d, ok, err := pp.servedHolder(c)
	if !ok {
		return err
	}
	p := pp.u.newPage(c)
	p.Data = d
	return pp.u.render(c, http.StatusOK, "passkey-start.html", p)
}

func (pp *PasskeyPages) mediatorStart(c echo.Context) error {
	pr, d, ok, err := pp.servedHolder(c)
	if !ok {
		return err
	}
	link, err := pp.keys.StartHolderEnrolment(c.Request().Context(), pr, d.HolderID)
	if errors.Is(err, people.ErrForbidden) {
		return pp.u.renderProblem(c, http.StatusNotFound, "passkey.holder.notfound.title", "passkey.holder.notfound.detail")
	}
	if errors.Is(err, people.ErrPasskeysUnavailable) {
		return pp.u.renderProblem(c, http.StatusServiceUnavailable, "passkey.unavailable.title", "passkey.unavailable.detail")
	}
	if err != nil {
		return pp.u.internalError(c, err)
	}
	code, err := qr.Encode(link.URL, qr.M)
	if err != nil {
		return pp.u.internalError(c, err)
	}
	code.Scale = 6
	d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG()))
	d.URL = link.URL
	p := pp.u.newPage(c)
	p.Status = "passkey.start.ready"
	p.Data = d
	return pp.u.render(c, http.StatusOK, "passkey-start.html", p)
}

// --- staff: a passkey instead of the TOTP code ------------------------------

func (pp *PasskeyPages) staffSignInPage(c echo.Context, status int, returnTo, email, key string) error {
	m := pp.u.method(people.MethodStaffPassword)
	p := pp.u.newPage(c)
	q := url.Values{}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	p.SwitchURL = switchURL("/signin", q, p.OtherLang())
	p.Errors = []fieldError{{Key: key}}
	kept := map[string]string{}
	if len(email) <= 254 {
		kept["email"] = email
	}
	p.Data = signInData{Method: m.Method(), ReturnTo: returnTo, Values: kept}
	return pp.u.render(c, status, "signin:"+m.Method(), p)
}

func (pp *PasskeyPages) staffBegin(c echo.Context) error {
	returnTo := safeReturnTo(c.FormValue("return_to"))
	email := c.FormValue("email")
	id, opts, err := pp.keys.BeginStaffSignIn(c.Request().Context(), email, c.FormValue("password"), c.RealIP())
	if errors.Is(err, people.ErrNoPasskey) {
		return pp.staffSignInPage(c, http.StatusUnprocessableEntity, returnTo, email, "passkey.staff.none")
	}
	if err != nil {
		m := pp.u.method(people.MethodStaffPassword)
		return pp.u.signInFailed(c, m, returnTo, map[string]string{"email": email}, err)
	}
	p := pp.u.newPage(c)
	p.Data = passkeyForm{Script: pp.u.ScriptPath("passkeys.js"), ReturnTo: returnTo, Options: string(opts), Ceremony: id}
	return pp.u.render(c, http.StatusOK, "passkey-staff.html", p)
}

func (pp *PasskeyPages) staffFinish(c echo.Context) error {
	returnTo := safeReturnTo(c.FormValue("return_to"))
	pr, err := pp.keys.FinishStaffSignIn(c.Request().Context(), c.FormValue("ceremony"), response(c), c.RealIP())
	switch {
	case errors.Is(err, people.ErrPasskeyRefused), errors.Is(err, people.ErrSignInFailed):
		return pp.staffSignInPage(c, http.StatusUnprocessableEntity, returnTo, "", "passkey.staff.refused")
	case err != nil:
		m := pp.u.method(people.MethodStaffPassword)
		return pp.u.signInFailed(c, m, returnTo, map[string]string{}, err)
	}
	if err := pp.startSession(c, pr); err != nil {
		return pp.u.internalError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, orHome(returnTo))
}
