package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandated/mandated/authz"
)

// TestServeOffersMandates: the binary serves the device flow (in its
// metadata, with the console's public client registered on first start),
// the holder's verification page and the mediator's console, and the
// device authorization endpoint answers RFC 8628 errors.
func TestServeOffersMandates(t *testing.T) {
	in := newSQLiteInstance(t)
	stop, _ := in.serve()
	defer stop()

	var meta map[string]any
	in.getJSON(in.base+authz.PathMetadata, &meta)
	if meta["device_authorization_endpoint"] != in.issuer+authz.PathDeviceAuthorization {
		t.Errorf("device_authorization_endpoint = %v", meta["device_authorization_endpoint"])
	}
	if gts, _ := meta["grant_types_supported"].([]any); !containsAny(gts, authz.GrantTypeDeviceCode) {
		t.Errorf("grant_types_supported = %v", meta["grant_types_supported"])
	}
	if out := in.cli("clients", "list"); !strings.Contains(out, authz.ConsoleClientID) {
		t.Errorf("the console client is not registered:\n%s", out)
	}

	// The console client is public and needs a signed-in mediator: over
	// HTTP without an actor it is refused with a standard error.
	resp, err := http.PostForm(in.base+authz.PathDeviceAuthorization, url.Values{
		"client_id": {authz.ConsoleClientID}, "scope": {"mail.read"}, "holder_hint": {"marie@example.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("device authorization without an actor: %d %v", resp.StatusCode, body)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, wantPrefix := range map[string]string{
		"/device?user_code=BCDF-GHJK": "/holder/signin",
		"/holder/mandates":            "/holder/signin",
		"/console/sessions/new":       "/signin",
	} {
		resp, err := noRedirect.Get(in.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, wantPrefix) {
			t.Errorf("GET %s signed out: %d → %q, want a redirect to %s", path, resp.StatusCode, loc, wantPrefix)
		}
	}
}

func containsAny(list []any, want string) bool {
	for _, v := range list {
		if v == want {
			return true
		}
	}
	return false
}
