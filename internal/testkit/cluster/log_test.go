package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func TestLineWriterPassesWholeLines(t *testing.T) {
	var got []string
	w := LineWriter(func(l string) { got = append(got, l) })
	for _, chunk := range []string{"first li", "ne\nsecond\n", "", "third", " line\nunfinished"} {
		if n, err := fmt.Fprint(w, chunk); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := []string{"first line", "second", "third line"}
	if !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q (the unfinished one held back)", got, want)
	}
}
