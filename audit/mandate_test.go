package audit_test

import (
	"errors"
	"testing"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

func TestMandateEvent(t *testing.T) {
	m := mandate.Mandate{
		ID: "m1", HolderID: "h1", StructureID: "s1", ClientID: "webmail",
		Scopes: []string{"mail.read", "mail.send"}, ConsentHash: "ab12", EndReason: mandate.EndedByPresence,
	}
	staff := mandate.Actor{Kind: "staff", ID: "st1", Name: "Awa"}
	tests := []struct {
		name    string
		rec     mandate.Record
		action  audit.Action
		outcome audit.Outcome
		target  string
		reason  string
		wantErr bool
	}{
		{"requested", mandate.Record{Step: mandate.StepRequested, Actor: staff, Mandate: m}, audit.ActionMandateRequested, audit.OutcomeSuccess, "scope:mail.read mail.send", "", false},
		{"approved names the receipt", mandate.Record{Step: mandate.StepApproved, Actor: mandate.Actor{Kind: "holder", ID: "h1"}, Mandate: m}, audit.ActionMandateApproved, audit.OutcomeSuccess, "receipt:ab12", "", false},
		{"ended says why", mandate.Record{Step: mandate.StepEnded, Actor: mandate.Actor{Kind: "system", ID: "x"}, Mandate: m}, audit.ActionMandateEnded, audit.OutcomeSuccess, "scope:mail.read mail.send", "ended by presence_lost", false},
		{"denied", mandate.Record{Step: mandate.StepRefusedBy, Actor: staff, Mandate: m, Denied: true, Reason: "policy"}, audit.ActionMandateRequestDenied, audit.OutcomeDenied, "scope:mail.read mail.send", "policy", false},
		{"unknown step", mandate.Record{Step: "mandate.nope", Actor: staff}, "", "", "", "", true},
		{"unknown actor kind", mandate.Record{Step: mandate.StepEnded, Actor: mandate.Actor{Kind: "robot", ID: "r"}}, "", "", "", "", true},
		{"staff without id", mandate.Record{Step: mandate.StepEnded, Actor: mandate.Actor{Kind: "staff"}}, "", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := audit.MandateEvent(tt.rec)
			if tt.wantErr {
				if !errors.Is(err, audit.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Action != tt.action || e.Outcome != tt.outcome || e.Target != tt.target || e.Reason != tt.reason {
				t.Fatalf("event = %+v", e)
			}
			if e.MandateID != "m1" || e.Holder != "h1" || e.Structure != "s1" || e.ClientID != "webmail" {
				t.Fatalf("mandate fields lost: %+v", e)
			}
			if e.Actor.Kind == audit.ActorSystem && e.Actor.ID != "" {
				t.Fatalf("system actor keeps an id: %+v", e.Actor)
			}
		})
	}
	// Every step the mandate service can take maps to a known action.
	for _, s := range []mandate.Step{mandate.StepRequested, mandate.StepApproved, mandate.StepRefused, mandate.StepLapsed,
		mandate.StepActivated, mandate.StepEnded, mandate.StepRefusedBy, mandate.StepPolicy,
		mandate.StepPresenceStarted, mandate.StepPresenceEnded} {
		e, err := audit.MandateEvent(mandate.Record{Step: s, Actor: staff, Mandate: m})
		if err != nil || !e.Action.Valid() {
			t.Fatalf("step %s: %v", s, err)
		}
	}
}
