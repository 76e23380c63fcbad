//go:build race

package cluster_test

// raceFlags builds the nodes the way this test binary was built: with the
// race detector, which also finds most of their packages in the build
// cache already.
var raceFlags = []string{"-race"}
