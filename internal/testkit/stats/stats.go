// Package stats summarises measured latencies the one way the benchmark and
// the tests report them: nearest-rank percentiles over the sorted samples,
// so every reported value is one that was actually observed, in
// milliseconds, and medians of repeated runs.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	// P999Ms is the 99.9th percentile (the maximum below 1,000 samples).
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MinMs  float64 `json:"min_ms"`
}

// Summarize describes samples (left unchanged); no samples give the zero
// Summary.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Summary{Count: len(s), P50Ms: Ms(Percentile(s, 0.50)), P90Ms: Ms(Percentile(s, 0.90)),
		P99Ms: Ms(Percentile(s, 0.99)), P999Ms: Ms(Percentile(s, 0.999)), MaxMs: Ms(s[len(s)-1]), MinMs: Ms(s[0])}
}

// Percentile is the nearest-rank p-quantile (0 < p <= 1) of sorted, which
// must not be empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// P99 is the nearest-rank 99th percentile of samples (left unchanged), 0
// for none.
func P99(samples []time.Duration) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Percentile(s, 0.99)
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Median of xs (the mean of the middle two for an even count; 0 for none):
// the figure of a measurement repeated over rounds.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
