package mandate

import (
	"fmt"
	"strings"
)

// Scope is one entry of the scope catalogue: an OAuth2 scope value with the
// words every consent screen uses to describe it.
type Scope struct {
	Name          string
	LabelFR       string
	LabelEN       string
	DescriptionFR string
	DescriptionEN string
	// Service marks a scope for services acting as themselves (the
	// client_credentials grant), never asked of a person on a consent
	// screen: audit.write.
	Service bool
}

// Label returns the label in the given language ("fr" or "en"; French otherwise).
func (s Scope) Label(lang string) string {
	if lang == "en" {
		return s.LabelEN
	}
	return s.LabelFR
}

// Description returns the one-line description in the given language.
func (s Scope) Description(lang string) string {
	if lang == "en" {
		return s.DescriptionEN
	}
	return s.DescriptionFR
}

// The mailbox scopes.
const (
	ScopeMailRead     = "mail.read"
	ScopeMailSend     = "mail.send"
	ScopeMailOrganize = "mail.organize"
	ScopeMailDelete   = "mail.delete"
)

// ScopeAuditWrite lets a resource server report the mailbox actions it
// performed to the audit log (POST /api/audit/actions). It is a service
// scope: granted by client_credentials only.
const ScopeAuditWrite = "audit.write"

var catalogue = []Scope{
	{
		Name:          ScopeMailRead,
		LabelFR:       "Lire les messages",
		LabelEN:       "Read messages",
		DescriptionFR: "Voir la liste des messages et les ouvrir, avec leurs pièces jointes.",
		DescriptionEN: "See the list of messages and open them, with their attachments.",
	},
	{
		Name:          ScopeMailSend,
		LabelFR:       "Envoyer des messages",
		LabelEN:       "Send messages",
		DescriptionFR: "Écrire et envoyer des messages depuis votre adresse.",
		DescriptionEN: "Write and send messages from your address.",
	},
	{
		Name:          ScopeMailOrganize,
		LabelFR:       "Ranger les messages",
		LabelEN:       "Organise messages",
		DescriptionFR: "Déplacer les messages, les marquer et créer des dossiers.",
		DescriptionEN: "Move messages, flag them and create folders.",
	},
	{
		Name:          ScopeMailDelete,
		LabelFR:       "Supprimer des messages",
		LabelEN:       "Delete messages",
		DescriptionFR: "Mettre des messages à la corbeille et les effacer.",
		DescriptionEN: "Move messages to the bin and erase them.",
	},
	{
		Name:          ScopeAuditWrite,
		LabelFR:       "Déclarer des actions au journal d'audit",
		LabelEN:       "Report actions to the audit log",
		DescriptionFR: "Un serveur de messagerie inscrit au journal d'audit les actions faites sur les boîtes aux lettres.",
		DescriptionEN: "A mail server records in the audit log the actions done on mailboxes.",
		Service:       true,
	},
	{
		Name:          "events.read",
		LabelFR:       "Suivre les fins de mandat",
		LabelEN:       "Follow mandate endings",
		DescriptionFR: "Un serveur de messagerie est prévenu aussitôt qu'un mandat prend fin, pour couper les accès ouverts avec ses jetons.",
		DescriptionEN: "A mail server is told at once when a mandate ends, to cut the access opened with its tokens.",
		Service:       true,
	},
}

// Scopes returns the whole catalogue, in display order.
func Scopes() []Scope {
	out := make([]Scope, len(catalogue))
	copy(out, catalogue)
	return out
}

// ScopeNames returns the names of every catalogued scope.
func ScopeNames() []string {
	names := make([]string, len(catalogue))
	for i, s := range catalogue {
		names[i] = s.Name
	}
	return names
}

// LookupScope finds a scope by name.
func LookupScope(name string) (Scope, bool) {
	for _, s := range catalogue {
		if s.Name == name {
			return s, true
		}
	}
	return Scope{}, false
}

// IsServiceScope reports whether name is a catalogued service scope.
func IsServiceScope(name string) bool {
	s, ok := LookupScope(name)
	return ok && s.Service
}

// UnknownScopeError names the scopes that are not in the catalogue.
type UnknownScopeError struct{ Names []string }

func (e *UnknownScopeError) Error() string {
	return fmt.Sprintf("unknown scope(s): %s", strings.Join(e.Names, " "))
}

// ValidateScopes returns an *UnknownScopeError naming every scope that is not
// in the catalogue, or nil when all are known.
func ValidateScopes(names []string) error {
	var unknown []string
	for _, n := range names {
		if _, ok := LookupScope(n); !ok {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return &UnknownScopeError{Names: unknown}
	}
	return nil
}
