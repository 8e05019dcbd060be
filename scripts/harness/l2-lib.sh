# SPDX-License-Identifier: GPL-2.0
# Sourced by the L1 scripts that run L2 under memory pressure:
#   l2_setup             swap on L1's throttled disk, a memory cgroup "l2"
#   l2_run NAME LIMIT APPEND [VAR=VALUE...]
#                        boot L2 in the cgroup, with its memory.high at
#                        LIMIT ("max": no limit),
#                        L2_APPEND+=APPEND and the environment VAR=VALUE
#                        (LD_PRELOAD to hide the feature); once L2 unloaded
#                        its module, read KVM's stats of the VM and power
#                        it off.  Sets l2_log, l2_kvm_np, l2_kvm_ready,
#                        l2_swapin and l2_swapout (pages L1 swapped in
#                        and out), l2_swap_reads
#                        and l2_swap_read_ms (the reads of L1's swap disk
#                        and the mean time each took, queueing in the
#                        throttled disk included), l2_guest_np, l2_guest_ready,
#                        l2_guest_sleeps, l2_guest_lowpower ("none" when
#                        not enabled), l2_kvm_exits (the VM's exits to KVM),
#                        l2_kvm_sync (faults KVM could have signalled but
#                        resolved synchronously), l2_kvm_mapped (pages KVM
#                        mapped at stage 2 before their PAGE_READY),
#                        l2_kvm_tlb_flush (KVM's flushes of the VM's
#                        whole TLB; each page L1 swaps out of the guest is
#                        a stage-2 unmap, whose TLBI drops the VM's
#                        stage-1 entries too),
#                        and how the run loaded L1:
#                        l2_l1_busy (percent of all L1 CPUs), l2_vmm_cpu_s
#                        (the VMM's CPU time), l2_memcg_high (memory.high
#                        events: reclaim and throttling), l2_memcg_peak_mib
#                        (the cgroup's peak memory use, "unknown" if an
#                        earlier guest still holds the cgroup), and where its
#                        vCPU threads spent the guest's life: l2_vcpu_run_s
#                        (on an L1 CPU), l2_vcpu_delay_s (runnable, waiting
#                        for one), of l2_life_s (from QEMU's start).
cg=/sys/fs/cgroup
# How much slower than usual the kernels are (test-debug): waits scale.
scale=${APF_TIME_SCALE:-1}

l2_setup() {
	grep -q ' /sys/fs/cgroup ' /proc/mounts || mount -t cgroup2 none $cg
	echo +memory >$cg/cgroup.subtree_control
	mkdir -p $cg/l2
	grep -q '^/dev/vda ' /proc/swaps ||
		{ mkswap /dev/vda >/dev/null && swapon /dev/vda; }
}

# l2_vmstat NAME: counter NAME of /proc/vmstat
l2_vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
# reads completed and milliseconds spent reading, of L1's swap disk
l2_swap_io() { awk '{ print $1, $4 }' /sys/block/vda/stat; }
# busy and total jiffies of all CPUs
l2_cpu() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i;
	print t - $5 - $6, t }' /proc/stat; }
l2_memcg_high() { awk '$1 == "high" { print $2 }' $cg/l2/memory.events; }
l2_stat() { cat /sys/kernel/debug/kvm/"$1" 2>/dev/null || echo missing; }
# l2_vm_stat PID NAME: the stat of the one VM that QEMU PID runs
l2_vm_stat() { cat /sys/kernel/debug/kvm/"$1"-*/"$2" 2>/dev/null || echo missing; }
l2_uptime() { cut -d ' ' -f 1 /proc/uptime; }
# l2_vcpu_schedstat PID: seconds on a CPU and waiting for one, summed over
# the vCPU threads ("CPU n/KVM") of QEMU process PID.
l2_vcpu_schedstat() {
	for t in /proc/"$1"/task/*; do
		case "$(cat "$t/comm" 2>/dev/null)" in "CPU "*/KVM) cat "$t/schedstat" 2>/dev/null ;; esac
	done | awk '{ run += $1; delay += $2 } END { printf "%.2f %.2f", run / 1e9, delay / 1e9 }'
}

# l2_start NAME LIMIT APPEND [VAR=VALUE...]: boot L2 in the background in
# the cgroup, as l2_run does; sets l2_pid and l2_log.  Its serial console
# reads from $l2_console_in (a pipe; /dev/null if unset: a command run in
# the background reads nothing else).
l2_start() {
	name=$1 high=$2 append=$3
	shift 3
	l2_log=/tmp/l2-$name.log
	echo "$high" >$cg/l2/memory.high
	env "$@" L2_APPEND="$append apf.scale=$scale sysctl.kernel.hung_task_timeout_secs=$((60 * scale))" \
		sh -c "echo \$\$ >$cg/l2/cgroup.procs && exec run-l2" \
		>"$l2_log" 2>&1 0<>"${l2_console_in:-/dev/null}" &
	l2_pid=$!
}

# l2_wait PATTERN SECONDS: wait until L2's log has PATTERN, or its QEMU
# exited, or SECONDS passed; status 0 only when the pattern came.
l2_wait() {
	i=0
	while ! grep -q "$1" "$l2_log"; do
		kill -0 "$l2_pid" 2>/dev/null && [ $i -lt "$2" ] || return 1
		sleep 1
		i=$((i + 1))
	done
}

# l2_fresh_cgroup: the cgroup made anew, so that its memory.peak is the
# next run's; status 1, and the cgroup kept, while a process is in it.
l2_fresh_cgroup() {
	[ -z "$(cat $cg/l2/cgroup.procs)" ] && rmdir $cg/l2 && mkdir $cg/l2
}

# l2_mark: where L1's counters stand as a run starts (l2_l1 reads them
# again).
l2_mark() {
	swapin0=$(l2_vmstat pswpin)
	swapout0=$(l2_vmstat pswpout)
	read -r reads0 read_ms0 <<-EOF
	$(l2_swap_io)
	EOF
	high0=$(l2_memcg_high)
	read -r busy0 total0 <<-EOF
	$(l2_cpu)
	EOF
	start=$(l2_uptime)
}

# l2_wait_done PID LOG: until L2 said it is done, or its QEMU (PID)
# exited, or L2_DONE_SECS (default 600, times the scale) passed: then it
# says where its vCPUs were (l2_where, as TAP comments) and status is 1.
l2_wait_done() {
	i=0
	while kill -0 "$1" 2>/dev/null && ! grep -q '@@L2 done@@' "$2"; do
		if [ $i -ge $((${L2_DONE_SECS:-600} * scale)) ]; then
			l2_where | sed "s,^,# $(basename "$2" .log): ,"
			return 1
		fi
		sleep 1
		i=$((i + 1))
	done
}

# l2_where: a guest that never finished, seen from L1: the guest PCs of
# KVM's exits for 2 s (kvm_exit events; a vCPU stuck in the guest still
# exits on L1's timer tick), to look up in the L2 kernel's System.map.
l2_where() {
	t=/sys/kernel/tracing
	[ -d $t/events ] || mount -t tracefs nodev $t 2>/dev/null
	echo "@@L2 timed out@@ KVM exits of its vCPUs:"
	[ -w $t/events/kvm/kvm_exit/enable ] || { echo "(no kvm_exit event)"; return; }
	echo >$t/trace
	echo 1 >$t/events/kvm/kvm_exit/enable
	sleep 2
	echo 0 >$t/events/kvm/kvm_exit/enable
	grep -o 'kvm_exit: .*' $t/trace | sort | uniq -c | sort -rn | head -n 20
}

# l2_vm PID: KVM's stats of the VM that QEMU PID runs, its vCPU threads'
# times and the VMM's CPU time, while the VM is still there.
l2_vm() {
	read -r l2_vcpu_run_s l2_vcpu_delay_s <<-EOF
	$(l2_vcpu_schedstat "$1")
	EOF
	l2_kvm_np=$(l2_vm_stat "$1" apf_not_present)
	l2_kvm_ready=$(l2_vm_stat "$1" apf_ready)
	l2_kvm_exits=$(l2_vm_stat "$1" exits)
	l2_kvm_sync=$(l2_vm_stat "$1" apf_sync)
	l2_kvm_mapped=$(l2_vm_stat "$1" apf_ready_mapped)
	l2_kvm_tlb_flush=$(l2_vm_stat "$1" remote_tlb_flush)
	l2_vmm_cpu_s=$(awk '{ printf "%.1f", ($14 + $15) / 100 }' /proc/"$1"/stat 2>/dev/null)
}

# l2_l1: L1's counters since l2_mark.
l2_l1() {
	l2_life_s=$(awk -v a="$start" -v b="$(l2_uptime)" 'BEGIN { printf "%.1f", b - a }')
	l2_swapin=$(($(l2_vmstat pswpin) - swapin0))
	l2_swapout=$(($(l2_vmstat pswpout) - swapout0))
	read -r reads read_ms <<-EOF
	$(l2_swap_io)
	EOF
	l2_swap_reads=$((reads - reads0))
	l2_swap_read_ms=$(awk -v n="$l2_swap_reads" -v t="$((read_ms - read_ms0))" \
		'BEGIN { if (n) printf "%.2f", t / n; else print "none" }')
	l2_memcg_high=$(($(l2_memcg_high) - high0))
	read -r busy total <<-EOF
	$(l2_cpu)
	EOF
	l2_l1_busy=$(((busy - busy0) * 100 / (total - total0)))
}

# l2_stop PID LOG: power L2 off (kill its QEMU; SIGKILL after 30 s) and
# read the guest's own counts from LOG.
l2_stop() {
	kill "$1" 2>/dev/null
	l2_end "$1"
	# shellcheck disable=SC2046
	set -- $(sed -n 's/.*@@L2 module disabled: \([0-9]*\) PAGE_NOT_PRESENT, \([0-9]*\) PAGE_READY, \([0-9]*\) sleeps, \([0-9]*\) low-power.*/\1 \2 \3 \4/p' "$2")
	l2_guest_np=${1:-none} l2_guest_ready=${2:-none}
	l2_guest_sleeps=${3:-none} l2_guest_lowpower=${4:-none}
}

l2_run() {
	fresh=1
	l2_fresh_cgroup || fresh=0
	l2_mark
	l2_start "$@"
	l2_wait_done $l2_pid "$l2_log"
	l2_vm $l2_pid
	l2_l1
	l2_memcg_peak_mib=unknown
	[ $fresh = 1 ] && l2_memcg_peak_mib=$(($(cat $cg/l2/memory.peak) >> 20))
	l2_stop $l2_pid "$l2_log"
}

# Whether L2's log shows a kernel report of /usr/lib/apf/kernel-reports
# (scripts/harness/kernel-reports, the list the runner checks L1's console for):
# a BUG, WARNING (lockdep's included), oops, panic, hung task, soft
# lockup, RCU stall, kmemleak suspect, UBSAN or KASAN report.
l2_splat() {
	grep -qE "\[ *[0-9]+\.[0-9]+\] ($(awk '!/^#/ { printf "%s%s", s, $0; s = "|" }' /usr/lib/apf/kernel-reports))" "$1"
}

# alive PID: whether process PID runs (a zombie does not).
alive() { case $(cut -d ' ' -f 3 /proc/"$1"/stat 2>/dev/null) in '' | Z) false ;; esac; }
# log_field LOG PATTERN: the text after PATTERN on LOG's first @@ marker line
# with it.
log_field() { sed -n "s/.*@@$2\(.*\)@@.*/\1/p" "$1" | tr -d '\r' | head -n 1; }

# QEMU's monitor, on a pipe chardev (busybox has no client for a socket).
# mon_start NAME: its pipes, a reader that keeps what it says in
# /tmp/mon-NAME.log (QEMU blocks without one), and mon, QEMU's arguments;
# the reader's PID is added to $pids.
mon_start() {
	m=/tmp/mon-$1
	rm -f "$m.in" "$m.out" "$m.log"
	: >"$m.log"
	mkfifo "$m.in" "$m.out"
	cat 0<>"$m.out" >>"$m.log" &
	pids="$pids $!"
	mon="-chardev pipe,id=mon,path=$m -mon chardev=mon,mode=readline"
}
# mon_cmd NAME CMD: type CMD (read-write: blocks not even with QEMU gone).
mon_cmd() { echo "$2" 1<>"/tmp/mon-$1.in"; }
# mon_wait NAME PATTERN SECONDS [CMD]: until the monitor said PATTERN,
# typing CMD every second; status 1 after SECONDS, or once a migration
# failed.
mon_wait() {
	i=0
	until grep -q "$2" "/tmp/mon-$1.log"; do
		[ $i -lt "$3" ] && ! grep -q 'status: failed' "/tmp/mon-$1.log" || return 1
		[ -z "${4:-}" ] || mon_cmd "$1" "$4"
		sleep 1
		i=$((i + 1))
	done
}

# l2_vmm NAME LIMIT APPEND QEMU_ARGS [VAR=VALUE...]: L2 booted by QEMU
# NAME as l2_start boots it, with a monitor (mon_start) and QEMU_ARGS; its
# serial console reads from the pipe /tmp/con-NAME (l2_console types on
# it).  Sets l2_pid and l2_log and adds the PID to $pids; status 0 once the
# monitor answers.
l2_vmm() {
	v=$1 lim=$2 app=$3 args=$4
	shift 4
	mon_start "$v"
	rm -f "/tmp/con-$v"
	mkfifo "/tmp/con-$v"
	l2_console_in=/tmp/con-$v
	l2_start "$v" "$lim" "$app" "L2_QEMU_ARGS=$mon $args" "$@"
	l2_console_in=
	pids="$pids $l2_pid"
	mon_wait "$v" '(qemu)' $((60 * scale)) 'info name'
}
# l2_forget PID: PID, waited for, leaves $pids (it may be reused).
l2_forget() {
	set -- "$1" "$pids"
	pids=
	for p in $2; do [ "$p" = "$1" ] || pids="$pids $p"; done
}
# l2_console NAME TEXT: type TEXT on QEMU NAME's serial console.
l2_console() { echo "$2" 1<>"/tmp/con-$1"; }
# l2_reap: every process of $pids killed and waited for, the pipes of
# mon_start and l2_vmm removed.
l2_reap() {
	for p in $pids; do
		alive "$p" && kill -KILL "$p"
		wait "$p" 2>/dev/null
	done
	pids=
	rm -f /tmp/con-* /tmp/mon-*.in /tmp/mon-*.out
}

# vmm_quit NAME PID: QEMU NAME (PID) quits (killed after 30 s).
vmm_quit() {
	mon_cmd "$1" quit
	l2_end "$2"
}
# l2_end PID: once QEMU PID was asked to go, wait for it (SIGKILL after
# 30 s), reap it and take it out of $pids.
l2_end() {
	end_i=0
	while alive "$1" && [ $end_i -lt $((30 * scale)) ]; do
		sleep 1
		end_i=$((end_i + 1))
	done
	alive "$1" && kill -KILL "$1"
	wait "$1" 2>/dev/null
	l2_forget "$1"
}
