package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// exportOf records events on a real SQLite store from writers goroutines
// (with one, event i is event number i) and returns its export's lines (the
// trailer last) and the verifier key.
func exportOf(t *testing.T, writers int, events []audit.Event) ([]string, string) {
	t.Helper()
	l := storetest.StartAuditLog(t, storetest.OpenSQLite(t), nil)
	next := make(chan audit.Event)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for e := range next {
				if _, err := l.Record(t.Context(), e); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, e := range events {
		next <- e
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var buf bytes.Buffer
	if err := l.Export(t.Context(), time.Time{}, time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"), l.VerifierKey()
}

func mailboxEvent(i int) audit.Event {
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-" + strconv.Itoa(i%7), Name: "Agent " + strconv.Itoa(i%7)},
		Holder: "holder-" + strconv.Itoa(i%11), Action: audit.ActionMailboxRead, Outcome: audit.OutcomeSuccess,
		Target: "message-" + strconv.Itoa(i), MandateID: "m-" + strconv.Itoa(i%11), RequestID: "req-" + strconv.Itoa(i),
	}
}

// verifyBoth verifies text from a seekable reader (the trailer read from
// the end) and from a plain one (read whole), checks both give the same
// report and error, and returns them.
func verifyBoth(t *testing.T, text, key string) (audit.Report, error) {
	t.Helper()
	rep, err := audit.VerifyExport(strings.NewReader(text), key)
	rep2, err2 := audit.VerifyExport(struct{ io.Reader }{strings.NewReader(text)}, key)
	if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(rep, rep2) {
		t.Fatalf("seekable and plain readers disagree:\n%+v, %v\n%+v, %v", rep, err, rep2, err2)
	}
	return rep, err
}

// wantProblems checks that verifying text fails with exactly the problems
// want (line, event and a word of the reason each).
func wantProblems(t *testing.T, text, key string, want ...audit.Problem) {
	t.Helper()
	rep, err := verifyBoth(t, text, key)
	if !errors.Is(err, audit.ErrVerify) {
		t.Fatalf("VerifyExport = %v, want ErrVerify", err)
	}
	ok := len(rep.Problems) == len(want)
	for i := 0; ok && i < len(want); i++ {
		p := rep.Problems[i]
		ok = p.Line == want[i].Line && p.Index == want[i].Index && strings.Contains(p.Reason, want[i].Reason)
	}
	if !ok {
		t.Errorf("problems %v, want %v", rep.Problems, want)
	}
}

// TestVerifyExportChecksEveryProofHash replaces, in turn, each hash of
// each entry's proof (13 events: a tree that is not a power of two) and
// checks that exactly that entry fails: a verifier that reuses the hashes
// it checked for the previous entry must still check them all.
func TestVerifyExportChecksEveryProofHash(t *testing.T) {
	lines, key := export(t, 13)
	for j := range 13 {
		var e audit.ExportEntry
		if err := json.Unmarshal([]byte(lines[j]), &e); err != nil {
			t.Fatal(err)
		}
		for k := range e.Proof {
			tampered := append([]string(nil), lines...)
			tampered[j] = editEntry(t, lines[j], func(e *audit.ExportEntry) { e.Proof[k][k] ^= 1 })
			wantProblems(t, strings.Join(tampered, "\n"), key, audit.Problem{Line: j + 1, Index: int64(j), Reason: "modified"})
		}
		if j > 0 { // the previous entry's proof, which checked just before
			tampered := append([]string(nil), lines...)
			tampered[j] = editEntry(t, lines[j], func(e *audit.ExportEntry) {
				var prev audit.ExportEntry
				json.Unmarshal([]byte(lines[j-1]), &prev)
				e.Proof = prev.Proof
			})
			wantProblems(t, strings.Join(tampered, "\n"), key, audit.Problem{Line: j + 1, Index: int64(j), Reason: "modified"})
		}
	}
}

// TestVerifyExportOfManyBlocks verifies an export of 2,500 events (several
// blocks of lines for the workers) and names wrong entries far into it,
// with their lines.
func TestVerifyExportOfManyBlocks(t *testing.T) {
	const n = 2500
	events := make([]audit.Event, n)
	for i := range events {
		events[i] = mailboxEvent(i)
	}
	lines, key := exportOf(t, 16, events)
	if rep, err := verifyBoth(t, strings.Join(lines, "\n"), key); err != nil || rep.Entries != n || rep.To != n {
		t.Fatalf("untouched export: %+v, %v", rep, err)
	}
	tampered := append([]string(nil), lines...)
	tampered[2100] = editEntry(t, tampered[2100], func(e *audit.ExportEntry) { e.Proof[len(e.Proof)-1][0] ^= 1 })
	tampered[2300] = editEntry(t, tampered[2300], func(e *audit.ExportEntry) {
		e.Leaf = bytes.Replace(e.Leaf, []byte(`"success"`), []byte(`"denied"`), 1)
	})
	tampered = slices.Delete(tampered, 900, 901)
	wantProblems(t, strings.Join(tampered, "\n"), key,
		audit.Problem{Line: 0, Index: 900, Reason: "missing"},
		audit.Problem{Line: 2100, Index: 2100, Reason: "modified"},
		audit.Problem{Line: 2300, Index: 2300, Reason: "modified"})
}

// TestVerifyExportReadsAnyJSON checks exports whose lines are valid JSON
// but not as Export writes them: escaped values, other key orders and
// spacing, CRLF line ends, blank lines. They verify as the same export, and
// tampering is still named with its line (blank lines not counted).
func TestVerifyExportReadsAnyJSON(t *testing.T) {
	events := make([]audit.Event, 6)
	for i := range events {
		events[i] = mailboxEvent(i)
	}
	events[2].Reason = "a \"quoted\" \\ <reason>, é"
	events[3].Target = "message \"3\" <&>"
	events[4].Holder = "holder-é\u2028"
	lines, key := exportOf(t, 1, events)
	if rep, err := verifyBoth(t, strings.Join(lines, "\n"), key); err != nil || rep.Entries != 6 {
		t.Fatalf("export with escapes: %+v, %v", rep, err)
	}
	respell := func(line string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		open := strings.ReplaceAll(string(m["open"]), `"value"`, `"Value"`) // json matches case-insensitively
		open = strings.ReplaceAll(open, `a`, `\u0061`)                      // escapes where JSON allows them
		if len(m["open"]) == 0 {
			open = "null"
		}
		return fmt.Sprintf(` { "proof" : %s, "open":%s ,"leaf":%s,"index": %s, "extra": [1] } `, m["proof"], open, m["leaf"], m["index"])
	}
	var text []string
	for _, line := range lines[:6] {
		text = append(text, respell(line), "  ")
	}
	text = append(text, lines[6], "", "")
	rep, err := verifyBoth(t, strings.Join(text, "\r\n"), key)
	if err != nil || rep.Entries != 6 || rep.From != 0 || rep.To != 6 {
		t.Fatalf("respelled export: %+v, %v", rep, err)
	}
	text[2*4] = strings.Replace(text[2*4], `holder-é`, `holder-e`, 1)
	wantProblems(t, strings.Join(text, "\r\n"), key, audit.Problem{Line: 5, Index: 4, Reason: "opened field holder"})
}

// TestVerifyExportReadsLinesAsJSONDoes checks lines that a verifier reading
// only the lines Export writes would get wrong.
func TestVerifyExportReadsLinesAsJSONDoes(t *testing.T) {
	lines, key := export(t, 3)
	open := `"open":{`
	if !strings.Contains(lines[1], open) || !strings.Contains(lines[1], `"value":"holder-1"`) {
		t.Fatalf("unexpected export line %s", lines[1])
	}
	bogus := `"holder":{"value":"holder-x","opening":"00"},`
	cases := []struct {
		name string
		line string
		want *audit.Problem // nil: verifies
	}{
		{"a field opened twice, the last one right", strings.Replace(lines[1], open, open+bogus, 1), nil},
		{"a field opened twice, the last one wrong", strings.Replace(lines[1], `}}}`, `},`+strings.TrimSuffix(bogus, ",")+`}}`, 1),
			&audit.Problem{Line: 2, Index: 1, Reason: "opened field holder"}},
		{"a raw tab in a value", strings.Replace(lines[1], `"value":"holder-1"`, "\"value\":\"holder-1\t\"", 1),
			&audit.Problem{Line: 2, Index: -1, Reason: "not an export entry"}},
		{"a leading zero in the index", strings.Replace(lines[1], `{"index":1,`, `{"index":01,`, 1),
			&audit.Problem{Line: 2, Index: -1, Reason: "not an export entry"}},
		{"trailing bytes", lines[1] + "x", &audit.Problem{Line: 2, Index: -1, Reason: "not an export entry"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Join([]string{lines[0], c.line, lines[2], lines[3]}, "\n")
			if c.want == nil {
				if rep, err := verifyBoth(t, text, key); err != nil {
					t.Fatalf("VerifyExport = %v %v, want it to verify", err, rep.Problems)
				}
				return
			}
			want := []audit.Problem{*c.want}
			if c.want.Index == -1 { // the entry is then missing too
				want = []audit.Problem{*c.want, {Line: 0, Index: 1, Reason: "missing"}}
			}
			wantProblems(t, text, key, want...)
		})
	}
}
