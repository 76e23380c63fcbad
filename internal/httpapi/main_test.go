package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every
// stream, server and background loop must end with its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
