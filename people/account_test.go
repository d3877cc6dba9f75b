package people_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/notify/notifytest"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

const firefoxAndroid = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"

// accountEnv is a Service and its Account over a real SQLite store,
// recording into a real audit log and sending email to a real SMTP server.
type accountEnv struct {
	env
	acc  *people.Account
	log  *storetest.AuditLog
	smtp *notifytest.SMTPServer
}

func newAccountEnv(t *testing.T, cfg people.Config) accountEnv {
	t.Helper()
	clock := storetest.NewClock(time.Date(2030, 3, 4, 10, 0, 5, 0, time.UTC))
	st := storetest.OpenSQLiteWith(t, store.Options{Clock: clock})
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	log := storetest.StartAuditLog(t, st, clock)
	cfg.Recorder = log
	svc := people.NewService(st, sealer, clock, nil, cfg)
	srv := notifytest.StartSMTP(t)
	acc := people.NewAccount(svc, st, people.AccountConfig{
		Notifier: notifytest.SMTPNotifier(t, srv),
		ResetURL: func(token string) string { return "https://mandated.test/account/reset/confirm?token=" + token },
	})
	t.Cleanup(acc.Wait)
	return accountEnv{env: env{svc: svc, store: st, clock: clock}, acc: acc, log: log, smtp: srv}
}

type eventRow struct {
	action  audit.Action
	outcome audit.Outcome
	actor   audit.ActorKind
	actorID string
	reason  string
}

// events returns the audit log's events of the given actions, oldest first.
func (e accountEnv) events(t *testing.T, actions ...audit.Action) []eventRow {
	t.Helper()
	page, err := e.log.Query(t.Context(), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []eventRow
	for _, ev := range slices.Backward(page.Events) {
		if slices.Contains(actions, ev.Action) {
			out = append(out, eventRow{ev.Action, ev.Outcome, ev.Actor.Kind, ev.Actor.ID, ev.Reason})
		}
	}
	return out
}

func (e accountEnv) signedIn(t *testing.T, email string) (people.Principal, string) {
	t.Helper()
	staff, secret := e.enrolled(t, email, "Mairie de Tulle")
	p, err := e.svc.SignInStaff(t.Context(), staff.Email, testPassword, e.code(t, secret), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	return p, secret
}

func TestSessionRecordsItsClientAndWhenLastUsedAtMostOnceAMinute(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	p, _ := e.signedIn(t, "marie@example.org")
	ctx := people.WithClient(t.Context(), people.Client{IP: "203.0.113.9", UserAgent: firefoxAndroid})
	cookie, sess, err := e.svc.StartSession(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if sess.IP != "203.0.113.9" || sess.Browser != "Firefox" || sess.OS != "Android" {
		t.Errorf("session client = %q %q %q", sess.IP, sess.Browser, sess.OS)
	}
	started := e.clock.Now()
	lastSeen := func() time.Time {
		list, err := e.acc.Sessions(t.Context(), p, cookie)
		if err != nil || len(list) != 1 {
			t.Fatalf("Sessions = %+v, %v", list, err)
		}
		if !list[0].Current || list[0].IP != "203.0.113.9" || list[0].Browser != "Firefox" {
			t.Errorf("listed session = %+v", list[0])
		}
		return list[0].LastSeenAt
	}
	e.clock.Advance(40 * time.Second)
	if _, _, err := e.svc.LookupSession(t.Context(), cookie); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); !got.Equal(started) {
		t.Errorf("used within the minute: last seen %v, want still %v", got, started)
	}
	e.clock.Advance(30 * time.Second)
	if _, _, err := e.svc.LookupSession(t.Context(), cookie); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); !got.Equal(e.clock.Now()) {
		t.Errorf("used after a minute: last seen %v, want %v", got, e.clock.Now())
	}
}

func TestIdleSessionEndsButAUsedOneLivesOn(t *testing.T) {
	e := newAccountEnv(t, people.Config{SessionIdleTimeout: 20 * time.Minute})
	p, _ := e.signedIn(t, "marie@example.org")
	cookie, _, err := e.svc.StartSession(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	// Used every 15 minutes for an hour: alive.
	for range 4 {
		e.clock.Advance(15 * time.Minute)
		if _, _, err := e.svc.LookupSession(t.Context(), cookie); err != nil {
			t.Fatalf("session used every 15 minutes ended: %v", err)
		}
	}
	e.clock.Advance(19 * time.Minute)
	list, err := e.acc.Sessions(t.Context(), p, cookie)
	if err != nil || len(list) != 1 {
		t.Fatalf("before the idle timeout, Sessions = %+v, %v", list, err)
	}
	e.clock.Advance(time.Minute)
	list, err = e.acc.Sessions(t.Context(), p, cookie)
	if err != nil || len(list) != 0 {
		t.Errorf("the list still shows an idle session: %+v, %v", list, err)
	}
	if _, _, err := e.svc.LookupSession(t.Context(), cookie); !errors.Is(err, people.ErrNoSession) {
		t.Fatalf("idle session: %v, want ErrNoSession", err)
	}
	if _, err := e.store.GetSession(t.Context(), hashOf(cookie), e.clock.Now()); err == nil {
		t.Error("the idle session's row is still there")
	}
	got := e.events(t, audit.ActionSessionEnded)
	want := []eventRow{{audit.ActionSessionEnded, audit.OutcomeSuccess, audit.ActorStaff, p.ID, "idle timeout"}}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}

func TestSessionListEndsOwnSessionsOnlyAndSignsOutEverywhere(t *testing.T) {
	e := newAccountEnv(t, people.Config{})
	ctx := t.Context()
	marie, _ := e.signedIn(t, "marie@example.org")
	paul, _ := e.signedIn(t, "paul@example.org")
	here, _, _ := e.svc.StartSession(ctx, marie)
	e.clock.Advance(time.Minute)
	phone, _, _ := e.svc.StartSession(people.WithClient(ctx, people.Client{UserAgent: firefoxAndroid}), marie)
	paulsCookie, _, _ := e.svc.StartSession(ctx, paul)

	list, err := e.acc.Sessions(ctx, marie, here)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Current || !list[1].Current || list[0].OS != "Android" {
		t.Fatalf("Sessions = %+v, want the phone (newest) then this one (current)", list)
	}
	paulsList, _ := e.acc.Sessions(ctx, paul, paulsCookie)
	if len(paulsList) != 1 {
		t.Fatalf("Paul's sessions = %+v", paulsList)
	}

	// Marie names Paul's session: refused, nothing changed.
	if _, err := e.acc.EndSession(ctx, marie, here, paulsList[0].Handle); !errors.Is(err, people.ErrUnknownSession) {
		t.Fatalf("ending another person's session: %v, want ErrUnknownSession", err)
	}
	if _, err := e.acc.EndSession(ctx, marie, here, "made-up"); !errors.Is(err, people.ErrUnknownSession) {
		t.Fatalf("ending a made-up session: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, paulsCookie); err != nil {
		t.Fatalf("Paul's session ended: %v", err)
	}

	current, err := e.acc.EndSession(ctx, marie, here, list[0].Handle)
	if err != nil || current {
		t.Fatalf("EndSession(phone) = %v, %v", current, err)
	}
	if _, _, err := e.svc.LookupSession(ctx, phone); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("the phone's session lives on: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, here); err != nil {
		t.Errorf("this session ended with the phone's: %v", err)
	}

	e.svc.StartSession(ctx, marie) // another device
	n, err := e.acc.EndEverywhere(ctx, marie)
	if err != nil || n != 2 {
		t.Fatalf("EndEverywhere = %d, %v; want 2 (this one included)", n, err)
	}
	if _, _, err := e.svc.LookupSession(ctx, here); !errors.Is(err, people.ErrNoSession) {
		t.Errorf("this session survived signing out everywhere: %v", err)
	}
	if _, _, err := e.svc.LookupSession(ctx, paulsCookie); err != nil {
		t.Errorf("Paul's session ended when Marie signed out everywhere: %v", err)
	}

	got := e.events(t, audit.ActionSessionEnded)
	want := []eventRow{
		{audit.ActionSessionEnded, audit.OutcomeDenied, audit.ActorStaff, marie.ID, "not one of the caller's sessions"},
		{audit.ActionSessionEnded, audit.OutcomeDenied, audit.ActorStaff, marie.ID, "not one of the caller's sessions"},
		{audit.ActionSessionEnded, audit.OutcomeSuccess, audit.ActorStaff, marie.ID, "ended from the session list"},
		{audit.ActionSessionEnded, audit.OutcomeSuccess, audit.ActorStaff, marie.ID, "signed out everywhere"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseUserAgent(t *testing.T) {
	for _, c := range []struct {
		ua          string
		browser, os string
	}{
		{firefoxAndroid, "Firefox", "Android"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome", "Android"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1", "Chrome", "iOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge", "Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari", "macOS"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox", "Linux"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome", "ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera", "Windows"},
		{"curl/8.5.0", "", ""},
		{"", "", ""},
	} {
		if got := people.ParseUserAgent(c.ua); got.Browser != c.browser || got.OS != c.os {
			t.Errorf("ParseUserAgent(%q) = %+v, want %s on %s", c.ua, got, c.browser, c.os)
		}
	}
}

func FuzzParseUserAgent(f *testing.F) {
	f.Add(firefoxAndroid)
	f.Fuzz(func(t *testing.T, ua string) {
		d := people.ParseUserAgent(ua)
		if len(d.Browser) > 20 || len(d.OS) > 20 {
			t.Errorf("ParseUserAgent(%q) = %+v: names come from a fixed list", ua, d)
		}
	})
}

// hashOf is what the store keeps of a cookie or link token.
func hashOf(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
