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
	// lock (an advisory lock on PostgreSQL), reads the tree size, calls
	// build with it and a reader of the stored hashes inside the
	// transaction, writes the batch, and advances the tree size from size
	// to size+len(batch.Events) with a compare-and-swap. Nothing is written
	// when build or any write fails.
	AppendAudit(ctx context.Context, build func(size int64, hashes tlog.HashReader) (Batch, error)) error
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

	// AuditPersonKey returns a person's sealed key (ErrNotFound when none or erased).
	AuditPersonKey(ctx context.Context, person string) ([]byte, error)
	// CreateAuditPersonKey stores a sealed key (ErrAlreadyExists when one is there).
	CreateAuditPersonKey(ctx context.Context, person string, sealed []byte, at time.Time) error
	// EraseAuditPerson deletes a person's key and readable fields.
	EraseAuditPerson(ctx context.Context, person string) error

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

// Batch is what one AppendAudit transaction writes.
type Batch struct {
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
// the person's key with purpose ReadablePurpose(seq, person).
type SealedReadable struct {
	Seq    int64
	Person string
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
