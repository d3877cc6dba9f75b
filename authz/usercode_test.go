package authz

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUserCodesAreDrawnFromTheAlphabet(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for i := 0; i < 2000; i++ {
		c, err := newUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if !validUserCode(c) {
			t.Fatalf("newUserCode() = %q: not %d letters of %s", c, userCodeLen, userCodeAlphabet)
		}
		if seen[c] {
			t.Fatalf("user code %q drawn twice in 2000", c)
		}
		seen[c] = true
		for j := 0; j < len(c); j++ {
			counts[c[j]]++
		}
	}
	// 16,000 letters over 20: each about 800. A letter never drawn, or
	// drawn twice as often as it should, means a broken draw.
	for _, l := range []byte(userCodeAlphabet) {
		if n := counts[l]; n < 500 || n > 1100 {
			t.Errorf("letter %c drawn %d times of 16000", l, n)
		}
	}
	if f := formatUserCode("BCDFGHJK"); f != "BCDF-GHJK" {
		t.Errorf("formatUserCode = %q", f)
	}
}

func TestUserCodeNormalisation(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"BCDF-GHJK", "BCDF-GHJK"},
		{"bcdf-ghjk", "BCDF-GHJK"},
		{"bcdfghjk", "BCDF-GHJK"},
		{" bcdf ghjk ", "BCDF-GHJK"},
		{"BC-DF-GH-JK", "BCDF-GHJK"},
		{"bcdf\tghjk", "BCDF-GHJK"},
		{"BCDF-GHJ", ""},   // too short
		{"BCDF-GHJKL", ""}, // too long
		{"BCDF-GHJA", ""},  // a vowel is never in a code
		{"BCDF-GHJ1", ""},  // nor a digit
		{"ＢCDF-GHJK", ""},  // nor a full-width letter
		{strings.Repeat("B", 100), ""},
		{"", ""},
	} {
		if got := NormaliseUserCode(tt.in); got != tt.want {
			t.Errorf("NormaliseUserCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGuessLimiter(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newGuessLimiter(guessLimits{PerIP: 3, Global: 5, Period: 15 * time.Minute})
	for i := 0; i < 3; i++ {
		if l.blocked("192.0.2.1", t0) {
			t.Fatalf("blocked after %d wrong codes", i)
		}
		l.fail("192.0.2.1", t0)
	}
	if !l.blocked("192.0.2.1", t0.Add(14*time.Minute)) {
		t.Fatal("not blocked after 3 wrong codes")
	}
	if l.blocked("192.0.2.2", t0) {
		t.Fatal("another address is blocked")
	}
	if l.blocked("192.0.2.1", t0.Add(15*time.Minute)) {
		t.Fatal("still blocked once the window passed")
	}

	// IPv6: one /64 is one bucket; its neighbour is another.
	l = newGuessLimiter(guessLimits{PerIP: 2, Global: 100, Period: time.Minute})
	l.fail("2001:db8:1:2::1", t0)
	l.fail("2001:db8:1:2:ffff::9", t0)
	if !l.blocked("2001:db8:1:2::77", t0) {
		t.Error("a /64 is not one bucket")
	}
	if l.blocked("2001:db8:1:3::1", t0) {
		t.Error("the next /64 is blocked")
	}
	// host:port and garbage.
	if ipKey("192.0.2.9:443") != "192.0.2.9" || ipKey("nonsense") != "?" || ipKey("::ffff:192.0.2.9") != "192.0.2.9" {
		t.Errorf("ipKey: %q %q %q", ipKey("192.0.2.9:443"), ipKey("nonsense"), ipKey("::ffff:192.0.2.9"))
	}

	// The global cap blocks everyone.
	l = newGuessLimiter(guessLimits{PerIP: 10, Global: 4, Period: time.Minute})
	for i := 0; i < 4; i++ {
		l.fail(fmt.Sprintf("198.51.100.%d", i+1), t0)
	}
	if !l.blocked("203.0.113.7", t0) {
		t.Error("the global cap does not block a fresh address")
	}
	if l.blocked("203.0.113.7", t0.Add(time.Minute)) {
		t.Error("the global cap outlives its window")
	}
}

func TestGuessLimiterMemoryIsBounded(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newGuessLimiter(guessLimits{PerIP: 10, Global: 50, Period: time.Minute})
	for i := 0; i < 10_000; i++ {
		now := t0.Add(time.Duration(i) * time.Second) // 60 a minute: above the cap
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if !l.blocked(ip, now) {
			l.fail(ip, now)
		}
	}
	l.mu.Lock()
	n := len(l.perIP)
	l.mu.Unlock()
	if n > 2*50+1 {
		t.Errorf("%d addresses remembered, want at most %d", n, 2*50+1)
	}
}
