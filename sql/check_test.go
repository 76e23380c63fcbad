package sqlfiles_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ts is how psql prints a timestamptz in UTC ("" for NULL, as -A prints it).
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
}

// age is an expected interval column: date_trunc('second', now() - since),
// with now() somewhere in the run.
type age struct{ since time.Time }

var intervalText = regexp.MustCompile(`^(?:(\d+) days? )?(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$`)

// parseInterval reads a PostgreSQL interval as psql prints it with the
// default IntervalStyle ("00:05:00", "3 days 00:00:07"), non-negative only.
func parseInterval(s string) (time.Duration, error) {
	m := intervalText.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("not an interval: %q", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] == "" {
			continue
		}
		n, _ := strconv.Atoi(m[i+1])
		d += time.Duration(n) * unit
	}
	if m[5] != "" {
		frac, _ := strconv.ParseFloat("0."+m[5], 64)
		d += time.Duration(frac * float64(time.Second))
	}
	return d, nil
}

// checkRows compares the rows of out with want, cell by cell. A want cell
// is a string (compared exactly), or an age (an interval that must lie
// within the run).
func checkRows(t *testing.T, what string, out output, want [][]any) {
	t.Helper()
	if len(out.rows) != len(want) {
		t.Errorf("%s: %d rows, want %d\ngot:\n%s\nwant:\n%s", what, len(out.rows), len(want), showRows(out.rows), showWant(want))
		return
	}
	for i, row := range out.rows {
		if len(row) != len(want[i]) {
			t.Errorf("%s: row %d has %d columns, want %d: %q", what, i, len(row), len(want[i]), row)
			continue
		}
		for j, cell := range row {
			if err := matchCell(cell, want[i][j], out); err != nil {
				t.Errorf("%s: row %d column %d: %v\nrow:  %q\nwant: %v", what, i, j+1, err, row, want[i])
			}
		}
	}
}

func matchCell(got string, want any, out output) error {
	switch w := want.(type) {
	case string:
		if got != w {
			return fmt.Errorf("got %q, want %q", got, w)
		}
	case age:
		d, err := parseInterval(got)
		if err != nil {
			return err
		}
		lo, hi := out.before.Sub(w.since).Truncate(time.Second), out.after.Sub(w.since)
		if d < lo || d > hi {
			return fmt.Errorf("interval %q (%s) outside [%s, %s]", got, d, lo, hi)
		}
	default:
		return fmt.Errorf("test bug: want cell of type %T", want)
	}
	return nil
}

func showRows(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("  " + strings.Join(r, "|") + "\n")
	}
	return b.String()
}

func showWant(rows [][]any) string {
	var b strings.Builder
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = fmt.Sprint(c)
		}
		b.WriteString("  " + strings.Join(cells, "|") + "\n")
	}
	return b.String()
}

// itoa formats an integer column.
func itoa[T ~int | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }
