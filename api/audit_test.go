package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

func auditTestEvent(i int) audit.Event {
	return audit.Event{
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: fmt.Sprintf("staff-%d", i%2), Name: "Agent"},
		Holder: fmt.Sprintf("holder-%d", i%3), Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
		Target: fmt.Sprintf("message-%d", i), MandateID: "mandate-1", ClientID: "webmail",
		Outcome: audit.OutcomeSuccess, RequestID: fmt.Sprintf("req-%d", i),
	}
}

func TestAuditEndpoints(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.Store{
		"sqlite": storetest.OpenSQLite, "postgres": storetest.OpenPostgres,
	} {
		t.Run(name, func(t *testing.T) { testAuditEndpoints(t, open(t)) })
	}
}

func testAuditEndpoints(t *testing.T, st *store.Store) {
	clock := storetest.NewClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	log := storetest.StartAuditLog(t, st, clock)
	e := NewEcho(Config{}, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	RegisterAudit(e, log.Log)
	record := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			seq, err := log.Record(t.Context(), auditTestEvent(i))
			if err != nil || seq != int64(i) {
				t.Fatalf("record %d: seq %d, %v", i, seq, err)
			}
		}
	}

	// Before any event there is no checkpoint.
	wantProblem(t, do(e, http.MethodGet, "/audit/checkpoint", ""), http.StatusNotFound)

	rec := do(e, http.MethodGet, "/audit/key", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("key: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	key := strings.TrimSpace(rec.Body.String())
	if key != log.VerifierKey() || !strings.HasPrefix(key, "mandated.test/audit+") {
		t.Fatalf("key = %q, log's is %q", key, log.VerifierKey())
	}

	record(0, 5)
	rec = do(e, http.MethodGet, "/audit/checkpoint", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("checkpoint: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	oldCheckpoint := rec.Body.Bytes()
	size, _, err := audit.OpenCheckpoint(oldCheckpoint, key)
	if err != nil || size != 5 {
		t.Fatalf("checkpoint of size %d: %v\n%s", size, err, oldCheckpoint)
	}

	rec = do(e, http.MethodGet, "/audit/proof/inclusion?seq=3", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("inclusion: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var inc audit.InclusionBundle
	if err := json.Unmarshal(rec.Body.Bytes(), &inc); err != nil {
		t.Fatal(err)
	}
	if inc.Index != 3 {
		t.Fatalf("bundle index %d", inc.Index)
	}
	if err := audit.VerifyInclusion(inc, key); err != nil {
		t.Fatalf("inclusion bundle does not verify: %v", err)
	}
	inc.Leaf[len(inc.Leaf)/2] ^= 1
	if err := audit.VerifyInclusion(inc, key); !errors.Is(err, audit.ErrVerify) {
		t.Fatalf("tampered bundle: %v", err)
	}

	record(5, 8)
	for _, path := range []string{"/audit/proof/consistency?old=5", "/audit/proof/consistency?old=5&new=8"} {
		rec = do(e, http.MethodGet, path, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		var cons audit.ConsistencyBundle
		if err := json.Unmarshal(rec.Body.Bytes(), &cons); err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyConsistency(oldCheckpoint, cons, key); err != nil {
			t.Fatalf("%s does not verify: %v", path, err)
		}
		if n, _, _ := audit.OpenCheckpoint(cons.Checkpoint, key); n != 8 {
			t.Fatalf("%s: newer checkpoint has size %d", path, n)
		}
	}

	for path, status := range map[string]int{
		"/audit/proof/inclusion":                   http.StatusBadRequest,
		"/audit/proof/inclusion?seq=abc":           http.StatusBadRequest,
		"/audit/proof/inclusion?seq=-1":            http.StatusBadRequest,
		"/audit/proof/inclusion?seq=1e3":           http.StatusBadRequest,
		"/audit/proof/inclusion?seq=8":             http.StatusNotFound,
		"/audit/proof/inclusion?seq=999999":        http.StatusNotFound,
		"/audit/proof/consistency":                 http.StatusBadRequest,
		"/audit/proof/consistency?old=x":           http.StatusBadRequest,
		"/audit/proof/consistency?old=0":           http.StatusBadRequest,
		"/audit/proof/consistency?old=2&new=y":     http.StatusBadRequest,
		"/audit/proof/consistency?old=6&new=5":     http.StatusBadRequest,
		"/audit/proof/consistency?old=2&new=7":     http.StatusNotFound, // no checkpoint of size 7
		"/audit/proof/consistency?old=9":           http.StatusNotFound,
		"/audit/proof/consistency?old=99999999999": http.StatusNotFound,
	} {
		t.Run(path, func(t *testing.T) { wantProblem(t, do(e, http.MethodGet, path, ""), status) })
	}
}

func wantProblem(t *testing.T, rec interface {
	Result() *http.Response
}, status int) {
	t.Helper()
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), body, status)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status != status || p.Detail == "" {
		t.Fatalf("problem %s: %v", body, err)
	}
}
