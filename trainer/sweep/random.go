package sweep

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// randomSettings are the keys of [random] that configure the search rather
// than name a config key.
var randomSettings = []string{"count", "seed"}

// specFields are the fields of a random parameter's table.
var specFields = []string{"values", "min", "max", "log", "int"}

// randomParam is how one key is drawn in a random search: uniformly from a
// list of values, or from [min, max] (log-uniformly with log, as an integer
// with int).
type randomParam struct {
	key      string
	origin   string
	values   []any
	min, max float64
	log      bool
	isInt    bool
}

// isSpec reports whether a decoded value is a random parameter's table
// (one with values, or min and max).
func isSpec(v any) bool {
	t, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, f := range []string{"values", "min", "max"} {
		if _, ok := t[f]; ok {
			return true
		}
	}
	return false
}

func (p *parser) parseRandom() {
	t := p.table("random")
	count, seed := int64(0), int64(1)
	for _, name := range randomSettings {
		v, ok := t[name]
		if !ok {
			continue
		}
		n, isInt := v.(int64)
		switch {
		case !isInt:
			p.fail("random."+name, "expected an integer, got %s", describe(v))
		case name == "count":
			count = n
		default:
			seed = n
		}
	}
	if count < 1 || count > MaxRuns {
		p.fail("random.count", "a random search needs 1 to %d runs, got %d", MaxRuns, count)
	}
	keys, values := p.leaves("random", isSpec)
	var params []randomParam
	for _, key := range keys {
		if slices.Contains(randomSettings, key) {
			continue
		}
		where := "random." + key
		if !p.checkVariedKey(key, where) {
			continue
		}
		if rp, ok := p.randomParam(key, where, values[key]); ok {
			params = append(params, rp)
			p.sweep.Varied = append(p.sweep.Varied, key)
		}
	}
	if len(params) == 0 && len(p.errs) == 0 {
		p.fail("random", `no keys to draw: add e.g. "train.lr" = {min = 1e-4, max = 1e-2, log = true}`)
	}
	if len(p.errs) > 0 {
		return
	}
	for i := range int(count) {
		p.sweep.points = append(p.sweep.points, drawRandom(params, uint64(seed), i))
	}
}

// randomParam reads one key's distribution: a list (drawn from uniformly)
// or a table with values, or min and max (and log, int).
func (p *parser) randomParam(key, where string, v any) (randomParam, bool) {
	rp := randomParam{key: key, origin: p.origin(where)}
	if list, ok := v.([]any); ok {
		v = map[string]any{"values": list}
	}
	t, ok := v.(map[string]any)
	if !ok {
		p.fail(where, "expected a list of values or a table {min, max} or {values}, got %s", describe(v))
		return rp, false
	}
	bad := false
	failf := func(format string, a ...any) {
		p.fail(where, format, a...)
		bad = true
	}
	for _, f := range slices.Sorted(maps.Keys(t)) {
		if !slices.Contains(specFields, f) {
			failf("unknown field %q (allowed: %s)", f, strings.Join(specFields, ", "))
		}
	}
	if list, ok := t["values"]; ok {
		rp.values, _ = list.([]any)
		switch {
		case len(rp.values) == 0:
			failf("values must be a non-empty list")
		case len(t) > 1:
			failf("give either values or min and max (log, int), not both")
		}
		return rp, !bad
	}
	lo, okLo := asFloat(t["min"])
	hi, okHi := asFloat(t["max"])
	if !okLo || !okHi {
		failf("needs numbers min and max (or a list of values)")
		return rp, false
	}
	rp.min, rp.max = lo, hi
	_, intLo := t["min"].(int64)
	_, intHi := t["max"].(int64)
	rp.isInt = intLo && intHi
	for _, f := range []string{"log", "int"} {
		if v, ok := t[f]; ok {
			b, isBool := v.(bool)
			if !isBool {
				failf("%s: expected a boolean, got %s", f, describe(v))
			}
			if f == "log" {
				rp.log = b
			} else {
				rp.isInt = b
			}
		}
	}
	switch {
	case lo > hi:
		failf("min %v is above max %v", lo, hi)
	case rp.log && lo <= 0:
		failf("log needs min > 0, got %v", lo)
	case rp.isInt && (lo != math.Trunc(lo) || hi != math.Trunc(hi)):
		failf("int needs integer bounds, got min %v, max %v", lo, hi)
	}
	return rp, !bad
}

// drawRandom draws run i's values. Every run has its own generator, seeded
// by (seed, i), so run i is the same whatever count is: raising count adds
// runs without changing the earlier ones.
func drawRandom(params []randomParam, seed uint64, i int) []assignment {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	point := make([]assignment, len(params))
	for j, rp := range params {
		point[j] = assignment{key: rp.key, value: rp.draw(rng), origin: rp.origin}
	}
	return point
}

// draw returns one value of the parameter. Floats are rounded to 4
// significant digits so that tables and plots stay readable.
func (rp randomParam) draw(rng *rand.Rand) any {
	if rp.values != nil {
		return rp.values[rng.IntN(len(rp.values))]
	}
	u := rng.Float64()
	if rp.isInt {
		if !rp.log {
			return int64(rp.min) + rng.Int64N(int64(rp.max-rp.min)+1)
		}
		// Log-uniform over [min, max+1), floored: each integer k gets the
		// mass of [k, k+1) on the log scale.
		x := math.Exp(math.Log(rp.min) + u*(math.Log(rp.max+1)-math.Log(rp.min)))
		return min(int64(math.Floor(x)), int64(rp.max))
	}
	var x float64
	if rp.log {
		x = math.Exp(math.Log(rp.min) + u*(math.Log(rp.max)-math.Log(rp.min)))
	} else {
		x = rp.min + u*(rp.max-rp.min)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	return min(max(r, rp.min), rp.max)
}
