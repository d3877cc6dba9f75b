package ui

import (
	"github.com/mandated/mandated/mandate"
)

// ConsentView is what the consent page shows: one decision, in plain words.
type ConsentView struct {
	ClientID   string
	ClientName string
	Scopes     []mandate.Scope // requested scopes, from the catalogue
	// FormAction is where the page POSTs the decision; Hidden are the fields
	// (the original authorization request's parameters) it posts back with
	// "decision" = "allow" or "deny".
	FormAction string
	Hidden     map[string]string
}

// Problem is a plain-language error page.
type Problem struct {
	TitleFR, TitleEN   string
	DetailFR, DetailEN string
}
