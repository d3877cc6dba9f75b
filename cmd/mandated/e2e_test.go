package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mandated/mandated/store/storetest"
)

// instance is one mandated deployment under test: its database and data
// directory outlive the server processes started on them.
type instance struct {
	t       *testing.T
	dataDir string
	dbURL   string
	extra   []string // flags every command gets (the master key on PostgreSQL)
	addr    string
	base    string // where requests go: http://addr
	issuer  string // http://addr unless the test shares one issuer between replicas
}

func newSQLiteInstance(t *testing.T) *instance {
	dir := t.TempDir()
	return &instance{t: t, dataDir: dir, dbURL: filepath.Join(dir, "mandated.db")}
}

func newPostgresInstance(t *testing.T) *instance {
	return &instance{t: t, dataDir: t.TempDir(), dbURL: storetest.PostgresSchema(t),
		extra: []string{"--secret-key", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="}}
}

func (in *instance) flags() []string {
	return append([]string{"--database-url", in.dbURL, "--data-dir", in.dataDir, "--log-level", "warn"}, in.extra...)
}

// cli runs a subcommand in-process, as the binary would, and returns its output.
func (in *instance) cli(args ...string) string {
	in.t.Helper()
	var out, errOut bytes.Buffer
	full := append(append([]string{}, args...), in.flags()...)
	if err := run(in.t.Context(), full, &out, &errOut); err != nil {
		in.t.Fatalf("mandated %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// serve starts `mandated serve` and returns a function that stops it (like
// SIGTERM) and waits for it to finish, and the first lines it printed.
func (in *instance) serve() (stop func(), printed string) {
	in.t.Helper()
	if in.addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			in.t.Fatal(err)
		}
		in.addr = ln.Addr().String()
		ln.Close()
		in.base = "http://" + in.addr
		if in.issuer == "" {
			in.issuer = in.base
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	args := append([]string{"serve", "--addr", in.addr, "--issuer", in.issuer}, in.flags()...)
	go func() { done <- run(ctx, args, &out, io.Discard) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(in.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			in.t.Fatalf("serve exited early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			in.t.Fatalf("server did not become ready\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			in.t.Errorf("serve returned %v", err)
		}
	}, out.String()
}

func (in *instance) post(path, user, pass string, form url.Values) (int, map[string]any) {
	in.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, in.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			in.t.Fatalf("POST %s: %d, not JSON: %s", path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, m
}

func (in *instance) getJSON(rawURL string, v any) {
	in.t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		in.t.Fatalf("GET %s: %d", rawURL, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		in.t.Fatalf("GET %s: %v", rawURL, err)
	}
}

// verifyAgainstJWKS checks the token's signature with the key its kid names
// in the JWKS the metadata advertises, and returns its claims.
func (in *instance) verifyAgainstJWKS(token string) map[string]any {
	in.t.Helper()
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	in.getJSON(in.base+"/.well-known/oauth-authorization-server", &meta)
	var jwks jose.JSONWebKeySet
	in.getJSON(meta.JWKSURI, &jwks)
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		in.t.Fatalf("parse JWT: %v", err)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "at+jwt" {
		in.t.Errorf("typ = %q, want at+jwt", typ)
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		in.t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		in.t.Fatalf("JWT does not verify against the JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		in.t.Fatal(err)
	}
	return claims
}

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestQuickTourSurvivesRestart is the README's quick tour: a client made with
// the CLI gets a token, the token verifies against the JWKS, introspects
// active, is revoked and introspects inactive — and all of it survives a
// restart — on SQLite and on PostgreSQL.
func TestQuickTourSurvivesRestart(t *testing.T) {
	for name, newInstance := range map[string]func(*testing.T) *instance{
		"sqlite": newSQLiteInstance, "postgres": newPostgresInstance,
	} {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t)
			var client struct {
				ID     string `json:"client_id"`
				Secret string `json:"client_secret"`
			}
			if err := json.Unmarshal([]byte(in.cli("clients", "create", "--name", "Passerelle mail",
				"--grant", "client_credentials", "--scope", "mail.read", "--json")), &client); err != nil {
				t.Fatal(err)
			}
			if client.ID == "" || client.Secret == "" {
				t.Fatalf("clients create printed no id or secret: %+v", client)
			}
			if list := in.cli("clients", "list"); !strings.Contains(list, client.ID) {
				t.Errorf("clients list lacks %s:\n%s", client.ID, list)
			}

			stop, printed := in.serve()
			if !strings.Contains(printed, "/enrol?token=") {
				t.Errorf("first start printed no enrolment link for the first admin:\n%s", printed)
			}
			token := func() string {
				code, body := in.post("/oauth2/token", client.ID, client.Secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.read"}})
				if code != http.StatusOK {
					t.Fatalf("token: %d %v", code, body)
				}
				return body["access_token"].(string)
			}
			introspect := func(tok string) map[string]any {
				code, body := in.post("/oauth2/introspect", client.ID, client.Secret, url.Values{"token": {tok}})
				if code != http.StatusOK {
					t.Fatalf("introspect: %d %v", code, body)
				}
				return body
			}
			revoked, kept := token(), token()
			claims := in.verifyAgainstJWKS(revoked)
			if claims["client_id"] != client.ID || claims["scope"] != "mail.read" || claims["iss"] != in.issuer {
				t.Errorf("claims = %v", claims)
			}
			if got := introspect(revoked); got["active"] != true || got["client_id"] != client.ID {
				t.Fatalf("fresh token introspects %v", got)
			}
			if code, _ := in.post("/oauth2/revoke", client.ID, client.Secret, url.Values{"token": {revoked}}); code != http.StatusOK {
				t.Fatalf("revoke: %d", code)
			}
			if got := introspect(revoked); got["active"] != false || len(got) != 1 {
				t.Fatalf("revoked token introspects %v", got)
			}
			if code, body := in.post("/oauth2/token", client.ID, "wrong-secret", url.Values{"grant_type": {"client_credentials"}}); code != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Errorf("wrong secret: %d %v", code, body)
			}
			stop()

			stop, printed = in.serve()
			defer stop()
			if strings.Contains(printed, "/enrol?token=") {
				t.Errorf("second start printed another admin enrolment link")
			}
			if got := introspect(revoked); got["active"] != false {
				t.Errorf("after restart the revoked token introspects %v", got)
			}
			if got := introspect(kept); got["active"] != true {
				t.Errorf("after restart the kept token introspects %v", got)
			}
			in.verifyAgainstJWKS(kept)
		})
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"migrate", "--help"}, {"clients", "create", "--help"}, {"clients", "list", "--help"},
		{"clients", "delete", "--help"}, {"keys", "rotate", "--help"}, {"trusts", "add", "--help"}, {"trusts", "list", "--help"}, {"staff", "create", "--help"}, {"version", "--help"},
		{"audit", "--help"}, {"audit", "key", "--help"}, {"audit", "export", "--help"}, {"audit", "verify", "--help"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), args, &out, io.Discard)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "Usage: mandated") {
			t.Errorf("%v printed no usage:\n%s", args, out.String())
		}
	}
}

func TestUnknownCommandAndBadFlagsFail(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"serve", "--no-such-flag"}, {"clients", "frobnicate"}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}

func TestClientsCreateRefusesUnknownScope(t *testing.T) {
	in := newSQLiteInstance(t)
	var out bytes.Buffer
	args := append([]string{"clients", "create", "--name", "x", "--grant", "client_credentials", "--scope", "mail.everything"}, in.flags()...)
	err := run(t.Context(), args, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "mail.everything") {
		t.Fatalf("unknown scope: err = %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), fmt.Sprintf("mandated %s", version)) {
		t.Errorf("version printed %q", out.String())
	}
}

// TestRevocationOnOneReplicaReachesTheOthers runs two servers on one
// PostgreSQL database behind one issuer: a token introspected (and so cached)
// on the second replica turns inactive there as soon as the first revokes it.
func TestRevocationOnOneReplicaReachesTheOthers(t *testing.T) {
	first := newPostgresInstance(t)
	second := &instance{t: t, dataDir: t.TempDir(), dbURL: first.dbURL, extra: first.extra}
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(first.cli("clients", "create", "--name", "RS",
		"--grant", "client_credentials", "--scope", "mail.read", "--json")), &client); err != nil {
		t.Fatal(err)
	}
	stopFirst, _ := first.serve()
	defer stopFirst()
	second.issuer = first.issuer
	stopSecond, _ := second.serve()
	defer stopSecond()

	code, body := first.post("/oauth2/token", client.ID, client.Secret, url.Values{"grant_type": {"client_credentials"}})
	if code != http.StatusOK {
		t.Fatalf("token: %d %v", code, body)
	}
	token := body["access_token"].(string)
	introspectOnSecond := func() map[string]any {
		_, got := second.post("/oauth2/introspect", client.ID, client.Secret, url.Values{"token": {token}})
		return got
	}
	if got := introspectOnSecond(); got["active"] != true {
		t.Fatalf("second replica: %v", got)
	}
	if code, _ := first.post("/oauth2/revoke", client.ID, client.Secret, url.Values{"token": {token}}); code != http.StatusOK {
		t.Fatalf("revoke on the first replica: %d", code)
	}
	// The notification travels asynchronously; wait for it, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for introspectOnSecond()["active"] != false {
		if time.Now().After(deadline) {
			t.Fatal("the second replica still says active 10 s after the revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTrustsAddListDelete(t *testing.T) {
	in := newSQLiteInstance(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "idp-1", Algorithm: "ES256"})
	path := filepath.Join(t.TempDir(), "idp.jwk")
	if err := os.WriteFile(path, jwk, 0o600); err != nil {
		t.Fatal(err)
	}
	var trust struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(in.cli("trusts", "add", "--iss", "https://idp.example.fr", "--sub", "agent-42",
		"--jwk-file", path, "--scope", "mail.read", "--json")), &trust); err != nil || trust.ID == "" {
		t.Fatalf("trusts add: %v %+v", err, trust)
	}
	if list := in.cli("trusts", "list"); !strings.Contains(list, trust.ID) || !strings.Contains(list, "agent-42") {
		t.Errorf("trusts list:\n%s", list)
	}
	in.cli("trusts", "delete", trust.ID)
	if list := in.cli("trusts", "list"); strings.Contains(list, trust.ID) {
		t.Errorf("deleted trust still listed:\n%s", list)
	}
}

// serveConfig is the configuration `mandated serve` reads from args (the
// other settings at their defaults).
func serveConfig(t *testing.T, args ...string) *config {
	t.Helper()
	var cfg config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.registerCommon(fs)
	cfg.registerServe(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &cfg
}
