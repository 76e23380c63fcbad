package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

const exposition = `# HELP notifyd_streams_open Open streams.
# TYPE notifyd_streams_open gauge
notifyd_streams_open 12
notifyd_streams_opened_total 40
notifyd_replica_reads_total{reason="replay",target="replica",outcome="caught_up"} 3
notifyd_replica_reads_total{reason="replay",target="primary",outcome="lagging"} 2.5
`

func TestSamplesAndMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, exposition)
	}))
	defer srv.Close()
	ctx := context.Background()

	got, err := Samples(ctx, srv.Client(), srv.URL, "notifyd_replica_reads_total", "notifyd_streams_open")
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		{Name: "notifyd_streams_open", Value: 12},
		{Name: "notifyd_replica_reads_total", Labels: []Label{{"reason", "replay"}, {"target", "replica"}, {"outcome", "caught_up"}}, Value: 3},
		{Name: "notifyd_replica_reads_total", Labels: []Label{{"reason", "replay"}, {"target", "primary"}, {"outcome", "lagging"}}, Value: 2.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Samples =\n%+v\nwant\n%+v", got, want)
	}

	for name, want := range map[string]float64{
		"notifyd_replica_reads_total": 5.5, // summed over labels
		"notifyd_streams_open":        12,  // not confused with notifyd_streams_opened_total
		"notifyd_not_exported_yet":    0,
	} {
		if got, err := Metric(ctx, srv.Client(), srv.URL, name); err != nil || got != want {
			t.Errorf("Metric(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}
