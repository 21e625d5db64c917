package serve

import "testing"

// FuzzRequest: any request body is parsed into a request or a 400 error
// naming what is wrong, never a panic; a chat request renders or is refused.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "stop": ["\n", "."], "seed": 3}`,
		`{"prompt": [1, 2, 3], "stream": true, "stream_options": {"include_usage": true}}`,
		`{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}`,
		`{"prompt": ["a"], "n": 2, "logprobs": 1, "stop": null}`,
		`{"prompt": "x"} {"prompt": "y"}`,
		`{"max_tokens": -1, "max_completion_tokens": 3}`,
	} {
		f.Add([]byte(s))
	}
	var formats []*ChatTemplate
	for _, tmpl := range templates {
		ct, err := DetectChatTemplate(tmpl)
		if err != nil {
			f.Fatal(err)
		}
		formats = append(formats, ct)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req completionRequest
		if e := decodeRequest(body, &req); e != nil {
			if e.Status != 400 || e.Message == "" {
				t.Fatalf("error %+v", e)
			}
			return
		}
		if _, e := parseSampling(&req); e != nil && (e.Status != 400 || e.Param == nil) {
			t.Fatalf("sampling error %+v", e)
		}
		if _, _, e := completionPrompt(req.Prompt); e != nil && (e.Status != 400 || e.Param == nil) {
			t.Fatalf("prompt error %+v", e)
		}
		msgs := make([]message, 0, len(req.Messages))
		for i, m := range req.Messages {
			text, e := messageText(i, m)
			if e != nil {
				return
			}
			msgs = append(msgs, message{m.Role, text})
		}
		for _, ct := range formats {
			ct.Render(append([]message(nil), msgs...))
		}
	})
}
