package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/authz/authztest"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// eventsHubWatchers hands the service's "mandate changed" to the hub, as
// the revocation bus does in the binary.
type eventsHubWatchers struct{ hub *mandate.Hub }

func (w eventsHubWatchers) MandateChanged(_ context.Context, id string) { w.hub.Notify(id) }

// eventsEnv is the real server (api.NewEcho, OAuth endpoints, the event
// stream) over a real SQLite store, mandate service, hub and audit log.
type eventsEnv struct {
	*harness
	svc     *mandate.Service
	store   *store.Store
	hub     *mandate.Hub
	streams *api.EventStreams
	log     *storetest.AuditLog
	holder  people.Holder
	staff   string
}

const eventsMailbox = "jeanne@mail.example"

func newEventsEnv(t *testing.T) *eventsEnv {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{}
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock})
	log := storetest.StartAuditLog(t, st, clock)
	holder := seedMairie(t, st, clock.Now(), eventsMailbox)
	quiet := slog.New(slog.DiscardHandler)
	hub := mandate.NewHub()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	flow := authztest.NewDeviceFlow(t, st, log, clock, authz.Config{Issuer: issuer}, eventsHubWatchers{hub})
	svc, srv, keys := flow.Mandates, flow.Server, flow.Keys
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet})
	api.RegisterOAuth(e, srv, testPages{})
	streams := api.RegisterEvents(e, api.EventsDeps{Tokens: srv, Mandates: svc, Hub: hub, Clock: clock,
		KeepAlive: 50 * time.Millisecond, Logger: quiet})
	ts.Config.Handler = e
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(streams.Shutdown)
	h := &harness{t: t, ctx: ctx, st: st, srv: srv, keys: keys, clock: clock, echo: e, ts: ts, issuer: issuer}
	return &eventsEnv{harness: h, svc: svc, store: st, hub: hub, streams: streams, log: log, holder: holder, staff: "alice"}
}

// serviceToken gets a client_credentials access token.
func (env *eventsEnv) serviceToken(id, secret, scope string) string {
	env.t.Helper()
	r := env.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		env.t.Fatalf("client_credentials %s: %d %s", scope, r.status, r.raw)
	}
	return r.str("access_token")
}

// requested is a session requested by alice for jeanne through client.
func (env *eventsEnv) requested(client string) mandate.Mandate {
	env.t.Helper()
	m, err := env.svc.Request(env.ctx, mandate.Request{
		Kind: mandate.KindSession, StructureID: "mairie", HolderID: env.holder.ID, DelegateID: env.staff, ClientID: client,
		Scopes: []string{"mail.read"}, Purpose: "Dossier CAF", PurposeCategory: mandate.PurposeSocial, Duration: 30 * time.Minute,
	})
	if err != nil {
		env.t.Fatal(err)
	}
	return m
}

// active is a session approved by the holder whose first tokens were issued.
func (env *eventsEnv) active(client string) mandate.Mandate {
	env.t.Helper()
	m := env.requested(client)
	if _, err := env.svc.Approve(env.ctx, env.holder.ID, m.ID, mandate.Approval{}); err != nil {
		env.t.Fatal(err)
	}
	m, err := env.svc.Activate(env.ctx, m.ID, "grant-"+m.ID, "")
	if err != nil {
		env.t.Fatal(err)
	}
	return m
}

func (env *eventsEnv) end(id string, reason mandate.EndReason, by mandate.Actor) mandate.Mandate {
	env.t.Helper()
	m, err := env.svc.End(env.ctx, id, reason, by, "")
	if err != nil {
		env.t.Fatal(err)
	}
	return m
}

var (
	eventsByHolder = mandate.Actor{Kind: mandate.ActorHolder, ID: "jeanne"}
	eventsByAlice  = mandate.Actor{Kind: mandate.ActorStaff, ID: "alice"}
)

// sseEvent is one dispatched server-sent event.
type sseEvent struct{ name, data string }

// eventsStream is a subscriber's open GET /api/events.
type eventsStream struct {
	t      testing.TB
	events chan sseEvent
}

// open subscribes with token (query is "" or "?since=…"); the response
// has arrived, so the server has subscribed to the hub.
func (env *eventsEnv) open(token, query string) *eventsStream {
	env.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.ts.URL+api.PathEvents+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := env.ts.Client().Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	env.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		raw, _ := io.ReadAll(resp.Body)
		env.t.Fatalf("GET %s: %d %v %s", api.PathEvents, resp.StatusCode, resp.Header, raw)
	}
	s := &eventsStream{t: env.t, events: make(chan sseEvent, 100)}
	go func() {
		defer close(s.events)
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.data != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next is the stream's next event (the test fails after 10 s without one).
func (s *eventsStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10 s")
	}
	return sseEvent{}
}

// ended waits for the server to end the stream, reading what is left.
func (s *eventsStream) ended() {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return
			}
			s.t.Errorf("event before the end: %+v", ev)
		case <-deadline:
			s.t.Fatal("the stream did not end within 10 s")
		}
	}
}

// set verifies ev as a SET against the JWKS served over HTTP and returns
// its claims.
func (env *eventsEnv) set(ev sseEvent) map[string]any {
	env.t.Helper()
	if ev.name != "secevent" {
		env.t.Fatalf("event %q, want secevent", ev.name)
	}
	resp, err := env.ts.Client().Get(env.ts.URL + authz.PathJWKS)
	if err != nil {
		env.t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		env.t.Fatal(err)
	}
	jws, err := jose.ParseSigned(ev.data, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		env.t.Fatalf("not a JWS: %v", err)
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != "secevent+jwt" {
		env.t.Fatalf("typ = %v", h.ExtraHeaders[jose.HeaderType])
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		env.t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		env.t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		env.t.Fatal(err)
	}
	return claims
}

// sessionID is the mandate a SET is about (sub_id's session, or sub_id).
func sessionID(claims map[string]any) string {
	sub, _ := claims["sub_id"].(map[string]any)
	if s, ok := sub["session"].(map[string]any); ok {
		sub = s
	}
	id, _ := sub["id"].(string)
	return id
}

func TestEventStreamRefusals(t *testing.T) {
	env := newEventsEnv(t)
	cc := []string{authz.GrantClientCredentials}
	mail, mailSecret := env.register(authz.ClientSpec{Name: "Mail", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead, "audit.write"}})
	get := func(token, query string) reply {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, env.ts.URL+api.PathEvents+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return env.do(req)
	}
	tests := []struct {
		name, token, query string
		status             int
		authenticate       string
	}{
		{"no token", "", "", http.StatusUnauthorized, `Bearer realm="mandated", scope="events.read"`},
		{"not a token", "nope", "", http.StatusUnauthorized, `Bearer realm="mandated", error="invalid_token", error_description="The access token is not active."`},
		{"without events.read", env.serviceToken(mail.ID, mailSecret, "audit.write"), "", http.StatusForbidden,
			`Bearer realm="mandated", error="insufficient_scope", scope="events.read", error_description="Scope events.read by client_credentials is required."`},
		{"since not a date", env.serviceToken(mail.ID, mailSecret, authz.ScopeEventsRead), "?since=yesterday", http.StatusBadRequest, ""},
		{"since too old", env.serviceToken(mail.ID, mailSecret, authz.ScopeEventsRead),
			"?since=" + url.QueryEscape(env.clock.Now().Add(-8*24*time.Hour).Format(time.RFC3339)), http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(tt.token, tt.query)
			if r.status != tt.status || r.header.Get("WWW-Authenticate") != tt.authenticate ||
				r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %q %s %s", r.status, r.header.Get("WWW-Authenticate"), r.header.Get("Content-Type"), r.raw)
			}
		})
	}
	if n := env.hub.AllFollowers(); n != 0 {
		t.Errorf("refused requests left %d hub subscriptions", n)
	}
}

func TestEventStreamTellsResourceServersOfEndings(t *testing.T) {
	env := newEventsEnv(t)
	cc := []string{"client_credentials"}
	mail, mailSecret := env.register(authz.ClientSpec{Name: "Mail server", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead}})
	other, otherSecret := env.register(authz.ClientSpec{Name: "Other mail server", GrantTypes: cc, Scopes: []string{authz.ScopeEventsRead}})
	device := []string{authz.GrantTypeDeviceCode, authz.GrantRefreshToken}
	tablet, _ := env.register(authz.ClientSpec{Name: "Tablet", GrantTypes: device, Scopes: []string{"mail.read"}, Audience: []string{mail.ID}})
	kiosk, _ := env.register(authz.ClientSpec{Name: "Kiosk", GrantTypes: device, Scopes: []string{"mail.read"}, Audience: []string{other.ID}})
	mailToken := env.serviceToken(mail.ID, mailSecret, authz.ScopeEventsRead)
	mailS := env.open(mailToken, "")
	otherS := env.open(env.serviceToken(other.ID, otherSecret, authz.ScopeEventsRead), "")
	t0 := env.clock.Now()

	// A, through the tablet, ends: the mail server (the tablet's audience)
	// is told, with the holder's mailbox, in a SET the JWKS verifies.
	a := env.active(tablet.ID)
	a = env.end(a.ID, mandate.EndedByHolder, eventsByHolder)
	claims := env.set(mailS.next())
	if claims["iss"] != env.issuer || claims["aud"] != mail.ID || claims["txn"] != "ended:"+a.ID ||
		claims["sub"] != nil || claims["exp"] != nil {
		t.Fatalf("claims = %v", claims)
	}
	sub, _ := json.Marshal(claims["sub_id"])
	if want := `{"format":"complex","session":{"format":"opaque","id":"` + a.ID + `"},"user":{"email":"` + eventsMailbox + `","format":"email"}}`; string(sub) != want {
		t.Fatalf("sub_id = %s, want %s", sub, want)
	}
	ev, _ := claims["events"].(map[string]any)[authz.EventTypeSessionRevoked].(map[string]any)
	if ev["initiating_entity"] != "user" || ev["event_timestamp"] != float64(a.EndedAt.Unix()) || ev["end_reason"] != "holder" ||
		ev["reason_user"].(map[string]any)["fr"] != "La personne a arrêté la session." {
		t.Fatalf("event = %v", ev)
	}

	// B, through the kiosk, ends: the other server's first event is B —
	// it was not told of A, which ended before.
	b := env.active(kiosk.ID)
	env.end(b.ID, mandate.EndedByDelegate, eventsByAlice)
	if got := sessionID(env.set(otherS.next())); got != b.ID {
		t.Fatalf("the other server's first event is about %s, want B %s (A is %s)", got, b.ID, a.ID)
	}
	// C, a request through the tablet cancelled before any token: the mail
	// server's next event is C — nothing about B.
	c := env.requested(tablet.ID)
	env.end(c.ID, mandate.EndedByDelegate, eventsByAlice)
	if got := sessionID(env.set(mailS.next())); got != c.ID {
		t.Fatalf("the mail server's second event is about %s, want C %s (B is %s)", got, c.ID, b.ID)
	}

	// Reconnecting with ?since= replays the endings since then (A and C,
	// earliest first, not B), then follows live endings, each once.
	since := url.QueryEscape(t0.Format(time.RFC3339Nano))
	replayS := env.open(mailToken, "?since="+since)
	for i, want := range []string{a.ID, c.ID} {
		if got := sessionID(env.set(replayS.next())); got != want {
			t.Fatalf("replayed event %d is about %s, want %s", i, got, want)
		}
	}
	// D ends by presence loss, found by the sweep.
	d := env.active(tablet.ID)
	env.clock.Advance(time.Minute)
	if n, err := env.svc.Sweep(env.ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	for _, s := range []*eventsStream{mailS, replayS} {
		claims := env.set(s.next())
		ev, _ := claims["events"].(map[string]any)[authz.EventTypeSessionRevoked].(map[string]any)
		if sessionID(claims) != d.ID || ev["end_reason"] != "presence_lost" || ev["initiating_entity"] != "policy" {
			t.Fatalf("after the sweep: %v", claims)
		}
	}

	// The bus reconnects (NotifyAll): each stream re-reads the endings it
	// may have missed. E ended on a replica whose notification was lost
	// (a service that tells no hub); the resync finds it, and sends
	// nothing twice: the next event of each stream is E, then F.
	other2, err := mandate.NewService(mandate.Deps{Store: env.store, Dir: people.NewDirectory(env.store), Revoker: &deviceRevoker{env.srv},
		Recorder: audit.MandateRecorder(env.log.Log), Clock: env.clock}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := env.requested(tablet.ID)
	if _, err := other2.End(env.ctx, e.ID, mandate.EndedByDelegate, eventsByAlice, ""); err != nil {
		t.Fatal(err)
	}
	env.hub.NotifyAll()
	f := env.requested(tablet.ID)
	env.end(f.ID, mandate.EndedByDelegate, eventsByAlice)
	for _, s := range []*eventsStream{mailS, replayS} {
		for _, want := range []string{e.ID, f.ID} {
			if got := sessionID(env.set(s.next())); got != want {
				t.Fatalf("after the resync: event about %s, want %s (e %s, f %s)", got, want, e.ID, f.ID)
			}
		}
	}

	// Revoking the subscriber's token ends its streams (checked at each
	// keep-alive); shutting down ends the others.
	if r := env.post(authz.PathRevoke, url.Values{"token": {mailToken}}, mail.ID, mailSecret); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	mailS.ended()
	replayS.ended()
	env.streams.Shutdown()
	otherS.ended()
	for deadline := time.Now().Add(10 * time.Second); env.hub.AllFollowers() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d hub subscriptions left after every stream ended", env.hub.AllFollowers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventsReplica is one server of several on one PostgreSQL database: its
// own revocation bus (LISTEN/NOTIFY), hub, mandate service, authorization
// server and event stream, wired as cmd/mandated wires them.
type eventsReplica struct {
	svc *mandate.Service
	srv *authz.Server
	ts  *httptest.Server
}

func newEventsReplica(t *testing.T, st *store.Store, rec *storetest.AuditLog, sealer *seal.Sealer, hmac []byte, issuer string, clock *testClock) *eventsReplica {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	bus, err := st.RevocationBus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = bus.Run(runCtx) }()
	t.Cleanup(func() { stop(); _ = bus.Close(); <-done })
	if r, ok := bus.(interface{ Ready() <-chan struct{} }); ok {
		select { // a guard against a hung database, not a timed assertion
		case <-r.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("the revocation bus never listened")
		}
	}
	hub := mandate.NewHub()
	bus.Subscribe(func(msg string) { // as cmd/mandated's followMandates
		if id, ok := strings.CutPrefix(msg, authz.MandateMessagePrefix); ok {
			hub.Notify(id)
		} else if msg == authz.FlushAll {
			hub.NotifyAll()
		}
	})
	rev := &deviceRevoker{}
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: rev,
		Watchers: eventsBusWatchers{bus}, Recorder: audit.MandateRecorder(rec.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := authz.New(authz.Config{Issuer: issuer, HMACSecret: hmac}, st, keys,
		authz.WithClock(clock), authz.WithRevocationBus(bus), authz.WithLogger(quiet),
		authz.WithMandates(svc), authz.WithDeviceStore(st))
	if err != nil {
		t.Fatal(err)
	}
	rev.srv = srv
	e := api.NewEcho(api.Config{}, api.Deps{Logger: quiet})
	api.RegisterOAuth(e, srv, testPages{})
	streams := api.RegisterEvents(e, api.EventsDeps{Tokens: srv, Mandates: svc, Hub: hub, Clock: clock, Logger: quiet})
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	t.Cleanup(streams.Shutdown)
	return &eventsReplica{svc: svc, srv: srv, ts: ts}
}

// eventsBusWatchers publishes "mandate changed" on the revocation bus, as
// cmd/mandated's busWatchers.
type eventsBusWatchers struct{ bus authz.RevocationBus }

func (w eventsBusWatchers) MandateChanged(ctx context.Context, id string) {
	_ = w.bus.Publish(context.WithoutCancel(ctx), authz.MandateMessagePrefix+id)
}

// TestEventStreamAcrossReplicas: a mandate ends on one replica; a resource
// server following the stream of another replica is told, through
// PostgreSQL LISTEN/NOTIFY.
func TestEventStreamAcrossReplicas(t *testing.T) {
	dsn := storetest.PostgresSchema(t) // skipped without PostgreSQL
	ctx := context.Background()
	clock := &testClock{}
	open := func() *store.Store {
		st, err := store.Open(ctx, dsn, store.Options{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	stA, stB := open(), open()
	now := clock.Now()
	if err := stA.CreateStructure(ctx, people.Structure{ID: "mairie", Name: "Mairie", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := stA.CreateStaff(ctx, people.Staff{ID: "alice", Email: "alice@mairie.example", DisplayName: "Alice",
		Role: people.RoleMediator, StructureID: "mairie", Status: people.StaffActive, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := stA.CreateHolder(ctx, people.Holder{ID: "jeanne", Mailbox: eventsMailbox, DisplayName: "Jeanne",
		Email: "jeanne@perso.example", Language: "fr", CreatedAt: now}, "mairie"); err != nil {
		t.Fatal(err)
	}
	rec := storetest.StartAuditLog(t, stA, clock) // one log for the test; replicas share the database
	sealer, err := seal.New(randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	hmac := randomBytes(t, 32)
	const issuer = "http://127.0.0.1:8080" // one issuer for both replicas, as behind a load balancer
	a := newEventsReplica(t, stA, rec, sealer, hmac, issuer, clock)
	b := newEventsReplica(t, stB, rec, sealer, hmac, issuer, clock)

	ha := &harness{t: t, ctx: ctx, st: stA, srv: a.srv, clock: clock, ts: a.ts, issuer: issuer}
	mail, mailSecret := ha.register(authz.ClientSpec{Name: "Mail", GrantTypes: []string{"client_credentials"}, Scopes: []string{authz.ScopeEventsRead}})
	tablet, _ := ha.register(authz.ClientSpec{Name: "Tablet", GrantTypes: []string{authz.GrantTypeDeviceCode},
		Scopes: []string{"mail.read"}, Audience: []string{mail.ID}})
	tok := ha.post(authz.PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {authz.ScopeEventsRead}}, mail.ID, mailSecret)
	if tok.status != http.StatusOK {
		t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	// The resource server follows replica B; the mandate lives and ends on A.
	hb := &harness{t: t, ctx: ctx, st: stB, srv: b.srv, clock: clock, ts: b.ts, issuer: issuer}
	envB := &eventsEnv{harness: hb}
	stream := envB.open(tok.str("access_token"), "")
	m, err := a.svc.Request(ctx, mandate.Request{Kind: mandate.KindSession, StructureID: "mairie", HolderID: "jeanne",
		DelegateID: "alice", ClientID: tablet.ID, Scopes: []string{"mail.read"}, Purpose: "Dossier CAF",
		PurposeCategory: mandate.PurposeSocial, Duration: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Approve(ctx, "jeanne", m.ID, mandate.Approval{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Activate(ctx, m.ID, "grant-"+m.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.End(ctx, m.ID, mandate.EndedByHolder, eventsByHolder, ""); err != nil {
		t.Fatal(err)
	}
	claims := envB.set(stream.next())
	if sessionID(claims) != m.ID || claims["aud"] != mail.ID || claims["iss"] != issuer {
		t.Fatalf("replica B told %v", claims)
	}
}
