package audit

import (
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 30, 23, 59, 59, 999999999, time.UTC), "2026-11"},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "2026-12"},
		{time.Date(2026, 12, 1, 0, 30, 0, 0, paris), "2026-11"}, // 23:30 UTC the day before
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "2027-01"},
	} {
		if got := Period(c.t); got != c.want {
			t.Errorf("Period(%v) = %s, want %s", c.t, got, c.want)
		}
	}
	end, err := PeriodEnd("2026-12")
	if err != nil || !end.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("PeriodEnd(2026-12) = %v, %v", end, err)
	}
	if _, err := PeriodEnd(LegacyPeriod); err == nil {
		t.Error("the legacy period has an end")
	}
	// Periods sort as strings in time order, the legacy one first.
	if !(LegacyPeriod < "2025-12" && "2025-12" < "2026-01" && "2026-09" < "2026-10") {
		t.Error("periods do not sort in time order")
	}
}

func TestPersonKeyPurposes(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range [][2]string{{"holder-1", ""}, {"holder-1", "2026-11"}, {"holder-1", "2026-12"}, {"2026-11:holder-1", ""}, {"holder-2", "2026-11"}} {
		purpose := PersonKeyPurpose(p[0], p[1])
		if seen[purpose] {
			t.Errorf("purpose %q used twice", purpose)
		}
		seen[purpose] = true
	}
	if PersonKeyPurpose("holder-1", LegacyPeriod) != "audit-person:holder-1" {
		t.Error("legacy keys must keep the purpose they were sealed with")
	}
}

func TestKeyCacheForgetsAndExpires(t *testing.T) {
	c := keyCache{ttl: time.Hour}
	a, b := personPeriod{"a", "2026-11"}, personPeriod{"b", "2026-10"}
	c.put([]byte("sealed-a"), a, openedKey{key: []byte("ka")})
	c.put([]byte("sealed-b"), b, openedKey{key: []byte("kb")})
	if k, ok := c.get([]byte("sealed-a")); !ok || string(k.key) != "ka" {
		t.Fatal("cached key not found")
	}
	c.forget(func(pp personPeriod) bool { return pp.period < "2026-11" })
	if _, ok := c.get([]byte("sealed-b")); ok {
		t.Error("forgotten key still cached")
	}
	if _, ok := c.get([]byte("sealed-a")); !ok {
		t.Error("forget dropped another key")
	}
	// Two generations without use: gone.
	c.rotated = c.rotated.Add(-2 * time.Hour)
	c.get(nil)
	c.rotated = c.rotated.Add(-2 * time.Hour)
	if _, ok := c.get([]byte("sealed-a")); ok {
		t.Error("key unused for two generations still cached")
	}
}
