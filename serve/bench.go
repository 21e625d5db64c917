package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
)

// Bench serves p on a real listener at 127.0.0.1 and measures it under
// Load: after one untimed request, one client, then o.Clients clients at
// once (o.URL is set here). The server decodes up to maxBatch requests together.
func Bench(ctx context.Context, p *model.Params[float32], tok tokenizer.Tokenizer, o LoadOptions, maxBatch int) (one, many LoadResult, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return one, many, err
	}
	s := New(p, tok, Options{MaxBatch: maxBatch, QueueSize: max(64, 2*o.Clients), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	o.URL = "http://" + ln.Addr().String()
	// One request first, untimed, so that neither measurement pays for the
	// first use of the model's memory.
	warm := o
	warm.Clients, warm.Requests = 1, 1
	if _, err = Load(ctx, warm); err != nil {
		return one, many, err
	}
	clients := o.Clients
	o.Clients = 1
	if one, err = Load(ctx, o); err != nil {
		return one, many, err
	}
	o.Clients = clients
	many, err = Load(ctx, o)
	return one, many, err
}
