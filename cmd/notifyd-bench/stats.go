package main

import (
	"math"
	"slices"
	"time"
)

// Summary is a latency distribution in milliseconds. Percentiles are
// nearest-rank over the sorted samples: every reported value is one that
// was actually observed.
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

func summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Summary{Count: len(s), P50Ms: ms(percentile(s, 0.50)), P90Ms: ms(percentile(s, 0.90)),
		P99Ms: ms(percentile(s, 0.99)), P999Ms: ms(percentile(s, 0.999)), MaxMs: ms(s[len(s)-1]), MinMs: ms(s[0])}
}

// percentile is the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
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
