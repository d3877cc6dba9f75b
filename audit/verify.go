package audit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrVerify wraps every verification failure.
var ErrVerify = errors.New("audit verification failed")

// OpenCheckpoint checks a signed checkpoint against verifierKey (a note
// verifier key whose name is the log's origin) and returns its size and root.
func OpenCheckpoint(signed []byte, verifierKey string) (size int64, root tlog.Hash, err error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("%w: verifier key: %v", ErrVerify, err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("%w: checkpoint: %v", ErrVerify, err)
	}
	if len(cp.Hash) != tlog.HashSize || cp.Size > 1<<62 {
		return 0, tlog.Hash{}, fmt.Errorf("%w: checkpoint: bad root or size", ErrVerify)
	}
	copy(root[:], cp.Hash)
	return int64(cp.Size), root, nil
}

// VerifyInclusion checks that b's leaf is at b.Index in the tree its signed
// checkpoint commits to.
func VerifyInclusion(b InclusionBundle, verifierKey string) error {
	size, root, err := OpenCheckpoint(b.Checkpoint, verifierKey)
	if err != nil {
		return err
	}
	fields, err := ParseLeaf(b.Leaf)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	if LeafSeq(fields) != b.Index {
		return fmt.Errorf("%w: leaf says seq %d, bundle says %d", ErrVerify, LeafSeq(fields), b.Index)
	}
	if b.Index < 0 || b.Index >= size {
		return fmt.Errorf("%w: index %d outside tree of size %d", ErrVerify, b.Index, size)
	}
	if err := tlog.CheckRecord(b.Proof, size, root, b.Index, tlog.RecordHash(b.Leaf)); err != nil {
		return fmt.Errorf("%w: event %d: %v", ErrVerify, b.Index, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of the signed checkpoint old is a
// prefix of the tree of b's checkpoint.
func VerifyConsistency(old []byte, b ConsistencyBundle, verifierKey string) error {
	oldSize, oldRoot, err := OpenCheckpoint(old, verifierKey)
	if err != nil {
		return err
	}
	newSize, newRoot, err := OpenCheckpoint(b.Checkpoint, verifierKey)
	if err != nil {
		return err
	}
	if oldSize != b.Old {
		return fmt.Errorf("%w: old checkpoint has size %d, proof is from %d", ErrVerify, oldSize, b.Old)
	}
	if err := tlog.CheckTree(b.Proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return fmt.Errorf("%w: trees %d and %d: %v", ErrVerify, oldSize, newSize, err)
	}
	return nil
}
