package audit

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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
