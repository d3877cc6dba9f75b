package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mandated/mandated/audit"
)

// FuzzReportAction: parseReport never panics; whatever it accepts is one
// mailbox action with bounded, printable fields that make a valid audit
// event; whatever it refuses is a 400 or 422 problem.
func FuzzReportAction(f *testing.F) {
	for _, seed := range []string{
		`{"token":"a.b.c","action":"mailbox.read","target":"INBOX/1","outcome":"success","reason":"ok"}`,
		`{"token":"a.b.c","action":"mailbox.send","target":"x","outcome":"denied"}`,
		`[{"token":"a.b.c","action":"mailbox.read","target":"x","outcome":"success"}]`,
		`{"token":"a.b.c","action":"token.issued","target":"x","outcome":"success"}`,
		`{"token":"a.b.c","action":"mailbox.read","target":"\u0000","outcome":"success"}`,
		`{"token":"a.b.c","action":"mailbox.read","target":"\ud800","outcome":"success"}`,
		`{"token":1}`, `{"actor":"staff:x"}`, `{} {}`, `null`, `"x"`, ``, `{`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, err := parseReport(body)
		if err != nil {
			var re *reportError
			if !errors.As(err, &re) || (re.status != http.StatusBadRequest && re.status != http.StatusUnprocessableEntity) || re.title == "" {
				t.Fatalf("refusal is not a 400/422 problem: %#v", err)
			}
			return
		}
		if !mailboxActions[rep.Action] {
			t.Fatalf("accepted action %q", rep.Action)
		}
		if rep.Token == "" || len(rep.Token) > reportMaxToken || rep.Target == "" || len(rep.Target) > audit.MaxTargetLen || len(rep.Reason) > reportMaxReason {
			t.Fatalf("accepted unbounded fields: %+v", rep)
		}
		for _, v := range []string{rep.Token, rep.Target, rep.Reason} {
			if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }) {
				t.Fatalf("accepted a bad character: %q", v)
			}
		}
		e := audit.Event{Actor: audit.Actor{Kind: audit.ActorClient, ID: "rs"}, Action: rep.Action, Target: rep.Target,
			Outcome: rep.Outcome, Reason: reportReason(strings.Repeat("c", audit.MaxIDLen), rep.Reason)}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted report makes an invalid event: %v", err)
		}
		// An accepted body is exactly one JSON object.
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted a body that is not one JSON object: %v", err)
		}
	})
}
