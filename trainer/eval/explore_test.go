package eval

import (
	"fmt"
	"testing"
	"time"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

func TestExplore(t *testing.T) {
	m, err := model.Open("/tmp/s260", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := m.Tokenizer
	for _, s := range []string{"Answer: A", "Answer: B", "Answer: C", "Answer: D", "Answer:", " A"} {
		ids, _ := tok.Encode(s)
		fmt.Println(s, ids)
	}
	docs, _ := datasets.ReadMMLU("/work/shared/assets/mmlu", "test", nil)
	dev, _ := datasets.ReadMMLU("/work/shared/assets/mmlu", "dev", nil)
	p := datasets.MMLUPrompt(docs[0].Subject, dev[:5], docs[0])
	t0 := time.Now()
	ids, _ := tok.Encode(p)
	fmt.Println(len(p), len(ids), time.Since(t0))
	t0 = time.Now()
	n := 0
	for i := 0; i < 200; i++ {
		ids, _ = tok.Encode(p)
		n += len(ids)
	}
	fmt.Println("200 encodes", time.Since(t0), fmt.Sprint(tok.AddBOS()))
}
