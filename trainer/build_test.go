package trainer

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestProgressLogRateLimited(t *testing.T) {
	var lines []string
	start := time.Now().Add(-30 * time.Second)
	p := progressLog{logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) },
		what: "pruning", unit: "projections", every: 10 * time.Second, start: start}
	p.done(0, 4) // nothing done yet: no estimate
	p.done(1, 4) // 30 s for 1 of 4: about 1m30s left
	p.done(2, 4) // within 10 s of the last line: quiet
	if len(lines) != 1 || !strings.Contains(lines[0], "pruning: 1 of 4 projections done, 30s elapsed, about 1m30s left") {
		t.Fatalf("lines %q", lines)
	}
}
