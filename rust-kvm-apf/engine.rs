// SPDX-License-Identifier: GPL-2.0

//! The per-vCPU engine: queue a fault, fetch the page, deliver PAGE_READY.
//!
//! The engine reaches its vCPU, guest memory and the fetch's worker only
//! through [`VcpuEnv`], which `kernel::kvm::Vcpu` implements in
//! [`crate::vcpu`], and the KUnit suite with a guest of its own.

#![forbid(unsafe_code)]

use kernel::{
    bindings, new_raw_spinlock_irq,
    prelude::*,
    sync::{Arc, ArcBorrow, RawSpinLockIrq},
};

use crate::{
    ctrl::{self, Ctrl, Fault, Refused},
    pending::{Full, Page, Pending, WAKE_ALL},
};

/// The offset of field `$f` of `struct kvm_arm_apf_block`, the uapi's.
macro_rules! block_offset {
    ($f:ident) => {
        core::mem::offset_of!(bindings::kvm_arm_apf_block, $f) as u64
    };
}
const BLOCK_REASON: u64 = block_offset!(reason);
const BLOCK_TOKEN: u64 = block_offset!(token);
const BLOCK_READY: u64 = block_offset!(ready_token);
const BLOCK_MORE: u64 = block_offset!(more_ready);

const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;

/// What the engine keeps of its vCPU beyond a call from KVM.
pub(crate) trait Kick {
    /// Asks the vCPU to deliver ready pages, waking it if it waits.  Called
    /// from any thread, under the engine's raw spinlock.
    fn kick(&self);
}

/// The page a fetch brings in, and the token its PAGE_READY will carry.
pub(crate) struct FetchReq {
    /// The page's address in the VMM.
    pub(crate) hva: usize,
    /// Whether the guest's access writes.
    pub(crate) write: bool,
    /// Pages the vCPU's thread charged past `memory.high`, for the fetch
    /// to reclaim.
    pub(crate) over_high: u32,
    /// The token of the PAGE_NOT_PRESENT.
    pub(crate) token: u32,
}

/// What the engine needs of its vCPU during a call from KVM, which comes
/// from the vCPU's thread or with `vcpu->mutex` held: the guest does not
/// run meanwhile.
pub(crate) trait VcpuEnv: ctrl::Env {
    /// What the engine keeps of the vCPU.
    type Kept: Kick;
    /// A fetch allocated but not started.
    type Fetch;

    /// Reads a little-endian word of guest memory.
    fn read_u32(&self, gpa: u64) -> Result<u32>;
    /// Writes a little-endian word of guest memory.
    fn write_u32(&self, gpa: u64, val: u32) -> Result;
    /// Whether the PAGE_READY PPI is disabled or below the guest's
    /// priority mask.
    fn ready_masked(&self) -> bool;
    /// Makes the vCPU deliver ready pages before it next enters the guest.
    fn request_ready(&self);
    /// Maps the page at `ipa` at stage 2 if it is in; never waits.
    fn map_present(&self, ipa: u64, write: bool) -> Result;
    /// Makes the PAGE_READY PPI pending.
    fn signal_ready(&self) -> Result;
    /// Allocates the fetch of `req`, which calls [`VcpuApf::fetched`] on
    /// `apf` once the page is in.
    fn new_fetch(&self, apf: Arc<VcpuApf<Self::Kept>>, req: FetchReq) -> Result<Self::Fetch>;
    /// Starts a fetch that [`VcpuEnv::new_fetch`] allocated.
    fn start_fetch(&self, fetch: Self::Fetch);
}

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
    /// A wake-all is owed: it goes before any PAGE_READY.  Set when an
    /// enable takes effect and when a signal could not be written to the
    /// control block, which drops what the guest waited for.
    wake_all: bool,
    /// Counts the wake-alls owed, so that a delivery does not settle one
    /// owed while it wrote the block (the memslots changed meanwhile).
    wake_all_seq: u64,
    /// Delivery was asked again once after the block was found lost,
    /// while the memslots said it was guest RAM: not again until a signal
    /// gets through, so that a block whose memory is gone for good does
    /// not keep the vCPU from waiting.
    lost_retried: bool,
    /// Cleared once the vCPU is being destroyed: nothing kicks it then.
    attached: bool,
}

impl State {
    /// The guest's waiters are all to be woken: what they wait for is
    /// forgotten, and a wake-all tells them.
    fn owe_wake_all(&mut self) {
        self.pending.clear();
        self.wake_all = true;
        self.wake_all_seq = self.wake_all_seq.wrapping_add(1);
    }
}

/// What [`VcpuApf::deliver_ready`] hands to the guest.
#[derive(Clone, Copy)]
enum Signal {
    WakeAll,
    Page(u32, Page),
}

impl Signal {
    fn token(self) -> u32 {
        match self {
            Signal::WakeAll => WAKE_ALL,
            Signal::Page(token, _) => token,
        }
    }
}

/// The asynchronous page fault state of one vCPU, shared with the work
/// items that fetch its pages.
///
/// The lock is a raw spinlock: a vCPU reset disables the feature with
/// preemption disabled, where a `spinlock_t` would sleep on PREEMPT_RT.
/// Nothing under it sleeps or touches guest memory.
#[pin_data]
pub(crate) struct VcpuApf<K> {
    /// Used by work items only while `attached`, under the lock.
    vcpu: K,
    #[pin]
    state: RawSpinLockIrq<State>,
}

impl<K: Kick> VcpuApf<K> {
    /// The state of a new vCPU, `vcpu`: disabled.  [`VcpuApf::detach`]
    /// must be called before the vCPU goes.
    pub(crate) fn new(vcpu: K) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(VcpuApf {
                vcpu,
                state <- new_raw_spinlock_irq!(State {
                    ctrl: Ctrl::DISABLED,
                    pending: Pending::new(),
                    wake_all: false,
                    wake_all_seq: 0,
                    lost_retried: false,
                    attached: true,
                }, "kvm_apf_vcpu"),
            }),
            GFP_KERNEL,
        )
    }

    /// The vCPU this state belongs to.
    pub(crate) fn vcpu(&self) -> &K {
        &self.vcpu
    }

    /// The vCPU is going away: forget it.  Fetches in flight finish on
    /// their own and drop their references; none will look at the vCPU.
    pub(crate) fn detach(&self) {
        let mut s = self.state.lock();
        s.attached = false;
        s.ctrl = Ctrl::DISABLED;
        s.wake_all = false;
        s.pending.clear();
    }

    /// The control register.
    pub(crate) fn ctrl(&self) -> u64 {
        self.state.lock().ctrl.value()
    }

    /// Sets the control register as the guest does: a refused value
    /// disables the feature.  Disabling never touches guest memory, so a
    /// vCPU reset may call this with preemption disabled.
    pub(crate) fn set_ctrl(&self, vcpu: &impl VcpuEnv<Kept = K>, val: u64) -> Result<(), Refused> {
        let parsed = Ctrl::parse(val, vcpu);
        self.apply(vcpu, parsed.unwrap_or(Ctrl::DISABLED));
        parsed.map(|_| ())
    }

    /// Sets the control register as the VMM restores it: a refused value
    /// changes nothing.  The value it already has changes nothing either:
    /// a VMM writes every register back after it merely looked at them
    /// (QEMU's monitor, a debugger), and nothing was lost then.
    pub(crate) fn restore_ctrl(
        &self,
        vcpu: &impl VcpuEnv<Kept = K>,
        val: u64,
    ) -> Result<(), Refused> {
        let ctrl = Ctrl::parse(val, vcpu)?;
        if self.state.lock().ctrl != ctrl {
            self.apply(vcpu, ctrl);
        }
        Ok(())
    }

    /// Makes `ctrl` the register's value.  Whatever the guest waited for
    /// is dropped.  An enable owes the guest a wake-all: after a restore,
    /// its contexts may wait on tokens of another host, which nothing here
    /// will ever signal; after its own write, nothing waits and the
    /// wake-all is a no-op.
    fn apply(&self, vcpu: &impl VcpuEnv<Kept = K>, ctrl: Ctrl) {
        let mut s = self.state.lock();
        s.ctrl = ctrl;
        s.lost_retried = false;
        if ctrl.enabled() {
            s.owe_wake_all();
        } else {
            // A signal still pending at the vGIC is the guest's to
            // ignore: the ABI calls it spurious.
            s.wake_all = false;
            s.pending.clear();
        }
        drop(s);
        if ctrl.enabled() {
            vcpu.request_ready();
        }
    }

    /// The VMM changed the memslots: `block_is_ram` says whether the
    /// control block of register value `ctrl` is writable guest RAM now.
    /// A block that went away loses every signal: the guest is owed a
    /// wake-all, delivered once the block is back.  A value the guest has
    /// changed since is left alone: its own write owes what is needed.
    pub(crate) fn memslots_changed(&self, ctrl: u64, block_is_ram: bool) {
        let mut s = self.state.lock();
        if !s.ctrl.enabled() || s.ctrl.value() != ctrl {
            return;
        }
        s.lost_retried = false;
        if !block_is_ram {
            s.owe_wake_all();
        } else if s.wake_all && s.attached {
            self.vcpu.kick();
        }
    }

    /// A signal could not be written to the control block: the guest may
    /// wait for what it never hears of.  Owe it a wake-all instead.  If
    /// the memslots already say the block is guest RAM again (they changed
    /// after the access failed, and after their hook looked), ask for
    /// delivery once more.
    fn block_lost(&self, vcpu: &impl VcpuEnv<Kept = K>) {
        let block = {
            let mut s = self.state.lock();
            if !s.ctrl.enabled() {
                return;
            }
            s.owe_wake_all();
            if s.lost_retried {
                return;
            }
            s.ctrl.block()
        };
        if vcpu.is_ram(block, ctrl::BLOCK_SIZE) {
            self.state.lock().lost_retried = true;
            vcpu.request_ready();
        }
    }

    /// Whether `fault` could be signalled (see [`Ctrl::signals`]).  Most
    /// faults are ruled out by their facts, before the lock.
    pub(crate) fn wants(&self, vcpu: &impl VcpuEnv<Kept = K>, fault: &Fault) -> bool {
        if !ctrl::fault_allows(fault) {
            return false;
        }
        let ctrl = self.state.lock().ctrl;
        ctrl.signals(fault, || vcpu.ready_masked())
    }

    /// Signals PAGE_NOT_PRESENT for the page at `ipa`, mapped at `hva` in
    /// the VMM, and queues its fetch, which also reclaims for the
    /// `over_high` pages the vCPU thread charged past `memory.high`.  On
    /// anything but `Queued` the caller resolves the fault synchronously,
    /// and keeps the reclaim.
    pub(crate) fn queue(
        self: ArcBorrow<'_, Self>,
        vcpu: &impl VcpuEnv<Kept = K>,
        ipa: u64,
        hva: usize,
        write: bool,
        over_high: u32,
    ) -> Outcome {
        let (ctrl, wake_all) = {
            let s = self.state.lock();
            (s.ctrl, s.wake_all)
        };
        if !ctrl.enabled() {
            return Outcome::Disabled;
        }
        // A token handed out now could be taken for one of the host the
        // VM was saved on, which the owed wake-all is to settle first.
        if wake_all {
            return Outcome::Busy;
        }
        let block = ctrl.block();

        // The guest has not consumed the last PAGE_NOT_PRESENT yet.
        match vcpu.read_u32(block + BLOCK_REASON) {
            Ok(0) => {}
            Ok(_) => return Outcome::Busy,
            Err(_) => {
                self.block_lost(vcpu);
                return Outcome::Error;
            }
        }

        let page = Page {
            gfn: ipa >> PAGE_SHIFT,
            write,
        };
        let token = match self.state.lock().pending.start(page) {
            Ok(token) => token,
            Err(full) => return full.into(),
        };

        let req = FetchReq {
            hva,
            write,
            over_high,
            token,
        };
        let fetch = vcpu.new_fetch(self.into(), req);
        let signalled = fetch.is_ok()
            && vcpu.write_u32(block + BLOCK_TOKEN, token).is_ok()
            && vcpu
                .write_u32(block + BLOCK_REASON, bindings::KVM_ARM_APF_PAGE_NOT_PRESENT)
                .is_ok();
        match fetch {
            Ok(fetch) if signalled => {
                vcpu.start_fetch(fetch);
                Outcome::Queued(token)
            }
            Ok(_) => {
                // The block went away between the reads and the writes.
                self.state.lock().pending.cancel(token);
                self.block_lost(vcpu);
                Outcome::Error
            }
            Err(_) => {
                self.state.lock().pending.cancel(token);
                Outcome::Error
            }
        }
    }

    /// Called by the fetch for `token` when its page is in.
    pub(crate) fn fetched(&self, token: u32) {
        let mut s = self.state.lock();
        if s.pending.complete(token) && s.attached {
            self.vcpu.kick();
        }
    }

    /// Delivers an owed wake-all, or else the oldest ready page, if the
    /// guest can take it now.  Returns its token, or 0 when nothing was
    /// delivered.
    ///
    /// A signal that cannot be delivered now stays owed: behind an
    /// unconsumed `ready`, until the guest acknowledges it; when the
    /// interrupt cannot be raised, until the next request.  One that could
    /// not be written to the block is replaced by a wake-all, delivered
    /// once the block is guest RAM again.
    pub(crate) fn deliver_ready(&self, vcpu: &impl VcpuEnv<Kept = K>) -> u32 {
        let (ctrl, signal, more, seq) = {
            let s = self.state.lock();
            if !s.ctrl.enabled() {
                return 0;
            }
            let seq = s.wake_all_seq;
            if s.wake_all {
                (s.ctrl, Signal::WakeAll, s.pending.ready() > 0, seq)
            } else {
                match s.pending.next_ready() {
                    Some((token, page)) => (
                        s.ctrl,
                        Signal::Page(token, page),
                        s.pending.ready() > 1,
                        seq,
                    ),
                    None => return 0,
                }
            }
        };

        // The guest has not consumed the last PAGE_READY: have it
        // acknowledge that one, which asks again.
        let block = ctrl.block();
        match vcpu.read_u32(block + BLOCK_READY) {
            Ok(0) => {}
            Ok(_) => {
                if vcpu.write_u32(block + BLOCK_MORE, 1).is_err() {
                    self.block_lost(vcpu);
                }
                return 0;
            }
            Err(_) => {
                self.block_lost(vcpu);
                return 0;
            }
        }
        // A page fetched after the look above asks again, finds `ready`
        // taken and sets `more` then.
        if vcpu.write_u32(block + BLOCK_MORE, u32::from(more)).is_err()
            || vcpu.write_u32(block + BLOCK_READY, signal.token()).is_err()
        {
            self.block_lost(vcpu);
            return 0;
        }

        // The fetch brought the page into the VMM's memory, not into the
        // guest's stage 2: map it now, or the guest's retry faults once
        // more.  A page reclaimed again since is left to that retry.
        if let Signal::Page(_, page) = signal {
            let _ = vcpu.map_present(page.gfn << PAGE_SHIFT, page.write);
        }

        // Without its interrupt the guest would not look at `ready`: take
        // the token back and keep the signal owed.  The vCPU's thread is
        // the only writer of the block while the guest is out, and this
        // guest CPU is out.
        if vcpu.signal_ready().is_err() {
            let _ = vcpu.write_u32(block + BLOCK_READY, 0);
            return 0;
        }

        let mut s = self.state.lock();
        s.lost_retried = false;
        match signal {
            Signal::WakeAll if s.wake_all_seq == seq => s.wake_all = false,
            Signal::WakeAll => {}
            Signal::Page(token, _) => {
                s.pending.delivered(token);
            }
        }
        signal.token()
    }

    /// The guest acknowledged a PAGE_READY: it asks for the next one.
    pub(crate) fn ack(&self, vcpu: &impl VcpuEnv<Kept = K>) {
        let more = {
            let s = self.state.lock();
            s.ctrl.enabled() && (s.wake_all || s.pending.next_ready().is_some())
        };
        if more {
            vcpu.request_ready();
        }
    }
}
