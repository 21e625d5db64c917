package serve

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
)

// Chat templates as the models' tokenizer_config.json files hold them
// (abridged to their markers, which is what detection reads).
var templates = map[string]string{
	"chatml":  `{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`,
	"llama3":  `{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`,
	"llama2":  `{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\n' + messages[0]['content'] | trim + '\n<</SYS>>\n\n' %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}`,
	"mistral": `{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}`,
	"zephyr":  `{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}`,
}

// TestChatRender: each format renders a conversation as its Jinja template
// does (without the leading BOS, which the tokenizer adds).
func TestChatRender(t *testing.T) {
	conv := []message{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}}
	want := map[string]string{
		"chatml":  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
		"llama3":  "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		"llama2":  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] 2+2? [/INST]",
		"mistral": "[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] 2+2? [/INST]",
		"zephyr":  "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\n2+2?</s>\n<|assistant|>\n",
	}
	for name, tmpl := range templates {
		ct, err := DetectChatTemplate(tmpl)
		if err != nil || ct.Name != name {
			t.Errorf("%s: detected %v, %v", name, ct, err)
			continue
		}
		got, err := ct.Render(append([]message(nil), conv...))
		if err != nil || got != want[name] {
			t.Errorf("%s: got %q, %v\nwant %q", name, got, err, want[name])
		}
	}
	// Qwen2's default system message when the request has none.
	ct, _ := DetectChatTemplate(templates["chatml"])
	if got, _ := ct.Render([]message{{"user", "Hi"}}); got != "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("chatml default system: %q", got)
	}
	if _, err := DetectChatTemplate("{{ messages }}"); err == nil {
		t.Error("an unknown template was accepted")
	}
	for _, bad := range [][]message{nil, {{"user", "a"}, {"system", "b"}}, {{"tool", "x"}}} {
		if _, err := ct.Render(bad); err == nil {
			t.Errorf("messages %v accepted", bad)
		}
	}
	l2, _ := DetectChatTemplate(templates["llama2"])
	if _, err := l2.Render([]message{{"user", "a"}, {"user", "b"}}); err == nil {
		t.Error("llama2: two user messages in a row accepted")
	}
}

// TestChatEndpoint: a chat request is rendered, counted and answered as
// OpenAI does, whole and streamed.
func TestChatEndpoint(t *testing.T) {
	ct, _ := DetectChatTemplate(templates["zephyr"])
	_, hs, m := startServer(t, Options{Chat: ct})
	msgs := []map[string]any{{"role": "user", "content": []map[string]string{{"type": "text", "text": "Once upon"}, {"type": "text", "text": " a time"}}}}
	var resp chatResponse
	if code := post(t, hs.URL+"/v1/chat/completions", map[string]any{"messages": msgs, "max_tokens": 12, "temperature": 0}, &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	prompt, _ := ct.Render([]message{{"user", "Once upon a time"}})
	ids, _ := model.EncodePrompt(m.Tokenizer, prompt)
	want := reference(t, m, prompt, 12)
	if i := strings.Index(want, "</s>"); i >= 0 {
		want = want[:i]
	}
	c := resp.Choices[0]
	if resp.Object != "chat.completion" || c.Message == nil || c.Message.Role != "assistant" || *c.Message.Content != want || resp.Usage.PromptTokens != len(ids) {
		t.Errorf("got %+v (message %+v), want content %q and %d prompt tokens", resp, c.Message, want, len(ids))
	}
}

// TestChatStream: a streamed chat answer is OpenAI's sequence of
// chat.completion.chunk events: the role first, then the content, then the
// finish reason with an empty delta, then [DONE].
func TestChatStream(t *testing.T) {
	ct, _ := DetectChatTemplate(templates["chatml"])
	_, hs, _ := startServer(t, Options{Chat: ct})
	resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 6, "temperature": 0, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if len(events) < 3 || events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("events %q", events)
	}
	var chunks []map[string]any
	for _, e := range events[:len(events)-1] {
		var c map[string]any
		data, ok := strings.CutPrefix(e, "data: ")
		if !ok || json.Unmarshal([]byte(data), &c) != nil || c["object"] != "chat.completion.chunk" {
			t.Fatalf("event %q", e)
		}
		chunks = append(chunks, c)
	}
	choice := func(i int) map[string]any { return chunks[i]["choices"].([]any)[0].(map[string]any) }
	if d := choice(0)["delta"].(map[string]any); d["role"] != "assistant" || d["content"] != "" {
		t.Errorf("first delta %v", d)
	}
	last := choice(len(chunks) - 1)
	if d := last["delta"].(map[string]any); len(d) != 0 || last["finish_reason"] != "length" {
		t.Errorf("last chunk %v", last)
	}
	for i := 1; i < len(chunks)-1; i++ {
		if c := choice(i); c["finish_reason"] != nil || c["delta"].(map[string]any)["content"] == "" {
			t.Errorf("chunk %d: %v", i, c)
		}
	}
}

// endTokenizer encodes a chat template's end-of-turn text as one special
// token, as tokenizers of chat models do.
type endTokenizer struct {
	tokenizer.Tokenizer
	end string
	id  int
}

func (t endTokenizer) Encode(s string) ([]int, error) {
	if s == t.end {
		return []int{t.id}, nil
	}
	return t.Tokenizer.Encode(s)
}

// TestChatEndToken: the template's end of turn stops the answer as a token
// too (decoding skips special tokens, so the stop string alone would miss it).
func TestChatEndToken(t *testing.T) {
	ct, _ := DetectChatTemplate(templates["chatml"])
	m := openStories(t)
	prompt, _ := ct.Render([]message{{"user", "Once upon a time"}})
	ids, _ := model.EncodePrompt(m.Tokenizer, prompt)
	gen, err := model.NewRunner(m.Params).Generate([][]int{ids}, model.GenerateOptions{MaxNewTokens: 3, Sampler: must(model.NewSampler(0, 1, 0))})
	if err != nil {
		t.Fatal(err)
	}
	tok := endTokenizer{m.Tokenizer, ct.Stop, gen[0][2]} // the third greedy token ends the turn
	s := New(m.Params, tok, Options{Chat: ct, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s.Handler())
	defer s.Close()
	defer hs.Close()
	var resp chatResponse
	post(t, hs.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": "Once upon a time"}}, "temperature": 0}, &resp)
	want := model.NewTextStream(m.Tokenizer, ids, nil)
	want.Push(gen[0][:2])
	if c := resp.Choices[0]; *c.Message.Content != want.Text() || *c.FinishReason != "stop" || resp.Usage.CompletionTokens != 2 {
		t.Errorf("got %q (%s, %d tokens), want %q (stop, 2 tokens)", *c.Message.Content, *c.FinishReason, resp.Usage.CompletionTokens, want.Text())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
