package store

import (
	"context"
	"fmt"
	"time"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/mandate"
	"golang.org/x/mod/sumdb/tlog"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

var _ audit.Store = (*Store)(nil)

type auditEventRow struct {
	Seq       int64 `gorm:"primaryKey;autoIncrement:false"`
	Time      time.Time
	Action    string
	Outcome   string
	ActorKind string
	ActorID   string
	Structure string
	MandateID string
	ClientID  string
	RequestID string
	Leaf      []byte
}

func (auditEventRow) TableName() string { return "audit_events" }

type auditHashRow struct {
	Idx  int64 `gorm:"primaryKey;autoIncrement:false"`
	Hash []byte
}

func (auditHashRow) TableName() string { return "audit_hashes" }

type auditReadableRow struct {
	Seq    int64  `gorm:"primaryKey;autoIncrement:false"`
	Person string `gorm:"primaryKey"`
	Roles  string
	Sealed []byte
}

func (auditReadableRow) TableName() string { return "audit_readable" }

type auditCheckpointRow struct {
	Size      int64 `gorm:"primaryKey;autoIncrement:false"`
	Root      []byte
	Note      []byte
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (auditCheckpointRow) TableName() string { return "audit_checkpoints" }

type auditSignerKeyRow struct {
	Name      string `gorm:"primaryKey"`
	Verifier  string
	Sealed    []byte
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (auditSignerKeyRow) TableName() string { return "audit_signer_keys" }

type auditPersonKeyRow struct {
	Person    string `gorm:"primaryKey"`
	Sealed    []byte
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (auditPersonKeyRow) TableName() string { return "audit_person_keys" }

// auditLock serialises audit writers across processes sharing a schema.
const auditLock = "SELECT pg_advisory_xact_lock(hashtext('mandated.audit.' || current_schema()))"

// AppendAudit implements audit.Store: one transaction per batch, writers
// serialised by an advisory lock on PostgreSQL (the single writer
// connection on SQLite), the tree size advanced by compare-and-swap.
func (s *Store) AppendAudit(ctx context.Context, build func(size int64, hashes tlog.HashReader) (audit.Batch, error)) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.dialect == DialectPostgres {
			if err := tx.Exec(auditLock).Error; err != nil {
				return s.wrap(err, "audit append: lock")
			}
		}
		var size int64
		if err := tx.Raw("SELECT size FROM audit_tree_head WHERE id = 1").Scan(&size).Error; err != nil {
			return s.wrap(err, "audit append: read tree size")
		}
		b, err := build(size, auditHashReader{ctx: ctx, s: s, db: tx})
		if err != nil {
			return fmt.Errorf("audit append: %w", err)
		}
		if len(b.Leaves) == 0 {
			return nil
		}
		events := make([]auditEventRow, len(b.Leaves))
		for i, l := range b.Leaves {
			if l.Seq != size+int64(i) {
				return fmt.Errorf("audit append: leaf %d at position %d of a batch from %d", l.Seq, i, size)
			}
			events[i] = auditEventRow{
				Seq: l.Seq, Time: utc(l.Time), Action: string(l.Action), Outcome: string(l.Outcome),
				ActorKind: string(l.ActorKind), ActorID: l.ActorID, Structure: l.Structure, MandateID: l.MandateID,
				ClientID: l.ClientID, RequestID: l.RequestID, Leaf: l.Data,
			}
		}
		if err := tx.CreateInBatches(events, 500).Error; err != nil {
			return s.wrap(err, "audit append: events")
		}
		start := tlog.StoredHashCount(size)
		if want := tlog.StoredHashCount(size+int64(len(b.Leaves))) - start; want != int64(len(b.Hashes)) {
			return fmt.Errorf("audit append: %d hashes for %d leaves, want %d", len(b.Hashes), len(b.Leaves), want)
		}
		hashes := make([]auditHashRow, len(b.Hashes))
		for i, h := range b.Hashes {
			hashes[i] = auditHashRow{Idx: start + int64(i), Hash: h[:]}
		}
		if err := tx.CreateInBatches(hashes, 1000).Error; err != nil {
			return s.wrap(err, "audit append: hashes")
		}
		if len(b.Readable) > 0 {
			rows := make([]auditReadableRow, len(b.Readable))
			for i, r := range b.Readable {
				rows[i] = auditReadableRow{Seq: r.Seq, Person: r.Person, Roles: r.Roles, Sealed: r.Sealed}
			}
			if err := tx.CreateInBatches(rows, 1000).Error; err != nil {
				return s.wrap(err, "audit append: readable fields")
			}
		}
		res := tx.Exec("UPDATE audit_tree_head SET size = ? WHERE id = 1 AND size = ?", size+int64(len(b.Leaves)), size)
		if res.Error != nil {
			return s.wrap(res.Error, "audit append: advance tree size")
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("audit append: tree size moved from %d under us: %w", size, mandate.ErrConflict)
		}
		return nil
	})
}

// auditHashReader reads stored tree hashes through db.
type auditHashReader struct {
	ctx context.Context
	s   *Store
	db  *gorm.DB
}

func (r auditHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	var rows []auditHashRow
	if err := r.db.WithContext(r.ctx).Where("idx IN ?", indexes).Find(&rows).Error; err != nil {
		return nil, r.s.wrap(err, "read audit hashes")
	}
	got := make(map[int64][]byte, len(rows))
	for _, row := range rows {
		got[row.Idx] = row.Hash
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok || len(h) != tlog.HashSize {
			return nil, notFound("audit hash %d", x)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// AuditHashReader implements audit.Store.
func (s *Store) AuditHashReader(ctx context.Context) tlog.HashReader {
	return auditHashReader{ctx: ctx, s: s, db: s.r(ctx)}
}

// AuditTreeSize implements audit.Store.
func (s *Store) AuditTreeSize(ctx context.Context) (int64, error) {
	var size int64
	if err := s.r(ctx).Raw("SELECT size FROM audit_tree_head WHERE id = 1").Scan(&size).Error; err != nil {
		return 0, s.wrap(err, "read audit tree size")
	}
	return size, nil
}

// AuditLeaves implements audit.Store.
func (s *Store) AuditLeaves(ctx context.Context, from, to int64) ([]audit.Leaf, error) {
	var rows []auditEventRow
	if err := s.r(ctx).Where("seq >= ? AND seq < ?", from, to).Order("seq").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "read audit events %d..%d", from, to)
	}
	return leavesFrom(rows), nil
}

func leavesFrom(rows []auditEventRow) []audit.Leaf {
	out := make([]audit.Leaf, len(rows))
	for i, r := range rows {
		out[i] = audit.Leaf{
			Seq: r.Seq, Time: r.Time.UTC(), Action: audit.Action(r.Action), Outcome: audit.Outcome(r.Outcome),
			ActorKind: audit.ActorKind(r.ActorKind), ActorID: r.ActorID, Structure: r.Structure, MandateID: r.MandateID,
			ClientID: r.ClientID, RequestID: r.RequestID, Data: r.Leaf,
		}
	}
	return out
}

// AuditQuery implements audit.Store.
func (s *Store) AuditQuery(ctx context.Context, f audit.Filter) ([]audit.Leaf, error) {
	q := s.r(ctx).Model(&auditEventRow{})
	eq := func(col, v string) {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	eq("structure", f.Structure)
	eq("mandate_id", f.MandateID)
	eq("client_id", f.ClientID)
	eq("action", string(f.Action))
	eq("outcome", string(f.Outcome))
	if f.Actor != "" {
		q = q.Where("actor_id = ? OR seq IN (SELECT seq FROM audit_readable WHERE person = ? AND roles LIKE ?)", f.Actor, f.Actor, "%,actor_id,%")
	}
	if f.Holder != "" {
		q = q.Where("seq IN (SELECT seq FROM audit_readable WHERE person = ? AND roles LIKE ?)", f.Holder, "%,holder,%")
	}
	if !f.Since.IsZero() {
		q = q.Where("time >= ?", utc(f.Since))
	}
	if !f.Until.IsZero() {
		q = q.Where("time < ?", utc(f.Until))
	}
	if f.Before > 0 {
		q = q.Where("seq < ?", f.Before)
	}
	var rows []auditEventRow
	if err := q.Order("seq DESC").Limit(f.Limit).Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "query audit events")
	}
	return leavesFrom(rows), nil
}

// AuditReadableOf implements audit.Store.
func (s *Store) AuditReadableOf(ctx context.Context, seqs []int64) ([]audit.SealedReadable, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	var rows []auditReadableRow
	if err := s.r(ctx).Where("seq IN ?", seqs).Order("seq, person").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "read audit readable fields")
	}
	return readableFrom(rows), nil
}

func readableFrom(rows []auditReadableRow) []audit.SealedReadable {
	out := make([]audit.SealedReadable, len(rows))
	for i, r := range rows {
		out[i] = audit.SealedReadable{Seq: r.Seq, Person: r.Person, Roles: r.Roles, Sealed: r.Sealed}
	}
	return out
}

// AuditSeqRange implements audit.Store.
func (s *Store) AuditSeqRange(ctx context.Context, since, until time.Time) (from, to int64, err error) {
	size, err := s.AuditTreeSize(ctx)
	if err != nil {
		return 0, 0, err
	}
	from, to = 0, size
	if !since.IsZero() {
		var v *int64
		if err := s.r(ctx).Raw("SELECT MIN(seq) FROM audit_events WHERE time >= ?", utc(since)).Scan(&v).Error; err != nil {
			return 0, 0, s.wrap(err, "audit range")
		}
		from = size
		if v != nil {
			from = *v
		}
	}
	if !until.IsZero() {
		var v *int64
		if err := s.r(ctx).Raw("SELECT MAX(seq) FROM audit_events WHERE time < ?", utc(until)).Scan(&v).Error; err != nil {
			return 0, 0, s.wrap(err, "audit range")
		}
		to = 0
		if v != nil {
			to = *v + 1
		}
	}
	return min(from, to), to, nil
}

// AuditReadable implements audit.Store.
func (s *Store) AuditReadable(ctx context.Context, from, to int64) ([]audit.SealedReadable, error) {
	var rows []auditReadableRow
	if err := s.r(ctx).Where("seq >= ? AND seq < ?", from, to).Order("seq, person").Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "read audit readable fields")
	}
	return readableFrom(rows), nil
}

// AuditPersonKey implements audit.Store.
func (s *Store) AuditPersonKey(ctx context.Context, person string) ([]byte, error) {
	var row auditPersonKeyRow
	err := s.r(ctx).Where("person = ?", person).Take(&row).Error
	if err != nil {
		return nil, s.wrap(err, "read audit person key")
	}
	return row.Sealed, nil
}

// CreateAuditPersonKey implements audit.Store. It commits on its own, never
// in the context's transaction: a rolled-back key would leave events sealed
// under a key nobody kept.
func (s *Store) CreateAuditPersonKey(ctx context.Context, person string, sealed []byte, at time.Time) error {
	row := auditPersonKeyRow{Person: person, Sealed: sealed, CreatedAt: utc(at)}
	return s.wrap(s.db.WithContext(ctx).Create(&row).Error, "create audit person key")
}

// EraseAuditPerson implements audit.Store.
func (s *Store) EraseAuditPerson(ctx context.Context, person string) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("person = ?", person).Delete(&auditReadableRow{}).Error; err != nil {
			return s.wrap(err, "erase audit readable fields")
		}
		return s.wrap(tx.Where("person = ?", person).Delete(&auditPersonKeyRow{}).Error, "erase audit person key")
	})
}

// SaveAuditCheckpoint implements audit.Store.
func (s *Store) SaveAuditCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	row := auditCheckpointRow{Size: c.Size, Root: c.Root[:], Note: c.Note, CreatedAt: utc(c.CreatedAt)}
	err := s.w(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error
	return s.wrap(err, "save audit checkpoint %d", c.Size)
}

func checkpointFrom(r auditCheckpointRow) audit.Checkpoint {
	c := audit.Checkpoint{Size: r.Size, Note: r.Note, CreatedAt: r.CreatedAt.UTC()}
	copy(c.Root[:], r.Root)
	return c
}

// LatestAuditCheckpoint implements audit.Store.
func (s *Store) LatestAuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	var row auditCheckpointRow
	if err := s.r(ctx).Order("size DESC").Take(&row).Error; err != nil {
		return audit.Checkpoint{}, s.wrap(err, "latest audit checkpoint")
	}
	return checkpointFrom(row), nil
}

// AuditCheckpoint implements audit.Store.
func (s *Store) AuditCheckpoint(ctx context.Context, size int64) (audit.Checkpoint, error) {
	var row auditCheckpointRow
	if err := s.r(ctx).Where("size = ?", size).Take(&row).Error; err != nil {
		return audit.Checkpoint{}, s.wrap(err, "audit checkpoint %d", size)
	}
	return checkpointFrom(row), nil
}

// AuditSignerKey implements audit.Store.
func (s *Store) AuditSignerKey(ctx context.Context, name string) (audit.SignerKey, error) {
	var row auditSignerKeyRow
	if err := s.r(ctx).Where("name = ?", name).Take(&row).Error; err != nil {
		return audit.SignerKey{}, s.wrap(err, "audit signer key %s", name)
	}
	return audit.SignerKey{Name: row.Name, Verifier: row.Verifier, Sealed: row.Sealed, CreatedAt: row.CreatedAt.UTC()}, nil
}

// CreateAuditSignerKey implements audit.Store.
func (s *Store) CreateAuditSignerKey(ctx context.Context, k audit.SignerKey) error {
	row := auditSignerKeyRow{Name: k.Name, Verifier: k.Verifier, Sealed: k.Sealed, CreatedAt: utc(k.CreatedAt)}
	return s.wrap(s.w(ctx).Create(&row).Error, "create audit signer key %s", k.Name)
}
