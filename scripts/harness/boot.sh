#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# boot.sh run                  boot L1, boot L2 inside it, show both reach
#                              userspace, with stage-by-stage progress
# boot.sh shell                an interactive L1 shell (run-l2 boots a guest)
# boot.sh test LOG LIMIT T...  boot L1, run tests T... in it, console to LOG;
#                              L1 is killed after LIMIT seconds; APF_ENV
#                              (VAR=VALUE,...) goes to the tests' environment
#
# L1 runs under QEMU TCG with emulated EL2 (virtualization=on), so KVM in
# it runs L2 with hardware-assisted virtualization as QEMU emulates it.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:?}"
image=$BUILD/linux/arch/arm64/boot/Image
initrd=$BUILD/l1.cpio
for f in "$image" "$initrd"; do
	[ -f "$f" ] || { echo "boot: no $f: run 'make kernel rootfs'" >&2; exit 1; }
done

L1_CPUS=${L1_CPUS:-2}
L1_MEM=${L1_MEM:-3G}

# L1's swap device (/dev/vda), throttled so that a page-in is slow, as on
# a loaded host: L2 under memory pressure waits for it.  Sparse, and its
# contents do not matter: L1 runs mkswap on it.
swap=$BUILD/l1-swap.img
[ -f "$swap" ] || truncate -s 1G "$swap"

l1=(qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max
    -smp "$L1_CPUS" -m "$L1_MEM" -nographic -no-reboot -nic none
    -kernel "$image" -initrd "$initrd"
    -drive "file=$swap,if=none,id=swap,format=raw,cache=unsafe,throttling.iops-total=${L1_SWAP_IOPS:-400}"
    -device virtio-blk-device,drive=swap)

# watchdog LOG PID: the limits inside L1 rely on L1 itself; this one does
# not.  Kill PID when L1 has not reached userspace after BOOT_LIMIT
# seconds, or when a test runs 60 s past its own limit in tests.list.
watchdog() {
	local log=$1 pid=$2 t0 now t cur= since=0 lim
	t0=$(date +%s)
	while sleep 2; do
		now=$(date +%s)
		if ! grep -aq '@@L1 userspace reached' "$log"; then
			[ $((now - t0)) -lt "${BOOT_LIMIT:-300}" ] && continue
			echo "@@APF-WATCHDOG: L1 did not reach userspace in ${BOOT_LIMIT:-300}s@@" >>"$log"
			kill "$pid"
			return
		fi
		t=$(grep -ao '@@APF-TEST-\(BEGIN\|END\) [^ @]*' "$log" | tail -1)
		case "$t" in
		*BEGIN*) t=${t##* } ;;
		*) cur=; continue ;;
		esac
		[ "$t" = "$cur" ] || { cur=$t since=$now; }
		lim=$(awk -v n="$t" -v s="${TIME_SCALE:-1}" '$1 == n { print $2 * s }' \
			"$top/scripts/harness/tests.list")
		if [ $((now - since)) -gt $((${lim:-0} + 60)) ]; then
			echo "@@APF-WATCHDOG: $t ran past its limit of ${lim}s, L1 killed@@" >>"$log"
			kill "$pid"
			return
		fi
	done
}

mode=${1:-}
shift || true
append="console=ttyAMA0 panic=-1 kvm-arm.mode=nested hugepages=16"
# A slower kernel (TIME_SCALE, test-debug): the longest soft lockup wait.
[ "${TIME_SCALE:-1}" -gt 1 ] && append="$append watchdog_thresh=60"

case "$mode" in
test)
	log=$1 limit=$2
	shift 2
	tests=$(IFS=,; echo "$*")
	# QEMU appends, so that what the watchdog adds is not overwritten.
	# An oops panics L1 at once: the tests after it are reported as not
	# run instead of waiting for their timeouts.
	: >"$log"
	timeout -k 10 "$limit" "${l1[@]}" \
		-append "$append oops=panic apf.mode=test apf.tests=$tests apf.time_scale=${TIME_SCALE:-1}${APF_ENV:+ apf.env=$APF_ENV}" \
		</dev/null >>"$log" 2>&1 &
	qemu=$!
	watchdog "$log" "$qemu" &
	dog=$!
	rc=0
	wait $qemu || rc=$?
	kill $dog 2>/dev/null
	wait $dog 2>/dev/null || true
	exit $rc
	;;
shell)
	echo "==> booting L1 (QEMU TCG, emulated EL2); Ctrl-A X quits QEMU"
	"${l1[@]}" -append "$append apf.mode=shell"
	;;
run)
	mkdir -p "$BUILD/logs"
	log=$BUILD/logs/run.log
	start=$(date +%s)
	echo "==> [1/5] booting L1: QEMU TCG, emulated EL2, $L1_CPUS CPUs, $L1_MEM"
	rc=0
	timeout -k 10 "${RUN_LIMIT:-900}" "${l1[@]}" \
		-append "$append apf.mode=run" </dev/null 2>&1 | tee "$log" |
		awk -v start="$start" '
		function stage(s) { printf "==> [+%ds] %s\n", systime() - start, s; fflush() }
		/Booting Linux on physical CPU/ { n++; if (n == 2) stage("[3/5] L2 kernel booting under KVM inside L1") }
		/kvm \[1\]: .*mode initialized/ && !/dmesg/ { stage("      L1: " substr($0, index($0, "kvm [1]"))) }
		/@@L1 userspace reached/ { gsub(/@@/, ""); stage("[2/5] " $0) }
		/kvm_arm64_apf: |kvm_apf_guest: / && !/dmesg/ { stage("      " (n >= 2 ? "L2" : "L1") ": " substr($0, index($0, "kvm_"))) }
		/@@L2 userspace reached/ { gsub(/@@/, ""); stage("[4/5] " $0) }
		' || rc=$?
	if grep -q "@@L1 userspace reached" "$log" &&
	   grep -q "@@L2 userspace reached" "$log" &&
	   grep -q "@@APF-RUN-DONE rc=0@@" "$log"; then
		echo "==> [5/5] done in $(($(date +%s) - start))s: L1 and L2 both reached userspace (console: $log)"
		exit 0
	fi
	echo "==> FAILED: L1 and L2 did not both reach userspace (rc=$rc); console tail:" >&2
	tail -n 40 "$log" >&2
	exit 1
	;;
*)
	echo "usage: boot.sh run|shell|test LOG LIMIT TEST..." >&2
	exit 2
	;;
esac
