#!/usr/bin/env bash
# Runs hasql's benchmarks and prints, for each suite, a markdown table of every variant against raw
# (the inner driver used directly), all numbers from this one run:
#
#   ns/op ratio   median ns/op of the variant / median ns/op of raw, same op, same run
#   allocs        allocs/op of the variant minus raw's (+0: hasql added no allocation)
#
# Usage: testdata/bench/ratios.sh [suite...]      suites: noop wrappers paired pg maria maria-interp (default: all)
#        testdata/bench/ratios.sh -f FILE...       summarise saved `go test -bench` output instead
#
# Each suite's test binary is built once and run COUNT times with -test.count 1, so that raw and
# the variants take turns over the whole run instead of raw's samples all coming first: on a
# shared machine, load that comes and goes then lands on all of them alike. The output is the
# same as `go test -run '^$' -bench PATTERN -benchmem -count COUNT`, and benchstat reads it.
#
# Environment: COUNT (rounds, default 6), BENCHTIME (default 1s), OUT (directory for the raw
# output and the benchstat summaries; default a new directory under ${TMPDIR:-/tmp}), BENCHSTAT
# (how to run benchstat; default `go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da`;
# empty skips it).
#
# paired runs benchcmp's BenchmarkWrappersPaired once with ROUNDS rounds (default 400): every
# variant takes a turn of 256 operations per round, so ratios hold even on a noisy machine; its
# table shows each variant's median ratio to raw, median added ns/op and added allocs/op.
#
# pg and maria start throwaway PostgreSQL and MariaDB servers on loopback through the test
# harness (testdata/ensure-servers.sh installs them); wrappers runs in the benchcmp/ module.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
BENCHSTAT=${BENCHSTAT-go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da}

# table FILE: the markdown table of one suite's `go test -bench` output. A cell is the variant's
# ns/op ÷ raw's, its cpu-ns/op ÷ raw's (when the benchmarks report cpu-ns/op: the process's CPU
# time per op, which other load on the machine moves much less), each the median over the runs of
# the ratio within one run, and its allocs/op minus raw's.
table() {
	awk '
	function median(list,    n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# paired: the median over runs of (variant ÷ raw in the same run), so that load that comes
	# and goes between runs cancels out.
	function paired(vl, rl,    n, m, a, b, i, r) {
		n = split(vl, a, " "); m = split(rl, b, " "); r = ""
		for (i = 1; i <= n && i <= m; i++) if (b[i] > 0) r = r " " a[i] / b[i]
		return median(r)
	}
	function fmtns(x) { return x >= 10000 ? sprintf("%.1f µs", x / 1000) : (x >= 100 ? sprintf("%.0f ns", x) : sprintf("%.1f ns", x)) }
	/^Benchmark.*ns\/op/ {
		name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
		k = split(name, part, "/"); if (k < 3) next
		suite = part[1]; op = part[2]; v = part[3]
		ns = ""; cpu = ""; al = ""
		for (i = 3; i < NF; i++) {
			if ($(i + 1) == "ns/op") ns = $i
			if ($(i + 1) == "cpu-ns/op") cpu = $i
			if ($(i + 1) == "allocs/op") al = $i
		}
		if (cpu != "") hascpu = 1
		if (!(op in seenop)) { seenop[op] = 1; ops[++nops] = op }
		if (!(v in seenv)) { seenv[v] = 1; vs[++nvs] = v }
		nsl[op, v] = nsl[op, v] " " ns; cpul[op, v] = cpul[op, v] " " cpu; all[op, v] = all[op, v] " " al; cnt[op, v]++
	}
	END {
		if (nops == 0) { print "(no benchmark results)"; exit 1 }
		# Columns in a fixed order (the benchmarks run the variants in a random one).
		np = split("raw hasql hasql-cb sqlhooks sqlmw otelsql", pref, " "); n = 0
		for (j = 1; j <= np; j++) if (pref[j] in seenv) { col[++n] = pref[j]; placed[pref[j]] = 1 }
		for (j = 1; j <= nvs; j++) if (!(vs[j] in placed)) col[++n] = vs[j]
		for (j = 1; j <= n; j++) vs[j] = col[j]
		hdr = "| " suite " | raw ns/op" (hascpu ? " | raw cpu-ns/op" : "") " | raw allocs/op"
		sep = "|---|---:" (hascpu ? "|---:" : "") "|---:"
		for (j = 1; j <= nvs; j++) if (vs[j] != "raw") { hdr = hdr " | " vs[j]; sep = sep "|---:" }
		print hdr " |"; print sep "|"
		for (i = 1; i <= nops; i++) {
			op = ops[i]
			if (!((op, "raw") in cnt)) continue
			rns = median(nsl[op, "raw"]); ral = median(all[op, "raw"])
			line = "| " op " | " fmtns(rns)
			if (hascpu) { rcpu = median(cpul[op, "raw"]); line = line " | " fmtns(rcpu) }
			line = line " | " ral
			for (j = 1; j <= nvs; j++) {
				v = vs[j]; if (v == "raw") continue
				if (!((op, v) in cnt)) { line = line " | –"; continue }
				d = median(all[op, v]) - ral
				cell = sprintf("%.2f×", paired(nsl[op, v], nsl[op, "raw"]))
				if (hascpu) cell = cell sprintf(" · %.2f×", paired(cpul[op, v], cpul[op, "raw"]))
				line = line " | " cell " · " (d >= 0 ? "+" : "") d
			}
			print line " |"
		}
		print ""
		print "Cell: ns/op ÷ raw" (hascpu ? " · cpu-ns/op ÷ raw" : "") " · allocs/op − raw. Ratios are the median over " cnt[ops[1], "raw"] " runs of the ratio within each run; raw columns are medians."
	}' "$1"
}

# pairedtable FILE: the markdown table of BenchmarkWrappersPaired's metrics.
pairedtable() {
	awk '
	/^BenchmarkWrappersPaired\// {
		op = $1; sub(/^BenchmarkWrappersPaired\//, "", op); sub(/-[0-9]+$/, "", op)
		ops[++nops] = op
		for (i = 3; i < NF; i++) {
			u = $(i + 1)
			if (u == "raw-ns") raw[op] = $i
			else if (u ~ /-x$/) { v = u; sub(/-x$/, "", v); x[op, v] = $i; seen[v] = 1 }
			else if (u ~ /-added-ns$/) { v = u; sub(/-added-ns$/, "", v); add[op, v] = $i }
			else if (u ~ /-allocs\+$/) { v = u; sub(/-allocs\+$/, "", v); al[op, v] = $i }
		}
	}
	END {
		if (nops == 0) { print "(no benchmark results)"; exit 1 }
		n = split("hasql hasql-cb sqlhooks sqlmw otelsql", vs, " ")
		hdr = "| paired | raw ns/op"; sep = "|---|---:"
		for (j = 1; j <= n; j++) if (vs[j] in seen) { hdr = hdr " | " vs[j]; sep = sep "|---:" }
		print hdr " |"; print sep "|"
		for (i = 1; i <= nops; i++) {
			op = ops[i]; line = "| " op " | " sprintf("%.0f ns", raw[op])
			for (j = 1; j <= n; j++) if (vs[j] in seen) {
				v = vs[j]; d = al[op, v] + 0
				line = line " | " sprintf("%.2f× · %+.0f ns · %s%d", x[op, v], add[op, v], d >= 0 ? "+" : "", d)
			}
			print line " |"
		}
		print ""
		print "Cell: median over rounds of ns/op ÷ raw · median added ns/op · allocs/op − raw."
	}' "$1"
}

summarise() { # FILE
	table "$1"
	if [[ -n $BENCHSTAT ]]; then
		local stat="${1%.txt}.benchstat"
		if $BENCHSTAT "$1" >"$stat" 2>&1; then
			echo
			echo "(benchstat: $stat)"
		else
			echo "(benchstat failed: see $stat)" >&2
		fi
	fi
}

if [[ ${1:-} == -f ]]; then
	shift
	for f in "$@"; do
		echo "### $f"
		echo
		summarise "$f"
		echo
	done
	exit 0
fi

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(noop wrappers paired pg maria maria-interp)
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hasql-bench.XXXXXX")}
mkdir -p "$OUT"
echo "go $(go env GOVERSION), $(nproc) CPUs, COUNT=$COUNT BENCHTIME=$BENCHTIME; raw output in $OUT"
echo

for s in "${suites[@]}"; do
	case $s in
	noop) dir=.; pat='^BenchmarkNoop$' ;;
	pg) dir=.; pat='^BenchmarkPG$' ;;
	maria) dir=.; pat='^BenchmarkMaria$' ;;
	maria-interp) dir=.; pat='^BenchmarkMariaInterpolated$' ;;
	wrappers) dir=benchcmp; pat='^BenchmarkWrappers$' ;;
	paired)
		bin="$OUT/paired.test"
		(cd benchcmp && go test -c -o "$bin" .)
		echo "### paired"
		echo
		echo "\`cd benchcmp && go test -run '^\$' -bench '^BenchmarkWrappersPaired$' -benchtime ${ROUNDS:-400}x .\`"
		echo
		if ! (cd benchcmp && "$bin" -test.run '^$' -test.bench '^BenchmarkWrappersPaired$' -test.benchtime "${ROUNDS:-400}x" -test.timeout 30m) >"$OUT/paired.txt" 2>&1; then
			echo "ratios.sh: paired failed:" >&2
			tail -30 "$OUT/paired.txt" >&2
			exit 1
		fi
		pairedtable "$OUT/paired.txt"
		echo
		continue
		;;
	*) echo "ratios.sh: unknown suite $s (noop, wrappers, paired, pg, maria, maria-interp)" >&2; exit 2 ;;
	esac
	bin="$OUT/$s.test"
	(cd "$dir" && go test -c -o "$bin" .)
	args=(-test.run '^$' -test.bench "$pat" -test.benchmem -test.count 1 -test.benchtime "$BENCHTIME" -test.timeout 30m)
	echo "### $s"
	echo
	cdto=""
	[[ $dir == . ]] || cdto="cd $dir && "
	echo "\`${cdto}for i in \$(seq $COUNT); do go test -run '^\$' -bench '$pat' -benchmem -count 1 -benchtime $BENCHTIME .; done\`"
	echo "(the test binary is built once and run $COUNT times)"
	echo
	: >"$OUT/$s.txt"
	for ((i = 1; i <= COUNT; i++)); do
		if ! (cd "$dir" && "$bin" "${args[@]}") >>"$OUT/$s.txt" 2>&1; then
			echo "ratios.sh: $s failed:" >&2
			tail -30 "$OUT/$s.txt" >&2
			exit 1
		fi
	done
	summarise "$OUT/$s.txt"
	echo
done
