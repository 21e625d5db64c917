package serve

import (
	"errors"
	"fmt"
	"strings"
)

// ChatTemplate renders chat messages into a prompt in one of the fixed
// formats real chat models use. The server does not run Jinja: it detects
// which of these formats a model's chat_template (tokenizer_config.json)
// writes, by the markers the template holds, and renders that format.
type ChatTemplate struct {
	// Name is the detected format: chatml, llama2, llama3, mistral or zephyr.
	Name string
	// Stop is the text that ends an assistant turn, a stop string of every
	// chat request.
	Stop string
	// defaultSystem is the system message put first when a request has none
	// (Qwen2's templates do this).
	defaultSystem string
}

// message is one chat message with its content as text.
type message struct{ role, content string }

// DetectChatTemplate names the format a Jinja chat template writes, from the
// markers it holds: ChatML (<|im_start|>: Qwen2, many fine-tunes), Llama-3
// (<|start_header_id|>), Llama-2 ([INST] with <<SYS>>), Mistral ([INST]
// without <<SYS>>) and Zephyr (<|user|>: TinyLlama-Chat, Zephyr).
func DetectChatTemplate(tmpl string) (*ChatTemplate, error) {
	switch {
	case strings.Contains(tmpl, "<|im_start|>"):
		t := &ChatTemplate{Name: "chatml", Stop: "<|im_end|>"}
		if i := strings.Index(tmpl, "You are a helpful assistant"); i >= 0 {
			// The default system message runs to the end of the template's string
			// literal.
			rest := tmpl[i:]
			if j := strings.IndexAny(rest, "'\"<\\"); j >= 0 {
				rest = rest[:j]
			}
			t.defaultSystem = rest
		}
		return t, nil
	case strings.Contains(tmpl, "<|start_header_id|>"):
		return &ChatTemplate{Name: "llama3", Stop: "<|eot_id|>"}, nil
	case strings.Contains(tmpl, "[INST]") && strings.Contains(tmpl, "<<SYS>>"):
		return &ChatTemplate{Name: "llama2", Stop: "</s>"}, nil
	case strings.Contains(tmpl, "[INST]"):
		return &ChatTemplate{Name: "mistral", Stop: "</s>"}, nil
	case strings.Contains(tmpl, "<|user|>") && strings.Contains(tmpl, "<|assistant|>"):
		return &ChatTemplate{Name: "zephyr", Stop: "</s>"}, nil
	}
	return nil, errors.New("the chat template is none of the formats the server renders (ChatML, Llama-2, Llama-3, Mistral, Zephyr)")
}

// Render writes msgs as a prompt ending where the assistant's reply starts.
// The BOS token is not written: the server adds it when the tokenizer wants
// it. Roles are system, user and assistant; a system message must come first.
func (t *ChatTemplate) Render(msgs []message) (string, error) {
	if len(msgs) == 0 {
		return "", errors.New("messages is empty")
	}
	for i, m := range msgs {
		switch m.role {
		case "system", "developer":
			if i != 0 {
				return "", fmt.Errorf("messages[%d]: a system message must come first", i)
			}
			msgs[i].role = "system"
		case "user", "assistant":
		default:
			return "", fmt.Errorf("messages[%d]: role %q: want system, user or assistant", i, m.role)
		}
	}
	var b strings.Builder
	switch t.Name {
	case "chatml":
		if msgs[0].role != "system" && t.defaultSystem != "" {
			msgs = append([]message{{"system", t.defaultSystem}}, msgs...)
		}
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|im_start|>%s\n%s<|im_end|>\n", m.role, m.content)
		}
		b.WriteString("<|im_start|>assistant\n")
	case "llama3":
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", m.role, strings.TrimSpace(m.content))
		}
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	case "zephyr":
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|%s|>\n%s</s>\n", m.role, m.content)
		}
		b.WriteString("<|assistant|>\n")
	case "llama2", "mistral":
		system := ""
		if msgs[0].role == "system" {
			system, msgs = msgs[0].content, msgs[1:]
		}
		for i, m := range msgs {
			want := "user"
			if i%2 == 1 {
				want = "assistant"
			}
			if m.role != want {
				return "", fmt.Errorf("messages: the %s template wants user and assistant messages in turns, user first; message %d is %s", t.Name, i, m.role)
			}
			if m.role == "assistant" {
				if t.Name == "llama2" {
					fmt.Fprintf(&b, " %s </s>", strings.TrimSpace(m.content))
				} else {
					fmt.Fprintf(&b, "%s</s>", strings.TrimSpace(m.content))
				}
				continue
			}
			content := strings.TrimSpace(m.content)
			if i == 0 && system != "" {
				if t.Name == "llama2" {
					content = "<<SYS>>\n" + strings.TrimSpace(system) + "\n<</SYS>>\n\n" + content
				} else {
					content = strings.TrimSpace(system) + "\n\n" + content
				}
			}
			if i > 0 && t.Name == "llama2" {
				b.WriteString("<s>")
			}
			fmt.Fprintf(&b, "[INST] %s [/INST]", content)
		}
		if len(msgs) == 0 || msgs[len(msgs)-1].role != "user" {
			return "", fmt.Errorf("messages: the %s template wants the last message from the user", t.Name)
		}
	}
	return b.String(), nil
}
