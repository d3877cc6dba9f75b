package mandate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is what a structure allows its staff to ask. Each structure has
// one; DefaultPolicy applies until an admin changes it.
type Policy struct {
	StructureID string
	// AllowedScopes are the catalogue scopes staff may ask (never service scopes).
	AllowedScopes []string
	// MaxSessionDuration bounds an assisted session once approved.
	MaxSessionDuration time.Duration
	// MaxDelegationDuration bounds a colleague delegation's window.
	MaxDelegationDuration time.Duration
	// AllowRelaxedPresence lets colleague delegations run without the
	// holder's presence lease (never sessions).
	AllowRelaxedPresence bool
	UpdatedAt            time.Time
	UpdatedBy            string // staff id
}

// Policy bounds that no structure may exceed.
const (
	MinSessionDuration        = 5 * time.Minute
	DefaultSessionDuration    = 30 * time.Minute
	MaxSessionDurationCap     = 4 * time.Hour
	MaxDelegationDurationCap  = 90 * 24 * time.Hour
	MinDelegationDuration     = time.Hour
	DefaultDelegationDuration = 14 * 24 * time.Hour
)

// DefaultPolicy is the policy of a structure whose admin set none: every
// mailbox scope, sessions up to 1 hour, delegations up to 14 days, presence
// always required.
func DefaultPolicy(structureID string) Policy {
	var scopes []string
	for _, s := range catalogue {
		if !s.Service {
			scopes = append(scopes, s.Name)
		}
	}
	return Policy{
		StructureID:           structureID,
		AllowedScopes:         scopes,
		MaxSessionDuration:    time.Hour,
		MaxDelegationDuration: DefaultDelegationDuration,
	}
}

// ErrPolicy wraps every request a structure's policy refuses.
var ErrPolicy = errors.New("refused by the structure's policy")

// ErrPolicyScope wraps (with ErrPolicy) a request for a scope the
// structure's policy does not allow: OAuth2's invalid_scope.
var ErrPolicyScope = fmt.Errorf("%w: scope(s) not allowed", ErrPolicy)

// ErrInvalidRequest wraps every malformed mandate request.
var ErrInvalidRequest = errors.New("invalid mandate request")

// Validate checks the policy itself (an admin's edit): known non-service
// scopes, at least one, durations inside the caps.
func (p Policy) Validate() error {
	if len(p.AllowedScopes) == 0 {
		return fmt.Errorf("%w: a policy allows at least one scope", ErrInvalidRequest)
	}
	if err := ValidateScopes(p.AllowedScopes); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for _, s := range p.AllowedScopes {
		if IsServiceScope(s) {
			return fmt.Errorf("%w: %s is a service scope", ErrInvalidRequest, s)
		}
	}
	if p.MaxSessionDuration < MinSessionDuration || p.MaxSessionDuration > MaxSessionDurationCap {
		return fmt.Errorf("%w: sessions last between %s and %s", ErrInvalidRequest, MinSessionDuration, MaxSessionDurationCap)
	}
	if p.MaxDelegationDuration < MinDelegationDuration || p.MaxDelegationDuration > MaxDelegationDurationCap {
		return fmt.Errorf("%w: delegations last between %s and %s", ErrInvalidRequest, MinDelegationDuration, MaxDelegationDurationCap)
	}
	return nil
}

// Check tells whether the policy allows what req asks; the error wraps
// ErrPolicy (what the structure forbids; ErrPolicyScope too for a scope it
// does not allow) or ErrInvalidRequest (what no structure could allow) and
// names the problem in plain words.
func (p Policy) Check(req Request) error {
	if len(req.Scopes) == 0 {
		return fmt.Errorf("%w: no scope asked", ErrInvalidRequest)
	}
	if err := ValidateScopes(req.Scopes); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	// What no structure could allow is told before what this one forbids.
	if !req.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidRequest, req.Kind)
	}
	if req.Presence != PresenceRequired && req.Presence != PresenceRelaxed {
		return fmt.Errorf("%w: unknown presence policy %q", ErrInvalidRequest, req.Presence)
	}
	var refused []string
	for _, s := range req.Scopes {
		if IsServiceScope(s) || !slices.Contains(p.AllowedScopes, s) {
			refused = append(refused, s)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: %s", ErrPolicyScope, strings.Join(refused, " "))
	}
	switch req.Kind {
	case KindSession:
		if req.Presence != PresenceRequired {
			return fmt.Errorf("%w: an assisted session always needs the holder's presence", ErrPolicy)
		}
		if req.Duration < MinSessionDuration {
			return fmt.Errorf("%w: a session lasts at least %s", ErrInvalidRequest, MinSessionDuration)
		}
		if req.Duration > p.MaxSessionDuration {
			return fmt.Errorf("%w: a session lasts at most %s here", ErrPolicy, p.MaxSessionDuration)
		}
	case KindDelegation:
		if req.Presence == PresenceRelaxed && !p.AllowRelaxedPresence {
			return fmt.Errorf("%w: this structure requires the holder's presence", ErrPolicy)
		}
		if !req.NotAfter.After(req.NotBefore) {
			return fmt.Errorf("%w: the absence window ends before it starts", ErrInvalidRequest)
		}
		if d := req.NotAfter.Sub(req.NotBefore); d < MinDelegationDuration {
			return fmt.Errorf("%w: a delegation lasts at least %s", ErrInvalidRequest, MinDelegationDuration)
		}
		if d := req.NotAfter.Sub(req.NotBefore); d > p.MaxDelegationDuration {
			return fmt.Errorf("%w: a delegation lasts at most %s here", ErrPolicy, p.MaxDelegationDuration)
		}
	}
	return nil
}
