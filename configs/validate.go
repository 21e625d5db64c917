package configs

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// rule is the allowed domain of one key: a check used by Validate and a
// description used by Reference, so the two cannot disagree.
type rule struct {
	allowed string                       // human-readable domain
	check   func(v reflect.Value) string // "" when allowed, else what is wrong
}

// rules gives every key its domain. Method-dependent requirements are checked
// separately in checkCombinations.
var rules = map[string]rule{
	"method": oneOf(methods),

	"model.path":      nonEmpty(),
	"model.tokenizer": anyValue("any path, or empty"),

	"sparsity.ratio":               floatRange(0, 1, false, false),
	"sparsity.pattern":             patternRule(),
	"sparsity.score":               oneOf(scores),
	"sparsity.calibration_batches": intAtLeast(1),
	"sparsity.target_modules":      modulesRule(),
	"sparsity.every":               intAtLeast(1),

	"adapters.target_modules":  modulesRule(),
	"adapters.modules_to_save": modulesToSaveRule(),
	"adapters.lora_rank":       intAtLeast(0),
	"adapters.lora_alpha":      floatRange(0, math.Inf(1), false, false),
	"adapters.lora_dropout":    floatRange(0, 1, true, false),
	"adapters.lora_init":       oneOf(loraInits),
	"adapters.rslora":          anyValue("true, false"),
	"adapters.svd_rank":        intAtLeast(0),
	"adapters.svd_trainable":   anyValue("true, false"),
	"adapters.svd_method":      oneOf(svdMethods),
	"adapters.svd_oversample":  intAtLeast(0),
	"adapters.svd_power_iters": intAtLeast(0),

	"data.format":         oneOf(dataFormats),
	"data.train_path":     nonEmpty(),
	"data.eval_path":      anyValue("any path, or empty"),
	"data.eval_examples":  intAtLeast(0),
	"data.prompt_field":   nonEmpty(),
	"data.response_field": nonEmpty(),
	"data.seq_len":        intAtLeast(2),
	"data.overlong":       oneOf(overlongs),
	"data.max_examples":   intAtLeast(0),
	"data.types":          namesRule(),
	"data.packing":        anyValue("true, false"),

	"train.max_steps":            intAtLeast(0),
	"train.batch_size":           intAtLeast(1),
	"train.grad_accum":           intAtLeast(1),
	"train.lr":                   floatRange(0, math.Inf(1), false, false),
	"train.weight_decay":         floatRange(0, math.Inf(1), true, false),
	"train.adam_beta1":           floatRange(0, 1, true, false),
	"train.adam_beta2":           floatRange(0, 1, true, false),
	"train.adam_eps":             floatRange(0, math.Inf(1), false, false),
	"train.warmup_steps":         intAtLeast(0),
	"train.schedule":             oneOf(schedules),
	"train.min_lr_ratio":         floatRange(0, 1, true, true),
	"train.grad_clip":            floatRange(0, math.Inf(1), true, false),
	"train.router_aux_loss_coef": floatRange(0, math.Inf(1), true, false),
	"train.seed":                 anyValue("any integer"),
	"train.eval_every":           intAtLeast(0),
	"train.eval_batches":         intAtLeast(0),
	"train.log_every":            intAtLeast(1),
	"train.checkpoint_every":     intAtLeast(0),
	"train.threads":              intAtLeast(0),

	"train.gradient_checkpointing": anyValue("true, false"),
	"train.precision":              oneOf(precisions),

	"eval.task":           oneOf(evalTasks),
	"eval.template":       oneOf(evalTemplates),
	"eval.shots":          intAtLeast(-1),
	"eval.limit":          intAtLeast(0),
	"eval.data_path":      anyValue("any path, or empty"),
	"eval.max_new_tokens": intAtLeast(0),
	"eval.batch":          intAtLeast(1),
	"eval.bos":            oneOf(evalBOS),

	"output.dir":         nonEmpty(),
	"output.save_peft":   anyValue("true, false"),
	"output.save_base":   anyValue("true, false"),
	"output.base_format": oneOf(baseFormats),
}

// Validate checks every key against its domain and the method-dependent
// requirements, and returns all problems as Errors (nil when the config is
// valid). Keys a method ignores (sparsity.* for lora, train.* for prune and
// prune-svd) must still hold valid values. Validate does not look at the file
// system; CheckPaths does.
func (c *Config) Validate() error {
	var errs Errors
	bad := map[string]bool{}
	for _, f := range loadSchema().fields {
		r, ok := rules[f.key]
		if !ok {
			panic("configs: no validation rule for key " + f.key)
		}
		if msg := r.check(f.value(c)); msg != "" {
			errs.add("", f.key, msg)
			bad[f.key] = true
		}
	}
	c.checkCombinations(&errs, bad)
	return errs.errOrNil()
}

// checkCombinations reports requirements that involve more than one key;
// keys already reported as bad are skipped.
func (c *Config) checkCombinations(errs *Errors, bad map[string]bool) {
	report := func(key, format string, args ...any) {
		if !bad[key] {
			errs.add("", key, fmt.Sprintf(format, args...))
		}
	}
	if bad["method"] {
		return
	}
	if c.HasLoRA() && c.Adapters.LoRARank < 1 {
		report("adapters.lora_rank", "must be >= 1 for method %s, got %d", c.Method, c.Adapters.LoRARank)
	}
	if c.HasSVDAdapter() && c.Adapters.SVDRank < 1 {
		report("adapters.svd_rank", "must be >= 1 for method %s, got %d", c.Method, c.Adapters.SVDRank)
	}
	if n, m, ok := c.Sparsity.NM(); ok && (c.Prunes() || c.PrunesMerged()) && !bad["sparsity.pattern"] {
		implied := 1 - float64(n)/float64(m)
		if math.Abs(c.Sparsity.Ratio-implied) > 1e-9 {
			report("sparsity.ratio", "must be %s (1 - N/M) with pattern %q, got %s",
				formatNumber(implied), c.Sparsity.Pattern, formatNumber(c.Sparsity.Ratio))
		}
	}
	if c.Method == MethodLoRAPruneDynamic {
		if c.Sparsity.Score != ScoreMagnitude {
			report("sparsity.score", "must be %q for method %s (its mask is recomputed from the merged weight during training; wanda's activation norms would need a calibration pass each time), got %q",
				ScoreMagnitude, c.Method, c.Sparsity.Score)
		}
		if c.Train.Precision != PrecisionFP32 {
			report("train.precision", "must be %q for method %s (its frozen base changes with every mask), got %q", PrecisionFP32, c.Method, c.Train.Precision)
		}
	}
	if len(c.Adapters.ModulesToSave) > 0 && !c.Trains() {
		report("adapters.modules_to_save", "trains modules, but method %s does not train; got %v", c.Method, c.Adapters.ModulesToSave)
	} else if len(c.Adapters.ModulesToSave) > 0 && c.Train.Precision != PrecisionFP32 {
		report("adapters.modules_to_save", "trains weights in full, which needs train.precision = %q, got %q", PrecisionFP32, c.Train.Precision)
	}
	if c.Train.RouterAuxLossCoef > 0 && !slices.Contains(c.Adapters.ModulesToSave, ModuleRouter) {
		report("train.router_aux_loss_coef", "must be 0 unless the router trains (adapters.modules_to_save listing %q): a frozen router's load-balancing loss would train nothing; got %s",
			ModuleRouter, formatNumber(c.Train.RouterAuxLossCoef))
	}
	d := c.Data
	if d.EvalPath == "" && d.MaxExamples > 0 && d.EvalExamples >= d.MaxExamples {
		report("data.eval_examples", "must be smaller than data.max_examples (%d) when held out from the training data, got %d",
			d.MaxExamples, d.EvalExamples)
	}
	if d.Format == FormatJSONL && d.PromptField == d.ResponseField {
		report("data.response_field", "must differ from data.prompt_field (both %q)", d.PromptField)
	}
	if len(d.Types) > 0 && d.Format != FormatMetaMathQA && !bad["data.format"] {
		report("data.types", "selects MetaMathQA types and needs data.format = %q, got data.format = %q", FormatMetaMathQA, d.Format)
	}
}

// formatNumber renders a float for messages and the reference (0.5, 1e-08).
func formatNumber(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func anyValue(allowed string) rule {
	return rule{allowed: allowed, check: func(reflect.Value) string { return "" }}
}

func nonEmpty() rule {
	return rule{allowed: "non-empty", check: func(v reflect.Value) string {
		if v.String() == "" {
			return "must not be empty"
		}
		return ""
	}}
}

func intAtLeast(lo int64) rule {
	return rule{allowed: fmt.Sprintf(">= %d", lo), check: func(v reflect.Value) string {
		if v.Int() < lo {
			return fmt.Sprintf("must be >= %d, got %d", lo, v.Int())
		}
		return ""
	}}
}

// floatRange accepts finite values between lo and hi (hi may be +Inf), each
// end open or closed.
func floatRange(lo, hi float64, loClosed, hiClosed bool) rule {
	var allowed string
	switch {
	case math.IsInf(hi, 1) && loClosed:
		allowed = ">= " + formatNumber(lo)
	case math.IsInf(hi, 1):
		allowed = "> " + formatNumber(lo)
	default:
		open, closed := "(", ")"
		if loClosed {
			open = "["
		}
		if hiClosed {
			closed = "]"
		}
		allowed = fmt.Sprintf("in %s%s, %s%s", open, formatNumber(lo), formatNumber(hi), closed)
	}
	return rule{allowed: allowed, check: func(v reflect.Value) string {
		x := v.Float()
		aboveLo := x > lo || (loClosed && x == lo)
		belowHi := x < hi || (hiClosed && x == hi)
		if math.IsNaN(x) || math.IsInf(x, 0) || !aboveLo || !belowHi {
			return fmt.Sprintf("must be %s, got %s", allowed, formatNumber(x))
		}
		return ""
	}}
}

func oneOf(values []string) rule {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	allowed := strings.Join(quoted, ", ")
	return rule{allowed: allowed, check: func(v reflect.Value) string {
		if !slices.Contains(values, v.String()) {
			return fmt.Sprintf("must be one of %s, got %q", allowed, v.String())
		}
		return ""
	}}
}

func patternRule() rule {
	return rule{allowed: `"matrix", "row", or "N:M" with 0 < N < M`, check: func(v reflect.Value) string {
		p := v.String()
		if p == PatternMatrix || p == PatternRow {
			return ""
		}
		if _, _, err := parseNM(p); err != nil {
			return fmt.Sprintf(`must be "matrix", "row" or "N:M" with 0 < N < M, got %q (%v)`, p, err)
		}
		return ""
	}}
}

// namesRule accepts a list of distinct non-empty names, or an empty list.
func namesRule() rule {
	return rule{allowed: "list of distinct non-empty names, or empty", check: func(v reflect.Value) string {
		list := v.Interface().([]string)
		for i, s := range list {
			if strings.TrimSpace(s) == "" {
				return fmt.Sprintf("entry %d is empty", i+1)
			}
			if slices.Contains(list[:i], s) {
				return fmt.Sprintf("%q listed twice", s)
			}
		}
		return ""
	}}
}

func modulesRule() rule {
	names := append(append(ProjectionNames(), moeProjections...), AllLinear)
	return rule{allowed: "non-empty list of " + strings.Join(names, ", "), check: func(v reflect.Value) string {
		list := v.Interface().([]string)
		if len(list) == 0 {
			return "must list at least one projection (or all-linear)"
		}
		seen := map[string]bool{}
		for _, m := range list {
			if !slices.Contains(names, m) {
				return fmt.Sprintf("unknown projection %q (allowed: %s)", m, strings.Join(names, ", "))
			}
			if seen[m] {
				return fmt.Sprintf("%q listed twice", m)
			}
			seen[m] = true
		}
		return ""
	}}
}

// modulesToSaveRule is adapters.modules_to_save's domain: a list of the
// modules that may train in full (SavableModules), each at most once.
func modulesToSaveRule() rule {
	return rule{allowed: "list of " + strings.Join(SavableModules, ", ") + " (may be empty)", check: func(v reflect.Value) string {
		seen := map[string]bool{}
		for _, m := range v.Interface().([]string) {
			if !slices.Contains(SavableModules, m) {
				return fmt.Sprintf("unsupported module %q: only a mixture-of-experts model's routers can train in full for now (allowed: %s)", m, strings.Join(SavableModules, ", "))
			}
			if seen[m] {
				return fmt.Sprintf("%q listed twice", m)
			}
			seen[m] = true
		}
		return ""
	}}
}
