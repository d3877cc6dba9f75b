package people

import "strings"

// Principal is whoever is signed in to a browser session.
type Principal struct {
	Subject     string // "staff:<id>" or "holder:<id>"; the OAuth2 `sub` of tokens issued to them
	Kind        string // "staff" or "holder"
	ID          string
	DisplayName string
	Email       string // staff: their email; holder: their mailbox
	Role        Role
	StructureID string
	Platform    bool
}

// StaffSubject is the subject identifier of a staff account.
func StaffSubject(id string) string { return "staff:" + id }

// ParseSubject splits "kind:id".
func ParseSubject(subject string) (kind, id string, ok bool) {
	return strings.Cut(subject, ":")
}
