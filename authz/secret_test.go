package authz

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestNewClientSecretIs256RandomBits(t *testing.T) {
	a, err := NewClientSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewClientSecret()
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, err %v; want 32 bytes of base64url", a, len(raw), err)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
}

func TestSecretHasher(t *testing.T) {
	ctx := context.Background()
	h := SecretHasher{}
	hash, err := h.Hash(ctx, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("s3cret"))
	if string(hash) != string(want[:]) {
		t.Fatalf("hash is not SHA-256")
	}
	tests := []struct {
		name   string
		hash   []byte
		secret string
		ok     bool
	}{
		{"right secret", hash, "s3cret", true},
		{"wrong secret", hash, "s3cret!", false},
		{"empty secret", hash, "", false},
		{"client without secret", nil, "s3cret", false},
		{"client without secret, empty secret", nil, "", false},
		{"truncated hash", hash[:16], "s3cret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Compare(ctx, tt.hash, []byte(tt.secret))
			if (err == nil) != tt.ok {
				t.Fatalf("Compare = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
