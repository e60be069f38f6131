// Package benchcmp compares hasql's per-call cost with other database/sql
// wrappers that intercept driver calls (sqlhooks, sqlmw, otelsql), all
// wrapping the same in-process no-op driver with no-op hooks. It is a
// separate module so that the root module's users never download the
// wrappers; nothing imports it.
//
//	cd benchcmp && go test -run '^$' -bench . -benchmem -count 6
//
// or ../testdata/bench/ratios.sh for a table of ratios against raw. On a
// noisy machine, BenchmarkWrappersPaired gives steadier ratios: the variants
// take turns of 256 operations, round after round
// (`go test -run '^$' -bench WrappersPaired -benchtime 400x .`).
package benchcmp
