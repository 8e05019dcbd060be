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
//! - [`guest`]: the per-CPU state and what each hook does with it,
//! - [`hyp`] and [`arch`]: SMCCC, the registers and the kernel's hooks,
//!   the only `unsafe` code.

use core::pin::Pin;
use kernel::debugfs::{Dir, Scope};
use kernel::prelude::*;

mod arch;
mod block;
mod guest;
mod hyp;
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
struct Running {
    // Dropped first: no hook may run once the state goes.
    _hooks: arch::Hooks,
    state: Pin<KBox<Scope<Guest>>>,
    _dir: Dir,
}

impl Running {
    fn start(intid: u32) -> Result<Self> {
        let dir = Dir::new(c"kvm_apf_guest");
        let state = KBox::pin_init(
            dir.scope(Guest::new(intid, true), c"state", |g, d| {
                d.read_callback_file(c"cpus", g, &|g: &Guest, f| g.show(f))
            }),
            GFP_KERNEL,
        )?;
        let hooks = arch::Hooks::install(&state)?;
        Ok(Self {
            _hooks: hooks,
            state,
            _dir: dir,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let drained = self.state.drain();
        let t = self.state.totals();
        pr_info!(
            "disabled{}: {} PAGE_NOT_PRESENT, {} PAGE_READY, {} sleeps, {} low-power waits, {} woken by disable, {} wake-all, {} woken by wake-all, {} times the host forgot\n",
            if drained { "" } else { " before the host delivered every PAGE_READY" },
            t.not_present,
            t.ready,
            t.sleeps,
            t.lowpower_waits,
            t.woken_by_disable,
            t.wake_alls,
            t.woken_by_wake_all,
            t.host_forgot
        );
    }
}

impl kernel::Module for KvmApfGuest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (intid, max_pending) = match hyp::discover() {
            hyp::Offer::NotKvm => {
                pr_info!("not running under KVM: nothing to do\n");
                return Ok(Self { _running: None });
            }
            hyp::Offer::Hidden => {
                pr_info!("the host does not offer asynchronous page faults\n");
                return Ok(Self { _running: None });
            }
            hyp::Offer::Offered { intid, max_pending } => (intid, max_pending),
        };
        if max_pending as usize > waiters::SLOTS {
            pr_err!(
                "the host lets {} pages wait per CPU, more than {}: not enabled\n",
                max_pending,
                waiters::SLOTS
            );
            return Err(EINVAL);
        }
        let running = Running::start(intid).inspect_err(|e| {
            pr_err!("could not enable asynchronous page faults: {:?}\n", e);
        })?;
        pr_info!(
            "asynchronous page faults enabled: PAGE_READY on INTID {} (through {}), {} pages per CPU\n",
            intid,
            running.state.firmware(),
            max_pending
        );
        Ok(Self {
            _running: Some(running),
        })
    }
}
