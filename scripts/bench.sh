#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh: what asynchronous page faults buy a guest under host memory
# pressure.  Boots L1 once, runs l2-bench in it (the "bench" line of
# scripts/tests.list), then scripts/bench-report
# turns the console's @@BENCH lines into bench.json, a table and bench.png,
# all in $BUILD/results/bench-<date>/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILD:?}"
out=$BUILD/results/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
limit=$(awk '$1 == "bench" { print $2 }' "$top/scripts/tests.list")
# L1's swap disk, slower than the tests' (400 IOPS): the feature pays
# where a page-in is long against what a signal costs (the exits it adds,
# each a world switch that QEMU emulates in software).  README,
# "Benchmark", has the figures at both speeds.
export L1_SWAP_IOPS=${L1_SWAP_IOPS:-100}
export APF_ENV=BENCH_SWAP_IOPS=$L1_SWAP_IOPS${APF_ENV:+,$APF_ENV}
echo "==> bench: booting L1; L2 runs the workload in alternating repetitions; console: $out/console.log"
"$top/scripts/boot.sh" test "$out/console.log" $((limit + 300)) bench
grep -a '@@APF-TEST-END bench rc=0' "$out/console.log" >/dev/null ||
	echo "==> bench: some run failed; the report leaves it out" >&2
/usr/bin/python3 "$top/scripts/bench-report" "$out/console.log" "$out"
