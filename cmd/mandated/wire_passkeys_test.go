package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeOffersPasskeysOnADomainNameOnly(t *testing.T) {
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// The development default, an issuer on 127.0.0.1: passkeys are off.
	in := newSQLiteInstance(t)
	stop, _ := in.serve()
	if status, _ := get(in.base + "/holder/signin/passkey"); status != http.StatusNotFound {
		t.Errorf("passkey sign-in on an IP issuer: %d, want 404", status)
	}
	stop()

	// On localhost, a domain name: the pages are served.
	in = newSQLiteInstance(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(in.addr)
	in.base, in.issuer = "http://"+in.addr, "http://localhost:"+port
	stop, _ = in.serve()
	defer stop()
	status, body := get(in.base + "/holder/signin/passkey")
	if status != http.StatusOK || !strings.Contains(body, "Se connecter avec une clé d") || !strings.Contains(body, "/static/passkeys-") {
		t.Errorf("passkey sign-in on localhost: %d\n%s", status, body)
	}
}

func TestPasskeySettings(t *testing.T) {
	for _, c := range []struct {
		name    string
		cfg     passkeysConfig
		issuer  string
		wantErr bool
		rpID    string
	}{
		{"defaults from the issuer", passkeysConfig{EnrolmentTTL: 15 * time.Minute}, "https://id.example.org", false, "id.example.org"},
		{"parent domain", passkeysConfig{RPID: "example.org", Origins: " https://id.example.org/ , https://app.example.org", EnrolmentTTL: time.Minute}, "https://id.example.org", false, "example.org"},
		{"origin off the domain", passkeysConfig{RPID: "example.org", Origins: "https://evil.example", EnrolmentTTL: time.Minute}, "https://id.example.org", true, ""},
		{"IP issuer", passkeysConfig{EnrolmentTTL: time.Minute}, "http://127.0.0.1:8080", true, ""},
		{"no lifetime", passkeysConfig{}, "https://id.example.org", true, ""},
		{"a lifetime too long", passkeysConfig{EnrolmentTTL: 48 * time.Hour}, "https://id.example.org", true, ""},
	} {
		got, err := c.cfg.settings(c.issuer)
		if (err != nil) != c.wantErr || (!c.wantErr && got.RPID != c.rpID) {
			t.Errorf("%s: %+v, %v", c.name, got, err)
		}
	}
}
