package authz

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
)

// ConsoleClientID is the mediator console's client: a first-party public
// client that uses only the device code grant (RFC 8628), whose actor is the
// signed-in mediator (docs/mandates.md).
const ConsoleClientID = "mandated-console"

// EnsureConsoleClient registers the console's client when it does not
// exist yet, with every mailbox scope; an existing registration is left as
// it is (an operator may have narrowed it). Safe on several replicas at once.
func (s *Server) EnsureConsoleClient(ctx context.Context) error {
	if _, err := s.store.GetClient(ctx, ConsoleClientID); err == nil {
		return nil
	}
	var scopes []string
	for _, sc := range mandate.Scopes() {
		if !sc.Service {
			scopes = append(scopes, sc.Name)
		}
	}
	c, err := s.clientFromSpec(ClientSpec{
		Name: "Console des médiateurs", GrantTypes: []string{GrantTypeDeviceCode},
		Scopes: scopes, AuthMethod: AuthMethodNone,
	})
	if err != nil {
		return fmt.Errorf("console client: %w", err)
	}
	c.ID = ConsoleClientID
	c.CreatedAt = s.clock.Now()
	if err := c.Prepare(); err != nil {
		return fmt.Errorf("console client: %w", err)
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		if errors.Is(err, mandate.ErrAlreadyExists) {
			return nil // another replica registered it
		}
		return fmt.Errorf("register the console client: %w", err)
	}
	if err := s.recordAdmin(ctx, audit.ActionClientRegistered, c.ID, "client "+c.ID); err != nil {
		if derr := s.store.DeleteClient(ctx, c.ID); derr != nil {
			return fmt.Errorf("register the console client: %w (and removing it failed: %v)", err, derr)
		}
		return fmt.Errorf("register the console client: %w", err)
	}
	return nil
}
