package audit

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/mandated/mandated/mandate"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint signs a checkpoint of the current tree when it grew since the
// latest one, and returns the latest checkpoint. An empty tree has none
// (mandate.ErrNotFound).
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	size, err := l.cfg.Store.AuditTreeSize(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	if size == 0 {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: empty log: %w", mandate.ErrNotFound)
	}
	// The tree has not grown since the checkpoint this process knows: that
	// is the latest (one read instead of two).
	if c, ok := l.latest.get(size, l.cfg.Clock.Now(), math.MaxInt64); ok {
		return c, nil
	}
	latest, err := l.cfg.Store.LatestAuditCheckpoint(ctx)
	if err != nil && !errors.Is(err, mandate.ErrNotFound) {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	if size <= latest.Size {
		l.latest.remember(latest, l.cfg.Clock.Now())
		return latest, nil
	}
	root, err := tlog.TreeHash(size, l.hashReader(ctx))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: tree hash at %d: %w", size, err)
	}
	body := log.Checkpoint{Origin: l.cfg.Origin, Size: uint64(size), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: sign: %w", err)
	}
	c := Checkpoint{Size: size, Root: root, Note: signed, CreatedAt: l.cfg.Clock.Now()}
	if err := l.cfg.Store.SaveAuditCheckpoint(ctx, c); err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	l.latest.remember(c, c.CreatedAt)
	return c, nil
}

// checkpointCovering returns a recent signed checkpoint whose tree has at
// least size leaves: the one this process last signed or read when that was
// at most Config.CheckpointEvery ago (no database read: the writer signs one
// that often while the tree grows), else the latest one in the database,
// else a new one (Checkpoint). Proofs thus cost no signature, and usually
// no read.
func (l *Log) checkpointCovering(ctx context.Context, size int64) (Checkpoint, error) {
	now := l.cfg.Clock.Now()
	if c, ok := l.latest.get(size, now, l.cfg.CheckpointEvery); ok {
		return c, nil
	}
	c, err := l.cfg.Store.LatestAuditCheckpoint(ctx)
	if err == nil && size <= c.Size {
		l.latest.remember(c, now)
		return c, nil
	}
	if err != nil && !errors.Is(err, mandate.ErrNotFound) {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return l.Checkpoint(ctx)
}

// LatestCheckpoint returns the latest signed checkpoint without signing one.
func (l *Log) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	c, err := l.cfg.Store.LatestAuditCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("latest audit checkpoint: %w", err)
	}
	return c, nil
}

// InclusionBundle is a self-contained proof that one event is in the log:
// an auditor keeps it and checks it with VerifyInclusion and the verifier key.
type InclusionBundle struct {
	Index      int64       `json:"index"`
	Leaf       []byte      `json:"leaf"`       // the leaf encoding
	Proof      []tlog.Hash `json:"proof"`      // RFC 9162 inclusion path
	Checkpoint []byte      `json:"checkpoint"` // signed note
}

// InclusionProof proves event seq is in the tree of the latest checkpoint
// (signing one first when seq is not yet covered).
func (l *Log) InclusionProof(ctx context.Context, seq int64) (InclusionBundle, error) {
	c, err := l.checkpointCovering(ctx, seq+1)
	if err != nil {
		return InclusionBundle{}, fmt.Errorf("inclusion proof of %d: %w", seq, err)
	}
	if seq < 0 || seq >= c.Size {
		return InclusionBundle{}, fmt.Errorf("inclusion proof of %d: no such event: %w", seq, mandate.ErrNotFound)
	}
	leaves, err := l.cfg.Store.AuditLeaves(ctx, seq, seq+1)
	if err != nil || len(leaves) != 1 {
		return InclusionBundle{}, fmt.Errorf("inclusion proof of %d: read leaf: %w", seq, errors.Join(err, mandate.ErrNotFound))
	}
	p, err := tlog.ProveRecord(c.Size, seq, l.hashReader(ctx))
	if err != nil {
		return InclusionBundle{}, fmt.Errorf("inclusion proof of %d: %w", seq, err)
	}
	return InclusionBundle{Index: seq, Leaf: leaves[0].Data, Proof: p, Checkpoint: c.Note}, nil
}

// ConsistencyBundle proves the tree of size Old is a prefix of the tree of
// the signed checkpoint New.
type ConsistencyBundle struct {
	Old        int64       `json:"old"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint []byte      `json:"checkpoint"` // the newer signed checkpoint
}

// ConsistencyProof proves the tree of size old is a prefix of the tree of
// size new (which must have a checkpoint; 0 means the latest).
func (l *Log) ConsistencyProof(ctx context.Context, old, new int64) (ConsistencyBundle, error) {
	var c Checkpoint
	var err error
	if new == 0 {
		c, err = l.Checkpoint(ctx)
	} else {
		c, err = l.cfg.Store.AuditCheckpoint(ctx, new)
	}
	if err != nil {
		return ConsistencyBundle{}, fmt.Errorf("consistency proof %d..%d: %w", old, new, err)
	}
	if old <= 0 || old > c.Size {
		return ConsistencyBundle{}, fmt.Errorf("consistency proof %d..%d: old size out of range: %w", old, c.Size, mandate.ErrNotFound)
	}
	p, err := tlog.ProveTree(c.Size, old, l.hashReader(ctx))
	if err != nil {
		return ConsistencyBundle{}, fmt.Errorf("consistency proof %d..%d: %w", old, c.Size, err)
	}
	return ConsistencyBundle{Old: old, Proof: p, Checkpoint: c.Note}, nil
}
