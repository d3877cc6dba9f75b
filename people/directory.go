package people

import (
	"context"
	"fmt"
	"strings"

	"github.com/mandated/mandated/mandate"
)

// Directory answers the mandate service's questions about people
// (mandate.Directory) from the people store.
type Directory struct{ store DirectoryStore }

// DirectoryStore is what a Directory reads.
type DirectoryStore interface {
	GetStaff(ctx context.Context, id string) (Staff, error)
	GetStructure(ctx context.Context, id string) (Structure, error)
	GetHolder(ctx context.Context, id string) (Holder, error)
	FindHolderByMailbox(ctx context.Context, mailbox string) (Holder, error)
	HolderServedBy(ctx context.Context, holderID, structureID string) (bool, error)
}

// NewDirectory returns a Directory over st.
func NewDirectory(st DirectoryStore) *Directory { return &Directory{store: st} }

var _ mandate.Directory = (*Directory)(nil)

// Delegate returns a staff member; Active is false once deactivated or
// before they finished enrolling.
func (d *Directory) Delegate(ctx context.Context, staffID string) (mandate.Person, error) {
	s, err := d.store.GetStaff(ctx, staffID)
	if err != nil {
		return mandate.Person{}, fmt.Errorf("delegate %s: %w", staffID, err)
	}
	return mandate.Person{
		ID: s.ID, DisplayName: s.DisplayName, StructureID: s.StructureID,
		Active: s.Status == StaffActive,
	}, nil
}

// Holder returns a holder served by structureID; ErrNotFound otherwise.
func (d *Directory) Holder(ctx context.Context, structureID, holderID string) (mandate.Person, error) {
	h, err := d.store.GetHolder(ctx, holderID)
	if err != nil {
		return mandate.Person{}, fmt.Errorf("holder %s: %w", holderID, err)
	}
	return d.served(ctx, structureID, h)
}

// HolderByMailbox is Holder by mailbox address.
func (d *Directory) HolderByMailbox(ctx context.Context, structureID, mailbox string) (mandate.Person, error) {
	h, err := d.store.FindHolderByMailbox(ctx, strings.ToLower(strings.TrimSpace(mailbox)))
	if err != nil {
		return mandate.Person{}, fmt.Errorf("holder by mailbox: %w", err)
	}
	return d.served(ctx, structureID, h)
}

func (d *Directory) served(ctx context.Context, structureID string, h Holder) (mandate.Person, error) {
	ok, err := d.store.HolderServedBy(ctx, h.ID, structureID)
	if err != nil {
		return mandate.Person{}, fmt.Errorf("holder %s served by %s: %w", h.ID, structureID, err)
	}
	if !ok {
		return mandate.Person{}, fmt.Errorf("holder %s is not served by structure %s: %w", h.ID, structureID, mandate.ErrNotFound)
	}
	return mandate.Person{ID: h.ID, DisplayName: h.DisplayName, Mailbox: h.Mailbox, Active: true}, nil
}

// StructureName returns a structure's name.
func (d *Directory) StructureName(ctx context.Context, id string) (string, error) {
	s, err := d.store.GetStructure(ctx, id)
	if err != nil {
		return "", fmt.Errorf("structure %s: %w", id, err)
	}
	return s.Name, nil
}
