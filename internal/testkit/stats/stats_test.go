package stats

import (
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one sample is every percentile", ms(7), 0.99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"p99 of 101 is the 100th", ms(seq(101)...), 0.99, 100 * time.Millisecond},
		{"p99.9 below 1,000 samples is the largest", ms(seq(999)...), 0.999, 999 * time.Millisecond},
		{"tiny p is the smallest", ms(1, 2, 3), 0.0001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d samples, %v) = %s, want %s", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

// The float formula agrees with the integer nearest rank ceil(99n/100) at
// every size a run produces.
func TestP99MatchesIntegerRank(t *testing.T) {
	all := rank(20_000)
	for n := 1; n <= len(all); n++ {
		want := (n*99+99)/100 - 1
		if got := int(Percentile(all[:n], 0.99)); got != want {
			t.Fatalf("n=%d: p99 at index %d, want %d", n, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	in := []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	got := Summarize(in)
	want := Summary{Count: 3, P50Ms: 20, P90Ms: 30, P99Ms: 30, P999Ms: 30, MaxMs: 30, MinMs: 10}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if in[0] != 30*time.Millisecond {
		t.Error("Summarize sorted its argument")
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
	if got := P99(in); got != 30*time.Millisecond {
		t.Errorf("P99 = %s, want 30ms", got)
	}
	if got := P99(nil); got != 0 {
		t.Errorf("P99(nil) = %s, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// rank is 0, 1, …, n-1 as durations: a sorted sample whose values are
// their indexes.
func rank(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i)
	}
	return out
}
