package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
)

// RegisterHolders adds the holders REST API: create, list and read the
// holders of the caller's structure, and import them from CSV. Callers are
// signed-in staff (who returns the principal of the UI session cookie);
// unsafe methods carry the session's CSRF token in the X-CSRF-Token header or as the _csrf query or form
// parameter. Staff act on their own structure; platform staff name one with
// structure_id. A holder another structure serves is 404, as an unknown one.
func RegisterHolders(e *echo.Echo, h *people.Holders, who func(echo.Context) (people.Principal, bool)) {
	hh := holderHandlers{h: h, who: who}
	e.POST("/api/holders", hh.create)
	e.GET("/api/holders", hh.list)
	e.POST("/api/holders/import", hh.importCSV)
	e.GET("/api/holders/:id", hh.get)
}

type holderHandlers struct {
	h   *people.Holders
	who func(echo.Context) (people.Principal, bool)
}

// HolderJSON is a holder as the API shows it. Contacts are masked: staff
// typed them in front of the holder and never read them back (another
// structure serving the same person does not learn them either).
type HolderJSON struct {
	ID               string `json:"id"`
	Mailbox          string `json:"mailbox"`
	DisplayName      string `json:"display_name"`
	PhoneMasked      string `json:"phone_masked,omitempty"`
	EmailMasked      string `json:"email_masked,omitempty"`
	Language         string `json:"language"`
	ContactConfirmed bool   `json:"contact_confirmed"`
	CreatedAt        string `json:"created_at"`
}

func toHolderJSON(h people.Holder) HolderJSON {
	out := HolderJSON{
		ID: h.ID, Mailbox: h.Mailbox, DisplayName: h.DisplayName, Language: h.Language,
		ContactConfirmed: h.ContactConfirmedAt != nil, CreatedAt: h.CreatedAt.UTC().Format(time.RFC3339),
	}
	if h.Phone != "" {
		out.PhoneMasked = people.MaskPhone(h.Phone)
	}
	if h.Email != "" {
		out.EmailMasked = people.MaskEmail(h.Email)
	}
	return out
}

// holderProblem is a problem document with the invalid fields or rows.
type holderProblem struct {
	Problem
	Errors []problemField `json:"errors,omitempty"`
	Report *importJSON    `json:"report,omitempty"`
}

type problemField struct {
	Field  string `json:"field,omitempty"`
	Line   int    `json:"line,omitempty"`
	Detail string `json:"detail"`
}

func writeHolderProblem(c echo.Context, p holderProblem) error {
	p.defaults()
	return writeProblemJSON(c, p.Status, p)
}

// caller returns the signed-in staff member and the structure the request
// acts on, or writes the problem (401) and returns ok false.
func (hh holderHandlers) caller(c echo.Context, requested string) (people.Principal, string, bool, error) {
	p, ok := hh.who(c)
	if !ok || p.Kind != "staff" {
		return people.Principal{}, "", false, WriteProblem(c, Problem{Status: http.StatusUnauthorized,
			Detail: "sign in as staff first: this API uses the session of the pages"})
	}
	structure := p.StructureID
	if requested = strings.TrimSpace(requested); requested != "" {
		structure = requested
	}
	return p, structure, true, nil
}

// fail answers a service error.
func (hh holderHandlers) fail(c echo.Context, err error) error {
	var inv *people.InvalidHolderError
	switch {
	case errors.As(err, &inv):
		p := holderProblem{Problem: Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid holder",
			Detail: "some fields are not valid"}}
		for _, f := range inv.Fields {
			p.Errors = append(p.Errors, problemField{Field: f.Field, Detail: f.Err.Error()})
		}
		return writeHolderProblem(c, p)
	case errors.Is(err, people.ErrForbidden):
		return WriteProblem(c, Problem{Status: http.StatusForbidden, Detail: "you may not do this for this structure"})
	case errors.Is(err, mandate.ErrNotFound):
		return WriteProblem(c, Problem{Status: http.StatusNotFound, Detail: "no such holder"})
	case errors.Is(err, mandate.ErrConflict):
		return WriteProblem(c, Problem{Status: http.StatusConflict, Detail: "the records changed meanwhile; try again"})
	}
	return err // logged, answered 500 by the error handler
}

type createHolderRequest struct {
	Mailbox     string `json:"mailbox"`
	DisplayName string `json:"display_name"`
	Phone       string `json:"phone"`
	Email       string `json:"email"`
	Language    string `json:"language"`
	StructureID string `json:"structure_id"`
}

type createHolderResponse struct {
	Holder HolderJSON `json:"holder"`
	// Linked: the mailbox had a record already, now also served by this
	// structure; its name and contacts were left unchanged.
	Linked bool `json:"linked"`
}

func (hh holderHandlers) create(c echo.Context) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return WriteProblem(c, Problem{Status: http.StatusUnsupportedMediaType, Detail: "send the holder as application/json"})
	}
	var req createHolderRequest
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: "the body is not a valid holder object: " + jsonReason(err)})
	}
	p, structure, ok, err := hh.caller(c, req.StructureID)
	if !ok {
		return err
	}
	res, err := hh.h.Create(c.Request().Context(), p, structure, people.HolderInput{
		Mailbox: req.Mailbox, DisplayName: req.DisplayName, Phone: req.Phone, Email: req.Email, Language: req.Language,
	})
	if err != nil {
		return hh.fail(c, err)
	}
	status := http.StatusCreated
	if res.Linked {
		status = http.StatusOK
	}
	c.Response().Header().Set("Location", "/api/holders/"+res.Holder.ID)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, createHolderResponse{Holder: toHolderJSON(res.Holder), Linked: res.Linked})
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "cannot read it"
}

type holderListResponse struct {
	Holders []HolderJSON `json:"holders"`
	// Next is the after= of the next page; absent on the last page.
	Next  string `json:"next,omitempty"`
	Total int    `json:"total"`
}

func (hh holderHandlers) list(c echo.Context) error {
	p, structure, ok, err := hh.caller(c, c.QueryParam("structure_id"))
	if !ok {
		return err
	}
	q := people.HolderQuery{Search: c.QueryParam("q"), After: c.QueryParam("after"), Limit: 50}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > people.MaxHolderPage {
			return WriteProblem(c, Problem{Status: http.StatusBadRequest,
				Detail: fmt.Sprintf("limit must be a number from 1 to %d", people.MaxHolderPage)})
		}
		q.Limit = n
	}
	ctx := c.Request().Context()
	page, err := hh.h.List(ctx, p, structure, q)
	if err != nil {
		return hh.fail(c, err)
	}
	total, err := hh.h.Count(ctx, p, structure)
	if err != nil {
		return hh.fail(c, err)
	}
	resp := holderListResponse{Holders: make([]HolderJSON, 0, len(page.Holders)), Next: page.Next, Total: total}
	for _, h := range page.Holders {
		resp.Holders = append(resp.Holders, toHolderJSON(h))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, resp)
}

func (hh holderHandlers) get(c echo.Context) error {
	p, structure, ok, err := hh.caller(c, c.QueryParam("structure_id"))
	if !ok {
		return err
	}
	h, err := hh.h.Get(c.Request().Context(), p, structure, c.Param("id"))
	if err != nil {
		return hh.fail(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, toHolderJSON(h))
}

// importJSON is an import report.
type importJSON struct {
	DryRun    bool           `json:"dry_run"`
	Imported  bool           `json:"imported"`
	Rows      int            `json:"rows"`
	Created   int            `json:"created"`
	Linked    int            `json:"linked"`
	Unchanged int            `json:"unchanged"`
	BadRows   int            `json:"bad_rows"`
	Errors    []problemField `json:"errors"`
}

func toImportJSON(r people.ImportReport) *importJSON {
	out := &importJSON{DryRun: r.DryRun, Imported: r.Imported, Rows: r.Rows, Created: r.Created, Linked: r.Linked,
		Unchanged: r.Unchanged, BadRows: r.BadRows(), Errors: []problemField{}}
	for _, b := range r.Bad {
		out.Errors = append(out.Errors, problemField{Line: b.Line, Field: b.Field, Detail: b.Err.Error()})
	}
	return out
}

func (hh holderHandlers) importCSV(c echo.Context) error {
	p, structure, ok, err := hh.caller(c, c.QueryParam("structure_id"))
	if !ok {
		return err
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, "text/csv") {
		return WriteProblem(c, Problem{Status: http.StatusUnsupportedMediaType, Detail: "send the file as text/csv"})
	}
	var opts people.ImportOptions
	for name, dst := range map[string]*bool{"dry_run": &opts.DryRun, "keep_going": &opts.KeepGoing} {
		if s := c.QueryParam(name); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return WriteProblem(c, Problem{Status: http.StatusBadRequest, Detail: name + " must be true or false"})
			}
			*dst = v
		}
	}
	report, err := hh.h.Import(c.Request().Context(), p, structure, c.Request().Body, opts)
	var fe *people.ImportFormatError
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, toImportJSON(report))
	case errors.Is(err, people.ErrImportHasErrors):
		return writeHolderProblem(c, holderProblem{
			Problem: Problem{Status: http.StatusUnprocessableEntity, Title: "Bad rows", Detail: err.Error()},
			Report:  toImportJSON(report),
		})
	case errors.Is(err, people.ErrImportTooLarge), errors.As(err, &mbe):
		return WriteProblem(c, Problem{Status: http.StatusRequestEntityTooLarge, Detail: "the file is too large; split it"})
	case errors.As(err, &fe):
		return writeHolderProblem(c, holderProblem{
			Problem: Problem{Status: http.StatusUnprocessableEntity, Title: "Unreadable file", Detail: "the file is not a holders CSV"},
			Errors:  []problemField{{Line: fe.Line, Detail: fe.Reason}},
		})
	case errors.Is(err, people.ErrImportNotUTF8), errors.Is(err, people.ErrImportEmpty):
		return WriteProblem(c, Problem{Status: http.StatusUnprocessableEntity, Title: "Unreadable file", Detail: err.Error()})
	}
	return hh.fail(c, err)
}
