package people

import (
	"errors"
	"strings"
	"testing"
)

func TestHashPasswordIsPHCArgon2idAndVerifies(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not PHC argon2id with the default parameters", h)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
		{"correct horse battery ", false},
	}
	for _, tt := range tests {
		ok, err := VerifyPassword(h, tt.password)
		if err != nil || ok != tt.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tt.password, ok, err, tt.want)
		}
	}
}

func TestVerifyPasswordRejectsMalformedHashes(t *testing.T) {
	good, _ := HashPassword("a long enough password")
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"wrong version": strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   strings.Replace(good, "m=19456", "m=99999999", 1),
		"zero time":     strings.Replace(good, "t=2", "t=0", 1),
		"bad salt":      strings.Join([]string{"", parts[1], parts[2], parts[3], "!!", parts[5]}, "$"),
		"short key":     strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
	} {
		if ok, err := VerifyPassword(h, "a long enough password"); err == nil || ok {
			t.Errorf("%s: VerifyPassword = %v, %v; want an error", name, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	cur, _ := HashPassword("a long enough password")
	old, _ := hashPasswordWith(PasswordParams{Memory: 8192, Time: 1, Threads: 1}, "a long enough password")
	if NeedsRehash(cur) {
		t.Error("a hash with the current parameters needs no rehash")
	}
	if !NeedsRehash(old) {
		t.Error("a hash with weaker parameters needs a rehash")
	}
	if ok, err := VerifyPassword(old, "a long enough password"); !ok || err != nil {
		t.Errorf("an old-parameter hash still verifies: %v, %v", ok, err)
	}
	if !NeedsRehash("garbage") {
		t.Error("an unreadable hash needs a rehash")
	}
}

func TestCheckPasswordPolicy(t *testing.T) {
	tests := []struct {
		name, password, email string
		want                  error
	}{
		{"ok", "douze caractères", "a@b.fr", nil},
		{"exactly 12", "123456789012", "a@b.fr", nil},
		{"11 characters", "12345678901", "a@b.fr", ErrPasswordTooShort},
		{"12 runes but more bytes count as 12", "éééééééééééé", "", nil},
		{"empty", "", "a@b.fr", ErrPasswordTooShort},
		{"128", strings.Repeat("x", 128), "a@b.fr", nil},
		{"129", strings.Repeat("x", 129), "a@b.fr", ErrPasswordTooLong},
		{"equals email", "marie.dupont@mairie.fr", "marie.dupont@mairie.fr", ErrPasswordIsEmail},
		{"equals email in capitals", "Marie.Dupont@Mairie.fr", "marie.dupont@mairie.fr", ErrPasswordIsEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPasswordPolicy(tt.password, tt.email); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}
