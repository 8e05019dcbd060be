// SPDX-License-Identifier: GPL-2.0

//! Asynchronous page faults for KVM/arm64 guests: the guest side.
//!
//! Under a KVM host that offers asynchronous page faults, a task whose
//! page is still being brought in on the host is told so and sleeps while
//! another task runs, instead of stalling its whole vCPU; a context that
//! cannot sleep waits in the low-power state.  The ABI is described in
//! `Documentation/virt/kvm/arm/async-pf.rst`.
//!
//! - [`block`]: the per-CPU control block the host writes,
//! - [`waiters`]: the contexts that wait, keyed by token,
//! - [`guest`]: the per-CPU state and what each hook does with it.
//!
//! What the module needs from the CPU, the host and the kernel comes from
//! the `kernel` crate: `kernel::arm64` (SMCCC, the registers, the IMPDEF
//! abort hook), per-CPU interrupts, CPU hotplug, reboot notifiers and
//! cross-CPU calls.

use core::pin::Pin;
use kernel::arm64::{impdef_abort, kvm_apf, smccc};
use kernel::cpu::hotplug;
use kernel::debugfs::{Dir, Scope};
use kernel::pr_cont;
use kernel::prelude::*;
use kernel::reboot;
use kernel::sync::Arc;

mod block;
mod guest;
mod waiters;

#[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
mod tests;

use guest::Guest;

module! {
    type: KvmApfGuest,
    name: "kvm_apf_guest",
    authors: ["rust-kvm-apf developers"],
    description: "Asynchronous page faults for KVM/arm64 guests (guest)",
    license: "GPL",
}

/// The module: nothing, or the feature running.
struct KvmApfGuest {
    _running: Option<Running>,
}

/// The feature, on every online CPU.
///
/// The hooks are dropped in the order they are declared: CPU hotplug
/// first, which turns the feature off on every CPU and wakes its waiters,
/// then the reboot notifier, then the abort handler, whose removal waits
/// for every context in it.
struct Running {
    _cpuhp: hotplug::Registration<Guest>,
    _reboot: reboot::Registration<Guest>,
    _abort: impdef_abort::Registration<Guest>,
    state: Pin<KBox<Scope<Arc<Guest>>>>,
    _dir: Dir,
}

impl Running {
    fn start(module: &'static ThisModule, intid: u32) -> Result<Self> {
        let dir = Dir::new(c"kvm_apf_guest");
        let guest = Arc::new(Guest::new(module, intid, true)?, GFP_KERNEL)?;
        let state = KBox::pin_init(
            dir.scope(guest.clone(), c"state", |g, d| {
                d.read_callback_file(c"cpus", g, &|g: &Arc<Guest>, f| g.show(f))
            }),
            GFP_KERNEL,
        )?;
        // Whatever may take an abort is ready before CPU hotplug turns the
        // feature on.
        let abort = impdef_abort::Registration::new(guest.clone())?;
        let reboot = reboot::Registration::new(guest.clone())?;
        let cpuhp = hotplug::Registration::new(c"virt/kvm_apf_guest:online", guest)?;
        Ok(Self {
            _cpuhp: cpuhp,
            _reboot: reboot,
            _abort: abort,
            state,
            _dir: dir,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let drained = self.state.drain();
        let t = self.state.totals();
        let late = if drained {
            ""
        } else {
            " before the host delivered every PAGE_READY"
        };
        // One line, in two parts for the source's sake.
        pr_info!(
            "disabled{}: {} PAGE_NOT_PRESENT, {} PAGE_READY, {} sleeps, ",
            late,
            t.not_present,
            t.ready,
            t.sleeps
        );
        pr_cont!(
            "{} low-power waits, {} woken by disable, {} wake-all, {} woken by wake-all, ",
            t.lowpower_waits,
            t.woken_by_disable,
            t.wake_alls,
            t.woken_by_wake_all
        );
        pr_cont!("{} times the host forgot\n", t.host_forgot);
    }
}

impl kernel::Module for KvmApfGuest {
    fn init(module: &'static ThisModule) -> Result<Self> {
        if !smccc::under_kvm() {
            pr_info!("not running under KVM: nothing to do\n");
            return Ok(Self { _running: None });
        }
        let Some(kvm_apf::Offer { intid, max_pending }) = kvm_apf::offer() else {
            pr_info!("the host does not offer asynchronous page faults\n");
            return Ok(Self { _running: None });
        };
        if max_pending as usize > waiters::SLOTS {
            pr_err!(
                "the host lets {} pages wait per CPU, more than {}: not enabled\n",
                max_pending,
                waiters::SLOTS
            );
            return Err(EINVAL);
        }
        let running = Running::start(module, intid).inspect_err(|e| {
            pr_err!("could not enable asynchronous page faults: {:?}\n", e);
        })?;
        pr_info!(
            "asynchronous page faults enabled: PAGE_READY on INTID {} (through {}), ",
            intid,
            running.state.firmware()
        );
        pr_cont!("{} pages per CPU\n", max_pending);
        Ok(Self {
            _running: Some(running),
        })
    }
}
