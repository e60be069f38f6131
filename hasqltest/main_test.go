package hasqltest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test and example closes its DB, and with it its hasql connector: no
// goroutine may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
