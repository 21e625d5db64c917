package datasets

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// MetaMathRecord is one MetaMathQA example: a question (query), its worked
// solution (response) and the augmentation type (GSM_AnsAug, GSM_Rephrased,
// GSM_SV, GSM_FOBAR, MATH_AnsAug, MATH_Rephrased, MATH_SV, MATH_FOBAR).
// Other fields of the file, such as original_question, are not kept.
type MetaMathRecord struct {
	Query, Response, Type string
}

// MetaMathSelection says which records of a MetaMathQA file to keep.
type MetaMathSelection struct {
	// Types keeps only the records whose type is listed; empty keeps all.
	Types []string
	// Max keeps at most this many records; 0 keeps all.
	Max int
	// Seed drives the deterministic shuffle.
	Seed uint64
}

// MetaMathTrainExample renders a record as a training example: the prompt is
// MetaMathPrompt(query), ending in "### Response:", and the response follows
// it directly (the loss covers the response and the EOS).
func MetaMathTrainExample(r MetaMathRecord) Example {
	return Example{Prompt: MetaMathPrompt(r.Query), Response: r.Response}
}

// ReadMetaMathQA reads MetaMathQA as released (MetaMathQA-395K.json: one
// JSON array of objects with query, response, type and original_question) or
// the same objects as JSON Lines; the first non-space character ('[' or '{')
// tells which. The file is decoded one record at a time, never held whole.
//
// The records whose type is in sel.Types (all when empty) are returned in a
// deterministic shuffled order: record i (0-based position in the file) gets
// a 64-bit key hashed from (sel.Seed, i) and the records come in increasing
// key order. With sel.Max > 0 only the sel.Max records with the smallest keys
// are kept (in memory, too), so a larger Max keeps the records of a smaller
// one, and a type filter keeps the unfiltered order's records of its types.
//
// Errors name the file, the record (0-based, as in the array) and its line:
// a malformed or cut-off file, a record that is not an object, a missing,
// empty or non-string query or response, a non-string type. A filter that
// keeps no record is an error listing the types the file holds.
func ReadMetaMathQA(path string, sel MetaMathSelection) ([]MetaMathRecord, error) {
	if sel.Max < 0 {
		return nil, fmt.Errorf("datasets: MetaMathQA selection of %d records is negative", sel.Max)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	keep := newMetaMathPicker(sel)
	if err := scanMetaMathQA(path, f, keep.add); err != nil {
		return nil, err
	}
	if keep.records == 0 {
		return nil, inputErrorf(path, 0, "no records (empty array or file)")
	}
	out := keep.sorted()
	if len(out) == 0 {
		return nil, inputErrorf(path, 0, "no record has one of the types %s; the file's %d records have types %s",
			strings.Join(sel.Types, ", "), keep.records, keep.typeSummary())
	}
	return out, nil
}

// scanMetaMathQA decodes the records of r (a JSON array or JSON Lines) in
// file order and passes each with its 0-based index to add.
func scanMetaMathQA(file string, r io.Reader, add func(i int, rec MetaMathRecord)) error {
	lc := &lineCounter{r: r}
	br := bufio.NewReaderSize(lc, 1<<16)
	// Skip a byte order mark and leading white space to see the first
	// character; skipped counts the bytes consumed before the decoder.
	var skipped int64
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
		skipped = 3
	}
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return inputErrorf(file, 0, "no records (empty file)")
		}
		if err != nil {
			return inputErrorf(file, 0, "read: %v", err)
		}
		if !isJSONSpace(c) {
			br.UnreadByte()
			break
		}
		skipped++
	}
	first, _ := br.Peek(1)
	switch first[0] {
	case '[':
		return scanMetaMathArray(file, br, lc, skipped, add)
	case '{':
		line := lc.lineAt(skipped)
		lc.off = -1 // lines are counted as they are read
		return scanMetaMathLines(file, br, line, add)
	}
	return inputErrorf(file, lc.lineAt(skipped), "neither a JSON array nor JSON Lines of objects (starts with %q)", first[0])
}

// scanMetaMathArray decodes a JSON array of records element by element.
// skipped is the offset in the file at which br starts.
func scanMetaMathArray(file string, br *bufio.Reader, lc *lineCounter, skipped int64, add func(int, MetaMathRecord)) error {
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // the '[' seen by the caller
		return inputErrorf(file, lc.lineAt(skipped), "%v", err)
	}
	i := 0
	for ; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			line := lc.lineAt(skipped + dec.InputOffset())
			var se *json.SyntaxError
			switch {
			case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
				return inputErrorf(file, lc.lineAt(lc.off), "record %d: the file ends inside the record (cut off?); %d complete records before it", i, i)
			case errors.As(err, &se):
				return inputErrorf(file, lc.lineAt(skipped+se.Offset), "record %d: invalid JSON: %v", i, se)
			}
			return inputErrorf(file, line, "record %d: %v", i, err)
		}
		line := lc.lineAt(skipped + dec.InputOffset() - int64(len(raw)))
		rec, err := decodeMetaMathRecord(raw)
		if err != nil {
			return inputErrorf(file, line, "record %d: %v", i, err)
		}
		add(i, rec)
	}
	// More is false at the closing ']' and at a read error or the end of
	// the input, which Token reports.
	if _, err := dec.Token(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return inputErrorf(file, lc.lineAt(lc.off), "the JSON array is not closed: the file ends after record %d (cut off?)", i-1)
		}
		return inputErrorf(file, lc.lineAt(skipped+dec.InputOffset()), "after record %d: %v", i-1, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return inputErrorf(file, lc.lineAt(skipped+dec.InputOffset()), "unexpected data after the closing ] of the array")
	}
	return nil
}

// scanMetaMathLines decodes one record per non-blank line; line is the
// 1-based line at which br starts.
func scanMetaMathLines(file string, br *bufio.Reader, line int, add func(int, MetaMathRecord)) error {
	i := 0
	for ; ; line++ {
		raw, readErr := br.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return inputErrorf(file, line, "read: %v", readErr)
		}
		if text := bytes.TrimSpace(raw); len(text) > 0 {
			rec, err := decodeMetaMathRecord(text)
			if err != nil {
				return inputErrorf(file, line, "record %d: %v", i, err)
			}
			add(i, rec)
			i++
		}
		if readErr == io.EOF {
			return nil
		}
	}
}

// metaMathFields are the fields of a record that are read.
type metaMathFields struct {
	Query    json.RawMessage `json:"query"`
	Response json.RawMessage `json:"response"`
	Type     json.RawMessage `json:"type"`
}

// decodeMetaMathRecord decodes one record object.
func decodeMetaMathRecord(raw []byte) (MetaMathRecord, error) {
	var f metaMathFields
	if err := json.Unmarshal(raw, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return MetaMathRecord{}, fmt.Errorf("a JSON %s, want an object", te.Value)
		}
		return MetaMathRecord{}, fmt.Errorf("invalid JSON: %v", err)
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return MetaMathRecord{}, errors.New("null, want an object")
	}
	var r MetaMathRecord
	var err error
	if r.Query, err = stringField("query", f.Query, true); err != nil {
		return r, err
	}
	if r.Response, err = stringField("response", f.Response, true); err != nil {
		return r, err
	}
	if r.Type, err = stringField("type", f.Type, false); err != nil {
		return r, err
	}
	return r, nil
}

// stringField decodes a JSON string field; a required field must be present
// and non-empty, an optional one may be absent (then "").
func stringField(name string, v json.RawMessage, required bool) (string, error) {
	if v == nil {
		if required {
			return "", fmt.Errorf("missing field %q", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return "", fmt.Errorf("field %q is %s, want a string", name, jsonKind(v))
	}
	if required && s == "" {
		return "", fmt.Errorf("field %q is empty", name)
	}
	return s, nil
}

// isJSONSpace reports JSON white space.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lineCounter passes reads through and remembers where the newlines are, so
// that lineAt can turn a byte offset into a line number. Offsets passed to
// lineAt must not decrease; newlines before them are forgotten.
type lineCounter struct {
	r      io.Reader
	off    int64   // bytes read so far; -1 stops the counting
	nl     []int64 // offsets of the newlines not yet passed by lineAt
	passed int     // newlines forgotten
}

// Read reads from the underlying reader and records the newlines.
func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.off < 0 {
		return n, err
	}
	for i, b := range p[:n] {
		if b == '\n' {
			c.nl = append(c.nl, c.off+int64(i))
		}
	}
	c.off += int64(n)
	return n, err
}

// lineAt returns the 1-based line of the byte at offset.
func (c *lineCounter) lineAt(offset int64) int {
	k := sort.Search(len(c.nl), func(i int) bool { return c.nl[i] >= offset })
	c.passed += k
	c.nl = c.nl[k:]
	return c.passed + 1
}

// metaMathPicker applies a MetaMathSelection while the records stream by:
// it counts the types and keeps the selected records with the smallest
// shuffle keys (at most sel.Max of them, in a max-heap).
type metaMathPicker struct {
	sel     MetaMathSelection
	types   map[string]int // records per type, all of the file
	records int
	kept    keyedRecords
}

func newMetaMathPicker(sel MetaMathSelection) *metaMathPicker {
	return &metaMathPicker{sel: sel, types: map[string]int{}}
}

// add offers record i.
func (p *metaMathPicker) add(i int, rec MetaMathRecord) {
	p.records++
	p.types[rec.Type]++
	if len(p.sel.Types) > 0 && !slices.Contains(p.sel.Types, rec.Type) {
		return
	}
	k := keyedRecord{key: shuffleKey(p.sel.Seed, uint64(i)), index: i, rec: rec}
	switch {
	case p.sel.Max == 0:
		p.kept = append(p.kept, k) // sorted at the end
	case len(p.kept) < p.sel.Max:
		heap.Push(&p.kept, k)
	case k.less(p.kept[0]):
		p.kept[0] = k
		heap.Fix(&p.kept, 0)
	}
}

// sorted returns the kept records in increasing key order.
func (p *metaMathPicker) sorted() []MetaMathRecord {
	sort.Slice(p.kept, func(a, b int) bool { return p.kept[a].less(p.kept[b]) })
	out := make([]MetaMathRecord, len(p.kept))
	for i, k := range p.kept {
		out[i] = k.rec
	}
	return out
}

// typeSummary lists the types of the file with their counts, by name.
func (p *metaMathPicker) typeSummary() string {
	names := make([]string, 0, len(p.types))
	for t := range p.types {
		names = append(names, t)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, t := range names {
		label := t
		if t == "" {
			label = "(no type)"
		}
		parts[i] = fmt.Sprintf("%s (%d)", label, p.types[t])
	}
	return strings.Join(parts, ", ")
}

// keyedRecord is a record with its shuffle key.
type keyedRecord struct {
	key   uint64
	index int
	rec   MetaMathRecord
}

func (a keyedRecord) less(b keyedRecord) bool {
	return a.key < b.key || (a.key == b.key && a.index < b.index)
}

// keyedRecords is a max-heap by key: the root is the record to drop first.
type keyedRecords []keyedRecord

func (h keyedRecords) Len() int           { return len(h) }
func (h keyedRecords) Less(i, j int) bool { return h[j].less(h[i]) }
func (h keyedRecords) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyedRecords) Push(x any)        { *h = append(*h, x.(keyedRecord)) }
func (h *keyedRecords) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// shuffleKey hashes (seed, i) to a 64-bit key with the SplitMix64 finaliser
// applied twice, so that sorting indices by key is a seeded permutation.
func shuffleKey(seed, i uint64) uint64 {
	return splitMix64(splitMix64(seed) ^ i)
}

// splitMix64 is the finaliser of Steele, Lea and Flood's SplitMix64.
func splitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
