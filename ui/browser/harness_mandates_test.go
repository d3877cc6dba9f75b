package browser_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/authz/authztest"
	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/people"
	"github.com/mandated/mandated/ui"
)

// holderMandatesFeature is the mandate service and the holder's mandate
// pages wired into a test server as `mandated serve` wires them on SQLite:
// a second authorization server on the same store with the device flow on
// (the mediator's requests and the holder's user codes), the audit log of
// the holders feature, and a hub told of every change through the
// in-process revocation bus.
type holderMandatesFeature struct {
	svc    *mandate.Service
	authz  *authz.Server
	hub    *mandate.Hub
	client string // an OAuth2 client allowed the device code grant
}

// busOf tells of every change as cmd/mandated's busWatchers does: on the
// revocation bus, which drops the authorization server's cached copy of
// the mandate and wakes the hub.
type busOf struct{ bus authz.RevocationBus }

func (w busOf) MandateChanged(ctx context.Context, id string) {
	_ = w.bus.Publish(context.WithoutCancel(ctx), authz.MandateMessagePrefix+id) // a LocalBus never fails
}

// followBus hands the bus's mandate messages to the hub, as cmd/mandated's
// followMandates does.
func followBus(bus authz.RevocationBus, hub *mandate.Hub) {
	bus.Subscribe(func(msg string) {
		if id, ok := strings.CutPrefix(msg, authz.MandateMessagePrefix); ok {
			hub.Notify(id)
		} else if msg == authz.FlushAll {
			hub.NotifyAll()
		}
	})
}

// revokerOf revokes through the feature's authorization server, built
// after the mandate service.
type revokerOf struct{ f *holderMandatesFeature }

func (r revokerOf) RevokeGrant(ctx context.Context, id string) error {
	return r.f.authz.RevokeGrant(ctx, id)
}

// withHolderMandates wires mandates as `mandated serve` does on SQLite
// (cmd/mandated: openMandates, openApp, registerMandates): one in-process
// revocation bus carries every mandate change ("mandate:<id>") to the
// authorization server's introspection cache and to the hub the live pages
// follow; the authorization server records tokens in the audit log of hf
// (wired before, by withHolders). It also registers a device-code client
// (f.client) for the tests that ask without the console. The live page
// beats every heartbeat (real time); leases lapse after 15 s of the
// server's clock.
func withHolderMandates(f *holderMandatesFeature, hf *holdersFeature, heartbeat time.Duration) serverOption {
	return func(s *server) {
		ctx := s.t.Context()
		f.hub = mandate.NewHub()
		bus := authz.NewLocalBus()
		followBus(bus, f.hub)
		dir := people.NewDirectory(s.store)
		svc, err := mandate.NewService(mandate.Deps{Store: s.store, Dir: dir, Revoker: revokerOf{f}, Watchers: busOf{bus},
			Recorder: audit.MandateRecorder(hf.log.Log), Clock: s.clock, Log: s.quiet}, mandate.ServiceConfig{})
		if err != nil {
			s.t.Fatal(err)
		}
		f.svc = svc
		keys, err := authz.NewKeyManager(ctx, authz.KeyManagerConfig{Store: s.store, Sealer: s.sealer, Clock: s.clock, Logger: s.quiet})
		if err != nil {
			s.t.Fatal(err)
		}
		f.authz, err = authz.New(authz.Config{Issuer: s.url, HMACSecret: randomBytes(s.t, 32)}, s.store, keys,
			authz.WithClock(s.clock), authz.WithLogger(s.quiet), authz.WithRevocationBus(bus), authz.WithRecorder(hf.log.Log),
			authz.WithMandates(svc), authz.WithDeviceStore(s.store), authz.WithStaffDirectory(authztest.StaffDirectory(s.store)))
		if err != nil {
			s.t.Fatal(err)
		}
		client, _, err := f.authz.RegisterClient(ctx, authz.ClientSpec{Name: "Console", GrantTypes: []string{authz.GrantTypeDeviceCode},
			Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}})
		if err != nil {
			s.t.Fatal(err)
		}
		f.client = client.ID
		ui.NewHolderMandatePages(s.pages, svc, f.authz, dir, f.hub, ui.HolderMandateConfig{HeartbeatEvery: heartbeat, Clock: s.clock,
			Receipts: f.authz, ReceiptKeysURL: s.url + authz.PathJWKS, Events: hf.log.Log}).Register(s.echo)
	}
}

// mediator enrols a mediator of the Mairie de Trifouillis (s.staff) and
// returns them with their TOTP secret.
func (s *server) mediator(email, name string) (people.Staff, string) {
	s.t.Helper()
	secret := s.staff(email, name)
	st, err := s.store.FindStaffByEmail(s.t.Context(), email)
	if err != nil {
		s.t.Fatal(err)
	}
	return st, secret
}

// createHolder creates a holder of by's structure, as by (a mediator) does.
func (f *holdersFeature) createHolder(t *testing.T, by people.Staff, in people.HolderInput) people.Holder {
	t.Helper()
	p := people.Principal{Kind: "staff", ID: by.ID, Role: people.RoleMediator, StructureID: by.StructureID}
	res, err := f.h.Create(t.Context(), p, by.StructureID, in)
	if err != nil {
		t.Fatal(err)
	}
	return res.Holder
}

// ask is a mediator's device authorization request for a holder's session.
func (f *holderMandatesFeature) ask(t *testing.T, by people.Staff, holderID string) authz.DeviceResponse {
	t.Helper()
	d, err := f.authz.AuthorizeDevice(t.Context(), authz.DeviceRequest{
		ClientID: f.client, Scopes: []string{mandate.ScopeMailRead, mandate.ScopeMailSend}, HolderID: holderID,
		Duration: 30 * time.Minute, Purpose: "Dossier de prime d'activité", PurposeCategory: mandate.PurposeSocial,
		ActorStaffID: by.ID, ActorStructure: by.StructureID,
	})
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	return d
}
