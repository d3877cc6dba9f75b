package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testSealer(t *testing.T) *Sealer {
	t.Helper()
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := testSealer(t)
	blob, err := s.Seal([]byte("secret"), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("secret")) {
		t.Fatal("plaintext visible in sealed blob")
	}
	got, err := s.Open(blob, "p1")
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefusesWrongPurposeKeyOrTamper(t *testing.T) {
	s := testSealer(t)
	blob, _ := s.Seal([]byte("secret"), "p1")
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)-1] ^= 1
	cases := map[string]func() ([]byte, error){
		"wrong purpose": func() ([]byte, error) { return s.Open(blob, "p2") },
		"wrong key":     func() ([]byte, error) { return other.Open(blob, "p1") },
		"tampered":      func() ([]byte, error) { return s.Open(tampered, "p1") },
		"truncated":     func() ([]byte, error) { return s.Open(blob[:5], "p1") },
	}
	for name, open := range cases {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: want ErrOpen, got %v", name, err)
		}
	}
}

func TestParseKeyFormats(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	for _, text := range []string{base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), hex.EncodeToString(raw)} {
		got, err := ParseKey(text + "\n")
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("ParseKey(%q) = %x, %v", text, got, err)
		}
	}
	if _, err := ParseKey("short"); err == nil {
		t.Error("short key accepted")
	}
}

func TestLoadOrCreateKeyFileCreatesOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "master.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", info.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second call: created=%v err=%v same=%v", created, err, bytes.Equal(k1, k2))
	}
}
