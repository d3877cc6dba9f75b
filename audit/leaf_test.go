package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandated/mandated/audit"
)

var (
	keyA = bytes.Repeat([]byte{1}, 32)
	keyB = bytes.Repeat([]byte{2}, 32)
)

func keys(person string) []byte {
	switch person {
	case "staff-1":
		return keyA
	case "holder-1":
		return keyB
	}
	return nil
}

func sample() audit.Event {
	return audit.Event{
		Seq: 7, Time: time.Date(2030, 1, 2, 3, 4, 5, 600000000, time.UTC),
		Actor:  audit.Actor{Kind: audit.ActorStaff, ID: "staff-1", Name: "Claire Agent"},
		Holder: "holder-1", Structure: "mairie-lyon", Action: audit.ActionMailboxRead,
		Target: "message-42", MandateID: "m-1", ClientID: "webmail", Outcome: audit.OutcomeSuccess,
		Reason: "", RequestID: "req-1",
	}
}

// TestLeafEncodingIsStable pins the version-1 encoding: a change here breaks
// every verifier written from docs/audit-format.md.
func TestLeafEncodingIsStable(t *testing.T) {
	leaf, readable, err := audit.EncodeLeaf(sample(), keys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(leaf, []byte(audit.LeafPrefix+`{"action":"mailbox.read","actor_id_c":"`)) {
		t.Errorf("leaf = %s", leaf)
	}
	for _, secret := range []string{"staff-1", "Claire", "holder-1", "message-42"} {
		if bytes.Contains(leaf, []byte(secret)) {
			t.Errorf("leaf holds personal value %q in clear: %s", secret, leaf)
		}
	}
	fields, err := audit.ParseLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"action", "actor_id_c", "actor_kind", "actor_name_c", "client_id", "holder_c", "mandate_id", "outcome", "request_id", "seq", "structure", "target_c", "time"}
	var got []string
	for k := range fields {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, wantKeys) {
		t.Errorf("leaf keys = %v, want %v", got, wantKeys)
	}
	if fields["time"] != "2030-01-02T03:04:05.6Z" || fields["seq"] != "7" {
		t.Errorf("time/seq = %q/%q", fields["time"], fields["seq"])
	}
	// Keys appear sorted in the bytes themselves.
	var order []string
	dec := json.NewDecoder(bytes.NewReader(leaf[len(audit.LeafPrefix):]))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		order = append(order, k.(string))
		dec.Token()
	}
	if !slices.IsSorted(order) {
		t.Errorf("keys not sorted in the encoding: %v", order)
	}
	// Commitments open with the per-event opening.
	op := audit.Opening(keyB, 7, audit.FieldTarget)
	if c := audit.Commit(op, "message-42"); fields["target_c"] != hexs(c) {
		t.Error("target commitment does not open under the holder's key")
	}
	if len(readable) != 2 || readable[0].Person != "staff-1" || readable[1].Fields["holder"] != "holder-1" || readable[1].Fields["target"] != "message-42" {
		t.Errorf("readable = %+v", readable)
	}
	again, _, _ := audit.EncodeLeaf(sample(), keys)
	if !bytes.Equal(leaf, again) {
		t.Error("encoding is not deterministic")
	}
	e := sample()
	e.Seq = 8
	other, _, _ := audit.EncodeLeaf(e, keys)
	f2, _ := audit.ParseLeaf(other)
	if f2["holder_c"] == fields["holder_c"] {
		t.Error("commitments of one value are linkable across events")
	}
}

func TestLeafKeepsNonPersonalActorsInClear(t *testing.T) {
	e := audit.Event{Seq: 1, Time: time.Unix(0, 0), Actor: audit.Actor{Kind: audit.ActorClient, ID: "webmail", Name: "Webmail"},
		Action: audit.ActionClientDeleted, Target: "old-client", Outcome: audit.OutcomeSuccess, Reason: "retired <app> & co"}
	leaf, readable, err := audit.EncodeLeaf(e, keys)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := audit.ParseLeaf(leaf)
	if f["actor_id"] != "webmail" || f["actor_name"] != "Webmail" || f["target"] != "old-client" || len(readable) != 0 {
		t.Errorf("fields = %v, readable = %v", f, readable)
	}
	if !bytes.Contains(leaf, []byte("<app> & co")) {
		t.Errorf("HTML escaping changed the reason: %s", leaf)
	}
	_, _, err = audit.EncodeLeaf(sample(), func(string) []byte { return nil })
	if err == nil {
		t.Error("encoded personal fields without a key")
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", 1025)
	cases := []struct {
		name string
		edit func(*audit.Event)
		ok   bool
	}{
		{"valid", func(*audit.Event) {}, true},
		{"system actor without id", func(e *audit.Event) { e.Actor = audit.Actor{Kind: audit.ActorSystem} }, true},
		{"unknown action", func(e *audit.Event) { e.Action = "mailbox.burn" }, false},
		{"empty action", func(e *audit.Event) { e.Action = "" }, false},
		{"unknown outcome", func(e *audit.Event) { e.Outcome = "maybe" }, false},
		{"unknown actor kind", func(e *audit.Event) { e.Actor.Kind = "robot" }, false},
		{"person actor without id", func(e *audit.Event) { e.Actor.ID = "" }, false},
		{"oversized reason", func(e *audit.Event) { e.Reason = long }, false},
		{"oversized target", func(e *audit.Event) { e.Target = long }, false},
		{"oversized holder", func(e *audit.Event) { e.Holder = long[:257] }, false},
		{"control character", func(e *audit.Event) { e.Actor.Name = "a\nb" }, false},
		{"invalid UTF-8", func(e *audit.Event) { e.Structure = "\xff" }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sample()
			c.edit(&e)
			err := e.Validate()
			if c.ok && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if !c.ok && !errors.Is(err, audit.ErrInvalid) {
				t.Errorf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
