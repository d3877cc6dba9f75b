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

	mu   sync.Mutex
	keys map[string][]byte // person id -> key
}

type pending struct {
	e    Event
	keys map[string][]byte
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
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.Tick == nil {
		cfg.Tick = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	l := &Log{cfg: cfg, queue: make(chan *pending, 4*cfg.MaxBatch), stopped: make(chan struct{}), keys: map[string][]byte{}}
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
	p := &pending{e: e, keys: map[string][]byte{}, done: make(chan result, 1)}
	for _, person := range e.People() {
		k, err := l.personKey(ctx, person)
		if err != nil {
			return 0, fmt.Errorf("record %s: %w", e.Action, err)
		}
		p.keys[person] = k
	}
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

func personPurpose(person string) string { return "audit-person:" + person }

// ReadablePurpose is the seal purpose of one person's readable fields of one event.
func ReadablePurpose(seq int64, person string) string {
	return "audit-readable:" + strconv.FormatInt(seq, 10) + ":" + person
}

// personKey returns person's key, creating it on first use.
func (l *Log) personKey(ctx context.Context, person string) ([]byte, error) {
	l.mu.Lock()
	k, ok := l.keys[person]
	l.mu.Unlock()
	if ok {
		return k, nil
	}
	sealed, err := l.cfg.Store.AuditPersonKey(ctx, person)
	if errors.Is(err, mandate.ErrNotFound) {
		k = make([]byte, seal.KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("person key: %w", err)
		}
		if sealed, err = l.cfg.Sealer.Seal(k, personPurpose(person)); err != nil {
			return nil, fmt.Errorf("person key: %w", err)
		}
		err = l.cfg.Store.CreateAuditPersonKey(ctx, person, sealed, l.cfg.Clock.Now())
		if errors.Is(err, mandate.ErrAlreadyExists) {
			sealed, err = l.cfg.Store.AuditPersonKey(ctx, person)
		} else if err == nil {
			l.cache(person, k)
			return k, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("person key: %w", err)
	}
	if k, err = l.cfg.Sealer.Open(sealed, personPurpose(person)); err != nil {
		return nil, fmt.Errorf("person key: %w", err)
	}
	l.cache(person, k)
	return k, nil
}

func (l *Log) cache(person string, k []byte) {
	l.mu.Lock()
	l.keys[person] = k
	l.mu.Unlock()
}

// ErasePerson deletes person's key and readable fields: their events stay
// in the tree as commitments nobody can open any more.
func (l *Log) ErasePerson(ctx context.Context, person string) error {
	l.mu.Lock()
	delete(l.keys, person)
	l.mu.Unlock()
	if err := l.cfg.Store.EraseAuditPerson(ctx, person); err != nil {
		return fmt.Errorf("erase person from audit log: %w", err)
	}
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

// write appends batch in one transaction and answers every caller.
func (l *Log) write(ctx context.Context, batch []*pending) {
	var first int64
	err := l.cfg.Store.AppendAudit(ctx, func(size int64, hr tlog.HashReader) (Batch, error) {
		first = size
		var b Batch
		over := &overlayReader{base: hr, start: tlog.StoredHashCount(size)}
		for i, p := range batch {
			e := p.e
			e.Seq = size + int64(i)
			data, readable, err := EncodeLeaf(e, func(person string) []byte { return p.keys[person] })
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
				s, err := l.sealReadable(p.keys[r.Person], e.Seq, r)
				if err != nil {
					return Batch{}, err
				}
				b.Readable = append(b.Readable, s)
			}
		}
		b.Hashes = over.added
		return b, nil
	})
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: err}
		} else {
			p.done <- result{seq: first + int64(i)}
		}
	}
}

func (l *Log) sealReadable(key []byte, seq int64, r Readable) (SealedReadable, error) {
	s, err := seal.New(key)
	if err != nil {
		return SealedReadable{}, err
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
	return SealedReadable{Seq: seq, Person: r.Person, Roles: "," + strings.Join(names, ",") + ",", Sealed: sealed}, nil
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
