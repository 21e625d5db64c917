package sparsity

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PatternKind says which weights of a matrix compete with each other for
// pruning.
type PatternKind int

const (
	// PerMatrix ranks all weights of the matrix together (the paper's default).
	PerMatrix PatternKind = iota + 1
	// PerRow ranks the weights of each output row separately, so every row
	// loses the same number of inputs.
	PerRow
	// NM prunes exactly N of every M consecutive inputs of each row (2:4
	// prunes 2 of every 4: 50%).
	NM
)

// Pattern is a pruning pattern with its ratio.
type Pattern struct {
	Kind PatternKind
	// Ratio is the pruned fraction, 0 < Ratio < 1 (for NM it is N/M).
	Ratio float64
	// N and M define an NM pattern: N of every M consecutive inputs pruned.
	N, M int
}

// ParsePattern reads a pattern name: "matrix", "row", or "N:M" such as "2:4"
// (N of every M consecutive inputs pruned). ratio is the pruned fraction for
// "matrix" and "row"; for "N:M" it may be 0 (meaning N/M) or must equal N/M.
func ParsePattern(name string, ratio float64) (Pattern, error) {
	var p Pattern
	switch name {
	case "matrix":
		p = Pattern{Kind: PerMatrix, Ratio: ratio}
	case "row":
		p = Pattern{Kind: PerRow, Ratio: ratio}
	default:
		ns, ms, ok := strings.Cut(name, ":")
		if !ok {
			return Pattern{}, fmt.Errorf("sparsity: unknown pattern %q (want \"matrix\", \"row\" or \"N:M\" such as \"2:4\")", name)
		}
		n, errN := strconv.Atoi(ns)
		m, errM := strconv.Atoi(ms)
		if errN != nil || errM != nil {
			return Pattern{}, fmt.Errorf("sparsity: pattern %q: N and M must be integers", name)
		}
		p = Pattern{Kind: NM, N: n, M: m, Ratio: float64(n) / float64(m)}
		if m > 0 && ratio != 0 && math.Abs(ratio-p.Ratio) > 1e-9 {
			return Pattern{}, fmt.Errorf("sparsity: ratio %g contradicts pattern %q, which prunes %g", ratio, name, p.Ratio)
		}
	}
	return p, p.Validate()
}

// Validate reports an invalid pattern (ratio outside (0,1), bad N:M).
func (p Pattern) Validate() error {
	switch p.Kind {
	case PerMatrix, PerRow:
		if !(p.Ratio > 0 && p.Ratio < 1) {
			return fmt.Errorf("sparsity: pattern %s: ratio %g must be in (0, 1)", p, p.Ratio)
		}
	case NM:
		if p.M < 2 || p.N < 1 || p.N >= p.M {
			return fmt.Errorf("sparsity: pattern %d:%d: need 1 <= N < M", p.N, p.M)
		}
		if math.Abs(p.Ratio-float64(p.N)/float64(p.M)) > 1e-9 {
			return fmt.Errorf("sparsity: pattern %d:%d: ratio %g must be N/M", p.N, p.M, p.Ratio)
		}
	default:
		return fmt.Errorf("sparsity: unknown pattern kind %d", int(p.Kind))
	}
	return nil
}

// String renders the pattern as ParsePattern reads it, with the ratio:
// "matrix@0.5", "row@0.5", "2:4".
func (p Pattern) String() string {
	switch p.Kind {
	case PerMatrix:
		return "matrix@" + strconv.FormatFloat(p.Ratio, 'g', -1, 64)
	case PerRow:
		return "row@" + strconv.FormatFloat(p.Ratio, 'g', -1, 64)
	case NM:
		return strconv.Itoa(p.N) + ":" + strconv.Itoa(p.M)
	}
	return "pattern(" + strconv.Itoa(int(p.Kind)) + ")"
}

// PrunedCount is the exact number of weights the pattern prunes in a
// rows×cols matrix: round(Ratio·rows·cols) per matrix, rows·round(Ratio·cols)
// per row, rows·(cols/M)·N for N:M (rounding half away from zero).
func (p Pattern) PrunedCount(rows, cols int) int {
	switch p.Kind {
	case PerMatrix:
		return int(math.Round(p.Ratio * float64(rows*cols)))
	case PerRow:
		return rows * int(math.Round(p.Ratio*float64(cols)))
	case NM:
		return rows * (cols / p.M) * p.N
	}
	panic("sparsity: PrunedCount: invalid pattern " + p.String())
}

// Method is the score a mask ranks weights by.
type Method string

const (
	// Magnitude scores a weight by |W_ij| (the paper's default).
	Magnitude Method = "magnitude"
	// Wanda scores a weight by |W_ij|·||X_j||₂, the L2 norm of input feature j
	// over calibration tokens (Sun et al. 2023); it is usually combined with
	// the PerRow pattern, Wanda's own default.
	Wanda Method = "wanda"
)

// ParseMethod reads a method name: "magnitude" or "wanda".
func ParseMethod(name string) (Method, error) {
	switch m := Method(name); m {
	case Magnitude, Wanda:
		return m, nil
	}
	return "", fmt.Errorf("sparsity: unknown pruning method %q (want \"magnitude\" or \"wanda\")", name)
}

// Spec is a complete mask recipe: a scoring method and a pattern.
type Spec struct {
	Method  Method
	Pattern Pattern
}

// ParseSpec builds a Spec from its textual parts (see ParseMethod and
// ParsePattern).
func ParseSpec(method, pattern string, ratio float64) (Spec, error) {
	m, err := ParseMethod(method)
	if err != nil {
		return Spec{}, err
	}
	p, err := ParsePattern(pattern, ratio)
	if err != nil {
		return Spec{}, err
	}
	return Spec{Method: m, Pattern: p}, nil
}

// String renders the spec as "method/pattern", e.g. "magnitude/matrix@0.5".
func (s Spec) String() string { return string(s.Method) + "/" + s.Pattern.String() }
