package tokenizer

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
)

// WriteHF writes dir/tokenizer.json and dir/tokenizer_config.json for a byte-level BPE (one
// loaded from a GGUF file, say) in the form HF's PreTrainedTokenizerFast reads: a BPE model
// without byte fallback, the vocabulary and merges, the added tokens, the NFC normalizer when
// there is one, the pre-tokenizer as a Sequence of Split stages ending with ByteLevel, the
// ByteLevel decoder, and a TemplateProcessing post-processor when inputs start with BOS.
// Loading the directory gives a tokenizer that encodes and decodes as b does.
func (b *ByteLevelBPE) WriteHF(dir string) error {
	tokenizerJSON, err := b.marshalHFTokenizer()
	if err != nil {
		return fmt.Errorf("tokenizer: writing %s: %w", filepath.Join(dir, hfTokenizerFile), err)
	}
	piece := func(id int) *string {
		if id < 0 {
			return nil
		}
		return &b.pieces[id]
	}
	configJSON, err := marshalJSON(hfConfigOut{
		TokenizerClass: "PreTrainedTokenizerFast",
		BOSToken:       piece(b.special.bos),
		EOSToken:       piece(b.special.eos),
		UNKToken:       piece(b.unk),
		AddBOSToken:    b.special.addBOS,
		ModelMaxLength: json.RawMessage(hfVeryLargeInteger),
	})
	if err != nil {
		return fmt.Errorf("tokenizer: writing %s: %w", filepath.Join(dir, hfConfigFile), err)
	}
	return writeHFFiles(dir, tokenizerJSON, configJSON)
}

// marshalHFTokenizer renders tokenizer.json.
func (b *ByteLevelBPE) marshalHFTokenizer() ([]byte, error) {
	vocab, err := encodeJSON(vocabObject(b.pieces), "")
	if err != nil {
		return nil, err
	}
	merges, err := encodeJSON(b.hfMerges(), "")
	if err != nil {
		return nil, err
	}
	var stages []any
	for _, st := range b.stages {
		switch {
		case st.pattern == "":
			stages = append(stages, typed("ByteLevel", jsonField{"add_prefix_space", st.prefixSpace}, jsonField{"trim_offsets", true}, jsonField{"use_regex", false}))
		case st.pattern == gpt2SplitPattern:
			stages = append(stages, typed("ByteLevel", jsonField{"add_prefix_space", st.prefixSpace}, jsonField{"trim_offsets", true}, jsonField{"use_regex", true}))
		case st.prefixSpace:
			return nil, fmt.Errorf("a split stage with pattern %q and a prefix space has no tokenizer.json form", st.pattern)
		default:
			pattern := st.pattern
			stages = append(stages, typed("Split", jsonField{"pattern", hfPattern{Regex: &pattern}}, jsonField{"behavior", "Isolated"}, jsonField{"invert", false}))
		}
	}
	hasByteLevel := slices.ContainsFunc(b.stages, func(st splitStage) bool { return st.pattern == "" || st.pattern == gpt2SplitPattern })
	if !hasByteLevel { // the byte mapping itself, without a split of its own
		stages = append(stages, typed("ByteLevel", jsonField{"add_prefix_space", false}, jsonField{"trim_offsets", true}, jsonField{"use_regex", false}))
	}
	out := hfTokenizerOut{
		Version:      "1.0",
		AddedTokens:  b.addedTokens(),
		PreTokenizer: typed("Sequence", jsonField{"pretokenizers", stages}),
		Decoder:      typed("ByteLevel", jsonField{"add_prefix_space", true}, jsonField{"trim_offsets", true}, jsonField{"use_regex", true}),
		Model: hfModel{
			Type:         "BPE",
			FuseUnk:      b.fuseUnk,
			IgnoreMerges: b.ignoreMerges,
			Vocab:        vocab,
			Merges:       merges,
		},
	}
	if b.nfc {
		out.Normalizer = typed("NFC")
	}
	if b.special.addBOS {
		out.PostProcessor = hfBOSTemplate(b.pieces[b.special.bos], b.special.bos)
	}
	if b.unk >= 0 {
		out.Model.UnkToken = &b.pieces[b.unk]
	}
	return marshalJSON(out)
}

// addedTokens lists the tokens matched in the text before BPE, by id.
func (b *ByteLevelBPE) addedTokens() []hfAddedToken {
	out := []hfAddedToken{}
	for _, list := range b.added.byFirstByte {
		out = append(out, list...)
	}
	slices.SortFunc(out, func(x, y hfAddedToken) int { return x.ID - y.ID })
	return out
}
