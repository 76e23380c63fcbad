package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		base, max time.Duration
		attempt   int
		lo, hi    time.Duration // the un-jittered delay is hi; jitter keeps at least lo
	}{
		{"first retry is the base", time.Second, 5 * time.Minute, 1, 500 * time.Millisecond, time.Second},
		{"attempt 0 is treated as the first", time.Second, 5 * time.Minute, 0, 500 * time.Millisecond, time.Second},
		{"doubles", time.Second, 5 * time.Minute, 2, time.Second, 2 * time.Second},
		{"doubles again", time.Second, 5 * time.Minute, 3, 2 * time.Second, 4 * time.Second},
		{"last below the cap", time.Second, 5 * time.Minute, 9, 128 * time.Second, 256 * time.Second},
		{"capped", time.Second, 5 * time.Minute, 10, 150 * time.Second, 300 * time.Second},
		{"capped far out", time.Second, 5 * time.Minute, 1000, 150 * time.Second, 300 * time.Second},
		{"base equal to the cap", time.Minute, time.Minute, 5, 30 * time.Second, time.Minute},
		{"test-sized base", 10 * time.Millisecond, time.Second, 4, 40 * time.Millisecond, 80 * time.Millisecond},
		{"one nanosecond", time.Nanosecond, time.Nanosecond, 3, 0, time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := New(&postgres.Queue{}, Config{RetryBase: tt.base, RetryMax: tt.max})
			if err != nil {
				t.Fatal(err)
			}
			lowest, highest := tt.hi, tt.lo
			for range 2000 {
				d := w.retryDelay(tt.attempt)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("retryDelay(%d) = %s, want between %s and %s", tt.attempt, d, tt.lo, tt.hi)
				}
				lowest, highest = min(lowest, d), max(highest, d)
			}
			// Jittered: the samples spread over the range, not one value.
			if span := tt.hi - tt.lo; span >= 1000 && (lowest > tt.lo+span/10 || highest < tt.hi-span/10) {
				t.Errorf("2000 samples spanned only %s..%s of %s..%s", lowest, highest, tt.lo, tt.hi)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string // the field the error names; "" for valid
	}{
		{Config{}, ""},
		{Config{BatchSize: 10001}, "BatchSize"},
		{Config{BatchSize: -1}, "BatchSize"},
		{Config{PollInterval: time.Microsecond}, "PollInterval"},
		{Config{Lease: 999 * time.Millisecond}, "Lease"},
		{Config{Lease: time.Second}, ""},
		{Config{RetryBase: time.Minute, RetryMax: time.Second}, "RetryBase"},
		{Config{RetryBase: -time.Second}, "RetryBase"},
	}
	for _, tt := range tests {
		w, err := New(&postgres.Queue{}, tt.cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("New(%+v): %v, want no error", tt.cfg, err)
		case tt.want == "" && w.ID() == "":
			t.Errorf("New(%+v): no default ID", tt.cfg)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}
