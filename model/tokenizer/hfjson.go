package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// hfTokenizerJSON is the part of an HF tokenizer.json this package reads. The pipeline
// components stay raw until a loader needs them, so a component the sugarme path never looks
// at cannot fail the load.
type hfTokenizerJSON struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *hfModel        `json:"model"`
}

// hfAddedToken is one entry of tokenizer.json's added_tokens.
type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// hfModel is tokenizer.json's model object (the BPE fields; other kinds share type and vocab).
type hfModel struct {
	Type                    string          `json:"type"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges,omitempty"`
	Dropout                 *float64        `json:"dropout"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// hfComponent is the union of the fields of the normalizer, pre-tokenizer, post-processor and
// decoder kinds this package interprets; each kind uses a few of them.
type hfComponent struct {
	Type string `json:"type"`
	// Sequence kinds.
	Normalizers   []hfComponent `json:"normalizers"`
	PreTokenizers []hfComponent `json:"pretokenizers"`
	Processors    []hfComponent `json:"processors"`
	Decoders      []hfComponent `json:"decoders"`
	// Prepend normalizer.
	Prepend string `json:"prepend"`
	// Replace normalizer/decoder; Strip decoder (content, start, stop).
	Pattern *hfPattern `json:"pattern"`
	Content string     `json:"content"`
	Start   int        `json:"start"`
	Stop    int        `json:"stop"`
	// ByteLevel pre-tokenizer (also add_prefix_space); Split pre-tokenizer (also pattern).
	UseRegex *bool  `json:"use_regex"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Metaspace pre-tokenizer/decoder.
	Replacement    string `json:"replacement"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	PrependScheme  string `json:"prepend_scheme"`
	Split          *bool  `json:"split"`
	// TemplateProcessing post-processor.
	Single        []hfTemplateItem             `json:"single"`
	SpecialTokens map[string]hfTemplateSpecial `json:"special_tokens"`
	// BertProcessing / RobertaProcessing: ["[CLS]", 101].
	Cls []json.RawMessage `json:"cls"`
	Sep []json.RawMessage `json:"sep"`
}

// leaves expands Sequence components, recursively, into their parts; nil gives none.
func (c *hfComponent) leaves() []*hfComponent {
	if c == nil {
		return nil
	}
	if c.Type != "Sequence" {
		return []*hfComponent{c}
	}
	var out []*hfComponent
	for _, parts := range [][]hfComponent{c.Normalizers, c.PreTokenizers, c.Processors, c.Decoders} {
		for i := range parts {
			out = append(out, parts[i].leaves()...)
		}
	}
	return out
}

// hfPattern is a Replace/Split pattern: a literal string or a regular expression.
type hfPattern struct {
	String *string `json:"String,omitempty"`
	Regex  *string `json:"Regex,omitempty"`
}

// hfTemplateItem is one element of a TemplateProcessing template.
type hfTemplateItem struct {
	SpecialToken *hfTemplateRef `json:"SpecialToken,omitempty"`
	Sequence     *hfTemplateRef `json:"Sequence,omitempty"`
}

// hfTemplateRef names a special token (id is its text) or a sequence (id is "A" or "B").
type hfTemplateRef struct {
	ID     string `json:"id"`
	TypeID int    `json:"type_id"`
}

// hfTemplateSpecial is an entry of TemplateProcessing's special_tokens.
type hfTemplateSpecial struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

// hfTokenizerConfig is the part of tokenizer_config.json this package reads.
type hfTokenizerConfig struct {
	BOS            hfTokenField `json:"bos_token"`
	EOS            hfTokenField `json:"eos_token"`
	AddBOS         *bool        `json:"add_bos_token"`
	ModelMaxLength *float64     `json:"model_max_length"`
}

// hfTokenField is a special-token entry of tokenizer_config.json: absent, null, a string, or
// an AddedToken object {"content": ...}.
type hfTokenField struct {
	present bool
	null    bool
	content string
}

// UnmarshalJSON accepts null, a string or an object with a string content.
func (f *hfTokenField) UnmarshalJSON(data []byte) error {
	f.present = true
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		f.null = true
		return nil
	}
	if err := json.Unmarshal(data, &f.content); err == nil {
		return nil
	}
	var object struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(data, &object); err != nil || object.Content == nil {
		return fmt.Errorf("want a string, null or an object with a string content, got %s", data)
	}
	f.content = *object.Content
	return nil
}

// hfSource is a parsed tokenizer.json with its optional tokenizer_config.json.
type hfSource struct {
	path       string // tokenizer.json
	json       hfTokenizerJSON
	config     *hfTokenizerConfig // nil when there is no tokenizer_config.json
	configPath string
}

// readHFSource parses jsonPath and the tokenizer_config.json beside it, if any.
func readHFSource(jsonPath string) (*hfSource, error) {
	src := &hfSource{path: jsonPath}
	if err := readJSONFile(jsonPath, &src.json); err != nil {
		return nil, err
	}
	if src.json.Model == nil {
		return nil, fmt.Errorf("tokenizer: %s: no model object", jsonPath)
	}
	configPath := filepath.Join(filepath.Dir(jsonPath), hfConfigFile)
	var config hfTokenizerConfig
	switch err := readJSONFile(configPath, &config); {
	case err == nil:
		src.config, src.configPath = &config, configPath
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return src, nil
}

// readJSONFile decodes the JSON file at path into v; syntax and type errors name the file and
// line. A missing file gives an error wrapping fs.ErrNotExist.
func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return fmt.Errorf("tokenizer: %s:%d: %w", path, lineAt(data, syntaxErr.Offset), err)
		case errors.As(err, &typeErr):
			return fmt.Errorf("tokenizer: %s:%d: field %s: %w", path, lineAt(data, typeErr.Offset), typeErr.Field, err)
		}
		return fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return nil
}

// lineAt is the 1-based line of byte offset in data.
func lineAt(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// parseComponent decodes an optional pipeline component; null or absent gives nil.
func (src *hfSource) parseComponent(field string, raw json.RawMessage) (*hfComponent, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %s: %w", src.path, field, err)
	}
	return &c, nil
}

// modelType is the model kind, inferred as BPE when an old file omits the type but has merges.
func (src *hfSource) modelType() string {
	if src.json.Model.Type == "" && len(src.json.Model.Merges) > 0 {
		return "BPE"
	}
	return src.json.Model.Type
}

// loadHF loads tokenizer.json at jsonPath as a SentencePiece (BPE with byte fallback), a
// ByteLevelBPE (BPE with a ByteLevel pre-tokenizer) or an HFTokenizer (every other model kind
// sugarme reads).
func loadHF(jsonPath string) (Tokenizer, error) {
	src, err := readHFSource(jsonPath)
	if err != nil {
		return nil, err
	}
	switch typ := src.modelType(); typ {
	case "BPE":
		switch {
		case src.json.Model.ByteFallback:
			return sentencePieceFromHF(src)
		case src.hasByteLevelPreTokenizer():
			return byteLevelFromHF(src)
		}
		return newHFTokenizer(src)
	case "WordPiece", "WordLevel", "Unigram":
		return newHFTokenizer(src)
	default:
		return nil, fmt.Errorf("tokenizer: %s: unsupported model type %q (want BPE, WordPiece, WordLevel or Unigram)", jsonPath, typ)
	}
}

// specialTokens are the BOS/EOS ids and whether inputs start with BOS.
type specialTokens struct {
	bos, eos int
	addBOS   bool
}

// Well-known BOS/EOS texts, tried in order when neither tokenizer_config.json nor the
// post-processor names them.
var (
	knownBOSTexts = []string{"<s>", "<|begin_of_text|>", "<|endoftext|>", "<|startoftext|>"}
	knownEOSTexts = []string{"</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"}
)

// resolveSpecialTokens finds BOS, EOS and AddBOS: from tokenizer_config.json when it has them
// (bos_token/eos_token, add_bos_token), else from the post-processor template (the special
// token before the sequence is BOS and makes AddBOS true, the one after it is EOS), else
// from well-known token texts. lookup maps token text to id.
func (src *hfSource) resolveSpecialTokens(lookup func(string) (int, bool)) (specialTokens, error) {
	post, err := src.parseComponent("post_processor", src.json.PostProcessor)
	if err != nil {
		return specialTokens{}, err
	}
	templateBOS, templateEOS := templateSpecials(post, lookup)
	resolve := func(field hfTokenField, name string, fromTemplate int, known []string) (int, error) {
		if src.config != nil && field.present {
			if field.null {
				return -1, nil
			}
			id, ok := lookup(field.content)
			if !ok {
				return -1, fmt.Errorf("tokenizer: %s: %s %q is not in the vocabulary of %s", src.configPath, name, field.content, src.path)
			}
			return id, nil
		}
		if fromTemplate >= 0 {
			return fromTemplate, nil
		}
		for _, text := range known {
			if id, ok := lookup(text); ok {
				return id, nil
			}
		}
		return -1, nil
	}
	var st specialTokens
	var config hfTokenizerConfig
	if src.config != nil {
		config = *src.config
	}
	if st.bos, err = resolve(config.BOS, "bos_token", templateBOS, knownBOSTexts); err != nil {
		return st, err
	}
	if st.eos, err = resolve(config.EOS, "eos_token", templateEOS, knownEOSTexts); err != nil {
		return st, err
	}
	if config.AddBOS != nil {
		st.addBOS = *config.AddBOS
	} else {
		st.addBOS = templateBOS >= 0
	}
	if st.addBOS && st.bos < 0 {
		return st, fmt.Errorf("tokenizer: %s: inputs should start with BOS (add_bos_token or the post-processor) but no BOS token is known", src.path)
	}
	return st, nil
}

// templateSpecials returns the ids of the special tokens a post-processor puts before and
// after a single sequence (-1 when none).
func templateSpecials(post *hfComponent, lookup func(string) (int, bool)) (before, after int) {
	before, after = -1, -1
	for _, post := range post.leaves() {
		b, a := leafTemplateSpecials(post, lookup)
		if before < 0 {
			before = b
		}
		if a >= 0 {
			after = a
		}
	}
	return before, after
}

// leafTemplateSpecials is templateSpecials for one processor other than Sequence.
func leafTemplateSpecials(post *hfComponent, lookup func(string) (int, bool)) (before, after int) {
	before, after = -1, -1
	switch post.Type {
	case "TemplateProcessing":
		seenSequence := false
		for _, item := range post.Single {
			switch {
			case item.Sequence != nil:
				seenSequence = true
			case item.SpecialToken != nil:
				id := templateTokenID(post, item.SpecialToken.ID, lookup)
				if !seenSequence && before < 0 {
					before = id
				}
				if seenSequence {
					after = id
				}
			}
		}
	case "BertProcessing", "RobertaProcessing":
		before, after = processingTokenID(post.Cls), processingTokenID(post.Sep)
	}
	return before, after
}

// templateTokenID is the id of a TemplateProcessing special token: its special_tokens entry,
// else the vocabulary id of its text.
func templateTokenID(post *hfComponent, text string, lookup func(string) (int, bool)) int {
	if entry, ok := post.SpecialTokens[text]; ok && len(entry.IDs) > 0 {
		return entry.IDs[0]
	}
	if id, ok := lookup(text); ok {
		return id
	}
	return -1
}

// processingTokenID reads the id of a BertProcessing/RobertaProcessing ["text", id] pair.
func processingTokenID(pair []json.RawMessage) int {
	var id int
	if len(pair) != 2 || json.Unmarshal(pair[1], &id) != nil {
		return -1
	}
	return id
}
