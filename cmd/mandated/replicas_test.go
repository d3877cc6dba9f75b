package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/store/storetest"
)

// The multi-process revocation test (issue 5, "Speed"): three `mandated
// serve` processes built from this package share one PostgreSQL database,
// one master key and one issuer. This test process opens the same database
// with openApp and plays the holder's side (the replica that serves the
// holder's phone): it approves, beats and ends mandates through the mandate
// service, exactly as the holder's pages do. Everything the mediator's
// client does goes over HTTP to replica 1: an RFC 7523 JWT bearer grant
// gives the mediator's access token, which is the actor_token of the
// RFC 8628 device authorization request; the device code is exchanged for
// the mandate's tokens at the token endpoint. A resource server introspects
// on every replica.
//
// It asserts correctness only — every replica answers active:false within
// replicaBound — and logs the latencies (docs/benchmarks.md records them).

const (
	// replicaBound is how long a replica may take to see an ended mandate
	// before the test fails: generous, this is not a timing assertion.
	replicaBound = 10 * time.Second
	// replicaRevocations is how many mandates are ended by their holder.
	replicaRevocations = 200
	// replicaLapses is how many leases are left to lapse, replicaLapseWorkers
	// at a time; replicaLease is their lease (the smallest --presence-lapse).
	replicaLapses       = 48
	replicaLapseWorkers = 8
	replicaLease        = 3 * time.Second
	// replicaPollEvery is the pause between two introspections of one replica.
	replicaPollEvery = 2 * time.Millisecond

	replicaSecretKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	replicaIdP       = "https://idp.tulle.example"
	replicaHolder    = "jeanne"
	replicaMailbox   = "jeanne.dupont@mail.example"
	replicaStaff     = "alice"
)

// TestRevocationReachesEveryReplica: ending a mandate (the holder pressed
// "Arrêter", or their lease lapsed) turns its token inactive on every
// replica, and the sweep of some replica ends a lapsed mandate.
func TestRevocationReachesEveryReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, runs three servers and a few hundred mandates (about two minutes): not with -short")
	}
	dbURL := storetest.PostgresSchema(t) // skips without PostgreSQL
	bin := buildMandated(t)
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	issuer := "http://" + addrs[0]
	ctx := t.Context()

	// The holder's side: this process, with a lease long enough that only
	// the bus can make a token inactive within replicaBound.
	a, err := openApp(ctx, serveConfig(t, "--database-url", dbURL, "--data-dir", t.TempDir(),
		"--secret-key", replicaSecretKey, "--issuer", issuer, "--log-level", "warn",
		"--presence-lapse", "1m", "--presence-heartbeat", "5s"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The same service with the shortest lease, for the lapse path.
	shortLease, err := mandate.NewService(mandate.Deps{
		Store: a.store, Dir: people.NewDirectory(a.store), Revoker: a.authz,
		Watchers: busWatchers{bus: a.bus, log: a.log}, Recorder: audit.MandateRecorder(a.audit),
		Clock: a.clock, Log: a.log,
	}, mandate.ServiceConfig{LeaseLapse: replicaLease})
	must(err)

	w := seedReplicaWorld(t, a)

	replicas := make([]*replica, len(addrs))
	for i, addr := range addrs {
		replicas[i] = startReplica(t, bin, fmt.Sprintf("replica %d", i+1), addr,
			"--issuer", issuer, "--database-url", dbURL, "--data-dir", t.TempDir(), "--secret-key", replicaSecretKey,
			"--log-level", "warn", "--presence-lapse", replicaLease.String(), "--presence-heartbeat", "1s", "--mandate-sweep", "1s")
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	mediator := w.mediator(hc, replicas[0], issuer)
	rsClient := w.resourceServer(hc)

	// One warm-up mandate, not counted: every replica's bus is listening
	// once it has seen an end.
	if _, err := revokeOnce(ctx, a.mandates, mediator, rsClient, replicas); err != nil {
		t.Fatalf("warm-up: %v%s", err, replicaLogs(replicas))
	}

	t.Run("holder ends", func(t *testing.T) {
		var perReplica [3][]time.Duration
		var all, stillActive, endCalls, afterEnd []time.Duration
		for i := range replicaRevocations {
			r, err := revokeOnce(ctx, a.mandates, mediator, rsClient, replicas)
			if err != nil {
				t.Fatalf("mandate %d: %v%s", i+1, err, replicaLogs(replicas))
			}
			for j, d := range r.seen {
				perReplica[j] = append(perReplica[j], d.by)
			}
			every := everywhere(r.seen)
			all, stillActive = append(all, every.by), append(stillActive, every.after)
			endCalls = append(endCalls, r.endCall)
			afterEnd = append(afterEnd, max(every.by-r.endCall, 0))
		}
		t.Logf("holder ends → active:false on every replica, %d mandates: %s", len(all), percentiles(all))
		t.Logf("  last poll answered active was sent (lower bound): %s", percentiles(stillActive))
		for j, ds := range perReplica {
			t.Logf("  on %s: %s", replicas[j].name, percentiles(ds))
		}
		t.Logf("  End itself (audit record, state, grant revocation, two NOTIFYs): %s", percentiles(endCalls))
		t.Logf("  from End's return to active:false everywhere (0 when before): %s", percentiles(afterEnd))
	})

	t.Run("lease lapses", func(t *testing.T) {
		type result struct {
			inactive seen          // lapse → active:false on every replica
			ended    time.Duration // lapse → ended by a replica's sweep
			err      error
		}
		jobs := make(chan int)
		results := make(chan result, replicaLapses)
		var wg sync.WaitGroup
		var heartbeatSeen atomic.Int64
		for range replicaLapseWorkers {
			wg.Go(func() {
				for range jobs {
					inactive, ended, seen, err := lapseOnce(ctx, shortLease, a, mediator, rsClient, replicas)
					if seen {
						heartbeatSeen.Add(1)
					}
					results <- result{inactive, ended, err}
				}
			})
		}
		// Staggered, so that the polls near each lapse rarely overlap.
		for i := range replicaLapses {
			jobs <- i
			time.Sleep(replicaLease / replicaLapseWorkers / 2)
		}
		close(jobs)
		wg.Wait()
		close(results)
		var inactive, stillActive, ended []time.Duration
		for r := range results {
			if r.err != nil {
				t.Errorf("%v%s", r.err, replicaLogs(replicas))
				continue
			}
			inactive, stillActive = append(inactive, r.inactive.by), append(stillActive, r.inactive.after)
			ended = append(ended, r.ended)
		}
		if heartbeatSeen.Load() == 0 {
			t.Error("no heartbeat was ever seen by the replicas (each check came too late)")
		}
		t.Logf("lease lapses → active:false on every replica, %d leases: %s", len(inactive), percentiles(inactive))
		t.Logf("  last poll answered active was sent (lower bound): %s", percentiles(stillActive))
		t.Logf("lease lapses → mandate ended by a replica's sweep (every 1s): %s", percentiles(ended))
		t.Logf("  (%d of %d heartbeats checked on every replica before the lapse)", heartbeatSeen.Load(), replicaLapses)
	})
}

// replicaWorld is what the multi-process tests set up in the database:
// the structure "tulle", its mediator alice, the holder jeanne, a mail
// server (client credentials; the audience of the tablet's tokens), the
// mediator's tablet (device code and RFC 7523 JWT bearer grants) and the
// structure's identity provider, trusted to assert alice.
type replicaWorld struct {
	rsID, rsSecret         string
	tabletID, tabletSecret string
	idpKey                 *ecdsa.PrivateKey
}

func seedReplicaWorld(t *testing.T, a *app) replicaWorld {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := a.clock.Now()
	must(a.store.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "France Services Tulle", CreatedAt: now}))
	must(a.store.CreateStaff(ctx, people.Staff{ID: replicaStaff, Email: "alice@tulle.example", DisplayName: "Alice Martin",
		Role: people.RoleMediator, StructureID: "tulle", Status: people.StaffActive, CreatedAt: now}))
	must(a.store.CreateHolder(ctx, people.Holder{ID: replicaHolder, Mailbox: replicaMailbox, DisplayName: "Jeanne Dupont",
		Email: "jeanne@perso.example", Language: "fr", CreatedAt: now}, "tulle"))
	rs, rsSecret, err := a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Serveur mail",
		GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"audit.write"}})
	must(err)
	tablet, tabletSecret, err := a.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Tablette de l'accueil",
		GrantTypes: []string{authz.GrantTypeDeviceCode, authz.GrantJWTBearer},
		Scopes:     []string{"mail.read", "mail.send"}, Audience: []string{rs.ID}})
	must(err)
	idpKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	pub, err := json.Marshal(jose.JSONWebKey{Key: &idpKey.PublicKey, KeyID: "idp-1", Algorithm: "ES256"})
	must(err)
	_, err = a.authz.RegisterTrust(ctx, authz.TrustSpec{Issuer: replicaIdP, Subject: people.StaffSubject(replicaStaff),
		JWK: pub, Scopes: []string{"mail.read"}})
	must(err)
	return replicaWorld{rsID: rs.ID, rsSecret: rsSecret, tabletID: tablet.ID, tabletSecret: tabletSecret, idpKey: idpKey}
}

// mediator is the tablet's client, talking to r.
func (w replicaWorld) mediator(hc *http.Client, r *replica, issuer string) *deviceClient {
	return &deviceClient{hc: hc, replica: r, issuer: issuer, id: w.tabletID, secret: w.tabletSecret, idpKey: w.idpKey}
}

// resourceServer is the mail server's client.
func (w replicaWorld) resourceServer(hc *http.Client) resourceServer {
	return resourceServer{hc: hc, id: w.rsID, secret: w.rsSecret}
}

// replica is one `mandated serve` process.
type replica struct {
	name string
	base string
	out  *syncBuffer
}

// replicaLogs returns what the replicas printed, for a failure message.
func replicaLogs(replicas []*replica) string {
	var b strings.Builder
	for _, r := range replicas {
		fmt.Fprintf(&b, "\n--- %s printed:\n%s", r.name, r.out.String())
	}
	return b.String()
}

// buildMandated builds this package's binary once, into a temporary
// directory, with the race detector when this test runs with it (the
// packages are then in the build cache already, and a race in a replica
// fails the test when it exits).
func buildMandated(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mandated")
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
				t.Log("replicas built with -race: their latencies are not the figures to record")
			}
		}
	}
	cmd := exec.Command(goTool, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startReplica runs `mandated serve` on addr until the test ends (then
// SIGTERM, and SIGKILL after 20 s), and waits until it answers /readyz.
func startReplica(t *testing.T, bin, name, addr string, flags ...string) *replica {
	t.Helper()
	r := &replica{name: name, base: "http://" + addr, out: &syncBuffer{}}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr}, flags...)...)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited with %v\n%s", name, err, r.out.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 20 s of SIGTERM", name)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("%s exited early: %v\n%s", name, err, r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60 s\n%s", name, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postForm posts form with HTTP Basic client authentication and decodes
// the JSON answer.
func postForm(hc *http.Client, rawURL, id, secret string, form url.Values) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: %d, not JSON: %w", rawURL, resp.StatusCode, err)
	}
	return resp.StatusCode, body, nil
}

// deviceClient is the mediator's tablet: a confidential client that gets
// the mediator's own token from the structure's identity provider (JWT
// bearer grant) and opens assisted sessions with the device flow, all on
// one replica.
type deviceClient struct {
	hc         *http.Client
	replica    *replica
	issuer     string
	id, secret string
	idpKey     *ecdsa.PrivateKey

	mu       sync.Mutex
	jti      int
	staffTok string
	staffAt  time.Time
}

// actorToken returns the mediator's access token, renewed every minute
// (tokens live 5 minutes).
func (c *deviceClient) actorToken() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staffTok != "" && time.Since(c.staffAt) < time.Minute {
		return c.staffTok, nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: c.idpKey, KeyID: "idp-1"}}, nil)
	if err != nil {
		return "", err
	}
	c.jti++
	now := time.Now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: replicaIdP, Subject: people.StaffSubject(replicaStaff),
		Audience: jwt.Audience{c.issuer}, ID: "assertion-" + strconv.Itoa(c.jti),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
	if err != nil {
		return "", err
	}
	code, body, err := postForm(c.hc, c.replica.base+authz.PathToken, c.id, c.secret,
		url.Values{"grant_type": {authz.GrantJWTBearer}, "assertion": {assertion}, "scope": {"mail.read"}})
	if err != nil {
		return "", err
	}
	tok, _ := body["access_token"].(string)
	if code != http.StatusOK || tok == "" {
		return "", fmt.Errorf("JWT bearer grant: %d %v", code, body)
	}
	c.staffTok, c.staffAt = tok, now
	return tok, nil
}

// session opens an assisted session: the device authorization request
// (HTTP), the holder's approval through svc (in this process, as the
// holder's page does), and the device code exchange (HTTP). It returns
// the access token and the mandate.
func (c *deviceClient) session(ctx context.Context, svc *mandate.Service) (string, mandate.Mandate, error) {
	actor, err := c.actorToken()
	if err != nil {
		return "", mandate.Mandate{}, err
	}
	code, da, err := postForm(c.hc, c.replica.base+authz.PathDeviceAuthorization, c.id, c.secret, url.Values{
		"scope": {"mail.read mail.send"}, "holder_hint": {replicaMailbox}, "duration": {"1800"},
		"purpose": {"Dossier CAF"}, "purpose_category": {"social"},
		"actor_token": {actor}, "actor_token_type": {authz.TokenTypeAccessToken},
	})
	if err != nil {
		return "", mandate.Mandate{}, err
	}
	deviceCode, _ := da["device_code"].(string)
	mandateID, _ := da["mandate_id"].(string)
	if code != http.StatusOK || deviceCode == "" || mandateID == "" {
		return "", mandate.Mandate{}, fmt.Errorf("device authorization: %d %v", code, da)
	}
	m, err := svc.Approve(ctx, replicaHolder, mandateID, mandate.Approval{})
	if err != nil {
		return "", mandate.Mandate{}, fmt.Errorf("approve: %w", err)
	}
	code, tokens, err := postForm(c.hc, c.replica.base+authz.PathToken, c.id, c.secret,
		url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "device_code": {deviceCode}})
	if err != nil {
		return "", mandate.Mandate{}, err
	}
	tok, _ := tokens["access_token"].(string)
	if code != http.StatusOK || tok == "" {
		return "", mandate.Mandate{}, fmt.Errorf("device code exchange: %d %v", code, tokens)
	}
	return tok, m, nil
}

// resourceServer is the mail server: it introspects mandate tokens.
type resourceServer struct {
	hc         *http.Client
	id, secret string
}

// introspect answers whether tok is active on r, and checks that an active
// answer names the mandate, the actor and the mailbox, and that an
// inactive one says nothing else.
func (s resourceServer) introspect(r *replica, tok, mandateID string) (bool, error) {
	code, body, err := postForm(s.hc, r.base+authz.PathIntrospect, s.id, s.secret, url.Values{"token": {tok}})
	if err != nil {
		return false, fmt.Errorf("%s: %w", r.name, err)
	}
	if code != http.StatusOK {
		return false, fmt.Errorf("%s: introspection answered %d %v", r.name, code, body)
	}
	switch body["active"] {
	case true:
		if body["mandate_id"] != mandateID || body["act_sub"] != people.StaffSubject(replicaStaff) ||
			body["username"] != replicaMailbox || body["sub"] != people.HolderSubject(replicaHolder) {
			return true, fmt.Errorf("%s: active token introspects %v", r.name, body)
		}
		return true, nil
	case false:
		if len(body) != 1 {
			return false, fmt.Errorf("%s: inactive token introspects %v", r.name, body)
		}
		return false, nil
	}
	return false, fmt.Errorf("%s: introspection answered %v", r.name, body)
}

// seen is what polling one replica told about an end: its first answer
// active:false came back by `by` after the end, and the last poll it
// answered active was sent `after` the end (0 when none after the end was).
// The replica turned inactive in between: by is what the figures use (an
// upper bound that includes the poller's own delays), after a lower bound.
type seen struct{ by, after time.Duration }

// everywhere is when every replica had turned inactive.
func everywhere(ss []seen) seen {
	var e seen
	for _, s := range ss {
		e.by, e.after = max(e.by, s.by), max(e.after, s.after)
	}
	return e
}

// awaitInactive introspects tok on r every replicaPollEvery until it is
// inactive, and says when, relative to from; an error after from +
// replicaBound.
func (s resourceServer) awaitInactive(r *replica, tok, mandateID string, from time.Time) (seen, error) {
	var lastActive time.Time
	for {
		sent := time.Now()
		active, err := s.introspect(r, tok, mandateID)
		at := time.Now()
		if err != nil {
			return seen{}, err
		}
		if !active {
			return seen{by: at.Sub(from), after: max(lastActive.Sub(from), 0)}, nil
		}
		lastActive = sent
		if at.Sub(from) > replicaBound {
			return seen{}, fmt.Errorf("%s still answers active %s after the end", r.name, at.Sub(from).Round(time.Millisecond))
		}
		time.Sleep(replicaPollEvery)
	}
}

// awaitEverywhere runs awaitInactive on every replica at once.
func (s resourceServer) awaitEverywhere(replicas []*replica, tok, mandateID string, from time.Time) ([]seen, error) {
	got := make([]seen, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() { got[i], errs[i] = s.awaitInactive(r, tok, mandateID, from) })
	}
	wg.Wait()
	return got, errors.Join(errs...)
}

type revocation struct {
	seen    []seen        // per replica, from "Arrêter"
	endCall time.Duration // how long End took in this process
}

// revokeOnce opens a session, checks its token active on every replica
// (which caches it there), ends it as the holder pressing "Arrêter", and
// measures until every replica answers active:false.
func revokeOnce(ctx context.Context, svc *mandate.Service, c *deviceClient, rs resourceServer, replicas []*replica) (revocation, error) {
	tok, m, err := c.session(ctx, svc)
	if err != nil {
		return revocation{}, err
	}
	for _, r := range replicas {
		if active, err := rs.introspect(r, tok, m.ID); err != nil || !active {
			return revocation{}, fmt.Errorf("before the end, %s: active=%v, %v", r.name, active, err)
		}
	}
	type awaited struct {
		seen []seen
		err  error
	}
	done := make(chan awaited, 1)
	pressed := time.Now()
	go func() {
		d, err := rs.awaitEverywhere(replicas, tok, m.ID, pressed)
		done <- awaited{d, err}
	}()
	_, endErr := svc.End(ctx, m.ID, mandate.EndedByHolder, mandate.Actor{Kind: mandate.ActorHolder, ID: replicaHolder}, "")
	endCall := time.Since(pressed)
	got := <-done
	if endErr != nil {
		return revocation{}, fmt.Errorf("end: %w", endErr)
	}
	if got.err != nil {
		return revocation{}, got.err
	}
	return revocation{seen: got.seen, endCall: endCall}, nil
}

// lapseOnce opens a session with a replicaLease lease, beats once, checks
// (when there is time left) that every replica saw the heartbeat, then
// stops beating and measures from the lapse until every replica answers
// active:false, and until a replica's sweep ended the mandate.
func lapseOnce(ctx context.Context, svc *mandate.Service, a *app, c *deviceClient, rs resourceServer, replicas []*replica) (inactive seen, ended time.Duration, heartbeatSeen bool, err error) {
	tok, m, err := c.session(ctx, svc)
	if err != nil {
		return seen{}, 0, false, err
	}
	for _, r := range replicas {
		if active, err := rs.introspect(r, tok, m.ID); err != nil || !active {
			return seen{}, 0, false, fmt.Errorf("after approval, %s: active=%v, %v", r.name, active, err)
		}
	}
	time.Sleep(time.Until(m.LeaseUntil.Add(-replicaLease / 2)))
	lapse, err := svc.Heartbeat(ctx, replicaHolder, m.ID)
	if err != nil {
		return seen{}, 0, false, fmt.Errorf("heartbeat: %w", err)
	}
	// Past the first lease, the replicas' cached copies look lapsed: they
	// read the lease again and see the heartbeat.
	time.Sleep(time.Until(m.LeaseUntil.Add(100 * time.Millisecond)))
	if time.Until(lapse) > replicaLease/4 {
		heartbeatSeen = true
		for _, r := range replicas {
			active, err := rs.introspect(r, tok, m.ID)
			if err != nil {
				return seen{}, 0, false, err
			}
			if !active && time.Until(lapse) > 0 {
				return seen{}, 0, false, fmt.Errorf("%s answers inactive after a heartbeat, before the lease's new end", r.name)
			}
		}
	}
	// No heartbeat any more: the lease lapses at lapse.
	time.Sleep(time.Until(lapse.Add(-20 * time.Millisecond)))
	got, err := rs.awaitEverywhere(replicas, tok, m.ID, lapse)
	if err != nil {
		return seen{}, 0, heartbeatSeen, err
	}
	for {
		cur, err := a.store.GetMandate(ctx, m.ID)
		if err != nil {
			return seen{}, 0, heartbeatSeen, err
		}
		if cur.State == mandate.StateEnded {
			if cur.EndReason != mandate.EndedByPresence {
				return seen{}, 0, heartbeatSeen, fmt.Errorf("mandate ended for %s, want %s", cur.EndReason, mandate.EndedByPresence)
			}
			ended = time.Since(lapse)
			break
		}
		if time.Since(lapse) > replicaBound {
			return seen{}, 0, heartbeatSeen, fmt.Errorf("mandate %s still %s %s after its lease lapsed: no replica swept it", m.ID, cur.State, time.Since(lapse).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return everywhere(got), ended, heartbeatSeen, nil
}

// percentiles formats the p50, p95, p99 and max of ds (nearest rank).
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no sample"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return fmt.Sprintf("n=%d p50=%s p95=%s p99=%s max=%s", len(s), ms(at(0.50)), ms(at(0.95)), ms(at(0.99)), ms(s[len(s)-1]))
}
