package people_test

import (
	"errors"
	"testing"

	"github.com/mandated/mandated/people"
)

// TestCheckSubjectRefusesDeactivatedAndUnknownPeople: the check the
// authorization server runs before issuing tokens (wired in cmd/mandated).
func TestCheckSubjectRefusesDeactivatedAndUnknownPeople(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, people.Config{})
	e.svc = people.NewService(e.store, nil, e.clock, nil, people.Config{Holders: e.store})
	if err := e.store.CreateStructure(ctx, people.Structure{ID: "tulle", Name: "Mairie de Tulle"}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	for _, s := range []people.Staff{
		{ID: "active", Email: "a@tulle.fr", Status: people.StaffActive},
		{ID: "pending", Email: "p@tulle.fr", Status: people.StaffPending},
		{ID: "gone", Email: "g@tulle.fr", Status: people.StaffDeactivated},
	} {
		s.DisplayName, s.Role, s.StructureID, s.CreatedAt = s.ID, people.RoleMediator, "tulle", now
		if err := e.store.CreateStaff(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateHolder(ctx, people.Holder{ID: "h1", Mailbox: "jeanne@example.fr", DisplayName: "Jeanne",
		Email: "jeanne@example.fr", Language: "fr", CreatedAt: now}, "tulle"); err != nil {
		t.Fatal(err)
	}
	noHolders := people.NewService(e.store, nil, e.clock, nil, people.Config{})

	tests := []struct {
		name    string
		svc     *people.Service
		subject string
		refused bool
	}{
		{"active staff", e.svc, "staff:active", false},
		{"pending staff", e.svc, "staff:pending", true},
		{"deactivated staff", e.svc, "staff:gone", true},
		{"unknown staff", e.svc, "staff:ghost", true},
		{"staff without an id", e.svc, "staff:", true},
		{"existing holder", e.svc, "holder:h1", false},
		{"unknown holder", e.svc, "holder:nobody", true},
		{"holder without an id", e.svc, "holder:", true},
		{"holder when holders are not wired", noHolders, "holder:h1", true},
		{"a client id", e.svc, "mail-app", false},
		{"a service subject of a trust", e.svc, "agent-42", false},
		{"another kind of subject", e.svc, "urn:example:robot", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.svc.CheckSubject(ctx, tt.subject)
			if got := errors.Is(err, people.ErrSubjectInactive); got != tt.refused || (!tt.refused && err != nil) {
				t.Fatalf("CheckSubject(%q) = %v, want refused %v", tt.subject, err, tt.refused)
			}
		})
	}
}
