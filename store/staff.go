package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandated/mandated/people"
	"gorm.io/gorm"
)

type structureRow struct {
	ID        string `gorm:"primaryKey"`
	Name      string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (structureRow) TableName() string { return "structures" }

func (r structureRow) toStructure() people.Structure {
	return people.Structure{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC()}
}

// CreateStructure stores a structure; mandate.ErrAlreadyExists if the ID or name is taken.
func (s *Store) CreateStructure(ctx context.Context, st people.Structure) error {
	created := st.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	row := structureRow{ID: st.ID, Name: st.Name, CreatedAt: utc(created)}
	return s.wrap(s.w(ctx).Create(&row).Error, "create structure %q", st.Name)
}

// GetStructure returns mandate.ErrNotFound when there is none.
func (s *Store) GetStructure(ctx context.Context, id string) (people.Structure, error) {
	return s.findStructure(ctx, "id = ?", id)
}

// FindStructureByName returns mandate.ErrNotFound when there is none.
func (s *Store) FindStructureByName(ctx context.Context, name string) (people.Structure, error) {
	return s.findStructure(ctx, "name = ?", name)
}

func (s *Store) findStructure(ctx context.Context, cond, arg string) (people.Structure, error) {
	var row structureRow
	err := s.r(ctx).Where(cond, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Structure{}, notFound("structure %q", arg)
	}
	if err != nil {
		return people.Structure{}, s.wrap(err, "load structure %q", arg)
	}
	return row.toStructure(), nil
}

type staffRow struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	DisplayName  string
	Role         string
	StructureID  *string // NULL for platform staff outside any structure
	Platform     bool
	Status       string
	PasswordHash string
	SealedTOTP   []byte    `gorm:"column:sealed_totp"`
	LastTOTPStep int64     `gorm:"column:last_totp_step"`
	CreatedAt    time.Time `gorm:"autoCreateTime:false"`
	LastSignInAt *time.Time
}

func (staffRow) TableName() string { return "staff" }

func newStaffRow(st people.Staff) staffRow {
	row := staffRow{
		ID: st.ID, Email: strings.ToLower(st.Email), DisplayName: st.DisplayName,
		Role: string(st.Role), Platform: st.Platform, Status: string(st.Status),
		PasswordHash: st.PasswordHash, SealedTOTP: nilIfEmpty(st.SealedTOTP),
		LastTOTPStep: st.LastTOTPStep, CreatedAt: utc(st.CreatedAt), LastSignInAt: utcPtr(st.LastSignInAt),
	}
	if st.StructureID != "" {
		id := st.StructureID
		row.StructureID = &id
	}
	return row
}

func (r staffRow) toStaff() people.Staff {
	st := people.Staff{
		ID: r.ID, Email: r.Email, DisplayName: r.DisplayName, Role: people.Role(r.Role),
		Platform: r.Platform, Status: people.StaffStatus(r.Status), PasswordHash: r.PasswordHash,
		SealedTOTP: r.SealedTOTP, LastTOTPStep: r.LastTOTPStep,
		CreatedAt: r.CreatedAt.UTC(), LastSignInAt: utcPtr(r.LastSignInAt),
	}
	if r.StructureID != nil {
		st.StructureID = *r.StructureID
	}
	return st
}

// CreateStaff stores an account, its email lower-cased;
// mandate.ErrAlreadyExists if the ID or email is taken, mandate.ErrNotFound
// if its structure does not exist.
func (s *Store) CreateStaff(ctx context.Context, st people.Staff) error {
	if st.CreatedAt.IsZero() {
		st.CreatedAt = s.now()
	}
	row := newStaffRow(st)
	return s.wrap(s.w(ctx).Create(&row).Error, "create staff %s", st.ID)
}

// GetStaff returns mandate.ErrNotFound when there is none.
func (s *Store) GetStaff(ctx context.Context, id string) (people.Staff, error) {
	return s.findStaff(s.r(ctx), "id = ?", id)
}

// FindStaffByEmail finds an account by email, whatever its case.
func (s *Store) FindStaffByEmail(ctx context.Context, email string) (people.Staff, error) {
	return s.findStaff(s.r(ctx), "email = ?", strings.ToLower(email))
}

func (s *Store) findStaff(db *gorm.DB, cond, arg string) (people.Staff, error) {
	var row staffRow
	err := db.Where(cond, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Staff{}, notFound("staff %s", arg)
	}
	if err != nil {
		return people.Staff{}, s.wrap(err, "load staff %s", arg)
	}
	return row.toStaff(), nil
}

// CountStaff counts every account, whatever its status.
func (s *Store) CountStaff(ctx context.Context) (int, error) {
	var n int64
	if err := s.r(ctx).Model(&staffRow{}).Count(&n).Error; err != nil {
		return 0, s.wrap(err, "count staff")
	}
	return int(n), nil
}

// ListStaff returns the accounts of a structure, oldest first; an empty
// structureID lists every account.
func (s *Store) ListStaff(ctx context.Context, structureID string) ([]people.Staff, error) {
	q := s.r(ctx)
	if structureID != "" {
		q = q.Where("structure_id = ?", structureID)
	}
	var rows []staffRow
	if err := q.Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list staff of structure %q", structureID)
	}
	out := make([]people.Staff, len(rows))
	for i, r := range rows {
		out[i] = r.toStaff()
	}
	return out, nil
}

// UpdateStaff reads, changes with fn and writes one account in a single
// transaction (row-locked on PostgreSQL). fn's error aborts and is returned;
// fn cannot change the ID.
func (s *Store) UpdateStaff(ctx context.Context, id string, fn func(*people.Staff) error) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		return s.updateStaff(tx, id, fn)
	})
}

func (s *Store) updateStaff(tx *gorm.DB, id string, fn func(*people.Staff) error) error {
	st, err := s.findStaff(s.forUpdate(tx), "id = ?", id)
	if err != nil {
		return fmt.Errorf("update staff: %w", err)
	}
	if err := fn(&st); err != nil {
		return err
	}
	st.ID = id
	row := newStaffRow(st)
	// Select("*") writes every column, zero values included.
	if err := tx.Model(&staffRow{ID: id}).Select("*").Updates(&row).Error; err != nil {
		return s.wrap(err, "update staff %s", id)
	}
	return nil
}
