package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/mandated/mandated/people"
)

var _ people.HoldersStore = (*Store)(nil)

type holderRow struct {
	ID                 string `gorm:"primaryKey"`
	Mailbox            string
	DisplayName        string
	Phone              string
	Email              string
	Language           string
	StaffID            *string
	ContactConfirmedAt *time.Time
	CreatedAt          time.Time `gorm:"autoCreateTime:false"`
}

func (holderRow) TableName() string { return "holders" }

func newHolderRow(h people.Holder) holderRow {
	mailbox := strings.ToLower(h.Mailbox)
	row := holderRow{
		ID: h.ID, Mailbox: mailbox, DisplayName: h.DisplayName, Phone: h.Phone,
		Email: strings.ToLower(h.Email), Language: h.Language,
		ContactConfirmedAt: utcPtr(h.ContactConfirmedAt), CreatedAt: utc(h.CreatedAt),
	}
	if h.StaffID != "" {
		id := h.StaffID
		row.StaffID = &id
	}
	return row
}

// searchText is what a search matches: the mailbox and the name,
// lower-cased in Go (Unicode), so both dialects agree.
func (r holderRow) searchText() string {
	return strings.ToLower(r.Mailbox + "\n" + r.DisplayName)
}

func (r holderRow) toHolder() people.Holder {
	h := people.Holder{
		ID: r.ID, Mailbox: r.Mailbox, DisplayName: r.DisplayName, Phone: r.Phone, Email: r.Email,
		Language: r.Language, ContactConfirmedAt: utcPtr(r.ContactConfirmedAt), CreatedAt: r.CreatedAt.UTC(),
	}
	if r.StaffID != nil {
		h.StaffID = *r.StaffID
	}
	return h
}

// holderStructureRow links a holder to a structure; it copies the
// holder's mailbox and search text, so that a structure's holders are paged
// and searched from its own rows, joining only the page.
type holderStructureRow struct {
	HolderID    string `gorm:"primaryKey"`
	StructureID string `gorm:"primaryKey"`
	Mailbox     string
	SearchText  string
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
}

func (holderStructureRow) TableName() string { return "holder_structures" }

// CreateHolder stores h (mailbox lower-cased) and links it to structureID,
// in one transaction. mandate.ErrAlreadyExists when the ID or mailbox is
// taken, mandate.ErrNotFound when the structure does not exist.
func (s *Store) CreateHolder(ctx context.Context, h people.Holder, structureID string) error {
	if h.CreatedAt.IsZero() {
		h.CreatedAt = s.now()
	}
	row := newHolderRow(h)
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return s.wrap(err, "create holder %s", h.ID)
		}
		link := holderStructureRow{HolderID: row.ID, StructureID: structureID, Mailbox: row.Mailbox, SearchText: row.searchText(), CreatedAt: row.CreatedAt}
		if err := tx.Create(&link).Error; err != nil {
			return s.wrap(err, "link holder %s to structure %s", h.ID, structureID)
		}
		return nil
	})
}

// GetHolder returns mandate.ErrNotFound when there is none.
func (s *Store) GetHolder(ctx context.Context, id string) (people.Holder, error) {
	return s.findHolder(s.r(ctx), "id = ?", id)
}

// FindHolderByMailbox finds a holder by mailbox, whatever its case.
func (s *Store) FindHolderByMailbox(ctx context.Context, mailbox string) (people.Holder, error) {
	return s.findHolder(s.r(ctx), "mailbox = ?", strings.ToLower(mailbox))
}

func (s *Store) findHolder(db *gorm.DB, cond, arg string) (people.Holder, error) {
	var row holderRow
	err := db.Where(cond, arg).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return people.Holder{}, notFound("holder %s", arg)
	}
	if err != nil {
		return people.Holder{}, s.wrap(err, "load holder %s", arg)
	}
	return row.toHolder(), nil
}

// UpdateHolder reads, changes with fn and writes one holder in a single
// transaction (row-locked on PostgreSQL). fn's error aborts and is
// returned; fn cannot change the ID.
func (s *Store) UpdateHolder(ctx context.Context, id string, fn func(*people.Holder) error) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		h, err := s.findHolder(s.forUpdate(tx), "id = ?", id)
		if err != nil {
			return fmt.Errorf("update holder: %w", err)
		}
		if err := fn(&h); err != nil {
			return err
		}
		h.ID = id
		row := newHolderRow(h)
		if err := tx.Model(&holderRow{ID: id}).Select("*").Updates(&row).Error; err != nil {
			return s.wrap(err, "update holder %s", id)
		}
		err = tx.Model(&holderStructureRow{}).Where("holder_id = ?", id).
			Updates(map[string]any{"mailbox": row.Mailbox, "search_text": row.searchText()}).Error
		return s.wrap(err, "update holder %s", id)
	})
}

// LinkHolder records that structureID serves the holder; linking twice is
// not an error. mandate.ErrNotFound when the holder or structure does not exist.
func (s *Store) LinkHolder(ctx context.Context, holderID, structureID string, at time.Time) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		h, err := s.findHolder(tx, "id = ?", holderID)
		if err != nil {
			return fmt.Errorf("link holder: %w", err)
		}
		link := holderStructureRow{HolderID: holderID, StructureID: structureID, Mailbox: h.Mailbox,
			SearchText: newHolderRow(h).searchText(), CreatedAt: utc(at)}
		err = tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "holder_id"}, {Name: "structure_id"}}, DoNothing: true}).
			Create(&link).Error
		return s.wrap(err, "link holder %s to structure %s", holderID, structureID)
	})
}

// HolderServedBy reports whether structureID serves the holder.
func (s *Store) HolderServedBy(ctx context.Context, holderID, structureID string) (bool, error) {
	var n int64
	err := s.r(ctx).Model(&holderStructureRow{}).
		Where("holder_id = ? AND structure_id = ?", holderID, structureID).Count(&n).Error
	if err != nil {
		return false, s.wrap(err, "holder %s served by %s", holderID, structureID)
	}
	return n > 0, nil
}

// HolderStructures lists the ids of the structures serving the holder, sorted.
func (s *Store) HolderStructures(ctx context.Context, holderID string) ([]string, error) {
	var ids []string
	err := s.r(ctx).Model(&holderStructureRow{}).Where("holder_id = ?", holderID).
		Order("structure_id").Pluck("structure_id", &ids).Error
	if err != nil {
		return nil, s.wrap(err, "structures of holder %s", holderID)
	}
	return ids, nil
}

// likeEscaper escapes LIKE wildcards (the escape character is '!').
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// ListHolders pages through a structure's holders by mailbox. Search is a
// case-insensitive substring of the mailbox or display name (Unicode case
// folding done in Go, so both dialects agree).
func (s *Store) ListHolders(ctx context.Context, structureID string, q people.HolderQuery) ([]people.Holder, error) {
	limit := q.Limit
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	db := s.r(ctx).Table("holder_structures AS hs").Select("h.*").
		Joins("JOIN holders AS h ON h.id = hs.holder_id").
		Where("hs.structure_id = ?", structureID)
	if q.After != "" {
		db = db.Where("hs.mailbox > ?", strings.ToLower(q.After))
	}
	if q.Search != "" {
		db = db.Where("hs.search_text LIKE ? ESCAPE '!'", "%"+likeEscaper.Replace(strings.ToLower(q.Search))+"%")
	}
	var rows []holderRow
	if err := db.Order("hs.mailbox").Limit(limit).Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "list holders of structure %s", structureID)
	}
	out := make([]people.Holder, len(rows))
	for i, r := range rows {
		out[i] = r.toHolder()
	}
	return out, nil
}

// CountHolders counts the holders a structure serves.
func (s *Store) CountHolders(ctx context.Context, structureID string) (int, error) {
	var n int64
	if err := s.r(ctx).Model(&holderStructureRow{}).Where("structure_id = ?", structureID).Count(&n).Error; err != nil {
		return 0, s.wrap(err, "count holders of structure %s", structureID)
	}
	return int(n), nil
}
