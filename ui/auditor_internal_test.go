package ui

import (
	"testing"

	"github.com/mandated/mandated/people"
)

func TestCanReadAudit(t *testing.T) {
	tests := []struct {
		name string
		p    *people.Principal
		want bool
	}{
		{"nobody", nil, false},
		{"auditor", &people.Principal{Kind: "staff", Role: people.RoleAuditor, StructureID: "s1"}, true},
		{"admin", &people.Principal{Kind: "staff", Role: people.RoleAdmin, StructureID: "s1"}, true},
		{"platform auditor", &people.Principal{Kind: "staff", Role: people.RoleAuditor, StructureID: "p", Platform: true}, true},
		{"mediator", &people.Principal{Kind: "staff", Role: people.RoleMediator, StructureID: "s1"}, false},
		{"holder", &people.Principal{Kind: "holder", ID: "h1"}, false},
	}
	for _, tt := range tests {
		if got := (&page{Principal: tt.p}).CanReadAudit(); got != tt.want {
			t.Errorf("%s: CanReadAudit = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAuditorCursorTrail(t *testing.T) {
	if c, back := parseAuditorCursor("", "1.2"); c != 0 || back != nil {
		t.Errorf("no cursor: %d %v", c, back)
	}
	if c, back := parseAuditorCursor("-3", ""); c != 0 || back != nil {
		t.Errorf("negative cursor: %d %v", c, back)
	}
	if c, back := parseAuditorCursor("40", "0.90.65"); c != 40 || len(back) != 3 || back[2] != 65 {
		t.Errorf("trail: %d %v", c, back)
	}
	if c, back := parseAuditorCursor("40", "0.x"); c != 40 || back != nil {
		t.Errorf("bad trail: %d %v", c, back)
	}
	long := ""
	for i := range 30 {
		if i > 0 {
			long += "."
		}
		long += "7"
	}
	if _, back := parseAuditorCursor("40", long); len(back) != auditorMaxBack {
		t.Errorf("trail of 30 kept %d", len(back))
	}
}
