package stream_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
)

func TestParseResume(t *testing.T) {
	maxInt := strconv.FormatInt(math.MaxInt64, 10)
	tests := []struct {
		name          string
		header, query string
		want          int64
		ok            bool
		err           string // a word the error names; "" for no error
	}{
		{name: "neither", ok: false},
		{name: "header zero", header: "0", want: 0, ok: true},
		{name: "header", header: "42", want: 42, ok: true},
		{name: "query", query: "42", want: 42, ok: true},
		{name: "header wins", header: "7", query: "9", want: 7, ok: true},
		{name: "bad header wins over good query", header: "x", query: "9", err: "Last-Event-ID"},
		{name: "leading zeros", header: "007", want: 7, ok: true},
		{name: "max int64", header: maxInt, want: math.MaxInt64, ok: true},
		{name: "20 chars", header: "0" + maxInt, want: math.MaxInt64, ok: true},
		{name: "21 chars", header: "00" + maxInt, err: "too long"},
		{name: "max int64 plus one", header: "9223372036854775808", err: "out of range"},
		{name: "twenty nines", query: "99999999999999999999", err: "lastEventId"},
		{name: "negative", header: "-1", err: "non-negative integer"},
		{name: "plus", header: "+1", err: "non-negative integer"},
		{name: "fraction", query: "1.5", err: "lastEventId"},
		{name: "exponent", header: "1e3", err: "non-negative integer"},
		{name: "letters", header: "abc", err: "Last-Event-ID"},
		{name: "space", header: " 1", err: "non-negative integer"},
		{name: "trailing newline", header: "1\n", err: "non-negative integer"},
		{name: "unicode digit", header: "١", err: "non-negative integer"},
		{name: "10 KB", query: strings.Repeat("9", 10<<10), err: "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, ok, err := stream.ParseResume(tc.header, tc.query)
			if tc.err != "" {
				if err == nil || !errors.Is(err, notify.ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseResume(%.30q, %.30q) error %v, want one wrapping ErrInvalid naming %q", tc.header, tc.query, err, tc.err)
				}
				if ok || seq != 0 {
					t.Errorf("an error came with seq %d, ok %t", seq, ok)
				}
				return
			}
			if err != nil || seq != tc.want || ok != tc.ok {
				t.Fatalf("ParseResume(%q, %q) = %d, %t, %v; want %d, %t, nil", tc.header, tc.query, seq, ok, err, tc.want, tc.ok)
			}
		})
	}
}

var digitsRE = regexp.MustCompile(`^[0-9]{1,20}$`)

// acceptable is the specification ParseResume is checked against, written
// without strconv: decimal digits only, at most 20 of them, at most MaxInt64.
func acceptable(s string) (int64, bool) {
	if !digitsRE.MatchString(s) {
		return 0, false
	}
	n, _ := new(big.Int).SetString(s, 10)
	if !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

// FuzzParseResume checks ParseResume against the specification: it never
// panics, accepts exactly the non-negative int64 decimals of at most 20
// characters (header first, else query), and what it accepts round-trips
// through strconv.FormatInt.
func FuzzParseResume(f *testing.F) {
	for _, s := range []string{"", "0", "1", "42", "007", "00000000000000000000", "9223372036854775807",
		"09223372036854775807", "9223372036854775808", "99999999999999999999", "000000000000000000001",
		"-1", "+1", "1.5", "1e3", "0x1f", " 1", "1 ", "abc", "١٢", "\x00", "\xff", strings.Repeat("9", 10<<10)} {
		f.Add(s, "")
		f.Add("", s)
		f.Add(s, "5")
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		seq, ok, err := stream.ParseResume(header, query)
		raw := header
		if raw == "" {
			raw = query
		}
		if raw == "" {
			if seq != 0 || ok || err != nil {
				t.Fatalf("no resume point gave %d, %t, %v", seq, ok, err)
			}
			return
		}
		want, valid := acceptable(raw)
		if !valid {
			if err == nil || !errors.Is(err, notify.ErrInvalid) || ok || seq != 0 {
				t.Fatalf("ParseResume(%q, %q) = %d, %t, %v; want an ErrInvalid error", header, query, seq, ok, err)
			}
			return
		}
		if err != nil || !ok || seq != want {
			t.Fatalf("ParseResume(%q, %q) = %d, %t, %v; want %d, true, nil", header, query, seq, ok, err, want)
		}
		formatted := strconv.FormatInt(seq, 10)
		if trimmed := strings.TrimLeft(raw, "0"); formatted != trimmed && !(seq == 0 && trimmed == "") {
			t.Fatalf("%q parsed to %d, which formats as %q", raw, seq, formatted)
		}
		if back, ok, err := stream.ParseResume(formatted, ""); err != nil || !ok || back != seq {
			t.Fatalf("%d does not round-trip: %d, %t, %v", seq, back, ok, err)
		}
	})
}
