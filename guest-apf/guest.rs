// SPDX-License-Identifier: GPL-2.0

//! The guest's state: one control block and one table of waiters per CPU.

#![forbid(unsafe_code)]

use core::fmt;
use core::pin::Pin;
use kernel::arm64::{
    cpu_do_idle, impdef_abort,
    kvm_apf::{ack_ready, disable_here},
};
use kernel::cpu::{hotplug, nr_cpu_ids, CpuId};
use kernel::irq::{
    percpu::{GicPpi, PercpuHandler, PercpuRegistration},
    IrqReturn,
};
use kernel::prelude::*;
use kernel::reboot;
use kernel::smp::on_each_cpu;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{
    new_mutex, new_raw_spinlock_irq, Arc, ArcBorrow, Completion, Mutex, RawSpinLockIrq,
};
use kernel::time::hrtimer::{
    ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
    HrTimerRestart, RelativePinnedHardMode,
};
use kernel::time::{delay::fsleep, Delta, Monotonic};

use crate::block::Block;
use crate::waiters::{Parked, Ready, Stats, Waiters, SLOTS};

/// How long unloading waits for the PAGE_READY signals the host owes.
const DRAIN_MS: i64 = 10_000;

/// How often a CPU that takes signals checks that the host still has its
/// control block.
const CHECK_PERIOD_S: i64 = 10;

/// One CPU.
///
/// The PAGE_READY interrupt is a per-CPU one, which is never threaded, so
/// everything its handler takes must be a spinning lock even on
/// PREEMPT_RT: the waiters are under a raw spinlock, and a sleeper waits
/// on a completion (a simple wait queue, under a raw spinlock too), not
/// on a wait queue head.
#[pin_data]
pub(crate) struct PerCpu {
    block: Block,
    #[pin]
    waiters: RawSpinLockIrq<Waiters>,
    /// One per slot, completed once for each sleeper woken in it.
    #[pin]
    wake: [Completion; SLOTS],
    /// Fires every `CHECK_PERIOD_S` on this CPU while it takes signals.
    #[pin]
    check: HrTimer<Self>,
    cpu: CpuId,
    /// Whether faults taken in the kernel are signalled too.
    el1: bool,
}

kernel::impl_has_hr_timer! {
    impl HasHrTimer<Self> for PerCpu {
        mode: RelativePinnedHardMode<Monotonic>,
        field: self.check
    }
}

impl HrTimerCallback for PerCpu {
    type Pointer<'a> = Arc<Self>;

    /// Runs in hard interrupt context.  A timer of a CPU that went down
    /// moves to another CPU: it stops there, and starts again when its
    /// CPU comes up.
    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        if CpuId::current() != this.cpu || !this.check_registered() {
            return HrTimerRestart::NoRestart;
        }
        ctx.forward_now(Delta::from_secs(CHECK_PERIOD_S));
        HrTimerRestart::Restart
    }
}

impl PerCpu {
    fn new(cpu: CpuId, el1: bool) -> Result<impl PinInit<Self>> {
        let block = Block::new()?;
        Ok(pin_init!(Self {
            block,
            waiters <- new_raw_spinlock_irq!(Waiters::new(), "kvm_apf_guest::waiters"),
            wake <- pin_init::pin_init_array_from_fn(|_| Completion::new()),
            check <- HrTimer::new(),
            cpu,
            el1,
        }))
    }

    /// Whether the host still has this CPU's control block; runs on the
    /// CPU.  A VMM that restored the vCPU without its register (it reads
    /// 0), or a vCPU reset, leaves the CPU's waiters with nothing to wake
    /// them; a register that holds another block (that of the kernel a
    /// hibernated image was restored by) has the host write where this
    /// kernel does not look.  Either way the waiters are woken, as a
    /// wake-all does, and the block is registered again, fenced if the
    /// CPU drains; the host owes a wake-all for that enable too, so waking
    /// them here matters when it refuses the block.  The register changes
    /// under the waiter lock, as in enable and disable, so that no check
    /// registers again a CPU going down.  Returns whether the CPU still
    /// takes signals.
    fn check_registered(&self) -> bool {
        {
            let mut w = self.waiters.lock();
            if !w.enabled() || self.block.registered_here(self.el1) {
                return w.enabled();
            }
            self.wake(w.host_forgot());
            self.block.reset();
            if w.draining() {
                self.block.fence();
            }
            if self.block.register_here(self.el1) {
                return true;
            }
            self.wake(w.disable());
        }
        pr_warn!(
            "CPU{}: the host refused the control block again\n",
            self.cpu.as_u32()
        );
        false
    }

    /// Consumes a PAGE_READY, if the block holds one, acknowledges it if
    /// the host asks, and wakes the context waiting for its token.  Runs
    /// on this CPU with `w` locked.  Returns whether there was a signal.
    fn take_ready(&self, w: &mut Waiters) -> bool {
        match w.ready(&self.block, ack_ready) {
            Ready::Nothing => false,
            Ready::Consumed => true,
            Ready::Wake(i) => {
                self.wake[i].complete();
                true
            }
            Ready::WakeAll(slots) => {
                self.wake(slots);
                true
            }
        }
    }

    /// Wakes the contexts sleeping in the slots of bitmap `slots`.
    fn wake(&self, slots: u64) {
        for (i, done) in self.wake.iter().enumerate() {
            if slots & (1 << i) != 0 {
                done.complete();
            }
        }
    }
}

/// The handle of each CPU's check, by CPU number: dropping one cancels
/// the timer and waits for its callback.
type Checks = KVec<Option<ArcHrTimerHandle<PerCpu>>>;

/// The state of every possible CPU, by CPU number: what the PAGE_READY
/// interrupt works on.
pub(crate) struct Cpus(KVec<Arc<PerCpu>>);

impl Cpus {
    fn get(&self, cpu: CpuId) -> Option<&Arc<PerCpu>> {
        self.0.get(cpu.as_u32() as usize)
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<PerCpu>> {
        self.0.iter()
    }
}

impl PercpuHandler for Cpus {
    /// The PAGE_READY interrupt.
    fn handle(&self) -> IrqReturn {
        let Some(pc) = self.get(CpuId::current()) else {
            return IrqReturn::None;
        };
        let mut w = pc.waiters.lock();
        if pc.take_ready(&mut w) {
            IrqReturn::Handled
        } else {
            IrqReturn::None
        }
    }
}

/// Everything the module runs on.
pub(crate) struct Guest {
    /// The PAGE_READY interrupt, which works on `cpus`.
    ppi: PercpuRegistration<Cpus>,
    cpus: Arc<Cpus>,
    /// Each CPU's check, started when it comes up.
    checks: Pin<KBox<Mutex<Checks>>>,
    /// Whether any CPU ever took signals: an abort may then be the host's
    /// even on a CPU that takes none (yet), its task having moved there.
    ever_enabled: Atomic<bool>,
}

impl Guest {
    /// State for every possible CPU, signalled on PPI `intid`; `el1` asks
    /// for faults taken in the kernel too.
    pub(crate) fn new(module: &'static ThisModule, intid: u32, el1: bool) -> Result<Self> {
        let n = nr_cpu_ids();
        let mut cpus = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        let mut checks = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        for cpu in (0..n).filter_map(CpuId::from_u32) {
            cpus.push(
                Arc::pin_init(PerCpu::new(cpu, el1)?, GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
            checks.push(None, GFP_KERNEL)?;
        }
        let cpus = Arc::new(Cpus(cpus), GFP_KERNEL)?;
        Ok(Self {
            ppi: PercpuRegistration::new(
                module,
                GicPpi::map(intid)?,
                c"kvm-apf-ready",
                cpus.clone(),
            )?,
            cpus,
            checks: KBox::pin_init(new_mutex!(checks, "kvm_apf_guest::checks"), GFP_KERNEL)?,
            ever_enabled: Atomic::new(false),
        })
    }

    /// What described the interrupt controller of the PAGE_READY PPI.
    pub(crate) fn firmware(&self) -> &'static str {
        if self.ppi.ppi().through_acpi() {
            "ACPI"
        } else {
            "the device tree"
        }
    }

    fn cpu(&self, cpu: CpuId) -> Option<&Arc<PerCpu>> {
        self.cpus.get(cpu)
    }

    /// CPU hotplug brought `cpu` up; this runs on it, in a context that
    /// may sleep.
    fn cpu_online(&self, cpu: CpuId) {
        let Some(pc) = self.cpu(cpu) else { return };
        pc.block.reset();
        self.ppi.enable_here();
        // The register and the waiters' state change together, under the
        // lock, which the check takes too.
        let taken = {
            let mut w = pc.waiters.lock();
            w.enable();
            pc.block.register_here(pc.el1)
        };
        if !taken {
            pr_warn!("CPU{}: the host refused the control block\n", cpu.as_u32());
            self.cpu_offline(cpu);
            return;
        }
        self.ever_enabled.store(true, Relaxed);
        let mut checks = self.checks.lock();
        if let Some(check) = checks.get_mut(cpu.as_u32() as usize) {
            // Cancelled before it starts again: dropping a handle cancels
            // the timer, whichever start it came from.
            drop(check.take());
            *check = Some(pc.clone().start(Delta::from_secs(CHECK_PERIOD_S)));
        }
    }

    /// `cpu` stops taking signals (hotplug, unload, reboot); this runs on
    /// it.  Its waiters are woken and retry their access, which the host
    /// now resolves synchronously.  Its check stops at its next expiry.
    fn cpu_offline(&self, cpu: CpuId) {
        let Some(pc) = self.cpu(cpu) else { return };
        let woken = {
            let mut w = pc.waiters.lock();
            disable_here();
            w.disable()
        };
        self.ppi.disable_here();
        pc.wake(woken);
    }

    /// A data abort with the IMPDEF DFSC.  Returns once the access may be
    /// retried, or `false` when it is not the host's signal: the module
    /// has no state for this CPU, or the CPU never asked for signals.
    fn impdef_abort(&self, may_sleep: bool) -> bool {
        let cpu = CpuId::current();
        let Some(pc) = self.cpu(cpu) else {
            return false;
        };
        let mut w = pc.waiters.lock();
        // Moved to another CPU before interrupts went off: the block of
        // this one is not ours to read.  Retrying is always safe.
        if CpuId::current() != cpu {
            return true;
        }
        let slot = match w.not_present(&pc.block, may_sleep) {
            Parked::Retry => return true,
            // Not ours unless some CPU asked for signals: a task that
            // took one may have moved to a CPU not enabled yet.
            Parked::Unhandled => return self.ever_enabled.load(Relaxed),
            Parked::Wait(slot) => slot,
        };
        if may_sleep {
            // The slot's completion is completed exactly once, when the
            // slot is marked woken, and this is its only waiter.
            drop(w);
            pc.wake[slot].wait_for_completion();
            w = pc.waiters.lock();
        } else {
            while !w.woken(slot) {
                // Preemption may be on where sleeping is not allowed: only
                // consume a signal on the CPU it was sent to.  Moved to
                // another CPU, the context must not wait in WFI there with
                // this CPU's lock held, which the PAGE_READY interrupt that
                // ends the wait needs: it spins with the lock dropped.
                if CpuId::current() != cpu {
                    drop(w);
                    core::hint::spin_loop();
                    w = pc.waiters.lock();
                    continue;
                }
                if pc.take_ready(&mut w) {
                    continue;
                }
                // Interrupts are off under the lock, by PSTATE.I or, with
                // pseudo-NMIs, by the priority mask.  The PPI raised with
                // a PAGE_READY wakes the wait either way, also when it came
                // between the check above and the WFI; the loop then reads
                // the block itself.  Other interrupts, the CPU's check of
                // its registration among them, are taken between one look
                // and the next: the host signals no fault taken with
                // interrupts masked, so dropping the lock unmasks them.
                cpu_do_idle();
                drop(w);
                w = pc.waiters.lock();
            }
        }
        w.release(slot);
        true
    }

    /// Stops new PAGE_NOT_PRESENT signals on this CPU.
    fn fence(&self) {
        if let Some(pc) = self.cpu(CpuId::current()) {
            pc.waiters.lock().drain(&pc.block);
        }
    }

    /// Lets the host deliver every PAGE_READY it owes before the feature
    /// goes off; waits at most `DRAIN_MS`.  Returns whether it did.
    pub(crate) fn drain(&self) -> bool {
        if on_each_cpu(&|| self.fence()).is_err() {
            return false;
        }
        for _ in 0..DRAIN_MS / 10 {
            let drained = self
                .cpus
                .iter()
                .all(|pc| pc.waiters.lock().drained(&pc.block));
            if drained {
                return true;
            }
            fsleep(Delta::from_millis(10));
        }
        false
    }

    /// The counters of every CPU, summed.
    pub(crate) fn totals(&self) -> Stats {
        let mut t = Stats::default();
        for pc in self.cpus.iter() {
            t += pc.waiters.lock().stats();
        }
        t
    }

    /// The debugfs table: one line per possible CPU.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cpu enabled not_present ready sleeps lowpower_waits sleepers \
             ready_first spurious overflow woken_by_disable acks wake_alls \
             woken_by_wake_all host_forgot"
        )?;
        for (cpu, pc) in self.cpus.iter().enumerate() {
            let w = pc.waiters.lock();
            let s = w.stats();
            writeln!(
                f,
                "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                cpu,
                u8::from(w.enabled()),
                s.not_present,
                s.ready,
                s.sleeps,
                s.lowpower_waits,
                w.sleepers(),
                s.ready_first,
                s.spurious,
                s.overflow,
                s.woken_by_disable,
                s.acks,
                s.wake_alls,
                s.woken_by_wake_all,
                s.host_forgot
            )?;
        }
        Ok(())
    }
}

impl hotplug::Callbacks for Guest {
    fn online(&self, cpu: CpuId) -> Result {
        self.cpu_online(cpu);
        Ok(())
    }

    fn offline(&self, cpu: CpuId) {
        self.cpu_offline(cpu);
    }
}

impl reboot::Notifier for Guest {
    /// Turns the feature off on every online CPU before a reboot or a
    /// kexec, so that the host does not write this kernel's memory under
    /// the next one.
    fn notify(&self, _event: reboot::Event) {
        if on_each_cpu(&|| self.cpu_offline(CpuId::current())).is_err() {
            pr_warn!("could not turn the feature off before the reboot\n");
        }
    }
}

impl impdef_abort::Handler for Guest {
    fn handle(&self, _far: usize, _esr: u64, may_sleep: bool) -> bool {
        self.impdef_abort(may_sleep)
    }
}
