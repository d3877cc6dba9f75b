package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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

// VerifyExport checks an export offline against verifierKey: the signatures
// of the checkpoint and the range, every entry's inclusion proof and leaf,
// every opened personal field, and that the entries are exactly the signed
// range, in order. The error wraps ErrVerify and names the first problem;
// the report lists them all.
//
// The trailer (the last non-blank line) is read first: from the end when r
// is an io.ReadSeeker (an *os.File is then streamed, never held in memory),
// else after reading r whole. Then one worker per CPU checks blocks of
// entry lines, and their results are taken in line order.
func VerifyExport(r io.Reader, verifierKey string) (Report, error) {
	var rep Report
	body, last, err := splitTrailer(r)
	if err != nil {
		return rep, err
	}
	var tr ExportTrailer
	if err := json.Unmarshal(last, &tr); err != nil || tr.Checkpoint == "" {
		return rep, fmt.Errorf("%w: last line is not a checkpoint trailer", ErrVerify)
	}
	size, root, err := OpenCheckpoint([]byte(tr.Checkpoint), verifierKey)
	if err != nil {
		return rep, err
	}
	rep.Size = size
	if rep.From, rep.To, err = openRange([]byte(tr.Range), verifierKey, size); err != nil {
		return rep, err
	}
	add := func(line int, idx int64, reason string) {
		rep.Problems = append(rep.Problems, Problem{Line: line, Index: idx, Reason: reason})
	}
	var seen bitset // event From+i is seen when i is in it
	prev := int64(-1)
	err = checkEntries(body, size, root, func(e checkedEntry) {
		rep.Entries++
		n := rep.Entries // entry lines count from 1, blank lines left out
		if e.parsed {
			switch {
			case e.index < rep.From || e.index >= rep.To:
				add(n, e.index, fmt.Sprintf("outside the signed range [%d, %d): inserted", rep.From, rep.To))
			case seen.add(e.index - rep.From):
				add(n, e.index, "appears again: inserted or duplicated")
			case e.index < prev:
				add(n, e.index, fmt.Sprintf("out of order: comes after event %d", prev))
			}
			prev = max(prev, e.index)
		}
		for _, p := range e.problems {
			add(n, e.index, p)
		}
	})
	if err != nil {
		return Report{Size: rep.Size, From: rep.From, To: rep.To}, fmt.Errorf("%w: read export: %v", ErrVerify, err)
	}
	for idx := rep.From; idx < rep.To; idx++ {
		if !seen.has(idx - rep.From) {
			add(0, idx, "missing from the export")
		}
	}
	if len(rep.Problems) > 0 {
		slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return cmp.Compare(a.Index, b.Index) })
		return rep, fmt.Errorf("%w: %d problem(s), first: %s", ErrVerify, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}

// bitset is a set of non-negative integers.
type bitset []uint64

// add adds i and reports whether it was in the set already.
func (s *bitset) add(i int64) bool {
	w := int(i / 64)
	if w >= len(*s) {
		*s = append(*s, make([]uint64, w+1-len(*s))...)
	}
	had := s.has(i)
	(*s)[w] |= 1 << (i % 64)
	return had
}

func (s bitset) has(i int64) bool {
	return i/64 < int64(len(s)) && s[i/64]&(1<<(i%64)) != 0
}

// maxLine bounds the memory a line takes: one still unfinished after
// maxLine bytes is refused.
const maxLine = 16 << 20

// splitTrailer returns the last non-blank line of r and a reader of the
// lines before it.
func splitTrailer(r io.Reader) (body io.Reader, last []byte, err error) {
	rs, ok := r.(io.ReadSeeker)
	var start, end int64
	if ok {
		if start, err = rs.Seek(0, io.SeekCurrent); err == nil {
			end, err = rs.Seek(0, io.SeekEnd)
		}
		ok = err == nil
	}
	if !ok { // a pipe: read it whole
		all, err := io.ReadAll(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: read export: %v", ErrVerify, err)
		}
		rs, start, end = bytes.NewReader(all), 0, int64(len(all))
	}
	// Read ever longer tails until one holds the last non-blank line whole.
	for n := int64(64 << 10); ; n *= 2 {
		from := max(start, end-n)
		tail := make([]byte, end-from)
		if _, err := rs.Seek(from, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("%w: read export: %v", ErrVerify, err)
		}
		if _, err := io.ReadFull(rs, tail); err != nil {
			return nil, nil, fmt.Errorf("%w: read export: %v", ErrVerify, err)
		}
		tail = bytes.TrimRightFunc(tail, unicode.IsSpace) // blank lines, as strings.TrimSpace sees them
		nl := bytes.LastIndexByte(tail, '\n')
		switch {
		case len(tail)-(nl+1) > maxLine:
			return nil, nil, fmt.Errorf("%w: read export: %v", ErrVerify, bufio.ErrTooLong)
		case nl < 0 && from > start:
			continue // the line may begin before the tail
		case len(tail) == 0:
			return nil, nil, fmt.Errorf("%w: empty export", ErrVerify)
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("%w: read export: %v", ErrVerify, err)
		}
		return io.LimitReader(rs, from+int64(nl+1)-start), tail[nl+1:], nil
	}
}

// checkedEntry is what a worker found in one entry line.
type checkedEntry struct {
	index    int64 // -1 when the line is not an entry
	parsed   bool
	problems []string // in the order the checks run
}

// A block is a run of whole lines, checked by one worker.
type block struct {
	data    []byte
	entries []checkedEntry
	done    chan struct{} // closed once entries is set
}

// blockSize is how much of the export one worker takes at a time (about
// 500 entries of a typical export).
const blockSize = 1 << 20

// checkEntries checks the entry lines of body against the tree (size,
// root) with one worker per CPU and calls emit for every non-blank line, in
// order.
func checkEntries(body io.Reader, size int64, root tlog.Hash, emit func(checkedEntry)) error {
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *block, workers)
	inOrder := make(chan *block, 2*workers)
	free := make(chan []byte, 4*workers) // buffers of blocks done with
	var readErr error
	go func() {
		defer close(todo)
		defer close(inOrder)
		readErr = readBlocks(body, free, func(data []byte) {
			b := &block{data: data, done: make(chan struct{})}
			todo <- b
			inOrder <- b
		})
	}()
	for range workers {
		go func() {
			c := checker{size: size, root: root}
			for b := range todo {
				b.entries = c.block(b.data)
				close(b.done)
			}
		}()
	}
	for b := range inOrder {
		<-b.done
		for _, e := range b.entries {
			emit(e)
		}
		select {
		case free <- b.data[:cap(b.data)]:
		default:
		}
	}
	return readErr // set before inOrder is closed
}

// readBlocks reads r in blocks of whole lines (the last one may lack its
// line feed), into buffers from free when there are some, and passes each
// to send.
func readBlocks(r io.Reader, free <-chan []byte, send func([]byte)) error {
	var carry []byte // a line begun in the previous block
	for {
		if len(carry) > maxLine {
			return bufio.ErrTooLong
		}
		var buf []byte
		select {
		case buf = <-free:
		default:
		}
		if len(buf) < max(blockSize, 2*len(carry)) {
			buf = make([]byte, max(blockSize, 2*len(carry)))
		}
		n := copy(buf, carry)
		m, err := io.ReadFull(r, buf[n:])
		n += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if n > 0 {
				send(buf[:n])
			}
			return nil
		}
		if err != nil {
			return err
		}
		cut := bytes.LastIndexByte(buf[:n], '\n') + 1
		if cut > 0 {
			send(buf[:cut])
		}
		carry = append(carry[:0], buf[cut:n]...)
	}
}

// checker checks entries; each worker has its own.
type checker struct {
	size int64     // the signed tree: its size
	root tlog.Hash // and root hash

	// scratch, reused from one entry to the next
	leaf    []byte
	proof   []tlog.Hash
	open    []openedField
	fields  []leafField
	key     []byte
	opening []byte
	mac     []byte
	hashes  []decodedHash
}

type openedField struct{ name, value, opening []byte }

type leafField struct{ key, value []byte }

// block checks the non-blank lines of data.
func (c *checker) block(data []byte) []checkedEntry {
	var out []checkedEntry
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r")) // as bufio.ScanLines
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, c.entry(line))
		}
	}
	return out
}

// entry checks one entry line: its leaf, seq, inclusion proof and opened
// fields (VerifyExport checks where it stands in the sequence).
func (c *checker) entry(line []byte) checkedEntry {
	idx, ok := c.parseEntry(line)
	if !ok {
		var e ExportEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return checkedEntry{index: -1, problems: []string{fmt.Sprintf("not an export entry: %v", err)}}
		}
		idx, c.leaf, c.proof, c.open = e.Index, e.Leaf, e.Proof, c.open[:0]
		for _, name := range slices.Sorted(maps.Keys(e.Open)) {
			f := e.Open[name]
			c.open = append(c.open, openedField{[]byte(name), []byte(f.Value), []byte(f.Opening)})
		}
	}
	res := checkedEntry{index: idx, parsed: true}
	problem := func(format string, args ...any) {
		res.problems = append(res.problems, fmt.Sprintf(format, args...))
	}
	seq, ok := c.parseLeaf(c.leaf)
	if !ok {
		fields, err := ParseLeaf(c.leaf)
		if err != nil {
			problem("leaf: %v", err)
			return res
		}
		seq, c.fields = LeafSeq(fields), c.fields[:0]
		for k, v := range fields {
			c.fields = append(c.fields, leafField{[]byte(k), []byte(v)})
		}
	}
	if seq != idx {
		problem("leaf says it is event %d", seq)
	}
	if idx >= 0 && idx < c.size {
		if err := tlog.CheckRecord(c.proof, c.size, c.root, idx, tlog.RecordHash(c.leaf)); err != nil {
			problem("not in the log at this index: modified or inserted (%v)", err)
		}
	}
	for _, f := range c.open {
		c.key = append(append(c.key[:0], f.name...), CommitSuffix...)
		if !c.opens(c.field(c.key), f) {
			problem("opened field %s does not match its commitment", f.name)
		}
	}
	return res
}

// opens reports whether want, a commitment from the leaf (hex), is the
// commitment to f's value under f's opening (Commit: crypto/hmac).
func (c *checker) opens(want []byte, f openedField) bool {
	c.opening = slices.Grow(c.opening[:0], len(f.opening)/2)[:len(f.opening)/2]
	if _, err := hex.Decode(c.opening, f.opening); err != nil || len(want) == 0 {
		return false
	}
	got := hex.AppendEncode(c.mac[:0], Commit(c.opening, string(f.value)))
	c.mac = got
	return bytes.Equal(got, want) // both public: no need for hmac.Equal's constant time
}

// field returns the value of key in the leaf parsed last (the last one,
// as json.Unmarshal keeps), or nil.
func (c *checker) field(key []byte) []byte {
	for i := len(c.fields) - 1; i >= 0; i-- {
		if bytes.Equal(c.fields[i].key, key) {
			return c.fields[i].value
		}
	}
	return nil
}

// parseEntry reads a line as Export writes it,
//
//	{"index":N,"leaf":"…","proof":["…",...],"open":{"NAME":{"value":"…","opening":"…"},...}}
//
// ("open" optional; no whitespace, no escapes, names unique) into c.leaf,
// c.proof and c.open, and returns the index. It refuses any other line
// (json.Unmarshal reads those); from the lines it takes, it gets what
// json.Unmarshal into an ExportEntry gets.
func (c *checker) parseEntry(line []byte) (int64, bool) {
	t := text(line)
	if bytes.IndexByte(line, '\\') >= 0 || !t.skip(`{"index":`) {
		return 0, false
	}
	end := bytes.IndexByte(t, ',')
	if end < 0 || !isJSONInt(t[:end]) {
		return 0, false
	}
	idx, err := strconv.ParseInt(string(t[:end]), 10, 64)
	if err != nil {
		return 0, false
	}
	t = t[end:]
	if !t.skip(`,"leaf":"`) {
		return 0, false
	}
	leaf, ok := t.str()
	if !ok || bytes.IndexByte(leaf, '\r') >= 0 { // base64 skips CR, JSON refuses it
		return 0, false
	}
	c.leaf = slices.Grow(c.leaf[:0], base64.StdEncoding.DecodedLen(len(leaf)))[:base64.StdEncoding.DecodedLen(len(leaf))]
	n, err := base64.StdEncoding.Decode(c.leaf, leaf)
	if err != nil {
		return 0, false
	}
	c.leaf = c.leaf[:n]
	if !t.skip(`,"proof":[`) {
		return 0, false
	}
	c.proof = c.proof[:0]
	for !t.skip("]") {
		if len(c.proof) > 0 && !t.skip(",") {
			return 0, false
		}
		if len(t) < quotedHash {
			return 0, false
		}
		h, ok := c.decodeHash(len(c.proof), t[:quotedHash])
		if !ok {
			return 0, false
		}
		c.proof = append(c.proof, h)
		t = t[quotedHash:]
	}
	c.open = c.open[:0]
	if t.skip(`,"open":{`) {
		for !t.skip("}") {
			if len(c.open) > 0 && !t.skip(",") || !t.skip(`"`) {
				return 0, false
			}
			var f openedField
			var ok1, ok2, ok3 bool
			f.name, ok1 = t.str()
			ok1 = ok1 && t.skip(`:{"value":"`)
			if ok1 {
				f.value, ok2 = t.str()
				ok2 = ok2 && t.skip(`,"opening":"`)
			}
			if ok2 {
				f.opening, ok3 = t.str()
				ok3 = ok3 && t.skip("}")
			}
			if !ok3 || !plain(f.name) || !plain(f.value) || !plain(f.opening) ||
				slices.ContainsFunc(c.open, func(o openedField) bool { return bytes.Equal(o.name, f.name) }) {
				return 0, false
			}
			c.open = append(c.open, f)
		}
	}
	return idx, t.skip("}") && len(t) == 0
}

// quotedHash is the length of a hash in JSON: base64 in quotes.
const quotedHash = 46

// decodeHash is tlog.Hash.UnmarshalJSON, remembering the last hash decoded
// at each place j of a proof: the proofs of leaves in order share most of
// their hashes, at the same places.
func (c *checker) decodeHash(j int, quoted []byte) (tlog.Hash, bool) {
	if j >= len(c.hashes) {
		c.hashes = append(c.hashes, make([]decodedHash, j+1-len(c.hashes))...)
	}
	d := &c.hashes[j]
	if !d.ok || string(d.quoted[:]) != string(quoted) {
		var h tlog.Hash
		if err := h.UnmarshalJSON(quoted); err != nil {
			return tlog.Hash{}, false
		}
		*d = decodedHash{hash: h, ok: true}
		copy(d.quoted[:], quoted)
	}
	return d.hash, true
}

type decodedHash struct {
	quoted [quotedHash]byte
	hash   tlog.Hash
	ok     bool
}

// parseLeaf reads a leaf as EncodeLeaf writes it (LeafPrefix, then a flat
// JSON object of strings with no whitespace and no escapes) into c.fields
// and returns its seq. It refuses any other leaf (ParseLeaf reads those);
// from the leaves it takes, it gets what ParseLeaf gets.
func (c *checker) parseLeaf(leaf []byte) (int64, bool) {
	body, ok := bytes.CutPrefix(leaf, []byte(LeafPrefix))
	t := text(body)
	if !ok || bytes.IndexByte(body, '\\') >= 0 || !plain(body) || !t.skip("{") {
		return 0, false
	}
	c.fields = c.fields[:0]
	for !t.skip("}") {
		if len(c.fields) > 0 && !t.skip(",") || !t.skip(`"`) {
			return 0, false
		}
		k, ok := t.str()
		if !ok || !t.skip(`:"`) {
			return 0, false
		}
		v, ok := t.str()
		if !ok {
			return 0, false
		}
		c.fields = append(c.fields, leafField{k, v})
	}
	if len(t) > 0 {
		return 0, false
	}
	seq, err := strconv.ParseInt(string(c.field([]byte(FieldSeq))), 10, 64)
	return seq, err == nil
}

// text is what is left to read of a line in the canonical forms above.
type text []byte

// skip takes s if the text starts with it.
func (t *text) skip(s string) bool {
	if len(*t) < len(s) || string((*t)[:len(s)]) != s {
		return false
	}
	*t = (*t)[len(s):]
	return true
}

// str takes the rest of a string (its opening quote taken) and returns its
// contents, taken as they are: the callers refuse texts with a backslash.
func (t *text) str() ([]byte, bool) {
	i := bytes.IndexByte(*t, '"')
	if i < 0 {
		return nil, false
	}
	s := (*t)[:i]
	*t = (*t)[i+1:]
	return s, true
}

// plain reports whether s is valid UTF-8 without control characters (which
// a JSON string holds only escaped).
func plain(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for ; len(s) >= 8; s = s[8:] { // 8 bytes at a time: has one a byte below 0x20?
		x := binary.LittleEndian.Uint64(s)
		if (x-0x2020202020202020)&^x&0x8080808080808080 != 0 {
			return false
		}
	}
	for _, b := range s {
		if b < 0x20 {
			return false
		}
	}
	return true
}

// isJSONInt reports whether b is a JSON integer: -?(0|[1-9][0-9]*).
func isJSONInt(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("-"))
	if len(b) == 0 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, d := range b {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}
