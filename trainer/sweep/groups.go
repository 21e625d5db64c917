package sweep

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/stat"
)

// SeedKey is the config key whose runs -collect averages: when a sweep
// varies it, the runs that differ only in it form a Group.
const SeedKey = "train.seed"

// Group is the runs of a sweep that share the values of every varied key
// but train.seed: one setting under several seeds.
type Group struct {
	// Values are the other varied keys' values, aligned with
	// Results.GroupKeys.
	Values []string
	// Rows are the group's runs, positions in Results.Rows.
	Rows []int
	// Seeds are the seeds of the group's finished runs, in run order.
	Seeds []string
	// Stats holds, by metric, the mean and standard deviation over the
	// finished runs that report the metric.
	Stats map[string]Stat
}

// Stat summarises a metric over a group's seeds.
type Stat struct {
	// N is the number of runs averaged.
	N int
	// Mean is their mean; SD is the sample standard deviation (n-1
	// denominator), NaN for fewer than two runs.
	Mean, SD float64
}

// newStat returns the mean and sample standard deviation of xs.
func newStat(xs []float64) Stat {
	if len(xs) < 2 {
		s := Stat{N: len(xs), Mean: math.NaN(), SD: math.NaN()}
		if len(xs) == 1 {
			s.Mean = xs[0]
		}
		return s
	}
	mean, sd := stat.MeanStdDev(xs, nil)
	return Stat{N: len(xs), Mean: mean, SD: sd}
}

// String renders a statistic for tables: "mean ± sd", or the mean alone
// when there is a single run or all runs agree.
func (s Stat) String() string {
	if s.N < 2 || s.SD == 0 {
		return formatMetric(s.Mean)
	}
	return formatMetric(s.Mean) + " ± " + formatMetric(s.SD)
}

// groupBySeed fills GroupKeys, Groups and BestGroup when the sweep varies
// train.seed; groups appear in the order of their first run.
func (r *Results) groupBySeed() {
	seed := slices.Index(r.Varied, SeedKey)
	if seed < 0 {
		return
	}
	r.GroupKeys = slices.Delete(slices.Clone(r.Varied), seed, seed+1)
	index := map[string]int{}
	for i, row := range r.Rows {
		values := slices.Delete(slices.Clone(row.Values), seed, seed+1)
		key := strings.Join(values, "\x00")
		g, ok := index[key]
		if !ok {
			g = len(r.Groups)
			index[key] = g
			r.Groups = append(r.Groups, Group{Values: values})
		}
		r.Groups[g].Rows = append(r.Groups[g].Rows, i)
	}
	for g := range r.Groups {
		grp := &r.Groups[g]
		grp.Stats = map[string]Stat{}
		samples := map[string][]float64{}
		for _, i := range grp.Rows {
			row := r.Rows[i]
			if row.State.Phase != PhaseFinished {
				continue
			}
			grp.Seeds = append(grp.Seeds, row.Values[seed])
			for _, m := range r.Metrics {
				if v, ok := row.Metrics[m]; ok {
					samples[m] = append(samples[m], v)
				}
			}
		}
		for m, xs := range samples {
			grp.Stats[m] = newStat(xs)
		}
	}
	r.BestGroup = r.bestGroup()
}

// bestGroup returns the position of the group with the best mean
// objective, or -1 (the first of equals).
func (r *Results) bestGroup() int {
	best := -1
	o := r.Objective
	for i, g := range r.Groups {
		s, ok := g.Stats[o.Metric]
		if ok && (best < 0 || o.Better(s.Mean, r.Groups[best].Stats[o.Metric].Mean)) {
			best = i
		}
	}
	return best
}

// groupsMarkdown renders the groups' table: per group the other varied
// keys, n, the seeds and mean ± sd of every metric (the best mean
// objective in bold), then a line naming the best group.
func (r *Results) groupsMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "Mean ± sample standard deviation (n-1) over %s; n is the number of finished runs averaged.\n\n", SeedKey)
	header := append(slices.Clone(r.GroupKeys), "n", "seeds")
	header = append(header, r.Metrics...)
	writeCells(b, header)
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---"
		if i == len(r.GroupKeys) || i >= len(header)-len(r.Metrics) {
			align[i] = "---:"
		}
	}
	writeCells(b, align)
	for i, g := range r.Groups {
		c := append(slices.Clone(g.Values), strconv.Itoa(len(g.Seeds)), strings.Join(g.Seeds, ", "))
		for _, m := range r.Metrics {
			s, ok := g.Stats[m]
			switch {
			case !ok:
				c = append(c, "")
			case i == r.BestGroup && m == r.Objective.Metric:
				c = append(c, "**"+s.String()+"**")
			default:
				c = append(c, s.String())
			}
		}
		writeCells(b, c)
	}
	if r.BestGroup >= 0 {
		g := r.Groups[r.BestGroup]
		desc := describeValues(r.GroupKeys, g.Values)
		if desc == "" {
			desc = "all runs"
		}
		s := g.Stats[r.Objective.Metric]
		seeds := "seeds"
		if s.N == 1 {
			seeds = "seed"
		}
		fmt.Fprintf(b, "\nBest mean: %s, %s %s over %d %s.\n", desc, r.Objective.Metric, s, s.N, seeds)
	}
}

// WriteGroupsCSV writes the groups as CSV: the other varied keys, n, the
// seeds (space-separated), then "<metric>.mean" and "<metric>.sd" per
// metric at full precision (empty when missing; sd empty below two runs).
func (r *Results) WriteGroupsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append(slices.Clone(r.GroupKeys), "n", "seeds")
	for _, m := range r.Metrics {
		header = append(header, m+".mean", m+".sd")
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	full := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, g := range r.Groups {
		rec := append(slices.Clone(g.Values), strconv.Itoa(len(g.Seeds)), strings.Join(g.Seeds, " "))
		for _, m := range r.Metrics {
			s, ok := g.Stats[m]
			if !ok {
				rec = append(rec, "", "")
				continue
			}
			rec = append(rec, full(s.Mean), full(s.SD))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeCells writes one Markdown table row, escaping '|' in cells.
func writeCells(b *strings.Builder, cells []string) {
	escaped := make([]string, len(cells))
	for i, c := range cells {
		escaped[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	fmt.Fprintf(b, "| %s |\n", strings.Join(escaped, " | "))
}
