package audit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandated/mandated/mandate"
	"github.com/mandated/mandated/seal"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Config configures a Log. Store, Sealer and Origin are required.
type Config struct {
	Store  Store
	Sealer *seal.Sealer // seals the signer key and person keys at rest
	// Origin names the log in checkpoints and is the signer key's name,
	// e.g. "mandated.example.org/audit".
	Origin string
	Clock  mandate.Clock // mandate.SystemClock when nil
	Logger *slog.Logger  // slog.Default() when nil
	// MaxBatch caps events per transaction (default 4096).
	MaxBatch int
	// CheckpointEvery is how often Run signs a checkpoint while the tree
	// grows (default 1s).
	CheckpointEvery time.Duration
	// KeyCacheTTL is how long readers (Query, Export) keep an unsealed
	// person key in memory after its last use: between KeyCacheTTL and
	// twice that (default 10 minutes). Readers look keys up by their sealed
	// value, read from the database every time, so an erased key is never
	// found again whatever this is; the writer's keys follow the key epoch
	// (see Store.AppendAudit).
	KeyCacheTTL time.Duration
	// Tick returns the checkpoint ticker; time.NewTicker when nil. Tests
	// inject their own.
	Tick func(d time.Duration) (<-chan time.Time, func())
}

// Log records events and proves what it holds. Record needs Run running.
type Log struct {
	cfg      Config
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	queue    chan *pending
	stopped  chan struct{} // closed when Run returns
	stopOnce sync.Once

	keys       keyCache   // opened person keys, by sealed blob
	writerKeys writerKeys // the writer's keys, by person and period
	hashes     hashCache  // committed tree hashes
	latest     latestCheckpoint
}

// latestCheckpoint remembers the newest checkpoint this process signed or
// read, and when, so that proofs need not read it from the database each
// time (see checkpointCovering).
type latestCheckpoint struct {
	mu sync.Mutex
	c  Checkpoint
	at time.Time // when c was signed or read (Config.Clock)
}

// remember keeps c if it is at least as new as the one kept, as of now.
func (k *latestCheckpoint) remember(c Checkpoint, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.Size >= k.c.Size && len(c.Note) > 0 {
		k.c, k.at = c, now
	}
}

// get returns the kept checkpoint if it has at least size leaves and was
// signed or read at most maxAge before now.
func (k *latestCheckpoint) get(size int64, now time.Time, maxAge time.Duration) (Checkpoint, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.c.Note) == 0 || k.c.Size < size || now.Sub(k.at) > maxAge {
		return Checkpoint{}, false
	}
	return k.c, true
}

type pending struct {
	e    Event
	done chan result
}

type result struct {
	seq int64
	err error
}

// ErrClosed is returned by Record when Run has stopped.
var ErrClosed = errors.New("audit log is not running")

// New loads the signer key named cfg.Origin, creating it on first use.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil || cfg.Sealer == nil || cfg.Origin == "" {
		return nil, errors.New("audit: Store, Sealer and Origin are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = mandate.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.KeyCacheTTL <= 0 {
		cfg.KeyCacheTTL = 10 * time.Minute
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.Tick == nil {
		cfg.Tick = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	l := &Log{cfg: cfg, queue: make(chan *pending, 4*cfg.MaxBatch), stopped: make(chan struct{})}
	l.keys.ttl = cfg.KeyCacheTTL
	if err := l.loadSigner(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) loadSigner(ctx context.Context) error {
	purpose := "audit-signer:" + l.cfg.Origin
	k, err := l.cfg.Store.AuditSignerKey(ctx, l.cfg.Origin)
	if errors.Is(err, mandate.ErrNotFound) {
		skey, vkey, gerr := note.GenerateKey(rand.Reader, l.cfg.Origin)
		if gerr != nil {
			return fmt.Errorf("audit: generate signer key: %w", gerr)
		}
		sealed, serr := l.cfg.Sealer.Seal([]byte(skey), purpose)
		if serr != nil {
			return fmt.Errorf("audit: seal signer key: %w", serr)
		}
		k = SignerKey{Name: l.cfg.Origin, Verifier: vkey, Sealed: sealed, CreatedAt: l.cfg.Clock.Now()}
		err = l.cfg.Store.CreateAuditSignerKey(ctx, k)
		if errors.Is(err, mandate.ErrAlreadyExists) { // another replica won
			k, err = l.cfg.Store.AuditSignerKey(ctx, l.cfg.Origin)
		}
	}
	if err != nil {
		return fmt.Errorf("audit: load signer key: %w", err)
	}
	skey, err := l.cfg.Sealer.Open(k.Sealed, purpose)
	if err != nil {
		return fmt.Errorf("audit: open signer key: %w", err)
	}
	if l.signer, err = note.NewSigner(string(skey)); err != nil {
		return fmt.Errorf("audit: signer key: %w", err)
	}
	if l.verifier, err = note.NewVerifier(k.Verifier); err != nil {
		return fmt.Errorf("audit: verifier key: %w", err)
	}
	l.vkey = k.Verifier
	return nil
}

// VerifierKey returns the note verifier key auditors check checkpoints with.
func (l *Log) VerifierKey() string { return l.vkey }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.cfg.Origin }

// Record validates e, queues it and returns its sequence number once the
// batch holding it has committed. An error means e was not recorded: the
// caller must refuse the action it was about to take. Do not call it while
// holding a store transaction (on SQLite that holds the only writer
// connection the log needs).
func (l *Log) Record(ctx context.Context, e Event) (int64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	if e.Time.IsZero() {
		e.Time = l.cfg.Clock.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	p := &pending{e: e, done: make(chan result, 1)}
	select {
	case l.queue <- p:
	case <-l.stopped:
		return 0, fmt.Errorf("record %s: %w", e.Action, ErrClosed)
	case <-ctx.Done():
		return 0, fmt.Errorf("record %s: %w", e.Action, ctx.Err())
	}
	var r result
	select {
	case r = <-p.done:
	case <-l.stopped:
		// Run answers every batch it wrote before stopping.
		select {
		case r = <-p.done:
		default:
			r.err = ErrClosed
		}
	case <-ctx.Done():
		// The batch may still commit; the caller must treat it as failed.
		return 0, fmt.Errorf("record %s: %w", e.Action, ctx.Err())
	}
	if r.err != nil {
		return 0, fmt.Errorf("record %s: %w", e.Action, r.err)
	}
	return r.seq, nil
}

// ReadablePurpose is the seal purpose of one person's readable fields of one event.
func ReadablePurpose(seq int64, person string) string {
	return "audit-readable:" + strconv.FormatInt(seq, 10) + ":" + person
}

// ErasePerson deletes person's keys (every period) and readable fields:
// their events stay in the tree as commitments nobody can open any more.
func (l *Log) ErasePerson(ctx context.Context, person string) error {
	if err := l.cfg.Store.EraseAuditPerson(ctx, person); err != nil {
		return fmt.Errorf("erase person from audit log: %w", err)
	}
	l.keys.forget(func(pp personPeriod) bool { return pp.person == person })
	l.forgetWriterKeys()
	return nil
}

// Run sequences queued events and signs a checkpoint every
// Config.CheckpointEvery while the tree grows, until ctx ends. Call it once;
// Record fails with ErrClosed after it returns.
func (l *Log) Run(ctx context.Context) error {
	tick, stop := l.cfg.Tick(l.cfg.CheckpointEvery)
	defer stop()
	defer l.stopOnce.Do(func() { close(l.stopped) })
	batch := make([]*pending, 0, l.cfg.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			l.stopOnce.Do(func() { close(l.stopped) })
			l.drainWith(ErrClosed)
			return nil
		case <-tick:
			if _, err := l.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				l.cfg.Logger.Error("audit checkpoint", "err", err)
			}
		case p := <-l.queue:
			batch = append(batch[:0], p)
		fill:
			for len(batch) < l.cfg.MaxBatch {
				select {
				case p := <-l.queue:
					batch = append(batch, p)
				default:
					break fill
				}
			}
			l.write(context.WithoutCancel(ctx), batch) // a started batch finishes
		}
	}
}

func (l *Log) drainWith(err error) {
	for {
		select {
		case p := <-l.queue:
			p.done <- result{err: err}
		default:
			return
		}
	}
}

// write appends batch in one transaction and answers every caller. The
// person keys come from the writer's cache while the key epoch read in the
// transaction has not moved, else from the database inside the
// transaction, under the writers' lock erasures also take: a key an erasure
// deleted, on this replica or another, is never used again. Committed
// hashes are read through the hash cache.
func (l *Log) write(ctx context.Context, batch []*pending) {
	var first int64
	var commitKeys func()
	var added []tlog.Hash
	err := l.cfg.Store.AppendAudit(ctx, func(h AppendHead) (Batch, error) {
		size := h.Size
		first = size
		var b Batch
		keys, created, commit, err := l.batchKeys(h, batch)
		if err != nil {
			return Batch{}, err
		}
		b.Keys, commitKeys = created, commit
		hr := cachedHashReader{base: h.Hashes, cache: &l.hashes}
		over := &overlayReader{base: hr, start: tlog.StoredHashCount(size)}
		b.Leaves = make([]Leaf, 0, len(batch))
		for i, p := range batch {
			e := p.e
			e.Seq = size + int64(i)
			period := Period(e.Time)
			keyOf := func(person string) []byte { return keys[personPeriod{person, period}].key }
			data, readable, err := EncodeLeaf(e, keyOf)
			if err != nil {
				return Batch{}, err
			}
			hs, err := tlog.StoredHashes(e.Seq, data, over)
			if err != nil {
				return Batch{}, fmt.Errorf("hash event %d: %w", e.Seq, err)
			}
			over.added = append(over.added, hs...)
			actorID := e.Actor.ID
			if e.Actor.Kind.Person() {
				actorID = ""
			}
			b.Leaves = append(b.Leaves, Leaf{
				Seq: e.Seq, Time: e.Time, Action: e.Action, Outcome: e.Outcome, ActorKind: e.Actor.Kind, ActorID: actorID,
				Structure: e.Structure, MandateID: e.MandateID, ClientID: e.ClientID, RequestID: e.RequestID, Data: data,
			})
			for _, r := range readable {
				s, err := sealReadable(keys[personPeriod{r.Person, period}].sealer, e.Seq, period, r)
				if err != nil {
					return Batch{}, err
				}
				b.Readable = append(b.Readable, s)
			}
		}
		b.Hashes, added = over.added, over.added
		return b, nil
	})
	if err == nil {
		commitKeys()
		l.hashes.add(tlog.StoredHashCount(first), added)
	}
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: err}
		} else {
			p.done <- result{seq: first + int64(i)}
		}
	}
}

func sealReadable(s *seal.Sealer, seq int64, period string, r Readable) (SealedReadable, error) {
	if s == nil {
		return SealedReadable{}, fmt.Errorf("seal readable fields of %d: no key", seq)
	}
	js, err := json.Marshal(r.Fields)
	if err != nil {
		return SealedReadable{}, err
	}
	sealed, err := s.Seal(js, ReadablePurpose(seq, r.Person))
	if err != nil {
		return SealedReadable{}, err
	}
	names := make([]string, 0, len(r.Fields))
	for n := range r.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return SealedReadable{Seq: seq, Person: r.Person, Period: period, Roles: "," + strings.Join(names, ",") + ",", Sealed: sealed}, nil
}

// overlayReader reads stored hashes written earlier in the same batch from
// memory and older ones from the store.
type overlayReader struct {
	base  tlog.HashReader
	start int64
	added []tlog.Hash
}

func (o *overlayReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	var at []int
	for i, x := range indexes {
		if x >= o.start {
			if x-o.start >= int64(len(o.added)) {
				return nil, fmt.Errorf("hash %d not yet stored", x)
			}
			out[i] = o.added[x-o.start]
		} else {
			missing = append(missing, x)
			at = append(at, i)
		}
	}
	if len(missing) > 0 {
		hs, err := o.base.ReadHashes(missing)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = hs[j]
		}
	}
	return out, nil
}
