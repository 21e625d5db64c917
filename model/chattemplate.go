package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/model/gguf"
)

// ChatTemplate returns the chat template of the model at path, or "" when
// it has none: a GGUF file's tokenizer.chat_template, or a model
// directory's tokenizer_config.json chat_template (a string, or a list of
// named templates of which "default" is used).
func ChatTemplate(path string) (string, error) {
	if gguf.HasExtension(path) {
		return ggufChatTemplate(path)
	}
	return hfChatTemplate(path)
}

// ggufChatTemplate is the tokenizer.chat_template of a GGUF file, or "".
func ggufChatTemplate(path string) (string, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	template, _, err := f.String("tokenizer.chat_template")
	return template, err
}

// hfChatTemplate is the chat_template of dir's tokenizer_config.json, or "".
func hfChatTemplate(dir string) (string, error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("model: %s: %w", path, err)
	}
	if len(cfg.ChatTemplate) == 0 || string(cfg.ChatTemplate) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(cfg.ChatTemplate, &s); err == nil {
		return s, nil
	}
	var named []struct{ Name, Template string }
	if err := json.Unmarshal(cfg.ChatTemplate, &named); err != nil {
		return "", fmt.Errorf("model: %s: chat_template is neither a string nor a list of {name, template}", path)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", fmt.Errorf("model: %s: chat_template lists no template named \"default\"", path)
}
