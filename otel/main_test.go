package hasqlotel_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes its DB, and with it its hasql connector: no goroutine
// may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
