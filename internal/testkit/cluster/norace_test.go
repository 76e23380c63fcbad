//go:build !race

package cluster_test

var raceFlags []string
