package audit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ExportEntry is one line of an export: an event's leaf, its inclusion
// proof against the export's checkpoint, and the openings of its personal
// fields whose person is not erased.
type ExportEntry struct {
	Index int64                  `json:"index"`
	Leaf  []byte                 `json:"leaf"`
	Proof []tlog.Hash            `json:"proof"`
	Open  map[string]OpenedField `json:"open,omitempty"`
}

// OpenedField is a personal value and the opening its commitment is made with.
type OpenedField struct {
	Value   string `json:"value"`
	Opening string `json:"opening"` // hex
}

// ExportTrailer is the last line of an export.
type ExportTrailer struct {
	Checkpoint string `json:"checkpoint"` // signed checkpoint note
	Range      string `json:"range"`      // signed note: the range exported
}

const rangePrefix = "mandated-audit-export-v1\n"

func rangeText(origin string, from, to, size int64) string {
	return fmt.Sprintf("%s%s\n%d\n%d\n%d\n", rangePrefix, origin, from, to, size)
}

// Export writes, as JSON Lines, the events recorded with since <= time <
// until (zero times are open ends) that a fresh checkpoint covers, then a
// trailer with that checkpoint and the signed range.
func (l *Log) Export(ctx context.Context, since, until time.Time, w io.Writer) error {
	c, err := l.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	from, to, err := l.cfg.Store.AuditSeqRange(ctx, since, until)
	if err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	to = min(to, c.Size)
	from = min(from, to)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	hr := l.hashReader(ctx)
	keys := map[personPeriod]*openedKey{}
	const chunk = 1000
	for at := from; at < to; at += chunk {
		end := min(at+chunk, to)
		leaves, err := l.cfg.Store.AuditLeaves(ctx, at, end)
		if err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		readable, err := l.cfg.Store.AuditReadable(ctx, at, end)
		if err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		if err := l.readKeys(ctx, readable, keys); err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		opened := map[int64]map[string]OpenedField{}
		for _, r := range readable {
			if err := open(keys, r, opened); err != nil {
				return fmt.Errorf("export audit log: %w", err)
			}
		}
		for _, lf := range leaves {
			p, err := tlog.ProveRecord(c.Size, lf.Seq, hr)
			if err != nil {
				return fmt.Errorf("export audit log: prove %d: %w", lf.Seq, err)
			}
			if err := enc.Encode(ExportEntry{Index: lf.Seq, Leaf: lf.Data, Proof: p, Open: opened[lf.Seq]}); err != nil {
				return fmt.Errorf("export audit log: %w", err)
			}
		}
	}
	rng, err := note.Sign(&note.Note{Text: rangeText(l.cfg.Origin, from, to, c.Size)}, l.signer)
	if err != nil {
		return fmt.Errorf("export audit log: sign range: %w", err)
	}
	if err := enc.Encode(ExportTrailer{Checkpoint: string(c.Note), Range: string(rng)}); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	return bw.Flush()
}

// open decrypts one person's readable fields of one event into opened
// (nothing when their key is erased).
func open(known map[personPeriod]*openedKey, r SealedReadable, opened map[int64]map[string]OpenedField) error {
	fields, ok, err := openReadable(known, r)
	if err != nil || !ok {
		return err
	}
	key := known[personPeriod{r.Person, r.Period}].key
	if opened[r.Seq] == nil {
		opened[r.Seq] = map[string]OpenedField{}
	}
	for name, v := range fields {
		opened[r.Seq][name] = OpenedField{Value: v, Opening: hex.EncodeToString(Opening(key, r.Seq, name))}
	}
	return nil
}

// Report is what VerifyExport found.
type Report struct {
	Size     int64 // tree size of the checkpoint
	From, To int64 // range the export claims, signed
	Entries  int
	Problems []Problem
}

// Problem names one wrong entry. Line counts from 1; Index is the event
// (-1 when the line has none).
type Problem struct {
	Line   int
	Index  int64
	Reason string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("event %d: %s", p.Index, p.Reason)
	}
	return fmt.Sprintf("line %d (event %d): %s", p.Line, p.Index, p.Reason)
}

// VerifyExport checks an export offline against verifierKey: the signatures
// of the checkpoint and the range, every entry's inclusion proof and leaf,
// every opened personal field, and that the entries are exactly the signed
// range, in order. The error wraps ErrVerify and names the first problem;
// the report lists them all.
func VerifyExport(r io.Reader, verifierKey string) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var lines [][]byte
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) > 0 {
			lines = append(lines, slices.Clone(sc.Bytes()))
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("%w: read export: %v", ErrVerify, err)
	}
	if len(lines) == 0 {
		return rep, fmt.Errorf("%w: empty export", ErrVerify)
	}
	var tr ExportTrailer
	if err := json.Unmarshal(lines[len(lines)-1], &tr); err != nil || tr.Checkpoint == "" {
		return rep, fmt.Errorf("%w: last line is not a checkpoint trailer", ErrVerify)
	}
	size, root, err := OpenCheckpoint([]byte(tr.Checkpoint), verifierKey)
	if err != nil {
		return rep, err
	}
	rep.Size = size
	if rep.From, rep.To, err = openRange([]byte(tr.Range), verifierKey, size); err != nil {
		return rep, err
	}
	lines = lines[:len(lines)-1]
	rep.Entries = len(lines)
	seen := map[int64]int{}
	prev := int64(-1)
	add := func(line int, idx int64, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Line: line, Index: idx, Reason: fmt.Sprintf(format, args...)})
	}
	for i, raw := range lines {
		n := i + 1
		var e ExportEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			add(n, -1, "not an export entry: %v", err)
			continue
		}
		seen[e.Index]++
		switch {
		case e.Index < rep.From || e.Index >= rep.To:
			add(n, e.Index, "outside the signed range [%d, %d): inserted", rep.From, rep.To)
		case seen[e.Index] > 1:
			add(n, e.Index, "appears again: inserted or duplicated")
		case e.Index < prev:
			add(n, e.Index, "out of order: comes after event %d", prev)
		}
		prev = max(prev, e.Index)
		fields, err := ParseLeaf(e.Leaf)
		if err != nil {
			add(n, e.Index, "leaf: %v", err)
			continue
		}
		if s := LeafSeq(fields); s != e.Index {
			add(n, e.Index, "leaf says it is event %d", s)
		}
		if e.Index >= 0 && e.Index < size {
			if err := tlog.CheckRecord(e.Proof, size, root, e.Index, tlog.RecordHash(e.Leaf)); err != nil {
				add(n, e.Index, "not in the log at this index: modified or inserted (%v)", err)
			}
		}
		for name, f := range e.Open {
			want := fields[name+CommitSuffix]
			op, herr := hex.DecodeString(f.Opening)
			got := hex.EncodeToString(Commit(op, f.Value))
			if herr != nil || want == "" || !hmac.Equal([]byte(got), []byte(want)) {
				add(n, e.Index, "opened field %s does not match its commitment", name)
			}
		}
	}
	for idx := rep.From; idx < rep.To; idx++ {
		if seen[idx] == 0 {
			add(0, idx, "missing from the export")
		}
	}
	if len(rep.Problems) > 0 {
		slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return int(a.Index - b.Index) })
		return rep, fmt.Errorf("%w: %d problem(s), first: %s", ErrVerify, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}

func openRange(signed []byte, verifierKey string, size int64) (from, to int64, err error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: verifier key: %v", ErrVerify, err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: export range: %v", ErrVerify, err)
	}
	parts := strings.Split(strings.TrimPrefix(n.Text, rangePrefix), "\n")
	if !strings.HasPrefix(n.Text, rangePrefix) || len(parts) != 5 || parts[0] != v.Name() {
		return 0, 0, fmt.Errorf("%w: export range: malformed", ErrVerify)
	}
	var nums [3]int64
	for i := range nums {
		if nums[i], err = strconv.ParseInt(parts[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%w: export range: %v", ErrVerify, err)
		}
	}
	if nums[2] != size || nums[0] < 0 || nums[0] > nums[1] || nums[1] > size {
		return 0, 0, fmt.Errorf("%w: export range [%d, %d) of %d does not fit the checkpoint of size %d", ErrVerify, nums[0], nums[1], nums[2], size)
	}
	return nums[0], nums[1], nil
}
