package pgbus

import (
	"slices"
	"strings"
	"testing"
)

func TestEncodeSplitsIDsOverPayloadsThatFit(t *testing.T) {
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name     string
		ids      []string
		payloads int
		tooLong  bool
	}{
		{"one", []string{"req-1"}, 1, false},
		{"escaped", []string{`quote"back\slash`, "new\nline", "<html>&", "épée"}, 1, false},
		{"three long per payload at most", []string{long, long, long}, 2, false},
		{"many short", manyIDs(2000), 0, false}, // count checked below
		{"too long", []string{"a", strings.Repeat("y", MaxPayload), "b"}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payloads, err := encode("0123456789abcdef", tt.ids)
			if (err != nil) != tt.tooLong {
				t.Fatalf("encode error = %v, want one: %v", err, tt.tooLong)
			}
			if tt.payloads > 0 && len(payloads) != tt.payloads {
				t.Errorf("%d payloads, want %d", len(payloads), tt.payloads)
			}
			var got []string
			for _, p := range payloads {
				if len(p) > MaxPayload {
					t.Errorf("payload of %d bytes, over %d", len(p), MaxPayload)
				}
				m, err := decode(p)
				if err != nil {
					t.Fatal(err)
				}
				if m.From != "0123456789abcdef" || len(m.IDs) == 0 {
					t.Errorf("payload %q: from %q, %d IDs", p, m.From, len(m.IDs))
				}
				got = append(got, m.IDs...)
			}
			want := slices.DeleteFunc(slices.Clone(tt.ids), func(id string) bool { return len(id) >= MaxPayload })
			if !slices.Equal(got, want) {
				t.Errorf("decoded %d IDs, want the %d fitting ones in order", len(got), len(want))
			}
		})
	}
}

func TestEncodeFillsPayloadsToTheLimit(t *testing.T) {
	// The largest ID that fits makes a payload of exactly MaxPayload bytes.
	empty, _ := encode("0123456789abcdef", []string{""})
	id := strings.Repeat("z", MaxPayload-len(empty[0]))
	payloads, err := encode("0123456789abcdef", []string{id})
	if err != nil || len(payloads) != 1 || len(payloads[0]) != MaxPayload {
		t.Fatalf("encode = %d payloads, %v; want one of %d bytes", len(payloads), err, MaxPayload)
	}
	if _, err := encode("0123456789abcdef", []string{id + "z"}); err == nil {
		t.Error("an ID one byte longer was accepted")
	}
}

func TestChannelStaysAValidIdentifier(t *testing.T) {
	long := strings.Repeat("s", 63)
	for _, tt := range []struct{ schema, want string }{
		{"public", "mandated_revocations.public"},
		{"t_0123456789abcdef", "mandated_revocations.t_0123456789abcdef"},
	} {
		if got := channelFor(tt.schema); got != tt.want {
			t.Errorf("channelFor(%q) = %q, want %q", tt.schema, got, tt.want)
		}
	}
	a, b := channelFor(long), channelFor(long[:62]+"t")
	if len(a) > 63 || len(b) > 63 || a == b || !strings.HasPrefix(a, Channel+".") {
		t.Errorf("long schemas: %q, %q", a, b)
	}
}

func manyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "request-" + strings.Repeat("0", i%50) + string(rune('a'+i%26))
	}
	return ids
}
