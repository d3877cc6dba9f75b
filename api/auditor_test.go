package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// auditorFixture is an echo with the auditor API over a real SQLite audit
// log holding 30 events: even ones of structure A, odd ones of structure B.
type auditorFixture struct {
	e     *echo.Echo
	start time.Time
}

const (
	structA = "mairie-lyon"
	structB = "caf-rhone"
)

// Principals the test session function hands out, by the X-Test-Who header.
var auditorPrincipals = map[string]people.Principal{
	"auditor-a":  {Kind: "staff", ID: "s1", Role: people.RoleAuditor, StructureID: structA},
	"admin-a":    {Kind: "staff", ID: "s2", Role: people.RoleAdmin, StructureID: structA},
	"platform":   {Kind: "staff", ID: "s3", Role: people.RoleAuditor, Platform: true},
	"mediator-a": {Kind: "staff", ID: "s4", Role: people.RoleMediator, StructureID: structA},
	"mediator-p": {Kind: "staff", ID: "s5", Role: people.RoleMediator, Platform: true},
	"nostruct":   {Kind: "staff", ID: "s6", Role: people.RoleAuditor},
}

const auditorEvents = 30

func auditorTestEvent(i int) audit.Event {
	structure, client := structA, "webmail"
	if i%2 == 1 {
		structure, client = structB, "mobile"
	}
	action, outcome := audit.ActionMailboxRead, audit.OutcomeSuccess
	if i%3 == 0 {
		action = audit.ActionMailboxSend
	}
	if i%5 == 0 {
		outcome = audit.OutcomeDenied
	}
	target := fmt.Sprintf("message-%d", i)
	switch i {
	case 4:
		target = `=HYPERLINK("http://evil.example","x")`
	case 6:
		target = "+33 6 12"
	case 8:
		target = "-1"
	case 10:
		target = "@SUM(A1)"
	}
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: fmt.Sprintf("staff-%d", i%2), Name: "Agent, \"A\""},
		Holder: fmt.Sprintf("holder-%d", i%3), Structure: structure, Action: action, Target: target,
		MandateID: fmt.Sprintf("mandate-%d", i%4), ClientID: client, Outcome: outcome,
		RequestID: fmt.Sprintf("req-%d", i),
	}
}

func newAuditorFixture(t *testing.T) auditorFixture {
	t.Helper()
	start := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := storetest.NewClock(start)
	log := storetest.StartAuditLog(t, storetest.OpenSQLite(t), clock)
	for i := range auditorEvents {
		if seq, err := log.Record(t.Context(), auditorTestEvent(i)); err != nil || seq != int64(i) {
			t.Fatalf("record %d: seq %d, %v", i, seq, err)
		}
		clock.Advance(time.Minute)
	}
	e := NewEcho(Config{}, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	registerAuditor(e, log.Log, func(c echo.Context) (people.Principal, bool) {
		p, ok := auditorPrincipals[c.Request().Header.Get("X-Test-Who")]
		return p, ok
	}, 4, slog.New(slog.NewTextHandler(io.Discard, nil))) // exports read several pages

	return auditorFixture{e: e, start: start}
}

func (f auditorFixture) get(who, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if who != "" {
		req.Header.Set("X-Test-Who", who)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec
}

// list reads one page of /api/audit/events.
func (f auditorFixture) list(t *testing.T, who, query string) auditorListResponse {
	t.Helper()
	rec := f.get(who, "/api/audit/events?"+query)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%s as %s: %d %s %s", query, who, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var resp auditorListResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func seqsOf(events []auditorEvent) []int64 {
	s := make([]int64, len(events))
	for i, e := range events {
		s[i] = e.Seq
	}
	return s
}

// wantSeqs lists, newest first, the seqs of the fixture's events matching
// keep.
func wantSeqs(keep func(i int, e audit.Event) bool) []int64 {
	var s []int64
	for i := auditorEvents - 1; i >= 0; i-- {
		if keep(i, auditorTestEvent(i)) {
			s = append(s, int64(i))
		}
	}
	return s
}

func TestAuditorAccess(t *testing.T) {
	f := newAuditorFixture(t)
	inA := func(_ int, e audit.Event) bool { return e.Structure == structA }
	inB := func(_ int, e audit.Event) bool { return e.Structure == structB }
	all := func(int, audit.Event) bool { return true }
	for _, c := range []struct {
		who, query string
		want       []int64
	}{
		{"auditor-a", "", wantSeqs(inA)},
		{"auditor-a", "structure=" + structA, wantSeqs(inA)},
		{"admin-a", "", wantSeqs(inA)},
		{"platform", "", wantSeqs(all)},
		{"platform", "structure=" + structB, wantSeqs(inB)},
	} {
		t.Run(c.who+"?"+c.query, func(t *testing.T) {
			got := f.list(t, c.who, c.query)
			if !slices.Equal(seqsOf(got.Events), c.want) || got.NextCursor != "" {
				t.Fatalf("seqs %v next %q, want %v", seqsOf(got.Events), got.NextCursor, c.want)
			}
		})
	}
	// The confinement holds in exports too.
	for _, path := range []string{"/api/audit/events.jsonl", "/api/audit/events.csv"} {
		rec := f.get("auditor-a", path)
		if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), structB) {
			t.Fatalf("%s as auditor-a: %d, holds structure B: %v", path, rec.Code, strings.Contains(rec.Body.String(), structB))
		}
	}

	for _, path := range []string{"/api/audit/events", "/api/audit/events.jsonl", "/api/audit/events.csv"} {
		for who, status := range map[string]int{
			"":           http.StatusUnauthorized,
			"mediator-a": http.StatusForbidden,
			"mediator-p": http.StatusForbidden,
			"nostruct":   http.StatusForbidden,
		} {
			t.Run(path+" as "+who, func(t *testing.T) { wantProblem(t, f.get(who, path), status) })
		}
		t.Run(path+" for another structure", func(t *testing.T) {
			wantProblem(t, f.get("auditor-a", path+"?structure="+structB), http.StatusForbidden)
			wantProblem(t, f.get("admin-a", path+"?structure="+structB), http.StatusForbidden)
		})
	}
}

func TestAuditorFilters(t *testing.T) {
	f := newAuditorFixture(t)
	at := func(minutes int) string {
		return url.QueryEscape(f.start.Add(time.Duration(minutes) * time.Minute).Format(time.RFC3339))
	}
	for _, c := range []struct {
		query string
		keep  func(i int, e audit.Event) bool
	}{
		{"action=mailbox.send", func(_ int, e audit.Event) bool { return e.Action == audit.ActionMailboxSend }},
		{"outcome=denied", func(_ int, e audit.Event) bool { return e.Outcome == audit.OutcomeDenied }},
		{"client=mobile", func(_ int, e audit.Event) bool { return e.ClientID == "mobile" }},
		{"holder=holder-1", func(_ int, e audit.Event) bool { return e.Holder == "holder-1" }},
		{"actor=staff-0", func(_ int, e audit.Event) bool { return e.Actor.ID == "staff-0" }},
		{"mandate=mandate-2", func(_ int, e audit.Event) bool { return e.MandateID == "mandate-2" }},
		{"since=" + at(10) + "&until=" + at(20), func(i int, _ audit.Event) bool { return i >= 10 && i < 20 }},
		{"since=" + at(25), func(i int, _ audit.Event) bool { return i >= 25 }},
		{"until=" + at(3), func(i int, _ audit.Event) bool { return i < 3 }},
		{"action=mailbox.read&outcome=success&client=webmail", func(_ int, e audit.Event) bool {
			return e.Action == audit.ActionMailboxRead && e.Outcome == audit.OutcomeSuccess && e.ClientID == "webmail"
		}},
		{"action=token.issued", func(int, audit.Event) bool { return false }},
	} {
		t.Run(c.query, func(t *testing.T) {
			want := wantSeqs(c.keep)
			got := f.list(t, "platform", c.query)
			if !slices.Equal(seqsOf(got.Events), want) {
				t.Fatalf("seqs %v, want %v", seqsOf(got.Events), want)
			}
			if got.Events == nil {
				t.Fatal("events is null, want a list")
			}
		})
	}
	// Fields come back readable.
	got := f.list(t, "platform", "limit=1")
	e := auditorTestEvent(auditorEvents - 1)
	if g := got.Events[0]; g.ActorID != e.Actor.ID || g.Holder != e.Holder || g.Target != e.Target ||
		g.Time != f.start.Add((auditorEvents-1)*time.Minute).Format(time.RFC3339Nano) {
		t.Fatalf("event %+v, recorded %+v", g, e)
	}
}

func TestAuditorPagination(t *testing.T) {
	f := newAuditorFixture(t)
	for _, c := range []struct {
		who, query string
		limit      int
		want       []int64
	}{
		{"platform", "", 7, wantSeqs(func(int, audit.Event) bool { return true })},
		{"platform", "", 10, wantSeqs(func(int, audit.Event) bool { return true })}, // exact multiple
		{"auditor-a", "", 4, wantSeqs(func(_ int, e audit.Event) bool { return e.Structure == structA })},
		{"platform", "&client=mobile&outcome=success", 2, wantSeqs(func(_ int, e audit.Event) bool {
			return e.ClientID == "mobile" && e.Outcome == audit.OutcomeSuccess
		})},
	} {
		t.Run(fmt.Sprintf("%s limit %d%s", c.who, c.limit, c.query), func(t *testing.T) {
			var seen []int64
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(c.want)+1 {
					t.Fatalf("pagination does not end: %v", seen)
				}
				q := "limit=" + strconv.Itoa(c.limit) + c.query
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				page := f.list(t, c.who, q)
				if len(page.Events) > c.limit {
					t.Fatalf("page of %d events, limit %d", len(page.Events), c.limit)
				}
				seen = append(seen, seqsOf(page.Events)...)
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			if !slices.Equal(seen, c.want) {
				t.Fatalf("pages gave %v, want %v", seen, c.want)
			}
		})
	}
}

func TestAuditorExports(t *testing.T) {
	f := newAuditorFixture(t)
	want := wantSeqs(func(_ int, e audit.Event) bool { return e.Action == audit.ActionMailboxRead })

	rec := f.get("platform", "/api/audit/events.jsonl?action=mailbox.read")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/jsonl") ||
		!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("jsonl: %d %v", rec.Code, rec.Header())
	}
	var got []auditorEvent
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		var e auditorEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if !slices.Equal(seqsOf(got), want) {
		t.Fatalf("jsonl seqs %v, want %v", seqsOf(got), want)
	}
	if got[len(got)-1].Target != auditorTestEvent(int(got[len(got)-1].Seq)).Target {
		t.Fatalf("jsonl event %+v", got[len(got)-1])
	}

	rec = f.get("platform", "/api/audit/events.csv")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", rec.Code, rec.Header())
	}
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], csvHeader) || len(rows) != auditorEvents+1 {
		t.Fatalf("csv header %v, %d rows", rows[0], len(rows))
	}
	col := func(name string) int { return slices.Index(csvHeader, name) }
	for _, row := range rows[1:] {
		seq, err := strconv.Atoi(row[col("seq")])
		if err != nil {
			t.Fatalf("row %v: %v", row, err)
		}
		e := auditorTestEvent(seq)
		wantTarget := e.Target
		if strings.ContainsAny(wantTarget[:1], "=+-@") {
			wantTarget = "'" + wantTarget
		}
		if row[col("target")] != wantTarget || row[col("actor_name")] != e.Actor.Name ||
			row[col("structure")] != e.Structure || row[col("action")] != string(e.Action) {
			t.Fatalf("row %v, recorded %+v", row, e)
		}
	}
	// The guarded cells, by hand.
	for seq, cell := range map[int]string{4: `'=HYPERLINK("http://evil.example","x")`, 6: "'+33 6 12", 8: "'-1", 10: "'@SUM(A1)"} {
		if got := rows[auditorEvents-seq][col("target")]; got != cell {
			t.Fatalf("target of %d = %q, want %q", seq, got, cell)
		}
	}

	// An export matching nothing still has its CSV header.
	rec = f.get("platform", "/api/audit/events.csv?action=key.rotated")
	if rows, err := csv.NewReader(rec.Body).ReadAll(); err != nil || len(rows) != 1 || !slices.Equal(rows[0], csvHeader) {
		t.Fatalf("empty csv: %v %v", rows, err)
	}
	rec = f.get("platform", "/api/audit/events.jsonl?action=key.rotated")
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("empty jsonl: %d %q", rec.Code, rec.Body)
	}
}

func TestAuditorBadParameters(t *testing.T) {
	f := newAuditorFixture(t)
	for _, q := range []string{
		"since=yesterday", "until=2025-03-01", "since=2025-03-01T10:00:00Z&until=2025-03-01T09:00:00Z",
		"action=mailbox.burn", "outcome=maybe",
		"limit=0", "limit=501", "limit=-1", "limit=ten",
		"cursor=abc", "cursor=" + encodeCursor(0), "cursor=" + url.QueryEscape("v1:5"), "cursor=djE6MDU",
		"holder=" + strings.Repeat("h", audit.MaxIDLen+1),
	} {
		for _, path := range []string{"/api/audit/events", "/api/audit/events.jsonl", "/api/audit/events.csv"} {
			if path != "/api/audit/events" && (strings.HasPrefix(q, "limit") || strings.HasPrefix(q, "cursor")) {
				continue // exports read everything
			}
			t.Run(path+"?"+q, func(t *testing.T) { wantProblem(t, f.get("platform", path+"?"+q), http.StatusBadRequest) })
		}
	}
	// The bounds themselves are accepted.
	for _, q := range []string{"limit=1", "limit=500", "cursor=" + encodeCursor(5)} {
		if got := f.list(t, "platform", q); len(got.Events) == 0 {
			t.Fatalf("%s: no events", q)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, n := range []int64{1, 2, 99, 1 << 40} {
		if got, ok := decodeCursor(encodeCursor(n)); !ok || got != n {
			t.Fatalf("cursor of %d decodes to %d, %v", n, got, ok)
		}
	}
}

// failingAuditStore is the real store with one failure injected: its
// failAt-th AuditQuery fails, as a database going away mid-export would.
type failingAuditStore struct {
	*store.Store
	mu            sync.Mutex
	calls, failAt int
}

func (s *failingAuditStore) AuditQuery(ctx context.Context, f audit.Filter) ([]audit.Leaf, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	if n == s.failAt {
		return nil, errors.New("injected failure: the database went away")
	}
	return s.Store.AuditQuery(ctx, f)
}

// TestAuditorExportFailingMidwayAborts: when reading fails after the 200
// and the first page went out, the client must see an incomplete transfer,
// not a clean-looking truncated file; the failure is logged.
func TestAuditorExportFailingMidwayAborts(t *testing.T) {
	clock := storetest.NewClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	st := storetest.OpenSQLite(t)
	rec := storetest.StartAuditLog(t, st, clock)
	for i := range 12 {
		if _, err := rec.Record(t.Context(), auditorTestEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize)) // StartAuditLog's
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path   string
		failAt int // 0: never
	}{
		{"/api/audit/events.jsonl", 0},
		{"/api/audit/events.jsonl", 2},
		{"/api/audit/events.csv", 0},
		{"/api/audit/events.csv", 3},
	} {
		t.Run(fmt.Sprintf("%s fails at query %d", c.path, c.failAt), func(t *testing.T) {
			fs := &failingAuditStore{Store: st, failAt: c.failAt}
			l, err := audit.New(t.Context(), audit.Config{Store: fs, Sealer: sealer, Origin: "mandated.test/audit", Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			e := NewEcho(Config{}, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			registerAuditor(e, l, func(echo.Context) (people.Principal, bool) { return auditorPrincipals["platform"], true },
				4, slog.New(slog.NewTextHandler(&logs, nil)))
			srv := httptest.NewServer(e)
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			lines := strings.Count(string(body), "\n")
			if c.failAt == 0 {
				if err != nil || strings.Contains(logs.String(), "aborting") {
					t.Fatalf("complete export: %v; log %s", err, logs.String())
				}
				if want := 12 + strings.Count(c.path, ".csv"); lines != want {
					t.Fatalf("complete export has %d lines, want %d", lines, want)
				}
				return
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading an export that failed midway: err = %v after %d lines, want unexpected EOF", err, lines)
			}
			if lines == 0 || lines >= 12 {
				t.Errorf("the aborted export sent %d lines, want the pages before the failure", lines)
			}
			if !strings.Contains(logs.String(), "aborting the connection") || !strings.Contains(logs.String(), "injected failure") {
				t.Errorf("failure not logged: %s", logs.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
