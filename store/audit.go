package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
	Period string
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
	Period    string `gorm:"primaryKey"`
	Sealed    []byte
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (auditPersonKeyRow) TableName() string { return "audit_person_keys" }

// auditLock serialises audit writers across processes sharing a schema.
const auditLock = "SELECT pg_advisory_xact_lock(hashtext('mandated.audit.' || current_schema()))"

// AppendAudit implements audit.Store: one transaction per batch, writers
// serialised by an advisory lock on PostgreSQL (the single writer
// connection on SQLite), the tree size advanced by compare-and-swap. The
// batch goes in as few statements as the dialect allows: on PostgreSQL one
// statement (array parameters unnested into every table, then the
// compare-and-swap), on SQLite one multi-row INSERT per table.
func (s *Store) AppendAudit(ctx context.Context, build func(h audit.AppendHead) (audit.Batch, error)) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockAudit(tx); err != nil {
			return fmt.Errorf("audit append: %w", err)
		}
		var head struct{ Size, Epoch int64 }
		if err := tx.Raw("SELECT h.size AS size, k.epoch AS epoch FROM audit_tree_head h, audit_key_epoch k WHERE h.id = 1 AND k.id = 1").
			Scan(&head).Error; err != nil {
			return s.wrap(err, "audit append: read tree size")
		}
		size := head.Size
		b, err := build(audit.AppendHead{
			Size: size, KeyEpoch: head.Epoch, Hashes: auditHashReader{ctx: ctx, s: s, db: tx},
			Keys: func(persons, periods []string) ([]audit.PersonKey, error) {
				return s.auditPersonKeys(tx, persons, periods)
			},
		})
		if err != nil {
			return fmt.Errorf("audit append: %w", err)
		}
		if len(b.Leaves) == 0 {
			return nil
		}
		for i, l := range b.Leaves {
			if l.Seq != size+int64(i) {
				return fmt.Errorf("audit append: leaf %d at position %d of a batch from %d", l.Seq, i, size)
			}
		}
		start := tlog.StoredHashCount(size)
		if want := tlog.StoredHashCount(size+int64(len(b.Leaves))) - start; want != int64(len(b.Hashes)) {
			return fmt.Errorf("audit append: %d hashes for %d leaves, want %d", len(b.Hashes), len(b.Leaves), want)
		}
		sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
		if !ok {
			return fmt.Errorf("audit append: not in a database/sql transaction (%T)", tx.Statement.ConnPool)
		}
		var moved int64
		if s.dialect == DialectPostgres {
			moved, err = appendAuditPostgres(ctx, sqlTx, size, start, b)
		} else {
			moved, err = appendAuditSQLite(ctx, sqlTx, size, start, b)
		}
		if err != nil {
			return s.wrap(err, "audit append")
		}
		if moved != 1 {
			return fmt.Errorf("audit append: tree size moved from %d under us: %w", size, mandate.ErrConflict)
		}
		return nil
	})
}

// appendAuditPostgresSQL writes a whole batch in one statement: each table's
// rows come as one array per column, unnested; the final UPDATE is the
// compare-and-swap of the tree size. Its text never changes, so pgx
// prepares it once per connection.
const appendAuditPostgresSQL = `WITH ev AS (
	INSERT INTO audit_events (seq, time, action, outcome, actor_kind, actor_id, structure, mandate_id, client_id, request_id, leaf)
	SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])
), hs AS (
	INSERT INTO audit_hashes (idx, hash) SELECT * FROM unnest($12::bigint[], $13::bytea[])
), rd AS (
	INSERT INTO audit_readable (seq, person, period, roles, sealed)
	SELECT * FROM unnest($14::bigint[], $15::text[], $16::text[], $17::text[], $18::bytea[])
), pk AS (
	INSERT INTO audit_person_keys (person, period, sealed, created_at)
	SELECT * FROM unnest($19::text[], $20::text[], $21::bytea[], $22::timestamptz[])
)
UPDATE audit_tree_head SET size = $23 WHERE id = 1 AND size = $24`

func appendAuditPostgres(ctx context.Context, tx *sql.Tx, size, start int64, b audit.Batch) (int64, error) {
	n := len(b.Leaves)
	var (
		seq                                                            = make([]int64, n)
		times                                                          = make([]time.Time, n)
		action, outcome, kind, actor, structure, mandateID, client, rq = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		leaf                                                           = make([][]byte, n)
	)
	for i, l := range b.Leaves {
		seq[i], times[i], leaf[i] = l.Seq, utc(l.Time), l.Data
		action[i], outcome[i], kind[i], actor[i] = string(l.Action), string(l.Outcome), string(l.ActorKind), l.ActorID
		structure[i], mandateID[i], client[i], rq[i] = l.Structure, l.MandateID, l.ClientID, l.RequestID
	}
	idx, hash := make([]int64, len(b.Hashes)), make([][]byte, len(b.Hashes))
	for i, h := range b.Hashes {
		idx[i], hash[i] = start+int64(i), h[:]
	}
	rSeq, rPerson, rPeriod, rRoles, rSealed := make([]int64, len(b.Readable)), make([]string, len(b.Readable)),
		make([]string, len(b.Readable)), make([]string, len(b.Readable)), make([][]byte, len(b.Readable))
	for i, r := range b.Readable {
		rSeq[i], rPerson[i], rPeriod[i], rRoles[i], rSealed[i] = r.Seq, r.Person, r.Period, r.Roles, r.Sealed
	}
	kPerson, kPeriod, kSealed, kAt := make([]string, len(b.Keys)), make([]string, len(b.Keys)), make([][]byte, len(b.Keys)), make([]time.Time, len(b.Keys))
	for i, k := range b.Keys {
		kPerson[i], kPeriod[i], kSealed[i], kAt[i] = k.Person, k.Period, k.Sealed, utc(k.CreatedAt)
	}
	res, err := tx.ExecContext(ctx, appendAuditPostgresSQL,
		seq, times, action, outcome, kind, actor, structure, mandateID, client, rq, leaf,
		idx, hash, rSeq, rPerson, rPeriod, rRoles, rSealed, kPerson, kPeriod, kSealed, kAt,
		size+int64(n), size)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sqliteParamsPerInsert bounds the parameters of one multi-row INSERT:
// the SQLite driver binds each parameter by scanning the arguments
// (quadratic), so many small statements beat one large one.
const sqliteParamsPerInsert = 512

func appendAuditSQLite(ctx context.Context, tx *sql.Tx, size, start int64, b audit.Batch) (int64, error) {
	insert := func(table, cols string, ncol, nrow int, row func(i int, args []any) []any) error {
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", ncol), ",") + ")"
		per := max(1, sqliteParamsPerInsert/ncol)
		for at := 0; at < nrow; at += per {
			end := min(at+per, nrow)
			q := "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+",", end-at), ",")
			args := make([]any, 0, (end-at)*ncol)
			for i := at; i < end; i++ {
				args = row(i, args)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	}
	if err := insert("audit_person_keys", "person, period, sealed, created_at", 4, len(b.Keys), func(i int, a []any) []any {
		k := b.Keys[i]
		return append(a, k.Person, k.Period, k.Sealed, utc(k.CreatedAt))
	}); err != nil {
		return 0, err
	}
	if err := insert("audit_events", "seq, time, action, outcome, actor_kind, actor_id, structure, mandate_id, client_id, request_id, leaf", 11, len(b.Leaves), func(i int, a []any) []any {
		l := b.Leaves[i]
		return append(a, l.Seq, utc(l.Time), string(l.Action), string(l.Outcome), string(l.ActorKind), l.ActorID,
			l.Structure, l.MandateID, l.ClientID, l.RequestID, l.Data)
	}); err != nil {
		return 0, err
	}
	if err := insert("audit_hashes", "idx, hash", 2, len(b.Hashes), func(i int, a []any) []any {
		return append(a, start+int64(i), b.Hashes[i][:])
	}); err != nil {
		return 0, err
	}
	if err := insert("audit_readable", "seq, person, period, roles, sealed", 5, len(b.Readable), func(i int, a []any) []any {
		r := b.Readable[i]
		return append(a, r.Seq, r.Person, r.Period, r.Roles, r.Sealed)
	}); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, "UPDATE audit_tree_head SET size = ? WHERE id = 1 AND size = ?", size+int64(len(b.Leaves)), size)
	if err != nil {
		return 0, fmt.Errorf("advance tree size: %w", err)
	}
	return res.RowsAffected()
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
		out[i] = audit.SealedReadable{Seq: r.Seq, Person: r.Person, Period: r.Period, Roles: r.Roles, Sealed: r.Sealed}
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

// lockAudit takes the audit writers' lock in tx on PostgreSQL; on SQLite
// the single writer connection already serialises writers.
func (s *Store) lockAudit(tx *gorm.DB) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	return s.wrap(tx.Exec(auditLock).Error, "lock the audit log")
}

// advanceKeyEpoch tells writers (of every replica) that keys they hold may
// have been erased.
func (s *Store) advanceKeyEpoch(tx *gorm.DB) error {
	return s.wrap(tx.Exec("UPDATE audit_key_epoch SET epoch = epoch + 1 WHERE id = 1").Error, "advance the audit key epoch")
}

// AuditPersonKeys implements audit.Store.
func (s *Store) AuditPersonKeys(ctx context.Context, persons, periods []string) ([]audit.PersonKey, error) {
	return s.auditPersonKeys(s.r(ctx), persons, periods)
}

func (s *Store) auditPersonKeys(db *gorm.DB, persons, periods []string) ([]audit.PersonKey, error) {
	if len(persons) == 0 {
		return nil, nil
	}
	q := db.Where("person IN ?", persons)
	if periods != nil {
		q = q.Where("period IN ?", periods)
	}
	var rows []auditPersonKeyRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, s.wrap(err, "read audit person keys")
	}
	out := make([]audit.PersonKey, len(rows))
	for i, r := range rows {
		out[i] = audit.PersonKey{Person: r.Person, Period: r.Period, Sealed: r.Sealed, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

// EraseAuditPerson implements audit.Store.
func (s *Store) EraseAuditPerson(ctx context.Context, person string) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockAudit(tx); err != nil {
			return err
		}
		if err := tx.Where("person = ?", person).Delete(&auditReadableRow{}).Error; err != nil {
			return s.wrap(err, "erase audit readable fields")
		}
		if err := s.advanceKeyEpoch(tx); err != nil {
			return err
		}
		return s.wrap(tx.Where("person = ?", person).Delete(&auditPersonKeyRow{}).Error, "erase audit person key")
	})
}

// retentionWhere selects the person keys or readable rows retention
// erases: periods before the cutoff period, and legacy ones of people with
// no legacy readable fields of an event at or after the legacy cutoff.
const retentionWhere = `(period <> '' AND period < ?) OR (period = '' AND person NOT IN (
	SELECT r.person FROM audit_readable r JOIN audit_events e ON e.seq = r.seq
	WHERE r.period = '' AND e.time >= ?))`

// AuditRetention implements audit.Store.
func (s *Store) AuditRetention(ctx context.Context, period string, legacyBefore time.Time, apply bool) (audit.RetentionCount, error) {
	var n audit.RetentionCount
	if !apply {
		db := s.r(ctx)
		if err := db.Model(&auditPersonKeyRow{}).Where(retentionWhere, period, utc(legacyBefore)).Count(&n.Keys).Error; err != nil {
			return n, s.wrap(err, "count audit keys past retention")
		}
		if err := db.Model(&auditReadableRow{}).Where(retentionWhere, period, utc(legacyBefore)).Count(&n.Readable).Error; err != nil {
			return n, s.wrap(err, "count audit readable fields past retention")
		}
		return n, nil
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockAudit(tx); err != nil {
			return err
		}
		// Readable rows first: the legacy test reads them.
		res := tx.Where(retentionWhere, period, utc(legacyBefore)).Delete(&auditReadableRow{})
		if res.Error != nil {
			return s.wrap(res.Error, "erase audit readable fields past retention")
		}
		n.Readable = res.RowsAffected
		res = tx.Where(retentionWhere, period, utc(legacyBefore)).Delete(&auditPersonKeyRow{})
		if res.Error != nil {
			return s.wrap(res.Error, "erase audit keys past retention")
		}
		n.Keys = res.RowsAffected
		return s.advanceKeyEpoch(tx)
	})
	return n, err
}

// auditRetentionLock keeps retention to one replica at a time.
const auditRetentionLock = "SELECT pg_try_advisory_xact_lock(hashtext('mandated.audit-retention.' || current_schema()))"

// WithAuditRetentionLock implements audit.Store: on PostgreSQL it holds a
// transaction-level advisory lock, tried without waiting, on a connection of
// its own while fn runs (fn does not run in that transaction).
func (s *Store) WithAuditRetentionLock(ctx context.Context, fn func(ctx context.Context) error) (bool, error) {
	if s.dialect != DialectPostgres {
		return true, fn(ctx)
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return false, s.wrap(tx.Error, "audit retention lock")
	}
	defer tx.Rollback() // releases the lock
	var ok bool
	if err := tx.Raw(auditRetentionLock).Scan(&ok).Error; err != nil {
		return false, s.wrap(err, "audit retention lock")
	}
	if !ok {
		return false, nil
	}
	return true, fn(ctx)
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
