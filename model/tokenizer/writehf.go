package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/salr-go/salr/internal/atomicfile"
)

// hfVeryLargeInteger is the model_max_length HF writes when the length is unknown (int(1e30)).
const hfVeryLargeInteger = "1000000000000000019884624838656"

// WriteHF writes dir/tokenizer.json and dir/tokenizer_config.json in the form HF's
// LlamaTokenizerFast uses: a BPE model with byte_fallback and fuse_unk, the vocabulary, the
// merges (for a llama2.c vocabulary derived from the scores in HF's SentencePieceExtractor
// order), the special pieces as special added_tokens, the SentencePiece normalizer and
// decoder, and a TemplateProcessing post-processor that adds <s>. Each file is written to a
// temporary file and renamed into place. dir is created when missing.
func (sp *SentencePiece) WriteHF(dir string) error {
	tokenizerJSON, err := sp.marshalHFTokenizer()
	if err != nil {
		return fmt.Errorf("tokenizer: writing %s: %w", filepath.Join(dir, hfTokenizerFile), err)
	}
	configJSON, err := sp.marshalHFConfig()
	if err != nil {
		return fmt.Errorf("tokenizer: writing %s: %w", filepath.Join(dir, hfConfigFile), err)
	}
	return writeHFFiles(dir, tokenizerJSON, configJSON)
}

// writeHFFiles writes tokenizer.json and tokenizer_config.json into dir
// (created when missing), each through a temporary file renamed into place.
func writeHFFiles(dir string, tokenizerJSON, configJSON []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, hfTokenizerFile), tokenizerJSON); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, hfConfigFile), configJSON); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}

// marshalJSON encodes v indented, without escaping <, > and & (pieces such as "<s>" stay
// readable).
func marshalJSON(v any) ([]byte, error) {
	return encodeJSON(v, "  ")
}

// encodeJSON encodes v without HTML escaping, indented by indent unless it is empty.
func encodeJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// vocabObject is the tokenizer.json vocab {piece: id}, in id order.
func vocabObject(pieces []string) jsonObject {
	vocab := make(jsonObject, len(pieces))
	for id, piece := range pieces {
		vocab[id] = jsonField{piece, id}
	}
	return vocab
}

// jsonObject is a JSON object that keeps its keys in the order given ("type" first, as HF
// writes it).
type jsonObject []jsonField

// jsonField is one key of a jsonObject.
type jsonField struct {
	key   string
	value any
}

// MarshalJSON writes the fields in order.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, err := encodeJSON(f.key, "")
		if err != nil {
			return nil, err
		}
		value, err := encodeJSON(f.value, "")
		if err != nil {
			return nil, err
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(value)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// typed starts a jsonObject with its "type".
func typed(typ string, fields ...jsonField) jsonObject {
	return append(jsonObject{{"type", typ}}, fields...)
}

// hfTokenizerOut is a written tokenizer.json.
type hfTokenizerOut struct {
	Version       string         `json:"version"`
	Truncation    any            `json:"truncation"`
	Padding       any            `json:"padding"`
	AddedTokens   []hfAddedToken `json:"added_tokens"`
	Normalizer    any            `json:"normalizer"`
	PreTokenizer  any            `json:"pre_tokenizer"`
	PostProcessor any            `json:"post_processor"`
	Decoder       any            `json:"decoder"`
	Model         hfModel        `json:"model"`
}

// marshalHFTokenizer renders tokenizer.json.
func (sp *SentencePiece) marshalHFTokenizer() ([]byte, error) {
	vocab, err := encodeJSON(vocabObject(sp.pieces), "")
	if err != nil {
		return nil, err
	}
	merges, err := encodeJSON(sp.hfMerges(), "")
	if err != nil {
		return nil, err
	}
	out := hfTokenizerOut{
		Version:       "1.0",
		AddedTokens:   []hfAddedToken{},
		Normalizer:    sp.hfNormalizer(),
		PreTokenizer:  sp.hfPreTokenizer(),
		PostProcessor: sp.hfPostProcessor(),
		Decoder:       sp.hfDecoder(),
		Model: hfModel{
			Type:         "BPE",
			FuseUnk:      sp.fuseUnk,
			ByteFallback: true,
			Vocab:        vocab,
			Merges:       merges,
		},
	}
	if sp.unk >= 0 {
		out.Model.UnkToken = &sp.pieces[sp.unk]
	}
	for id, kind := range sp.kinds {
		if kind == pieceControl || kind == pieceUnknown {
			out.AddedTokens = append(out.AddedTokens, hfAddedToken{ID: id, Content: sp.pieces[id], Special: true})
		}
	}
	return marshalJSON(out)
}

// hfMerges lists the merges best first as "left right", or as [left, right] pairs when a piece
// contains a space (which the string form cannot express).
func (m *bpeModel) hfMerges() []any {
	pairForm := false
	for _, pair := range m.mergeOrder {
		pairForm = pairForm || strings.Contains(m.pieces[pair[0]], " ") || strings.Contains(m.pieces[pair[1]], " ")
	}
	merges := make([]any, len(m.mergeOrder))
	for i, pair := range m.mergeOrder {
		left, right := m.pieces[pair[0]], m.pieces[pair[1]]
		if pairForm {
			merges[i] = [2]string{left, right}
		} else {
			merges[i] = left + " " + right
		}
	}
	return merges
}

// hfNormalizer renders the normalisation steps as an HF normalizer (a Sequence of Prepend and
// Replace), or nil when there are none.
func (sp *SentencePiece) hfNormalizer() any {
	var steps []any
	for _, step := range sp.text.normalize {
		if step.prepend != "" {
			steps = append(steps, typed("Prepend", jsonField{"prepend", step.prepend}))
		} else {
			steps = append(steps, hfReplace(step.from, step.to))
		}
	}
	if len(steps) == 0 {
		return nil
	}
	return typed("Sequence", jsonField{"normalizers", steps})
}

// hfReplace renders a Replace normalizer/decoder step.
func hfReplace(from, to string) jsonObject {
	return typed("Replace", jsonField{"pattern", hfPattern{String: &from}}, jsonField{"content", to})
}

// hfPreTokenizer renders the Metaspace pre-tokenizer, or nil.
func (sp *SentencePiece) hfPreTokenizer() any {
	ms := sp.text.metaspace
	if ms == nil {
		return nil
	}
	scheme := "never"
	if ms.prependFirst {
		scheme = "first"
	}
	return typed("Metaspace", jsonField{"replacement", ms.replacement}, jsonField{"prepend_scheme", scheme}, jsonField{"split", ms.split})
}

// hfPostProcessor renders a TemplateProcessing that puts BOS before the sequence, or nil when
// inputs do not start with BOS.
func (sp *SentencePiece) hfPostProcessor() any {
	if !sp.addBOS {
		return nil
	}
	return hfBOSTemplate(sp.pieces[sp.bos], sp.bos)
}

// hfBOSTemplate renders a TemplateProcessing that puts the BOS token bos (id bosID) before
// each sequence.
func hfBOSTemplate(bos string, bosID int) any {
	item := func(special bool, id string, typeID int) hfTemplateItem {
		ref := &hfTemplateRef{ID: id, TypeID: typeID}
		if special {
			return hfTemplateItem{SpecialToken: ref}
		}
		return hfTemplateItem{Sequence: ref}
	}
	return typed("TemplateProcessing",
		jsonField{"single", []hfTemplateItem{item(true, bos, 0), item(false, "A", 0)}},
		jsonField{"pair", []hfTemplateItem{item(true, bos, 0), item(false, "A", 0), item(true, bos, 1), item(false, "B", 1)}},
		jsonField{"special_tokens", map[string]hfTemplateSpecial{bos: {ID: bos, IDs: []int{bosID}, Tokens: []string{bos}}}},
	)
}

// hfDecoder renders the SentencePiece decoder: "▁" to space, byte fallback, fuse, and the
// dummy-prefix strip.
func (sp *SentencePiece) hfDecoder() any {
	steps := []any{hfReplace(spaceMarker, " "), typed("ByteFallback"), typed("Fuse")}
	if sp.text.stripLeadingSpaces > 0 {
		steps = append(steps, typed("Strip", jsonField{"content", " "}, jsonField{"start", sp.text.stripLeadingSpaces}, jsonField{"stop", 0}))
	}
	return typed("Sequence", jsonField{"decoders", steps})
}

// hfConfigOut is a written tokenizer_config.json.
type hfConfigOut struct {
	TokenizerClass            string          `json:"tokenizer_class"`
	BOSToken                  *string         `json:"bos_token"`
	EOSToken                  *string         `json:"eos_token"`
	UNKToken                  *string         `json:"unk_token"`
	PadToken                  *string         `json:"pad_token"`
	AddBOSToken               bool            `json:"add_bos_token"`
	AddEOSToken               bool            `json:"add_eos_token"`
	CleanUpTokenizationSpaces bool            `json:"clean_up_tokenization_spaces"`
	ModelMaxLength            json.RawMessage `json:"model_max_length"`
}

// marshalHFConfig renders tokenizer_config.json.
func (sp *SentencePiece) marshalHFConfig() ([]byte, error) {
	piece := func(id int) *string {
		if id < 0 {
			return nil
		}
		return &sp.pieces[id]
	}
	maxLength := json.RawMessage(hfVeryLargeInteger)
	if sp.ModelMaxLength > 0 {
		maxLength = json.RawMessage(strconv.Itoa(sp.ModelMaxLength))
	}
	return marshalJSON(hfConfigOut{
		TokenizerClass:            "LlamaTokenizer",
		BOSToken:                  piece(sp.bos),
		EOSToken:                  piece(sp.eos),
		UNKToken:                  piece(sp.unk),
		AddBOSToken:               sp.addBOS,
		AddEOSToken:               false,
		CleanUpTokenizationSpaces: false,
		ModelMaxLength:            maxLength,
	})
}
