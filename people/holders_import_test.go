package people_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
)

// importCSV is a French spreadsheet's export: byte order mark, semicolons,
// CRLF, quoted fields; lines 3, 5, 6 and 7 are bad.
const importCSV = "\ufeffmailbox;display_name;phone;email;language\r\n" +
	"jean@example.org;Jean Martin;06 12 34 56 78;;fr\r\n" +
	"pas-une-adresse;Nom;06 12 34 56 78;;\r\n" +
	"\"amina@example.org\";\"Amina; Ben Ali\";;amina@example.net;en\r\n" +
	"JEAN@example.org;Doublon;;x@example.net;\r\n" +
	"nocontact@example.org;Sans Contact;;;\r\n" +
	"short@example.org;Trop court\r\n" +
	"existing@example.org;Déjà Là;;e@example.net;\r\n"

type badRow struct {
	line  int
	field string
	err   error
}

func badRows(r people.ImportReport) []badRow {
	var out []badRow
	for _, b := range r.Bad {
		out = append(out, badRow{b.Line, b.Field, b.Err})
	}
	return out
}

func TestImportDryRunReportsEveryBadRowAndWritesNothing(t *testing.T) {
	e := newHoldersEnv(t, nil, nil)
	ctx := t.Context()
	existing := e.create(t, e.medB, "existing@example.org", "", "keep@example.net").Holder
	before := len(e.events(t))

	report, err := e.h.Import(ctx, e.adminA, "A", strings.NewReader(importCSV), people.ImportOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !report.DryRun || report.Imported || report.Rows != 7 || report.Created != 2 || report.Linked != 1 || report.Unchanged != 0 || report.BadRows() != 4 {
		t.Errorf("report: %+v", report)
	}
	got := badRows(report)
	want := []struct {
		line  int
		field string
		err   error
	}{
		{3, "mailbox", people.ErrInvalidMailbox},
		{5, "mailbox", people.ErrDuplicateInFile},
		{6, "phone", people.ErrNoContact},
		{7, "", people.ErrFieldCount},
	}
	if len(got) != len(want) {
		t.Fatalf("bad rows: %+v", got)
	}
	for i, w := range want {
		if got[i].line != w.line || got[i].field != w.field || !errors.Is(got[i].err, w.err) {
			t.Errorf("bad row %d = %+v, want %+v", i, got[i], w)
		}
	}
	if !strings.Contains(got[1].err.Error(), "line 2") {
		t.Errorf("duplicate does not name the first line: %v", got[1].err)
	}
	if n, _ := e.h.Count(ctx, e.adminA, "A"); n != 0 {
		t.Errorf("a dry run wrote %d holders", n)
	}
	if len(e.events(t)) != before {
		t.Error("a dry run was recorded as a change")
	}

	// Stop on errors (the default): nothing written, the refusal recorded.
	report, err = e.h.Import(ctx, e.adminA, "A", strings.NewReader(importCSV), people.ImportOptions{})
	if !errors.Is(err, people.ErrImportHasErrors) || report.Imported || report.BadRows() != 4 {
		t.Fatalf("stop on errors: %+v, %v", report, err)
	}
	if n, _ := e.h.Count(ctx, e.adminA, "A"); n != 0 {
		t.Errorf("a refused import wrote %d holders", n)
	}
	evs := e.events(t)
	if last := evs[len(evs)-1]; last.Action != audit.ActionHoldersImported || last.Outcome != audit.OutcomeDenied ||
		last.Reason != "4 of 7 rows bad; nothing imported" || last.Actor.ID != "aa" {
		t.Errorf("refusal recorded as %+v", last)
	}

	// Keep going: the good rows are imported, in one go.
	report, err = e.h.Import(ctx, e.adminA, "A", strings.NewReader(importCSV), people.ImportOptions{KeepGoing: true})
	if err != nil || !report.Imported || report.Created != 2 || report.Linked != 1 {
		t.Fatalf("keep going: %+v, %v", report, err)
	}
	page, err := e.h.List(ctx, e.adminA, "A", people.HolderQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var mailboxes []string
	for _, h := range page.Holders {
		mailboxes = append(mailboxes, h.Mailbox)
	}
	if want := []string{"amina@example.org", "existing@example.org", "jean@example.org"}; !slices.Equal(mailboxes, want) {
		t.Errorf("imported %v, want %v", mailboxes, want)
	}
	amina := page.Holders[0]
	if amina.DisplayName != "Amina; Ben Ali" || amina.Language != "en" || amina.Email != "amina@example.net" {
		t.Errorf("amina: %+v", amina)
	}
	if got, _ := e.store.GetHolder(ctx, existing.ID); got.DisplayName != existing.DisplayName || got.Email != "keep@example.net" {
		t.Errorf("the import changed an existing record: %+v", got)
	}
	counts := map[audit.Action]int{}
	for _, ev := range e.events(t) {
		if ev.Actor.ID == "aa" && ev.Outcome == audit.OutcomeSuccess {
			counts[ev.Action]++
		}
	}
	if counts[audit.ActionHolderCreated] != 2 || counts[audit.ActionHolderLinked] != 1 || counts[audit.ActionHoldersImported] != 1 {
		t.Errorf("recorded %v", counts)
	}

	// Importing the same file again changes nothing.
	report, err = e.h.Import(ctx, e.adminA, "A", strings.NewReader(importCSV), people.ImportOptions{KeepGoing: true})
	if err != nil || report.Created != 0 || report.Linked != 0 || report.Unchanged != 3 {
		t.Errorf("again: %+v, %v", report, err)
	}
}

func TestImportRefusesBadFiles(t *testing.T) {
	e := newHoldersEnv(t, nil, func(c *people.HoldersConfig) { c.MaxImportBytes, c.MaxImportRows = 400, 3 })
	formatErr := errors.New("a format error")
	for _, tt := range []struct {
		name, csv string
		want      error
	}{
		{"empty", "", people.ErrImportEmpty},
		{"header only", "mailbox,display_name,email\n", people.ErrImportEmpty},
		{"not UTF-8 (Windows-1252)", "mailbox,display_name,email\nl\xe9a@example.org,L\xe9a,lea@example.net\n", people.ErrImportNotUTF8},
		{"no header", "a@example.org,A,a@example.net\n", formatErr},
		{"unknown column", "mailbox,display_name,email,age\n", formatErr},
		{"twice the same column", "mailbox,display_name,email,Mailbox\n", formatErr},
		{"no contact column", "mailbox,display_name,language\n", formatErr},
		{"broken quotes", "mailbox,display_name,email\n\"a@example.org,A,a@example.net\n", formatErr},
		{"too many rows", "mailbox,email,display_name\n" + strings.Repeat("a@example.org,a@example.net,A\n", 4), people.ErrImportTooLarge},
		{"too many bytes", "mailbox,email,display_name\n" + strings.Repeat("x", 400), people.ErrImportTooLarge},
	} {
		_, err := e.h.Import(t.Context(), e.adminA, "A", strings.NewReader(tt.csv), people.ImportOptions{DryRun: true})
		if tt.want == formatErr {
			if fe := (*people.ImportFormatError)(nil); !errors.As(err, &fe) {
				t.Errorf("%s: %v, want a format error", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// Mediators may not import; admins only in their own structure.
	for _, tt := range []struct {
		by        people.Principal
		structure string
	}{{e.medA, "A"}, {e.adminA, "B"}} {
		_, err := e.h.Import(t.Context(), tt.by, tt.structure, strings.NewReader("mailbox,display_name,email\n"), people.ImportOptions{})
		if !errors.Is(err, people.ErrForbidden) {
			t.Errorf("%s importing into %s: %v", tt.by.ID, tt.structure, err)
		}
	}
}

func TestImportCommasAndAllGood(t *testing.T) {
	e := newHoldersEnv(t, nil, nil)
	var b strings.Builder
	b.WriteString("Display_Name, Mailbox, Phone\n")
	for i := range 40 {
		fmt.Fprintf(&b, "Personne %d, p%02d@example.org, 06 00 00 00 %02d\n", i, i, i)
	}
	report, err := e.h.Import(t.Context(), e.adminA, "A", strings.NewReader(b.String()), people.ImportOptions{})
	if err != nil || !report.Imported || report.Created != 40 {
		t.Fatalf("%+v, %v", report, err)
	}
	if n, _ := e.h.Count(t.Context(), e.adminA, "A"); n != 40 {
		t.Errorf("%d holders", n)
	}
	h, err := e.store.FindHolderByMailbox(t.Context(), "p07@example.org")
	if err != nil || h.Phone != "+33600000007" || h.DisplayName != "Personne 7" || h.Language != "fr" {
		t.Errorf("%+v, %v", h, err)
	}
}
