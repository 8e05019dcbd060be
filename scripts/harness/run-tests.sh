#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run-tests.sh TEST...: check that patches/ is fresh and follows the
# kernel's style, boot L1 once, run the named tests of scripts/harness/tests.list
# inside it, read the KUnit suites of kunit.list from its console, and
# report as TAP, ending with one line
# "N passed, N failed, N skipped".  Exit status 1 on any
# failure.  Each test has its own time limit inside L1, and L1 as a whole
# is killed past the sum of them; a kernel BUG, WARNING, lockdep, KASAN,
# kmemleak, hung-task or stall report on the console fails the run.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:?}"
[ $# -gt 0 ] || { echo "run-tests: no tests named" >&2; exit 2; }

stamp=$(date +%Y%m%d-%H%M%S)
out=$BUILD/results/$stamp
mkdir -p "$out"
log=$out/console.log
# TIME_SCALE multiplies every time limit (a debug kernel is slower).
scale=${TIME_SCALE:-1}
BOOT_LIMIT=${BOOT_LIMIT:-$((300 * scale))}
export BOOT_LIMIT TIME_SCALE=$scale

n=0 pass=0 fail=0 skip=0
report() {	# report NAME ok|fail|skip [DETAIL]
	n=$((n + 1))
	case "$2" in
	ok) pass=$((pass + 1)); echo "ok $n $1" ;;
	skip) skip=$((skip + 1)); echo "ok $n $1 # SKIP ${3:-}" ;;
	*) fail=$((fail + 1)); echo "not ok $n $1${3:+ # $3}" ;;
	esac
}

limit_of() {
	awk -v n="$1" -v s="$scale" '$1 == n { print $2 * s; found = 1 }
		END { if (!found) print 0 }' "$top/scripts/harness/tests.list"
}

echo "TAP version 13"

# check NAME WHY CMD...: a host-side check, its output kept and shown on
# failure.
check() {
	local name=$1 why=$2
	shift 2
	if "$@" >"$out/$name.log" 2>&1; then
		report "$name" ok
	else
		sed 's/^/#   /' "$out/$name.log" | head -n 40
		report "$name" fail "$why"
	fi
}

check series-fresh "patches/ does not give the tree that was built" \
	"$top/scripts/series/series.sh" check
check checkpatch "checkpatch.pl --strict complains" \
	"$top/scripts/series/check-style.sh" checkpatch
check rustfmt "Rust not formatted as rustfmt wants" \
	"$top/scripts/series/check-style.sh" rustfmt
check clippy "clippy warns" "$top/scripts/series/check-style.sh" clippy

limit=$BOOT_LIMIT
for t in "$@"; do
	l=$(limit_of "$t")
	[ "$l" -gt 0 ] || { echo "run-tests: no test named $t in tests.list" >&2; exit 2; }
	limit=$((limit + l))
done

echo "# booting L1 with ${#} test(s), limit ${limit}s; console: $log"
start=$(date +%s)
"$top/scripts/harness/boot.sh" test "$log" "$limit" "$@"
qemu_rc=$?
echo "# L1 ran for $(($(date +%s) - start))s (QEMU exit status $qemu_rc)"

if grep -q '@@L1 userspace reached:.*/dev/kvm present@@' "$log"; then
	report l1-boot ok
else
	report l1-boot fail "L1 did not reach userspace with /dev/kvm"
fi

for t in "$@"; do
	f=$out/${t//\//_}.tap
	awk -v b="@@APF-TEST-BEGIN $t@@" -v e="@@APF-TEST-END $t rc=" '
		index($0, b) { on = 1; next }
		on && index($0, e) { exit }
		on { print }' "$log" | tr -d '\r' >"$f"
	end=$(grep -a -o "@@APF-TEST-END $t rc=[0-9]* time=[0-9]*s@@" "$log" | head -1)
	rc=$(echo "$end" | sed -n 's/.* rc=\([0-9]*\) .*/\1/p')
	secs=$(echo "$end" | sed -n 's/.* time=\([0-9]*\)s@@/\1/p')
	[ -z "$end" ] || echo "# $t: exit status $rc after ${secs}s"
	case "$rc" in
	0) report "$t" ok ;;
	4) report "$t" skip "$(grep -a -m1 -iE 'skip' "$f" | cut -c1-120)" ;;
	"") report "$t" fail "did not finish: L1 died or was killed"
	    tail -n 10 "$f" | sed 's/^/#   /' ;;
	137) report "$t" fail "killed at its time limit of $(limit_of "$t")s"
	     tail -n 20 "$f" | sed 's/^/#   /' ;;
	*) report "$t" fail "exit status $rc"
	   tail -n 20 "$f" | sed 's/^/#   /' ;;
	esac
done

# KUnit: every case of the suites in kunit.list, from L1's console.
awk -f "$top/scripts/harness/ktap.awk" "$log" >"$out/kunit.txt"
while IFS= read -r suite; do
	case "$suite" in "#"* | "") continue ;; esac
	if ! grep -q "$(printf '\t%s\t' "$suite")" "$out/kunit.txt"; then
		report "kunit/$suite" fail "no KTAP result for the suite on L1's console"
		continue
	fi
	while IFS=$'\t' read -r res name detail; do
		case "$name" in "$suite" | "$suite"/*) ;; *) continue ;; esac
		report "kunit/$name" "$res" "$detail"
	done <"$out/kunit.txt"
done < <(grep -v '^#' "$top/scripts/harness/kunit.list")

if ! grep -aq '@@APF-TESTS-DONE@@' "$log"; then
	echo "# L1 did not finish the tests; console tail:"
	grep -a '@@APF-WATCHDOG' "$log" | sed 's/^/#   /'
	tail -n 40 "$log" | sed 's/^/#   /'
fi

# Kernel reports only (scripts/harness/kernel-reports): console lines behind a
# printk timestamp.  L2's console comes through the L2 tests as TAP
# comments, behind "# " and maybe the name of the run ("# offered: ").
splat="\\[ *[0-9]+\\.[0-9]+\\] ($(awk '!/^#/ { printf "%s%s", s, $0; s = "|" }' "$top/scripts/harness/kernel-reports"))"
if grep -a -E "$splat" "$log" >"$out/splats.txt"; then
	report console-clean fail "kernel reports on the console"
	head -n 20 "$out/splats.txt" | sed 's/^/#   /'
else
	report console-clean ok
fi

echo "1..$n"
echo "# results: $out"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
