#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh [bench | bench-postcopy]: what asynchronous page faults buy a
# guest under host memory pressure (bench: l2-bench), or while QEMU
# migrates it with postcopy (bench-postcopy: l2-bench-postcopy).  Boots L1
# once, runs the benchmark's line of scripts/harness/tests.list in it, then
# scripts/bench/bench-report turns the console's @@BENCH or @@PCBENCH lines
# into JSON, a table and a plot, all in $BUILD/results/NAME-<date>/.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:?}"
name=${1:-bench}
out=$BUILD/results/$name-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
limit=$(awk -v n="$name" '$1 == n { print $2 }' "$top/scripts/harness/tests.list")
[ -n "$limit" ] || { echo "bench.sh: no benchmark '$name' in scripts/harness/tests.list" >&2; exit 1; }
# L1's swap disk, slower than the tests' (400 IOPS): the feature pays
# where a page-in is long against what a signal costs (the exits it adds,
# each a world switch that QEMU emulates in software).
# docs/benchmarks.md, "Why 100 IOPS", has the figures at both speeds.
export L1_SWAP_IOPS=${L1_SWAP_IOPS:-100}
export APF_ENV=BENCH_SWAP_IOPS=$L1_SWAP_IOPS${APF_ENV:+,$APF_ENV}
echo "==> $name: booting L1; L2 runs the workload in alternating repetitions; console: $out/console.log"
"$top/scripts/harness/boot.sh" test "$out/console.log" $((limit + 300)) "$name"
grep -a "@@APF-TEST-END $name rc=0" "$out/console.log" >/dev/null ||
	echo "==> $name: some run failed; the report leaves it out" >&2
/usr/bin/python3 "$top/scripts/bench/bench-report" "$out/console.log" "$out"
