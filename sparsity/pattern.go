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
	// NM keeps exactly N of every M consecutive inputs of each row and
	// prunes the other M-N, as PyTorch and NVIDIA's 2:4 sparsity count (2:4
	// keeps 2 of every 4: 50%; 1:4 keeps 1 of every 4: 75%).
	NM
)

// Pattern is a pruning pattern with its ratio.
type Pattern struct {
	Kind PatternKind
	// Ratio is the pruned fraction, 0 < Ratio < 1 (for NM it is 1 - N/M).
	Ratio float64
	// N and M define an NM pattern: N of every M consecutive inputs kept.
	N, M int
}

// ParsePattern reads a pattern name: "matrix", "row", or "N:M" such as "2:4"
// (N of every M consecutive inputs kept, N and M plain decimal numbers with
// 1 <= N < M). ratio is the pruned fraction for "matrix" and "row"; for "N:M"
// it may be 0 (meaning 1 - N/M) or must equal 1 - N/M.
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
		n, errN := parseDecimal(ns)
		m, errM := parseDecimal(ms)
		if errN != nil || errM != nil {
			return Pattern{}, fmt.Errorf("sparsity: pattern %q: N and M must be integers written in decimal digits", name)
		}
		p = Pattern{Kind: NM, N: n, M: m}
		if m > 0 {
			p.Ratio = float64(m-n) / float64(m)
		}
		if m > 0 && ratio != 0 && math.Abs(ratio-p.Ratio) > 1e-9 {
			return Pattern{}, fmt.Errorf("sparsity: ratio %g contradicts pattern %q, which prunes %g", ratio, name, p.Ratio)
		}
	}
	return p, p.Validate()
}

// parseDecimal reads a non-negative integer written in plain decimal digits
// (no sign, no spaces).
func parseDecimal(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	return strconv.Atoi(s)
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
		if math.Abs(p.Ratio-float64(p.M-p.N)/float64(p.M)) > 1e-9 {
			return fmt.Errorf("sparsity: pattern %d:%d: ratio %g must be 1 - N/M", p.N, p.M, p.Ratio)
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

// CheckCols reports whether the pattern applies to a matrix with cols input
// features: an N:M pattern needs cols to be a multiple of M. It is cheap, so
// callers can check every matrix before pruning any.
func (p Pattern) CheckCols(cols int) error {
	if p.Kind == NM && (p.M < 1 || cols%p.M != 0) {
		return fmt.Errorf("sparsity: pattern %s needs the input width (%d) to be a multiple of %d", p, cols, p.M)
	}
	return nil
}

// PrunedCount is the exact number of weights the pattern prunes in a
// rows×cols matrix: round(Ratio·rows·cols) per matrix, rows·round(Ratio·cols)
// per row, rows·(cols/M)·(M-N) for N:M (rounding half away from zero).
func (p Pattern) PrunedCount(rows, cols int) int {
	switch p.Kind {
	case PerMatrix:
		return int(math.Round(p.Ratio * float64(rows*cols)))
	case PerRow:
		return rows * int(math.Round(p.Ratio*float64(cols)))
	case NM:
		return rows * (cols / p.M) * (p.M - p.N)
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
