// SPDX-License-Identifier: GPL-2.0

//! The control block through which the host signals one CPU.
//!
//! The host writes the block while the CPU runs, so every field is an
//! atomic word; the values are little-endian, as the ABI says.  A block
//! is only read and written by the CPU it belongs to, with interrupts
//! off, or by the host while that CPU is out of the guest.

use kernel::bindings;
use kernel::sync::atomic::{Atomic, Full, Relaxed};

/// `reason` of a PAGE_NOT_PRESENT not yet consumed.
pub(crate) const PAGE_NOT_PRESENT: u32 = bindings::KVM_ARM_APF_PAGE_NOT_PRESENT;

/// `ready` of a wake-all: every context waiting on this CPU may go on.
pub(crate) const WAKE_ALL: u32 = bindings::KVM_ARM_APF_WAKE_ALL;

/// `reason` while draining: any other non-zero value makes the host
/// resolve faults synchronously but still deliver PAGE_READY.
const FENCE: u32 = u32::MAX;

/// `struct kvm_arm_apf_block` of the uapi, in atomic words, 64-byte
/// aligned: its layout is checked against the uapi's below.
#[repr(C, align(64))]
pub(crate) struct Block {
    reason: Atomic<i32>,
    token: Atomic<i32>,
    ready: Atomic<i32>,
    more: Atomic<i32>,
    reserved: [Atomic<i32>; 12],
}

/// Whether field `$ours` of [`Block`] starts where `$uapi` starts in
/// `struct kvm_arm_apf_block`: with the same order and the same total size,
/// every field then has the uapi's offset and size.
macro_rules! same_offset {
    ($ours:ident, $uapi:ident) => {
        core::mem::offset_of!(Block, $ours)
            == core::mem::offset_of!(bindings::kvm_arm_apf_block, $uapi)
    };
}

const _: () = assert!(
    core::mem::size_of::<Block>() == core::mem::size_of::<bindings::kvm_arm_apf_block>()
        && same_offset!(reason, reason)
        && same_offset!(token, token)
        && same_offset!(ready, ready_token)
        && same_offset!(more, more_ready)
        && same_offset!(reserved, reserved)
);

fn load(word: &Atomic<i32>) -> u32 {
    u32::from_le(word.load(Relaxed) as u32)
}

fn store(word: &Atomic<i32>, v: u32) {
    word.store(v.to_le() as i32, Relaxed)
}

impl Block {
    /// A block with no signal in it.
    pub(crate) const fn new() -> Self {
        Self {
            reason: Atomic::new(0),
            token: Atomic::new(0),
            ready: Atomic::new(0),
            more: Atomic::new(0),
            reserved: [const { Atomic::new(0) }; 12],
        }
    }

    /// Clears every field, before the block is handed to the host.
    pub(crate) fn reset(&self) {
        for word in [&self.reason, &self.token, &self.ready, &self.more] {
            store(word, 0);
        }
        for word in &self.reserved {
            store(word, 0);
        }
    }

    /// The value `reason` goes back to once a signal is consumed.
    fn idle_reason(draining: bool) -> u32 {
        if draining {
            FENCE
        } else {
            0
        }
    }

    /// Consumes the PAGE_NOT_PRESENT in the block, if there is one, and
    /// returns its token.
    pub(crate) fn take_not_present(&self, draining: bool) -> Option<u32> {
        if load(&self.reason) != PAGE_NOT_PRESENT {
            return None;
        }
        let token = load(&self.token);
        store(&self.reason, Self::idle_reason(draining));
        Some(token)
    }

    /// Consumes the PAGE_READY in the block, if there is one, and returns
    /// its token and whether the host wants it acknowledged: it holds
    /// another one, which found this one unconsumed.
    pub(crate) fn take_ready(&self) -> Option<(u32, bool)> {
        // Fully ordered, so that `more` is read only once `ready` is
        // clear: if the host, which writes the block while this CPU is out
        // of the guest, saw `ready` still taken, `more` is set by now; if
        // it saw it clear, it signals its page itself.
        match u32::from_le(self.ready.xchg(0, Full) as u32) {
            0 => None,
            token => Some((token, load(&self.more) != 0)),
        }
    }

    /// Drops the PAGE_NOT_PRESENT with `token` if it is still in the block:
    /// its page is ready before anyone consumed it, so whoever took the
    /// abort finds nothing to wait for and retries.  Returns whether it
    /// was there.
    pub(crate) fn drop_unconsumed(&self, token: u32, draining: bool) -> bool {
        if load(&self.reason) != PAGE_NOT_PRESENT || load(&self.token) != token {
            return false;
        }
        store(&self.reason, Self::idle_reason(draining));
        true
    }

    /// Drops the PAGE_NOT_PRESENT in the block, whatever its token: a
    /// wake-all says the host no longer owes it a PAGE_READY.  Returns
    /// whether there was one.
    pub(crate) fn drop_any_unconsumed(&self, draining: bool) -> bool {
        if load(&self.reason) != PAGE_NOT_PRESENT {
            return false;
        }
        store(&self.reason, Self::idle_reason(draining));
        true
    }

    /// Whether a PAGE_NOT_PRESENT waits to be consumed.
    pub(crate) fn unconsumed(&self) -> bool {
        load(&self.reason) == PAGE_NOT_PRESENT
    }

    /// Stops new PAGE_NOT_PRESENT signals, unless one waits to be consumed
    /// (whoever consumes it puts the fence up).
    pub(crate) fn fence(&self) {
        if load(&self.reason) == 0 {
            store(&self.reason, FENCE);
        }
    }

    /// Writes what the host would to signal PAGE_NOT_PRESENT with `token`.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn host_not_present(&self, token: u32) {
        store(&self.token, token);
        store(&self.reason, PAGE_NOT_PRESENT);
    }

    /// Writes what the host would to signal PAGE_READY with `token`,
    /// holding another one behind it if `more`.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn host_ready(&self, token: u32, more: bool) {
        store(&self.more, u32::from(more));
        store(&self.ready, token);
    }

    /// `reason`, as the host would read it.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn reason(&self) -> u32 {
        load(&self.reason)
    }
}
