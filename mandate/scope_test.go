package mandate

import (
	"errors"
	"testing"
)

func TestCatalogueHasTheMailScopesInBothLanguages(t *testing.T) {
	for _, name := range []string{ScopeMailRead, ScopeMailSend, ScopeMailOrganize, ScopeMailDelete} {
		s, ok := LookupScope(name)
		if !ok {
			t.Fatalf("%s missing from the catalogue", name)
		}
		if s.Label("fr") == "" || s.Label("en") == "" || s.Description("fr") == "" || s.Description("en") == "" {
			t.Errorf("%s lacks a label or description: %+v", name, s)
		}
		if s.Label("fr") == s.Label("en") {
			t.Errorf("%s: French and English labels are the same", name)
		}
	}
}

func TestValidateScopes(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		unknown []string
	}{
		{"empty", nil, nil},
		{"known", []string{"mail.read", "mail.send"}, nil},
		{"one unknown", []string{"mail.read", "mail.admin"}, []string{"mail.admin"}},
		{"case matters", []string{"Mail.Read"}, []string{"Mail.Read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateScopes(tt.in)
			var ue *UnknownScopeError
			if tt.unknown == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.As(err, &ue) {
				t.Fatalf("want UnknownScopeError, got %v", err)
			}
			if len(ue.Names) != len(tt.unknown) || ue.Names[0] != tt.unknown[0] {
				t.Errorf("unknown = %v, want %v", ue.Names, tt.unknown)
			}
		})
	}
}

func TestScopesReturnsACopy(t *testing.T) {
	s := Scopes()
	s[0].Name = "changed"
	if _, ok := LookupScope(ScopeMailRead); !ok {
		t.Fatal("mutating Scopes() changed the catalogue")
	}
}

func TestAuditWriteIsAServiceScope(t *testing.T) {
	if err := ValidateScopes([]string{ScopeAuditWrite, ScopeMailRead}); err != nil {
		t.Fatalf("audit.write is not grantable: %v", err)
	}
	s, ok := LookupScope(ScopeAuditWrite)
	if !ok || !s.Service || s.Label("fr") == "" || s.Label("en") == "" || s.Label("fr") == s.Label("en") {
		t.Fatalf("audit.write = %+v, %v", s, ok)
	}
	if !IsServiceScope(ScopeAuditWrite) {
		t.Error("IsServiceScope(audit.write) = false")
	}
	for _, name := range []string{ScopeMailRead, ScopeMailSend, ScopeMailOrganize, ScopeMailDelete, "nope"} {
		if IsServiceScope(name) {
			t.Errorf("IsServiceScope(%s) = true", name)
		}
	}
}
