package api

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// importCSVOf returns a holders CSV of about size bytes, every row valid
// and distinct (rows of about 200 bytes: fewer than the 10,000 rows allowed).
func importCSVOf(size int) string {
	var b strings.Builder
	b.WriteString("mailbox;display_name;phone;email;language\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "personne.numero-%06d@une-structure-au-nom-assez-long.example.fr;Prénom%06d Nom-De-Famille-Composé Assez-Long Pour-Remplir-La-Ligne D'une-Personne Aidée;06 12 34 56 78;contact%06d@example.net;fr\n", i, i, i)
	}
	return b.String()
}

// TestImportRoutesTakeLargerBodies: with ImportBodyLimits, a 1.5 MiB CSV
// dry run goes through the API while 3 MiB is refused with a 413 problem,
// whether or not the size is announced; other routes keep the default.
func TestImportRoutesTakeLargerBodies(t *testing.T) {
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	quiet := slog.New(slog.DiscardHandler)
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock, Logger: quiet})
	if err := st.CreateStructure(t.Context(), people.Structure{ID: "A", Name: "A"}); err != nil {
		t.Fatal(err)
	}
	h, err := people.NewHolders(people.HoldersConfig{Store: st, CodeKey: bytes.Repeat([]byte{1}, 32),
		Recorder: storetest.StartAuditLog(t, st, clock), Clock: clock, MaxImportBytes: MaxImportBodyBytes})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEcho(Config{LargeBodies: ImportBodyLimits()}, Deps{Logger: quiet})
	RegisterHolders(e, h, func(c echo.Context) (people.Principal, bool) {
		p, ok := holderPrincipals[c.Request().Header.Get("X-Test-Who")]
		return p, ok
	})
	// The admin page's route (package ui) reads a multipart form.
	e.POST("/admin/holders/import", func(c echo.Context) error {
		fh, err := c.FormFile("file")
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, fmt.Sprint(fh.Size))
	})
	e.POST("/elsewhere", func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
		}
		return c.NoContent(http.StatusNoContent)
	})
	f := &holdersFixture{e: e}
	rec := f.do(t, "admin-a", http.MethodGet, "/api/holders", "", "")
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "mandated_csrf" {
			f.csrf = ck
		}
	}

	mid := importCSVOf(3 << 19) // 1.5 MiB
	rec = f.do(t, "admin-a", http.MethodPost, "/api/holders/import?dry_run=true", "text/csv", mid)
	if rec.Code != http.StatusOK {
		t.Fatalf("1.5 MiB dry run: %d %.300s", rec.Code, rec.Body)
	}
	report := decodeJSON[importJSON](t, rec)
	if !report.DryRun || report.Imported || report.Rows < 7000 || report.Created != report.Rows || len(report.Errors) != 0 {
		t.Errorf("1.5 MiB dry run report: rows %d, created %d, errors %d", report.Rows, report.Created, len(report.Errors))
	}
	if n, err := h.Count(t.Context(), holderPrincipals["admin-a"], "A"); err != nil || n != 0 {
		t.Errorf("a dry run wrote %d holders (%v)", n, err)
	}

	big := importCSVOf(3 << 20) // 3 MiB
	p := wantHolderProblem(t, f.do(t, "admin-a", http.MethodPost, "/api/holders/import?dry_run=true", "text/csv", big), http.StatusRequestEntityTooLarge)
	if p.Detail == "" {
		t.Errorf("413 without detail: %+v", p)
	}
	// Sent without Content-Length (chunked): stopped while reading.
	req := httptest.NewRequest(http.MethodPost, "/api/holders/import?dry_run=true&_csrf="+f.csrf.Value, io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("X-Test-Who", "admin-a")
	req.AddCookie(f.csrf)
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	wantHolderProblem(t, rec, http.StatusRequestEntityTooLarge)

	// The admin page's multipart upload: the CSRF field is in the form, read
	// under the route's bound.
	upload := func(csv string) *httptest.ResponseRecorder {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("_csrf", f.csrf.Value)
		fw, _ := mw.CreateFormFile("file", "holders.csv")
		_, _ = io.WriteString(fw, csv)
		_ = mw.Close()
		req := httptest.NewRequest(http.MethodPost, "/admin/holders/import", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.AddCookie(f.csrf)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	if rec := upload(mid); rec.Code != http.StatusOK || rec.Body.String() != fmt.Sprint(len(mid)) {
		t.Errorf("1.5 MiB upload to the page: %d %.200s", rec.Code, rec.Body)
	}
	if rec := upload(big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("3 MiB upload to the page: %d", rec.Code)
	}

	// Other routes keep MaxBodyBytes (64 KiB).
	rec = f.do(t, "admin-a", http.MethodPost, "/elsewhere", "text/plain", strings.Repeat("x", 100<<10))
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("100 KiB elsewhere: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := f.do(t, "admin-a", http.MethodPost, "/elsewhere", "text/plain", "small"); rec.Code != http.StatusNoContent {
		t.Errorf("small body elsewhere: %d", rec.Code)
	}
}

// Without LargeBodies every route has MaxBodyBytes, the import's too.
func TestImportRoutesKeepTheDefaultLimitUnlessConfigured(t *testing.T) {
	e := NewEcho(Config{}, Deps{Logger: slog.New(slog.DiscardHandler)})
	e.POST("/api/holders/import", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodPost, "/api/holders/import", strings.NewReader(strings.Repeat("x", 100<<10)))
	req.Header.Set("X-CSRF-Token", "irrelevant")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("100 KiB import without LargeBodies: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}
