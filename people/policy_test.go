package people

import (
	"errors"
	"testing"
)

func TestCan(t *testing.T) {
	staff := func(r Role, structure string, platform bool) Principal {
		return Principal{Kind: "staff", ID: "s", Role: r, StructureID: structure, Platform: platform}
	}
	holder := Principal{Kind: "holder", ID: "h"}
	tests := []struct {
		name      string
		p         Principal
		perm      Permission
		structure string
		want      bool
	}{
		{"admin manages own staff", staff(RoleAdmin, "a", false), PermManageStaff, "a", true},
		{"admin not another structure", staff(RoleAdmin, "a", false), PermManageStaff, "b", false},
		{"admin not without structure", staff(RoleAdmin, "a", false), PermManageStaff, "", false},
		{"platform admin any structure", staff(RoleAdmin, "a", true), PermManageStaff, "b", true},
		{"platform admin creates structures", staff(RoleAdmin, "a", true), PermManageStructures, "", true},
		{"structure admin does not", staff(RoleAdmin, "a", false), PermManageStructures, "a", false},
		{"platform auditor does not", staff(RoleAuditor, "a", true), PermManageStructures, "", false},
		{"mediator serves holders", staff(RoleMediator, "a", false), PermServeHolders, "a", true},
		{"mediator requests mandates", staff(RoleMediator, "a", false), PermRequestMandates, "a", true},
		{"mediator no staff management", staff(RoleMediator, "a", false), PermManageStaff, "a", false},
		{"mediator no audit", staff(RoleMediator, "a", false), PermReadAudit, "a", false},
		{"mediator no import", staff(RoleMediator, "a", false), PermImportHolders, "a", false},
		{"admin imports", staff(RoleAdmin, "a", false), PermImportHolders, "a", true},
		{"admin no mandates", staff(RoleAdmin, "a", false), PermRequestMandates, "a", false},
		{"auditor reads audit", staff(RoleAuditor, "a", false), PermReadAudit, "a", true},
		{"auditor not another structure", staff(RoleAuditor, "a", false), PermReadAudit, "b", false},
		{"platform auditor any structure", staff(RoleAuditor, "a", true), PermReadAudit, "b", true},
		{"auditor no holders", staff(RoleAuditor, "a", false), PermServeHolders, "a", false},
		{"holder nothing", holder, PermReadAudit, "a", false},
		{"unknown role nothing", staff("root", "a", true), PermReadAudit, "a", false},
		{"nobody", Principal{}, PermServeHolders, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Can(tt.p, tt.perm, tt.structure); got != tt.want {
				t.Fatalf("Can = %v, want %v", got, tt.want)
			}
			err := Authorize(tt.p, tt.perm, tt.structure)
			if (err == nil) != tt.want || (err != nil && !errors.Is(err, ErrForbidden)) {
				t.Fatalf("Authorize = %v", err)
			}
		})
	}
}
