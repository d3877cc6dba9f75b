package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandated/mandated/audit"
)

// recordAuditEvents opens the instance's app in-process, as serve does, runs
// its audit log and records n events (nothing records through the binary yet).
func (in *instance) recordAuditEvents(n int, extra ...string) {
	in.t.Helper()
	var cfg config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.registerCommon(fs)
	if err := fs.Parse(append(in.flags(), extra...)); err != nil {
		in.t.Fatal(err)
	}
	a, err := openApp(in.t.Context(), &cfg, true)
	if err != nil {
		in.t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(in.t.Context())
	done := make(chan error, 1)
	go func() { done <- a.audit.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range n {
		_, err := a.audit.Record(in.t.Context(), audit.Event{
			Actor:  audit.Actor{Kind: audit.ActorStaff, ID: fmt.Sprintf("staff-%d", i%2), Name: "Agent"},
			Holder: fmt.Sprintf("holder-%d", i%3), Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
			Target: fmt.Sprintf("message-%d", i), MandateID: "mandate-1", ClientID: "webmail", Outcome: audit.OutcomeSuccess,
		})
		if err != nil {
			in.t.Fatalf("record event %d: %v", i, err)
		}
	}
}

func (in *instance) getText(path string) string {
	in.t.Helper()
	resp, err := http.Get(in.base + path)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		in.t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

// verifyExport runs `mandated audit verify` with no database flag at all.
func verifyExport(t *testing.T, file, key string) (string, error) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"audit", "verify", file, "--key", key}, &out, io.Discard)
	return out.String(), err
}

func TestAuditKeyExportVerify(t *testing.T) {
	for name, newInstance := range map[string]func(*testing.T) *instance{
		"sqlite": newSQLiteInstance, "postgres": newPostgresInstance,
	} {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t)
			// Fix the address first: the log's origin (and key) follow the issuer.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			in.addr = ln.Addr().String()
			ln.Close()
			in.base = "http://" + in.addr
			in.issuer = in.base
			issuer := []string{"--issuer", in.issuer}

			in.recordAuditEvents(6, issuer...)
			key := strings.TrimSpace(in.cli(append([]string{"audit", "key"}, issuer...)...))
			if !strings.HasPrefix(key, in.addr+"/audit+") {
				t.Fatalf("audit key = %q, want a key named %s/audit", key, in.addr)
			}

			stop, _ := in.serve()
			served := strings.TrimSpace(in.getText("/audit/key"))
			checkpoint := in.getText("/audit/checkpoint")
			stop()
			if served != key {
				t.Fatalf("served key %q, audit key printed %q", served, key)
			}
			// 6 events plus the first signing key's creation (key.rotated) and
			// the console client's registration on the first start (client.registered).
			if size, _, err := audit.OpenCheckpoint([]byte(checkpoint), key); err != nil || size != 8 {
				t.Fatalf("served checkpoint of size %d: %v", size, err)
			}

			file := filepath.Join(t.TempDir(), "audit.jsonl")
			in.cli(append([]string{"audit", "export", "--out", file}, issuer...)...)
			if out, err := verifyExport(t, file, key); err != nil || !strings.Contains(out, "OK: 8 events") {
				t.Fatalf("verify of a fresh export: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(raw), "\n")

			// One byte of event 2's leaf flipped.
			var entry audit.ExportEntry
			if err := json.Unmarshal([]byte(lines[2]), &entry); err != nil || entry.Index != 2 {
				t.Fatalf("line 3 is not event 2: %v %s", err, lines[2])
			}
			entry.Leaf[len(entry.Leaf)/2] ^= 0x01
			flipped, _ := json.Marshal(entry)
			tampered := slicesReplace(lines, 2, string(flipped)+"\n")
			wantVerifyFails(t, tampered, key, "line 3 (event 2)")

			// Two events swapped.
			swapped := slicesReplace(slicesReplace(lines, 1, lines[4]), 4, lines[1])
			wantVerifyFails(t, swapped, key, "event 1")

			// Another log's key.
			if out, err := verifyExport(t, file, strings.Replace(key, in.addr, "elsewhere", 1)); err == nil {
				t.Fatalf("verified with a wrong key: %s", out)
			}
		})
	}
}

func slicesReplace(lines []string, i int, s string) []string {
	c := append([]string{}, lines...)
	c[i] = s
	return c
}

func wantVerifyFails(t *testing.T, lines []string, key, names string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tampered.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := verifyExport(t, file, key)
	if !errors.Is(err, audit.ErrVerify) {
		t.Fatalf("verify of a tampered export: %v\n%s", err, out)
	}
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, names) {
		t.Fatalf("verify output does not name %q:\n%s", names, out)
	}
}

func TestAuditCommandsRefuseBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"audit"}, {"audit", "nope"}, {"audit", "verify"}, {"audit", "verify", "x.jsonl"},
		{"audit", "verify", "missing.jsonl", "--key", "k"}, {"audit", "verify", "x", "--database-url", "y", "--key", "k"},
		{"audit", "export"}, {"audit", "export", "--out", "x", "--since", "yesterday"},
		{"audit", "export", "--out", "x", "--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01T00:00:00Z"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
