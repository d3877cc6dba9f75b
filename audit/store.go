package audit

import (
	"context"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Store persists the log. Leaves, tree hashes and checkpoints are
// append-only (the database rejects UPDATE and DELETE on them); person keys
// and readable fields can be erased. Package store implements it on SQLite
// and PostgreSQL; errors wrap mandate.ErrNotFound and mandate.ErrAlreadyExists.
type Store interface {
	// AppendAudit runs one batch in one transaction: it takes the writers'
	// lock (an advisory lock on PostgreSQL), reads the tree size and the key
	// epoch, calls build with them, a reader of the stored hashes and a
	// reader of the person keys inside the transaction, writes the batch
	// (new person keys included), and advances the tree size from size to
	// size+len(batch.Leaves) with a compare-and-swap. Nothing is written
	// when build or any write fails. Erasures take the same lock and
	// advance the key epoch, so a batch never uses a key an erasure deleted.
	AppendAudit(ctx context.Context, build func(h AppendHead) (Batch, error)) error
	// AuditTreeSize returns the number of leaves committed.
	AuditTreeSize(ctx context.Context) (int64, error)
	// AuditHashReader reads stored hashes outside any batch.
	AuditHashReader(ctx context.Context) tlog.HashReader
	// AuditLeaves returns leaves with from <= seq < to, in order.
	AuditLeaves(ctx context.Context, from, to int64) ([]Leaf, error)
	// AuditSeqRange returns the smallest range [from, to) holding every
	// event with since <= time < until (zero times are open ends).
	AuditSeqRange(ctx context.Context, since, until time.Time) (from, to int64, err error)
	// AuditReadable returns the readable fields stored for seqs in [from, to).
	AuditReadable(ctx context.Context, from, to int64) ([]SealedReadable, error)
	// AuditReadableOf returns the readable fields stored for seqs.
	AuditReadableOf(ctx context.Context, seqs []int64) ([]SealedReadable, error)
	// AuditQuery returns up to f.Limit leaves matching f, newest first:
	// Actor matches a non-person actor's id, or a person whose readable
	// fields record them as actor; Holder matches readable fields recording
	// the person as holder (so erased people match nothing).
	AuditQuery(ctx context.Context, f Filter) ([]Leaf, error)

	// AuditPersonKeys returns the sealed keys of persons for periods (every
	// period, the legacy one included, when periods is nil); erased keys
	// are absent.
	AuditPersonKeys(ctx context.Context, persons, periods []string) ([]PersonKey, error)
	// EraseAuditPerson deletes a person's keys (every period) and readable
	// fields, under the writers' lock, and advances the key epoch.
	EraseAuditPerson(ctx context.Context, person string) error
	// AuditRetention counts (apply false) or erases (apply true, advancing
	// the key epoch), under the writers' lock, the person keys and readable fields that retention
	// removes: those of every period lexically before period (periods are
	// "YYYY-MM"), and the legacy keys (period "") of people none of whose
	// legacy readable fields belongs to an event at or after legacyBefore.
	AuditRetention(ctx context.Context, period string, legacyBefore time.Time, apply bool) (RetentionCount, error)
	// WithAuditRetentionLock runs fn unless another process runs it
	// (a PostgreSQL advisory lock tried without waiting); ran is false when
	// another process held it. On SQLite fn always runs.
	WithAuditRetentionLock(ctx context.Context, fn func(ctx context.Context) error) (ran bool, err error)

	// SaveAuditCheckpoint stores a signed checkpoint (a second one for
	// the same size is ignored).
	SaveAuditCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestAuditCheckpoint returns the largest checkpoint (ErrNotFound when none).
	LatestAuditCheckpoint(ctx context.Context) (Checkpoint, error)
	// AuditCheckpoint returns the checkpoint of a size (ErrNotFound when none).
	AuditCheckpoint(ctx context.Context, size int64) (Checkpoint, error)

	// AuditSignerKey returns the sealed signer key named name (ErrNotFound when none).
	AuditSignerKey(ctx context.Context, name string) (SignerKey, error)
	// CreateAuditSignerKey stores a signer key (ErrAlreadyExists when one has that name).
	CreateAuditSignerKey(ctx context.Context, k SignerKey) error
}

// AppendHead is what a batch is built on, read inside its transaction.
type AppendHead struct {
	Size int64 // leaves committed
	// KeyEpoch counts erasures (of a person, or by retention): person keys
	// read at one epoch are all still stored while the epoch has not moved.
	KeyEpoch int64
	Hashes   tlog.HashReader
	Keys     KeyReader
}

// KeyReader reads, inside an AppendAudit transaction, the sealed keys of
// persons for periods (AuditPersonKeys' semantics).
type KeyReader func(persons, periods []string) ([]PersonKey, error)

// PersonKey is one person's sealed key for one period: the UTC calendar
// month of the events it covers ("2026-11"), or LegacyPeriod for a key made
// before keys had periods. It is sealed with purpose
// PersonKeyPurpose(Person, Period).
type PersonKey struct {
	Person    string
	Period    string
	Sealed    []byte
	CreatedAt time.Time
}

// RetentionCount is what retention erases (or would erase).
type RetentionCount struct {
	Keys     int64 // person keys, one per person and period
	Readable int64 // readable-field rows, one per person and event
}

// Batch is what one AppendAudit transaction writes.
type Batch struct {
	Keys     []PersonKey // keys created for this batch, written first
	Leaves   []Leaf
	Hashes   []tlog.Hash // stored hashes from index tlog.StoredHashCount(size) on
	Readable []SealedReadable
}

// Leaf is one stored event: its canonical encoding, and the non-personal
// fields as columns for queries.
type Leaf struct {
	Seq       int64
	Time      time.Time
	Action    Action
	Outcome   Outcome
	ActorKind ActorKind
	ActorID   string // only when the actor is not a person
	Structure string
	MandateID string
	ClientID  string
	RequestID string
	Data      []byte // the leaf encoding (what the tree hashes)
}

// SealedReadable is one person's readable fields of one event, sealed under
// the person's key for Period with purpose ReadablePurpose(seq, person).
type SealedReadable struct {
	Seq    int64
	Person string
	Period string // of the key that seals it
	Roles  string // the person's fields in the event, e.g. ",actor_id,actor_name,"
	Sealed []byte
}

// Checkpoint is a signed checkpoint as stored.
type Checkpoint struct {
	Size      int64
	Root      tlog.Hash
	Note      []byte // the C2SP signed note
	CreatedAt time.Time
}

// SignerKey is the checkpoint signing key.
type SignerKey struct {
	Name      string // the note key name (the log's origin)
	Verifier  string // note verifier key, public
	Sealed    []byte // note signer key, sealed with purpose "audit-signer:"+Name
	CreatedAt time.Time
}
