package people

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// ImportColumns are the columns of a holders CSV file, named in its
// required header line in any order and case. mailbox and display_name are
// required, and phone or email (or both); language is optional (fr when
// empty).
var ImportColumns = []string{"mailbox", "display_name", "phone", "email", "language"}

// Errors of a CSV import that concern the whole file.
var (
	ErrImportTooLarge = errors.New("the file is too large")
	ErrImportNotUTF8  = errors.New("the file is not in UTF-8: save it as \"CSV UTF-8\"")
	ErrImportEmpty    = errors.New("the file is empty: it needs a header line and at least one row")
	// ErrImportHasErrors: some rows are bad and the import was asked to stop
	// on errors, so nothing was imported.
	ErrImportHasErrors = errors.New("some rows are bad: nothing was imported")
	// ErrDuplicateInFile: a mailbox appears on more than one row.
	ErrDuplicateInFile = errors.New("this mailbox is on an earlier row of the file already")
	// ErrFieldCount: a row does not have as many fields as the header.
	ErrFieldCount = errors.New("this row does not have as many fields as the header")
)

// ImportFormatError: the file cannot be read as a holders CSV (bad header,
// broken quoting). Line is 1 for the header.
type ImportFormatError struct {
	Line   int
	Reason string
}

func (e *ImportFormatError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// ImportOptions say how to import.
type ImportOptions struct {
	// DryRun checks every row and reports what would be done; nothing is
	// written.
	DryRun bool
	// KeepGoing imports the good rows and reports the bad ones. By default
	// a single bad row stops the import: nothing is written.
	KeepGoing bool
}

// ImportRowError is one bad field of one row. Line is the line number in
// the file (the header is line 1).
type ImportRowError struct {
	Line  int
	Field string // a column name, "" for the whole row
	Err   error
	// FirstLine is, for ErrDuplicateInFile, the line where the mailbox
	// first appears.
	FirstLine int
}

// ImportReport is what an import did (or, in a dry run, would do).
type ImportReport struct {
	DryRun bool
	Rows   int // data rows read
	// Created are new holders; Linked existing holders (another structure
	// serves them) now served by this structure too; Unchanged rows name
	// holders this structure serves already (their record is left as it is).
	Created, Linked, Unchanged int
	Bad                        []ImportRowError
	// Imported: the rows were written (false in a dry run, or when bad rows
	// stopped the import).
	Imported bool
}

// BadRows is how many distinct rows are bad.
func (r ImportReport) BadRows() int {
	n, last := 0, -1
	for _, b := range r.Bad {
		if b.Line != last {
			n, last = n+1, b.Line
		}
	}
	return n
}

type importRow struct {
	line   int
	holder Holder
	action audit.Action // ActionHolderCreated, ActionHolderLinked or "" (unchanged)
}

// Import reads holders from a CSV file for structureID, on behalf of a
// structure admin (PermImportHolders). The file is UTF-8, with or without a
// byte order mark, separated by commas or semicolons (what French
// spreadsheets write), with a header line naming the ImportColumns. Rows
// are checked like Create; a mailbox that has a record already is linked to
// the structure, its name and contacts unchanged. A dry run reports every
// bad row and writes nothing. Otherwise, by default, any bad row stops the
// import (ErrImportHasErrors, nothing written); with KeepGoing the good rows
// are imported and the bad ones reported. What is written is written in
// one transaction: all of it or nothing. Each holder created or linked is
// audited, and the import as a whole.
func (h *Holders) Import(ctx context.Context, by Principal, structureID string, r io.Reader, opts ImportOptions) (ImportReport, error) {
	if err := Authorize(by, PermImportHolders, structureID); err != nil {
		return ImportReport{}, err
	}
	data, err := io.ReadAll(io.LimitReader(r, h.cfg.MaxImportBytes+1))
	if err != nil {
		return ImportReport{}, fmt.Errorf("read import: %w", err)
	}
	if int64(len(data)) > h.cfg.MaxImportBytes {
		return ImportReport{}, fmt.Errorf("%w: at most %d bytes", ErrImportTooLarge, h.cfg.MaxImportBytes)
	}
	rows, report, err := h.parseImport(data)
	if err != nil {
		return ImportReport{}, err
	}
	report.DryRun = opts.DryRun
	if err := h.classify(ctx, structureID, rows, &report); err != nil {
		return ImportReport{}, err
	}
	if opts.DryRun {
		return report, nil
	}
	actor := staffActor(by.ID, by.DisplayName)
	if len(report.Bad) > 0 && !opts.KeepGoing {
		if err := h.record(ctx, audit.Event{
			Actor: actor, Structure: structureID, Action: audit.ActionHoldersImported, Outcome: audit.OutcomeDenied,
			Reason: fmt.Sprintf("%d of %d rows bad; nothing imported", report.BadRows(), report.Rows),
		}); err != nil {
			return ImportReport{}, fmt.Errorf("import holders: %w", err)
		}
		return report, ErrImportHasErrors
	}
	if err := h.recordImport(ctx, actor, structureID, rows, report); err != nil {
		return ImportReport{}, fmt.Errorf("import holders: %w", err)
	}
	if err := h.writeImport(ctx, structureID, rows); err != nil {
		if rerr := h.record(ctx, audit.Event{
			Actor: actor, Structure: structureID, Action: audit.ActionHoldersImported, Outcome: audit.OutcomeError,
			Reason: "import failed; nothing imported",
		}); rerr != nil {
			h.log.ErrorContext(ctx, "record failed import", "err", rerr)
		}
		return ImportReport{}, err
	}
	report.Imported = true
	h.log.InfoContext(ctx, "holders imported", "structure_id", structureID,
		"created", report.Created, "linked", report.Linked, "unchanged", report.Unchanged, "bad_rows", report.BadRows())
	return report, nil
}

// parseImport reads the file into checked rows; bad rows go to the report.
func (h *Holders) parseImport(data []byte) ([]importRow, ImportReport, error) {
	var report ImportReport
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, report, ErrImportNotUTF8
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, report, ErrImportEmpty
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = separator(data)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, report, csvError(err)
	}
	cols, err := importHeader(header)
	if err != nil {
		return nil, report, err
	}
	var rows []importRow
	firstLine := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, report, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		report.Rows++
		if report.Rows > h.cfg.MaxImportRows {
			return nil, report, fmt.Errorf("%w: at most %d rows", ErrImportTooLarge, h.cfg.MaxImportRows)
		}
		if len(rec) != len(header) {
			report.Bad = append(report.Bad, ImportRowError{Line: line, Err: ErrFieldCount})
			continue
		}
		var in HolderInput
		for i, col := range cols {
			v := strings.TrimSpace(rec[i])
			switch col {
			case "mailbox":
				in.Mailbox = v
			case "display_name":
				in.DisplayName = v
			case "phone":
				in.Phone = v
			case "email":
				in.Email = v
			case "language":
				in.Language = v
			}
		}
		holder, err := NormalizeHolder(in)
		var inv *InvalidHolderError
		if errors.As(err, &inv) {
			for _, f := range inv.Fields {
				report.Bad = append(report.Bad, ImportRowError{Line: line, Field: f.Field, Err: f.Err})
			}
			continue
		}
		if first, dup := firstLine[holder.Mailbox]; dup {
			report.Bad = append(report.Bad, ImportRowError{Line: line, Field: "mailbox", FirstLine: first,
				Err: fmt.Errorf("%w (line %d)", ErrDuplicateInFile, first)})
			continue
		}
		firstLine[holder.Mailbox] = line
		rows = append(rows, importRow{line: line, holder: holder})
	}
	if report.Rows == 0 {
		return nil, report, ErrImportEmpty
	}
	return rows, report, nil
}

// separator is ';' when the header line has more semicolons than commas.
func separator(data []byte) rune {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if bytes.Count(first, []byte(";")) > bytes.Count(first, []byte(",")) {
		return ';'
	}
	return ','
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ImportFormatError{Line: pe.Line, Reason: pe.Err.Error()}
	}
	if errors.Is(err, io.EOF) {
		return ErrImportEmpty
	}
	return fmt.Errorf("read import: %w", err)
}

// importHeader checks the header line and returns the column names in order.
func importHeader(header []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range ImportColumns {
		known[c] = true
	}
	seen := map[string]bool{}
	cols := make([]string, len(header))
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if !known[name] {
			return nil, &ImportFormatError{Line: 1, Reason: fmt.Sprintf(
				"unknown column %q in the header; the columns are %s", clip(name, 40), strings.Join(ImportColumns, ", "))}
		}
		if seen[name] {
			return nil, &ImportFormatError{Line: 1, Reason: fmt.Sprintf("column %q appears twice in the header", name)}
		}
		seen[name] = true
		cols[i] = name
	}
	if !seen["mailbox"] || !seen["display_name"] || (!seen["phone"] && !seen["email"]) {
		return nil, &ImportFormatError{Line: 1, Reason: "the header needs the columns mailbox, display_name, and phone or email"}
	}
	return cols, nil
}

// classify decides, for each good row, whether it creates or links a
// holder, or changes nothing.
func (h *Holders) classify(ctx context.Context, structureID string, rows []importRow, report *ImportReport) error {
	now := h.clock.Now()
	for i := range rows {
		row := &rows[i]
		existing, err := h.store.FindHolderByMailbox(ctx, row.holder.Mailbox)
		switch {
		case errors.Is(err, mandate.ErrNotFound):
			row.holder.ID, row.holder.CreatedAt = uuid.NewString(), now
			row.action = audit.ActionHolderCreated
			report.Created++
			continue
		case err != nil:
			return fmt.Errorf("import holders: %w", err)
		}
		row.holder = existing
		served, err := h.store.HolderServedBy(ctx, existing.ID, structureID)
		if err != nil {
			return fmt.Errorf("import holders: %w", err)
		}
		if served {
			report.Unchanged++
		} else {
			row.action = audit.ActionHolderLinked
			report.Linked++
		}
	}
	return nil
}

// recordImport records every holder the import creates or links, then the
// import itself, before anything is written. Records run in parallel so the
// audit log writes them in batches.
func (h *Holders) recordImport(ctx context.Context, actor audit.Actor, structureID string, rows []importRow, report ImportReport) error {
	work := make(chan importRow)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for row := range work {
				err := h.record(ctx, audit.Event{
					Actor: actor, Holder: row.holder.ID, Structure: structureID,
					Action: row.action, Outcome: audit.OutcomeSuccess, Reason: "CSV import",
				})
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	failed := false
	for _, row := range rows {
		if row.action == "" {
			continue
		}
		if len(errc) > 0 {
			failed = true
			break
		}
		work <- row
	}
	close(work)
	wg.Wait()
	if failed || len(errc) > 0 {
		return <-errc
	}
	reason := fmt.Sprintf("%d created, %d linked, %d unchanged", report.Created, report.Linked, report.Unchanged)
	if n := report.BadRows(); n > 0 {
		reason += fmt.Sprintf(", %d bad rows skipped", n)
	}
	return h.record(ctx, audit.Event{
		Actor: actor, Structure: structureID, Action: audit.ActionHoldersImported, Outcome: audit.OutcomeSuccess, Reason: reason,
	})
}

// writeImport writes the rows in one transaction.
func (h *Holders) writeImport(ctx context.Context, structureID string, rows []importRow) error {
	tx, err := h.store.BeginTX(ctx)
	if err != nil {
		return fmt.Errorf("import holders: %w", err)
	}
	now := h.clock.Now()
	for _, row := range rows {
		switch row.action {
		case audit.ActionHolderCreated:
			err = h.store.CreateHolder(tx, row.holder, structureID)
			if errors.Is(err, mandate.ErrAlreadyExists) {
				err = fmt.Errorf("line %d: the mailbox was created meanwhile; import again: %w", row.line, mandate.ErrConflict)
			}
		case audit.ActionHolderLinked:
			err = h.store.LinkHolder(tx, row.holder.ID, structureID, now)
		}
		if err != nil {
			_ = h.store.Rollback(tx)
			return fmt.Errorf("import holders: %w", err)
		}
	}
	if err := h.store.Commit(tx); err != nil {
		_ = h.store.Rollback(tx)
		return fmt.Errorf("import holders: %w", err)
	}
	return nil
}
