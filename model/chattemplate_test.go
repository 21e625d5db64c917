package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/internal/ggufbuild"
)

// TestChatTemplate reads tokenizer_config.json's chat_template, a string
// or a list of named templates.
func TestChatTemplate(t *testing.T) {
	dir := t.TempDir()
	if got, err := ChatTemplate(dir); got != "" || err != nil {
		t.Errorf("no file: %q, %v", got, err)
	}
	for body, want := range map[string]string{
		`{"chat_template": "<|im_start|>"}`: "<|im_start|>",
		`{"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "[INST]"}]}`: "[INST]",
		`{"bos_token": "<s>"}`: "",
	} {
		os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(body), 0o644)
		if got, err := ChatTemplate(dir); got != want || err != nil {
			t.Errorf("%s: %q, %v", body, got, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"chat_template": 3}`), 0o644)
	if _, err := ChatTemplate(dir); err == nil || !strings.Contains(err.Error(), "chat_template") {
		t.Errorf("a numeric chat_template: %v", err)
	}
}

// TestChatTemplateGGUF reads tokenizer.chat_template of a GGUF file, "" when
// it has none.
func TestChatTemplateGGUF(t *testing.T) {
	dir := t.TempDir()
	for want, kvs := range map[string][][2]any{
		"<|im_start|>": {{"general.architecture", "llama"}, {"tokenizer.chat_template", "<|im_start|>"}},
		"":             {{"general.architecture", "llama"}},
	} {
		var b ggufbuild.Builder
		for _, kv := range kvs {
			b.KV(kv[0].(string), kv[1])
		}
		path := filepath.Join(dir, "m.gguf")
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ChatTemplate(path); got != want || err != nil {
			t.Errorf("%v: %q, %v", kvs, got, err)
		}
	}
}
