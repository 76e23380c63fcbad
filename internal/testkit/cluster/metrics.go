package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Sample is one sample of a Prometheus metric: its name, its labels in the
// order the server wrote them, and its value.
type Sample struct {
	Name   string
	Labels []Label
	Value  float64
}

// Label is one label of a sample.
type Label struct{ Name, Value string }

// Metric reads the Prometheus metric name from baseURL/metrics and returns
// the sum of its samples (over every label set). A metric the server has not
// exported yet reads as 0.
func Metric(ctx context.Context, client *http.Client, baseURL, name string) (float64, error) {
	samples, err := Samples(ctx, client, baseURL, name)
	sum := 0.0
	for _, s := range samples {
		sum += s.Value
	}
	return sum, err
}

// Samples reads baseURL/metrics and returns every sample of the named
// metrics, in the order the server wrote them.
func Samples(ctx context.Context, client *http.Client, baseURL string, names ...string) ([]Sample, error) {
	what := strings.Join(names, ", ")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read metric %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read metric %s: /metrics answered %d", what, resp.StatusCode)
	}
	var out []Sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s, ok, err := parseSample(sc.Text(), names)
		if err != nil {
			return nil, fmt.Errorf("read metric %s: %w", what, err)
		}
		if ok {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metric %s: %w", what, err)
	}
	return out, nil
}

// parseSample reads one line of the text exposition format if it is a
// sample of one of names: `name value` or `name{a="x",b="y"} value`.
func parseSample(line string, names []string) (Sample, bool, error) {
	end := strings.IndexAny(line, " {")
	if end <= 0 || !slices.Contains(names, line[:end]) {
		return Sample{}, false, nil
	}
	s := Sample{Name: line[:end]}
	rest := line[end:]
	if rest[0] == '{' {
		closing := strings.LastIndexByte(rest, '}')
		if closing < 0 {
			return Sample{}, false, nil
		}
		for _, l := range strings.Split(rest[1:closing], ",") {
			if name, value, ok := strings.Cut(l, "="); ok {
				s.Labels = append(s.Labels, Label{Name: name, Value: strings.Trim(value, `"`)})
			}
		}
		rest = rest[closing+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return Sample{}, false, nil
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return Sample{}, false, fmt.Errorf("%q: %w", line, err)
	}
	s.Value = v
	return s, true, nil
}
