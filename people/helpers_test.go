package people_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

const testPassword = "une phrase de passe assez longue"

// env is a Service over a real SQLite store, with a clock the test moves.
type env struct {
	svc   *people.Service
	store *store.Store
	clock *storetest.Clock
}

func newEnv(t *testing.T, cfg people.Config) env {
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
	return env{svc: people.NewService(st, sealer, clock, nil, cfg), store: st, clock: clock}
}

func (e env) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nextStep moves the clock to the next TOTP step, so a fresh code is accepted.
func (e env) nextStep() { e.clock.Advance(30 * time.Second) }

// enrolled creates and enrols a staff account and returns it with its TOTP secret.
func (e env) enrolled(t *testing.T, email, structure string) (people.Staff, string) {
	t.Helper()
	staff, token, err := e.svc.CreateStaff(t.Context(), email, "mediator", structure, false)
	if err != nil {
		t.Fatal(err)
	}
	view, err := e.svc.BeginEnrolment(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CompleteEnrolment(t.Context(), token, "Marie Dupont", testPassword, e.code(t, view.TOTP.Secret)); err != nil {
		t.Fatal(err)
	}
	e.nextStep()
	return staff, view.TOTP.Secret
}
