package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/store/storetest"
)

// TestLoadIntrospection is the load run of docs/benchmarks.md ("Mandates
// and presence", wrk): one `mandated serve` on PostgreSQL, a live mandate
// token whose holder beats every 5 s, and wrk (bench/introspect.lua, 2
// threads, 32 connections, 15 s a run) introspecting it as the mail server
// does, then a plain client-credentials token, in turn. It logs wrk's
// figures and the load average; it asserts only that the mandate token is
// still active after each run. Skipped unless MANDATED_BENCH_WRK is set
// (it needs PostgreSQL and wrk); MANDATED_BENCH_WRK_LOG_LEVEL sets the
// server's log level (warn).
//
//	MANDATED_BENCH_WRK=1 MANDATED_TEST_DATABASE_URL=… go test -run TestLoadIntrospection -v ./cmd/mandated/
func TestLoadIntrospection(t *testing.T) {
	if os.Getenv("MANDATED_BENCH_WRK") == "" {
		t.Skip("a load run: set MANDATED_BENCH_WRK=1 (needs PostgreSQL and wrk)")
	}
	wrkPath, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk is not installed (apt-get install wrk)")
	}
	dbURL := storetest.PostgresSchema(t)
	bin := buildMandated(t)
	addr := freeAddr(t)
	issuer := "http://" + addr
	ctx := t.Context()
	a, err := openApp(ctx, serveConfig(t, "--database-url", dbURL, "--data-dir", t.TempDir(),
		"--secret-key", replicaSecretKey, "--issuer", issuer, "--log-level", "warn",
		"--presence-lapse", "15s", "--presence-heartbeat", "5s"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	w := seedReplicaWorld(t, a)
	level := os.Getenv("MANDATED_BENCH_WRK_LOG_LEVEL")
	if level == "" {
		level = "warn"
	}
	r := startReplica(t, bin, "server", addr, "--issuer", issuer, "--database-url", dbURL, "--data-dir", t.TempDir(),
		"--secret-key", replicaSecretKey, "--log-level", level, "--presence-lapse", "15s", "--presence-heartbeat", "5s",
		"--mandate-sweep", "1s", "--access-token-ttl", "1h")
	hc := &http.Client{Timeout: 10 * time.Second}
	mandateToken, m, err := w.mediator(hc, r, issuer).session(ctx, a.mandates)
	if err != nil {
		t.Fatal(err)
	}
	rs := w.resourceServer(hc)
	if active, err := rs.introspect(r, mandateToken, m.ID); err != nil || !active {
		t.Fatalf("the mandate token is not active: %v %v", active, err)
	}
	status, body, err := postForm(hc, r.base+authz.PathToken, w.rsID, w.rsSecret,
		url.Values{"grant_type": {"client_credentials"}, "scope": {"audit.write"}})
	plain, _ := body["access_token"].(string)
	if err != nil || status != http.StatusOK || plain == "" {
		t.Fatalf("client credentials: %d %v %v", status, body, err)
	}

	// The holder's phone beats while wrk runs.
	stop, beating := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beating)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := a.mandates.Heartbeat(ctx, replicaHolder, m.ID); err != nil {
					t.Errorf("heartbeat: %v", err)
				}
			}
		}
	}()
	defer func() { close(stop); <-beating }()

	auth := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(w.rsID) + ":" + url.QueryEscape(w.rsSecret)))
	wrk := func(token, duration, conns string) string {
		cmd := exec.Command(wrkPath, "-t2", "-c"+conns, "-d"+duration, "--latency", "-s", "../../bench/introspect.lua", r.base)
		cmd.Env = append(os.Environ(), "TOKEN="+token, "AUTH="+auth)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		return string(out)
	}
	loadavg := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
		return "?"
	}
	wrk(mandateToken, "3s", "8") // warm-up
	for _, kind := range []string{"mandate", "plain", "mandate", "plain", "mandate", "plain"} {
		token := mandateToken
		if kind == "plain" {
			token = plain
		}
		before := loadavg()
		out := wrk(token, "15s", "32")
		var keep []string
		for _, l := range strings.Split(out, "\n") {
			for _, k := range []string{"Requests/sec", " 50%", " 99%", "Non-2xx", "Socket errors", "requests in"} {
				if strings.Contains(l, k) {
					keep = append(keep, strings.TrimSpace(l))
				}
			}
		}
		t.Logf("%s token (log %s, 32 conns, 15 s), load %s → %s: %s", kind, level, before, loadavg(), strings.Join(keep, " | "))
		if active, err := rs.introspect(r, mandateToken, m.ID); err != nil || !active {
			t.Fatalf("the mandate token is not active after the run: %v %v", active, err)
		}
	}
}
