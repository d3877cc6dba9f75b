package browser_test

import (
	"time"

	"github.com/mandated/mandated/api"
	"github.com/mandated/mandated/ui"
)

// consoleFeature is the mediators' sessions console wired into a test
// server, over the mandate service and the device-flow authorization
// server of the holder's mandates feature (withHolderMandates).
type consoleFeature struct {
	pages *ui.ConsoleSessions
}

// withConsole wires the console after withHolders and withHolderMandates:
// the first-party console client (authz.ConsoleClientID: public, device
// code grant, registered as at startup), the console's pages, and the
// OAuth2 endpoints of the feature's authorization server (the one with the
// device flow) in place of the server's own, so that the console's script
// gets its tokens there.
func withConsole(f *consoleFeature, mf *holderMandatesFeature, hf *holdersFeature) serverOption {
	return func(s *server) {
		if err := mf.authz.EnsureConsoleClient(s.t.Context()); err != nil {
			s.t.Fatal(err)
		}
		f.pages = ui.NewConsoleSessions(s.pages, ui.ConsoleDeps{Mandates: mf.svc, Device: mf.authz, Holders: hf.h,
			Hub: mf.hub, Sealer: s.sealer, Clock: s.clock, Heartbeat: 15 * time.Second})
		f.pages.Register(s.echo)
		s.t.Cleanup(f.pages.Shutdown)
		api.RegisterOAuth(s.echo, mf.authz, s.pages)
	}
}
