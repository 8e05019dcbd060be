// SPDX-License-Identifier: GPL-2.0

//! The per-vCPU engine: queue a fault, fetch the page, deliver PAGE_READY.

use kernel::{
    bindings,
    mm::Mm,
    new_spinlock, new_work,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, SpinLock},
    workqueue::{self, Work, WorkItem},
};

use crate::{
    ctrl::{Ctrl, Refused},
    kvm::{self, Kicker, Vcpu},
    pending::{Full, Page, Pending},
};

/// Offsets of the fields of `struct kvm_arm_apf_block`.
const BLOCK_REASON: u64 = 0;
const BLOCK_TOKEN: u64 = 4;
const BLOCK_READY: u64 = 8;
const BLOCK_MORE: u64 = 12;

const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;

/// What became of a fault; the numbers are `enum kvm_apf_outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Queued(u32),
    Disabled,
    Busy,
    Limit,
    Duplicate,
    Error,
}

impl From<Full> for Outcome {
    fn from(f: Full) -> Self {
        match f {
            Full::Limit => Outcome::Limit,
            Full::Duplicate => Outcome::Duplicate,
        }
    }
}

struct State {
    ctrl: Ctrl,
    pending: Pending,
    /// `None` once the vCPU is being destroyed.
    kicker: Option<Kicker>,
}

/// The asynchronous page fault state of one vCPU, shared with the work
/// items that fetch its pages.
#[pin_data]
pub(crate) struct VcpuApf {
    #[pin]
    state: SpinLock<State>,
}

impl VcpuApf {
    /// The state of a new vCPU: disabled.
    pub(crate) fn new(vcpu: &Vcpu) -> Result<Arc<Self>> {
        // SAFETY: the kicker lives in `state` and `detach()` drops it, which
        // C calls before it frees the vCPU; work items reach it only under
        // the lock, so none uses it after that.
        let kicker = unsafe { vcpu.kicker() };
        Arc::pin_init(
            pin_init!(VcpuApf {
                state <- new_spinlock!(State {
                    ctrl: Ctrl::DISABLED,
                    pending: Pending::new(),
                    kicker: Some(kicker),
                }, "kvm_apf_vcpu"),
            }),
            GFP_KERNEL,
        )
    }

    /// The vCPU is going away: forget it.  Fetches in flight finish on
    /// their own and drop their references; none will look at the vCPU.
    pub(crate) fn detach(&self) {
        let mut s = self.state.lock();
        s.kicker = None;
        s.ctrl = Ctrl::DISABLED;
        s.pending.clear();
    }

    /// The control register.
    pub(crate) fn ctrl(&self) -> u64 {
        self.state.lock().ctrl.value()
    }

    /// Sets the control register as the guest does: a refused value
    /// disables the feature.  Disabling never touches guest memory, so a
    /// vCPU reset may call this with preemption disabled.
    pub(crate) fn set_ctrl(&self, vcpu: &Vcpu, val: u64) -> Result<(), Refused> {
        let parsed = Ctrl::parse(val, vcpu);
        self.apply(parsed.unwrap_or(Ctrl::DISABLED));
        parsed.map(|_| ())
    }

    /// Sets the control register as the VMM restores it: a refused value
    /// changes nothing.
    pub(crate) fn restore_ctrl(&self, vcpu: &Vcpu, val: u64) -> Result<(), Refused> {
        let ctrl = Ctrl::parse(val, vcpu)?;
        self.apply(ctrl);
        Ok(())
    }

    fn apply(&self, ctrl: Ctrl) {
        let mut s = self.state.lock();
        s.ctrl = ctrl;
        if !ctrl.enabled() {
            // A signal still pending at the vGIC is the guest's to
            // ignore: the ABI calls it spurious.
            s.pending.clear();
        }
    }

    /// Whether a fault taken at EL1 (`el1`) or EL0 could be signalled.
    pub(crate) fn wants(&self, el1: bool) -> bool {
        self.state.lock().ctrl.wants(el1)
    }

    /// Signals PAGE_NOT_PRESENT for the page at `ipa`, mapped at `hva` in
    /// the VMM, and queues its fetch, which also reclaims for the
    /// `over_high` pages the vCPU thread charged past `memory.high`.  On
    /// anything but `Queued` the caller resolves the fault synchronously,
    /// and keeps the reclaim.
    pub(crate) fn queue(
        self: ArcBorrow<'_, Self>,
        vcpu: &Vcpu,
        ipa: u64,
        hva: usize,
        write: bool,
        over_high: u32,
    ) -> Outcome {
        let ctrl = self.state.lock().ctrl;
        if !ctrl.enabled() {
            return Outcome::Disabled;
        }
        let block = ctrl.block();

        // The guest has not consumed the last PAGE_NOT_PRESENT yet.
        match vcpu.read_u32(block + BLOCK_REASON) {
            Ok(0) => {}
            Ok(_) => return Outcome::Busy,
            Err(_) => return Outcome::Error,
        }

        let page = Page {
            gfn: ipa >> PAGE_SHIFT,
            write,
        };
        let token = match self.state.lock().pending.start(page) {
            Ok(token) => token,
            Err(full) => return full.into(),
        };

        let apf: Arc<Self> = self.into();
        let fetch = Arc::pin_init(
            pin_init!(Fetch {
                work <- new_work!("kvm_apf::Fetch"),
                apf,
                mm: vcpu.mm(),
                hva,
                write,
                over_high,
                token,
            }),
            GFP_KERNEL_ACCOUNT,
        );
        let signalled = fetch.is_ok()
            && vcpu.write_u32(block + BLOCK_TOKEN, token).is_ok()
            && vcpu
                .write_u32(block + BLOCK_REASON, bindings::KVM_ARM_APF_PAGE_NOT_PRESENT)
                .is_ok();
        match fetch {
            Ok(fetch) if signalled => {
                // A fresh work item is never already queued.
                let _ = workqueue::system_dfl().enqueue(fetch);
                Outcome::Queued(token)
            }
            _ => {
                self.state.lock().pending.cancel(token);
                Outcome::Error
            }
        }
    }

    /// Called by a work item when the page for `token` is in.
    fn fetched(&self, token: u32) {
        let mut s = self.state.lock();
        if s.pending.complete(token) {
            if let Some(kicker) = &s.kicker {
                kicker.kick();
            }
        }
    }

    /// Delivers the oldest ready page if the guest can take it now.
    /// Returns its token, or 0 when nothing was delivered.
    pub(crate) fn deliver_ready(&self, vcpu: &Vcpu) -> u32 {
        let (ctrl, token, page, more) = {
            let s = self.state.lock();
            if !s.ctrl.enabled() {
                return 0;
            }
            match s.pending.next_ready() {
                Some((token, page)) => (s.ctrl, token, page, s.pending.ready() > 1),
                None => return 0,
            }
        };

        // The guest has not consumed the last PAGE_READY: have it
        // acknowledge that one, which asks again.
        let block = ctrl.block();
        match vcpu.read_u32(block + BLOCK_READY) {
            Ok(0) => {}
            Ok(_) => {
                let _ = vcpu.write_u32(block + BLOCK_MORE, 1);
                return 0;
            }
            Err(_) => return 0,
        }
        // A page fetched after the look above asks again, finds `ready`
        // taken and sets `more` then.
        if vcpu.write_u32(block + BLOCK_MORE, u32::from(more)).is_err()
            || vcpu.write_u32(block + BLOCK_READY, token).is_err()
        {
            return 0;
        }

        // The fetch brought the page into the VMM's memory, not into the
        // guest's stage 2: map it now, or the guest's retry faults once
        // more.  A page reclaimed again since is left to that retry.
        let _ = vcpu.map_present(page.gfn << PAGE_SHIFT, page.write);

        self.state.lock().pending.delivered(token);
        // This fails only if the VMM gave the PPI to another device since
        // the discovery call.  The token then stays in `ready` with no
        // interrupt, and the pages after it wait behind it until the
        // guest disables the feature.
        let _ = vcpu.signal_ready();
        token
    }

    /// The guest acknowledged a PAGE_READY: it asks for the next one.
    pub(crate) fn ack(&self, vcpu: &Vcpu) {
        let more = {
            let s = self.state.lock();
            s.ctrl.enabled() && s.pending.next_ready().is_some()
        };
        if more {
            vcpu.request_ready();
        }
    }
}

/// The fetch of one page, run by a work item.
#[pin_data]
struct Fetch {
    #[pin]
    work: Work<Fetch>,
    apf: Arc<VcpuApf>,
    mm: ARef<Mm>,
    hva: usize,
    write: bool,
    over_high: u32,
    token: u32,
}

kernel::impl_has_work! {
    impl HasWork<Self> for Fetch { self.work }
}

impl WorkItem for Fetch {
    type Pointer = Arc<Fetch>;

    fn run(this: Arc<Fetch>) {
        kvm::fault_in(&this.mm, this.hva, this.write, this.over_high);
        this.apf.fetched(this.token);
    }
}
