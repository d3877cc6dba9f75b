package authz

import (
	"encoding/base64"
	"testing"

	"github.com/mandated/mandated/audit"
)

func jwtWith(payload string) string {
	return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestReportClaims(t *testing.T) {
	tests := []struct {
		name          string
		payload       string
		actor, mandat string
		ok            bool
	}{
		{"plain", `{"sub":"staff:alice","client_id":"app"}`, "", "", true},
		{"actor", `{"sub":"holder:h1","act":{"sub":"staff:alice"}}`, "staff:alice", "", true},
		{"nested actor: the current one counts", `{"sub":"holder:h1","act":{"sub":"staff:alice","act":{"sub":"app"}}}`, "staff:alice", "", true},
		{"mandate claim", `{"sub":"holder:h1","mandate_id":"m-1"}`, "", "m-1", true},
		{"mandate in authorization_details", `{"sub":"holder:h1","authorization_details":[{"type":"x"},{"type":"mandate","mandate_id":"m-2"}]}`, "", "m-2", true},
		{"mandate claim wins", `{"mandate_id":"m-1","authorization_details":[{"mandate_id":"m-2"}]}`, "", "m-1", true},
		{"act without sub", `{"sub":"holder:h1","act":{}}`, "", "", false},
		{"act not an object", `{"act":"staff:alice"}`, "", "", false},
		{"mandate not a string", `{"mandate_id":7}`, "", "", false},
		{"not JSON", `nope`, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := reportClaims(jwtWith(tt.payload))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if c.actor != tt.actor || c.mandateID != tt.mandat {
				t.Errorf("claims = %+v, want actor %q mandate %q", c, tt.actor, tt.mandat)
			}
		})
	}
	if _, err := reportClaims("not.a-jwt"); err == nil {
		t.Error("a two-segment token was read")
	}
	if _, err := reportClaims("a.%%%.c"); err == nil {
		t.Error("a payload that is not base64url was read")
	}
}

func TestReportActor(t *testing.T) {
	tests := []struct {
		name, sub, act, client string
		want                   audit.Actor
		holder                 string
	}{
		{"staff token", "staff:alice", "", "app", audit.Actor{Kind: audit.ActorStaff, ID: "alice"}, ""},
		{"holder acting themselves", "holder:h1", "", "app", audit.Actor{Kind: audit.ActorHolder, ID: "h1"}, "h1"},
		{"mediator acting for a holder", "holder:h1", "staff:alice", "app", audit.Actor{Kind: audit.ActorStaff, ID: "alice"}, "h1"},
		{"client credentials", "app", "", "app", audit.Actor{Kind: audit.ActorClient, ID: "app"}, ""},
		{"a client acting for a holder", "holder:h1", "gateway", "app", audit.Actor{Kind: audit.ActorClient, ID: "gateway"}, "h1"},
		{"empty person id", "staff:", "", "app", audit.Actor{Kind: audit.ActorClient, ID: "app"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, holder := reportActor(tt.sub, tt.act, tt.client)
			if got != tt.want || holder != tt.holder {
				t.Errorf("reportActor = %+v, %q; want %+v, %q", got, holder, tt.want, tt.holder)
			}
		})
	}
}

func TestServiceScopesAreForClientCredentialsOnly(t *testing.T) {
	s := &Server{}
	web := []string{"https://app.example/cb"}
	if _, err := s.clientFromSpec(ClientSpec{Name: "RS", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"audit.write"}}); err != nil {
		t.Fatalf("resource server refused: %v", err)
	}
	_, err := s.clientFromSpec(ClientSpec{Name: "App", GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials},
		Scopes: []string{"mail.read", "audit.write"}, RedirectURIs: web})
	if err == nil {
		t.Fatal("a client a person consents to was granted audit.write")
	}
}
