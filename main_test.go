package hasql_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests runs the tests, stops the shared servers (sharedPG, sharedMaria), then fails the run if
// any goroutine outlived its test: every test closes its *sql.DB (and so its hasql Connector), and
// no hasql goroutine may survive Connector.Close.
func runTests(m *testing.M) int {
	code := m.Run()
	stopSharedServers()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			return 1
		}
	}
	return code
}
