package mandate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy("mairie-lyon")
	if err := p.Validate(); err != nil {
		t.Fatalf("the default policy is invalid: %v", err)
	}
	want := []string{ScopeMailRead, ScopeMailSend, ScopeMailOrganize, ScopeMailDelete}
	if p.StructureID != "mairie-lyon" || !slices.Equal(p.AllowedScopes, want) {
		t.Errorf("default policy = %+v, want every mailbox scope of mairie-lyon", p)
	}
	if p.MaxSessionDuration != time.Hour || p.MaxDelegationDuration != 14*24*time.Hour || p.AllowRelaxedPresence {
		t.Errorf("default policy bounds = %+v", p)
	}
}

func TestPolicyValidate(t *testing.T) {
	valid := Policy{
		StructureID:           "s1",
		AllowedScopes:         []string{ScopeMailRead},
		MaxSessionDuration:    time.Hour,
		MaxDelegationDuration: 7 * 24 * time.Hour,
	}
	with := func(f func(*Policy)) Policy { p := valid; f(&p); return p }
	tests := []struct {
		name string
		p    Policy
		want string // "" when valid; else a word of the message
	}{
		{"valid", valid, ""},
		{"relaxed presence allowed", with(func(p *Policy) { p.AllowRelaxedPresence = true }), ""},
		{"shortest session bound", with(func(p *Policy) { p.MaxSessionDuration = MinSessionDuration }), ""},
		{"longest session bound", with(func(p *Policy) { p.MaxSessionDuration = MaxSessionDurationCap }), ""},
		{"shortest delegation bound", with(func(p *Policy) { p.MaxDelegationDuration = MinDelegationDuration }), ""},
		{"longest delegation bound", with(func(p *Policy) { p.MaxDelegationDuration = MaxDelegationDurationCap }), ""},
		{"no scope", with(func(p *Policy) { p.AllowedScopes = nil }), "at least one scope"},
		{"unknown scope", with(func(p *Policy) { p.AllowedScopes = []string{ScopeMailRead, "mail.burn"} }), "mail.burn"},
		{"service scope", with(func(p *Policy) { p.AllowedScopes = []string{ScopeAuditWrite} }), "service scope"},
		{"session bound too short", with(func(p *Policy) { p.MaxSessionDuration = MinSessionDuration - time.Second }), "sessions last"},
		{"session bound too long", with(func(p *Policy) { p.MaxSessionDuration = MaxSessionDurationCap + time.Second }), "sessions last"},
		{"no session bound", with(func(p *Policy) { p.MaxSessionDuration = 0 }), "sessions last"},
		{"delegation bound too short", with(func(p *Policy) { p.MaxDelegationDuration = MinDelegationDuration - time.Second }), "delegations last"},
		{"delegation bound too long", with(func(p *Policy) { p.MaxDelegationDuration = MaxDelegationDurationCap + time.Second }), "delegations last"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrPolicy) {
			t.Errorf("%s: error %v, want an ErrInvalidRequest", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.want)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	t0 := time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)
	p := Policy{
		StructureID:           "s1",
		AllowedScopes:         []string{ScopeMailRead, ScopeMailSend},
		MaxSessionDuration:    time.Hour,
		MaxDelegationDuration: 7 * 24 * time.Hour,
	}
	relaxing := p
	relaxing.AllowRelaxedPresence = true
	session := Request{Kind: KindSession, Scopes: []string{ScopeMailRead}, Presence: PresenceRequired, Duration: 30 * time.Minute}
	delegation := Request{
		Kind: KindDelegation, Scopes: []string{ScopeMailRead, ScopeMailSend}, Presence: PresenceRequired,
		NotBefore: t0, NotAfter: t0.Add(3 * 24 * time.Hour),
	}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	tests := []struct {
		name string
		p    Policy
		req  Request
		want error  // nil, ErrPolicy, ErrPolicyScope or ErrInvalidRequest
		says string // a word of the message
	}{
		{"session", p, session, nil, ""},
		{"shortest session", p, with(session, func(r *Request) { r.Duration = MinSessionDuration }), nil, ""},
		{"longest session here", p, with(session, func(r *Request) { r.Duration = time.Hour }), nil, ""},
		{"delegation", p, delegation, nil, ""},
		{"shortest delegation", p, with(delegation, func(r *Request) { r.NotAfter = t0.Add(MinDelegationDuration) }), nil, ""},
		{"longest delegation here", p, with(delegation, func(r *Request) { r.NotAfter = t0.Add(7 * 24 * time.Hour) }), nil, ""},
		{"relaxed delegation where allowed", relaxing, with(delegation, func(r *Request) { r.Presence = PresenceRelaxed }), nil, ""},

		{"no scope", p, with(session, func(r *Request) { r.Scopes = nil }), ErrInvalidRequest, "no scope"},
		{"unknown scope", p, with(session, func(r *Request) { r.Scopes = []string{"mail.read", "mail.burn"} }), ErrInvalidRequest, "mail.burn"},
		{"unknown kind", p, with(session, func(r *Request) { r.Kind = "visit" }), ErrInvalidRequest, "unknown kind"},
		{"no kind", p, with(session, func(r *Request) { r.Kind = "" }), ErrInvalidRequest, "unknown kind"},
		{"unknown presence on a session", p, with(session, func(r *Request) { r.Presence = "sometimes" }), ErrInvalidRequest, "presence"},
		{"no presence on a delegation", p, with(delegation, func(r *Request) { r.Presence = "" }), ErrInvalidRequest, "presence"},
		{"session too short", p, with(session, func(r *Request) { r.Duration = MinSessionDuration - time.Second }), ErrInvalidRequest, "at least"},
		{"session without duration", p, with(session, func(r *Request) { r.Duration = 0 }), ErrInvalidRequest, "at least"},
		{"window ends before it starts", p, with(delegation, func(r *Request) { r.NotAfter = t0.Add(-time.Hour) }), ErrInvalidRequest, "window"},
		{"empty window", p, with(delegation, func(r *Request) { r.NotAfter = t0 }), ErrInvalidRequest, "window"},
		{"delegation too short", p, with(delegation, func(r *Request) { r.NotAfter = t0.Add(MinDelegationDuration - time.Minute) }), ErrInvalidRequest, "at least"},

		{"scope not allowed here", p, with(session, func(r *Request) { r.Scopes = []string{ScopeMailRead, ScopeMailDelete} }), ErrPolicyScope, "mail.delete"},
		{"service scope", p, with(session, func(r *Request) { r.Scopes = []string{ScopeAuditWrite} }), ErrPolicyScope, "audit.write"},
		{"service scope even if listed", Policy{AllowedScopes: []string{ScopeAuditWrite}, MaxSessionDuration: time.Hour}, with(session, func(r *Request) { r.Scopes = []string{ScopeAuditWrite} }), ErrPolicyScope, "audit.write"},
		{"session too long here", p, with(session, func(r *Request) { r.Duration = time.Hour + time.Second }), ErrPolicy, "at most"},
		{"relaxed session", relaxing, with(session, func(r *Request) { r.Presence = PresenceRelaxed }), ErrPolicy, "presence"},
		{"relaxed delegation where not allowed", p, with(delegation, func(r *Request) { r.Presence = PresenceRelaxed }), ErrPolicy, "presence"},
		{"delegation too long here", p, with(delegation, func(r *Request) { r.NotAfter = t0.Add(7*24*time.Hour + time.Second) }), ErrPolicy, "at most"},
	}
	for _, tt := range tests {
		err := tt.p.Check(tt.req)
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%s: refused: %v", tt.name, err)
		case tt.want == nil:
		case !errors.Is(err, tt.want):
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		case errors.Is(err, ErrPolicyScope) != (tt.want == ErrPolicyScope):
			t.Errorf("%s: error %v: ErrPolicyScope is %v, want %v", tt.name, err, errors.Is(err, ErrPolicyScope), tt.want == ErrPolicyScope)
		case tt.want == ErrPolicyScope && !errors.Is(err, ErrPolicy):
			t.Errorf("%s: error %v does not wrap ErrPolicy", tt.name, err)
		case errors.Is(err, ErrPolicy) && errors.Is(err, ErrInvalidRequest):
			t.Errorf("%s: error %v wraps both ErrPolicy and ErrInvalidRequest", tt.name, err)
		case !strings.Contains(err.Error(), tt.says):
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.says)
		}
	}
}
