package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/store/storetest"
)

// export records n events on a real SQLite store and returns the export's
// lines and the verifier key.
func export(t *testing.T, n int) ([]string, string) {
	t.Helper()
	l := storetest.StartAuditLog(t, storetest.OpenSQLite(t), nil)
	for i := range n {
		_, err := l.Record(t.Context(), audit.Event{
			Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Claire"},
			Holder: "holder-1", Action: audit.ActionMailboxRead, Outcome: audit.OutcomeSuccess,
			Target: "message-" + string(rune('a'+i)), MandateID: "m-1",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := l.Export(t.Context(), time.Time{}, time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"), l.VerifierKey()
}

func editEntry(t *testing.T, line string, edit func(*audit.ExportEntry)) string {
	t.Helper()
	var e audit.ExportEntry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	edit(&e)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVerifyExportNamesTheWrongEntry tampers with an export of 8 events
// (lines 1-8, events 0-7, line 9 the trailer) in every way an operator
// might, and checks verify fails and names the entry.
func TestVerifyExportNamesTheWrongEntry(t *testing.T) {
	lines, key := export(t, 8)
	if len(lines) != 9 {
		t.Fatalf("export has %d lines, want 8 entries and a trailer", len(lines))
	}
	if rep, err := audit.VerifyExport(strings.NewReader(strings.Join(lines, "\n")), key); err != nil || rep.Entries != 8 || rep.Size != 8 {
		t.Fatalf("untouched export: %+v, %v", rep, err)
	}
	cases := []struct {
		name      string
		tamper    func([]string) []string
		wantIndex int64
		wantWord  string
	}{
		{"one byte of a leaf modified", func(l []string) []string {
			l[3] = editEntry(t, l[3], func(e *audit.ExportEntry) { e.Leaf = bytes.Replace(e.Leaf, []byte("read"), []byte("reae"), 1) })
			return l
		}, 3, "modified"},
		{"leaf swapped for another event's", func(l []string) []string {
			l[5] = editEntry(t, l[5], func(e *audit.ExportEntry) {
				var o audit.ExportEntry
				json.Unmarshal([]byte(l[4]), &o)
				e.Leaf = o.Leaf
			})
			return l
		}, 5, "event 4"},
		{"entry removed", func(l []string) []string { return append(l[:2:2], l[3:]...) }, 2, "missing"},
		{"last entry removed", func(l []string) []string { return append(l[:7:7], l[8]) }, 7, "missing"},
		{"two entries swapped", func(l []string) []string { l[4], l[5] = l[5], l[4]; return l }, 4, "out of order"},
		{"entry duplicated", func(l []string) []string {
			return append(l[:6:6], append([]string{l[1]}, l[6:]...)...)
		}, 1, "again"},
		{"entry inserted beyond the range", func(l []string) []string {
			fake := editEntry(t, l[7], func(e *audit.ExportEntry) { e.Index = 8 })
			return append(l[:8:8], fake, l[8])
		}, 8, "inserted"},
		{"readable value altered", func(l []string) []string {
			l[6] = editEntry(t, l[6], func(e *audit.ExportEntry) {
				f := e.Open["holder"]
				f.Value = "holder-2"
				e.Open["holder"] = f
			})
			return l
		}, 6, "commitment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tampered := c.tamper(append([]string(nil), lines...))
			rep, err := audit.VerifyExport(strings.NewReader(strings.Join(tampered, "\n")), key)
			if !errors.Is(err, audit.ErrVerify) {
				t.Fatalf("VerifyExport = %v, want ErrVerify", err)
			}
			found := false
			for _, p := range rep.Problems {
				if p.Index == c.wantIndex && strings.Contains(p.String(), c.wantWord) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v do not name event %d (%q)", rep.Problems, c.wantIndex, c.wantWord)
			}
		})
	}
}

func TestVerifyExportRefusesBadTrailers(t *testing.T) {
	lines, key := export(t, 3)
	_, otherKey := export(t, 1)
	body := strings.Join(lines, "\n")
	cases := []struct {
		name, text, key string
	}{
		{"empty", "", key},
		{"no trailer", strings.Join(lines[:3], "\n"), key},
		{"another log's key", body, otherKey},
		{"malformed key", body, "not a key"},
		{"checkpoint altered", strings.Replace(body, `\n3\n`, `\n4\n`, 1), key},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := audit.VerifyExport(strings.NewReader(c.text), c.key); !errors.Is(err, audit.ErrVerify) {
				t.Errorf("VerifyExport = %v, want ErrVerify", err)
			}
		})
	}
}
