// Package authztest gives other packages' tests an authorization server
// with the device flow on, wired over real components: a migrated store
// (store/storetest), the mandate service, the people directory and the
// audit log.
package authztest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/seal"
	"github.com/mandated/mandated/store"
	"github.com/mandated/mandated/store/storetest"
)

// DeviceFlow is the mandate service and the authorization server that
// issues its tokens, over one store.
type DeviceFlow struct {
	Keys     *authz.KeyManager
	Mandates *mandate.Service
	Server   *authz.Server
}

// NewDeviceFlow wires the mandate service and an authorization server with
// the device flow on, as cmd/mandated does. Signing keys are sealed under a
// random key. The service reads st's people directory, records in log and
// tells w of every change (nobody when nil); it revokes through the server.
// The server takes cfg (a random HMAC secret when it has none), clock, the
// audit log, a silent logger, the service, st as device store and st's
// staff as staff directory, then opts.
func NewDeviceFlow(t testing.TB, st *store.Store, log *storetest.AuditLog, clock mandate.Clock, cfg authz.Config,
	w mandate.Watchers, opts ...authz.Option) *DeviceFlow {
	t.Helper()
	ctx := context.Background()
	sealer, err := seal.New(randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: st, Sealer: sealer, Clock: clock, Recorder: log})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	rev := &lateRevoker{}
	svc, err := mandate.NewService(mandate.Deps{Store: st, Dir: people.NewDirectory(st), Revoker: rev, Watchers: w,
		Recorder: audit.MandateRecorder(log.Log), Clock: clock, Log: quiet}, mandate.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HMACSecret == nil {
		cfg.HMACSecret = randomBytes(t, 32)
	}
	opts = append([]authz.Option{authz.WithClock(clock), authz.WithRecorder(log), authz.WithLogger(quiet),
		authz.WithMandates(svc), authz.WithDeviceStore(st), authz.WithStaffDirectory(StaffDirectory(st))}, opts...)
	srv, err := authz.New(cfg, st, keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rev.srv = srv
	return &DeviceFlow{Keys: keys, Mandates: svc, Server: srv}
}

// StaffDirectory finds a staff member's structure in st.
func StaffDirectory(st *store.Store) authz.StaffDirectory {
	return func(ctx context.Context, id string) (string, error) {
		s, err := st.GetStaff(ctx, id)
		return s.StructureID, err
	}
}

// lateRevoker forwards to the server, built after the mandate service
// (each needs the other).
type lateRevoker struct{ srv *authz.Server }

func (r *lateRevoker) RevokeGrant(ctx context.Context, grantID string) error {
	return r.srv.RevokeGrant(ctx, grantID)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
