package authz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mandated/mandated/store/storetest"
)

func TestKeyManagerCreatesOneSealedKeyOnFirstStart(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	clk := &clock{now: time.Now().UTC()}
	km := newKeys(t, st, clk)
	keys, err := st.ListSigningKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %d, %v; want one", len(keys), err)
	}
	if bytes.Contains(keys[0].SealedPrivate, []byte(`"d"`)) || keys[0].Algorithm != "ES256" {
		t.Fatalf("private key stored in the clear or wrong alg: %+v", keys[0])
	}
	_, kid, _ := km.Signer()
	if kid != keys[0].KID {
		t.Fatalf("signing kid %q, stored %q", kid, keys[0].KID)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(km.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS = %s", km.JWKS())
	}
	if _, private := set.Keys[0]["d"]; private || set.Keys[0]["kid"] != kid {
		t.Fatalf("JWKS key = %v", set.Keys[0])
	}
}

func TestReplicaLearnsARotatedKeyFromAnUnknownKid(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	clk := &clock{now: time.Now().UTC()}
	a := newKeys(t, st, clk)
	key := sealerKey(t, a) // both replicas share the sealing key
	b := newKeysWith(t, st, clk, key)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	_, kid, _ := a.Signer()
	clk.Advance(10 * time.Second) // past the unknown-kid reload throttle
	if _, err := b.VerificationKey(ctx, kid); err != nil {
		t.Fatalf("replica does not know the new key: %v", err)
	}
	if _, bkid, _ := b.Signer(); bkid != kid {
		t.Fatalf("replica signs with %q, want %q", bkid, kid)
	}
	if _, err := b.VerificationKey(ctx, "made-up"); err == nil {
		t.Fatal("unknown kid accepted")
	}
}
