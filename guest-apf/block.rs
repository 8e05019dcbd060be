// SPDX-License-Identifier: GPL-2.0

//! The control block through which the host signals one CPU.
//!
//! The host writes the block while the CPU runs, so every field is an
//! atomic word; the values are little-endian, as the ABI says.  A block
//! is only read and written by the CPU it belongs to, with interrupts
//! off, or by the host while that CPU is out of the guest.

#![forbid(unsafe_code)]

use kernel::arm64::kvm_apf::ControlBlock;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Full, Relaxed};

/// `reason` of a PAGE_NOT_PRESENT not yet consumed.
pub(crate) use kernel::arm64::kvm_apf::PAGE_NOT_PRESENT;

/// `ready` of a wake-all: every context waiting on this CPU may go on.
pub(crate) use kernel::arm64::kvm_apf::WAKE_ALL;

/// `reason` while draining: any other non-zero value makes the host
/// resolve faults synchronously but still deliver PAGE_READY.
const FENCE: u32 = u32::MAX;

/// A CPU's control block, as the module reads and writes it.
pub(crate) struct Block(ControlBlock);

fn load(word: &Atomic<i32>) -> u32 {
    u32::from_le(word.load(Relaxed) as u32)
}

fn store(word: &Atomic<i32>, v: u32) {
    word.store(v.to_le() as i32, Relaxed)
}

impl Block {
    /// A block with no signal in it, registered nowhere.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(ControlBlock::new()?))
    }

    /// Hands the block to the host as this CPU's; returns whether it took
    /// it.  `el1` asks for faults taken in the kernel too.
    pub(crate) fn register_here(&self, el1: bool) -> bool {
        self.0.register_here(el1)
    }

    /// Whether the host holds the block as this CPU's.
    pub(crate) fn registered_here(&self, el1: bool) -> bool {
        self.0.registered_here(el1)
    }

    /// Clears every field, before the block is handed to the host.
    pub(crate) fn reset(&self) {
        let b = &self.0;
        for word in [&b.reason, &b.token, &b.ready_token, &b.more_ready] {
            store(word, 0);
        }
        for word in &b.reserved {
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
        if load(&self.0.reason) != PAGE_NOT_PRESENT {
            return None;
        }
        let token = load(&self.0.token);
        store(&self.0.reason, Self::idle_reason(draining));
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
        match u32::from_le(self.0.ready_token.xchg(0, Full) as u32) {
            0 => None,
            token => Some((token, load(&self.0.more_ready) != 0)),
        }
    }

    /// Drops the PAGE_NOT_PRESENT with `token` if it is still in the block:
    /// its page is ready before anyone consumed it, so whoever took the
    /// abort finds nothing to wait for and retries.  Returns whether it
    /// was there.
    pub(crate) fn drop_unconsumed(&self, token: u32, draining: bool) -> bool {
        if load(&self.0.reason) != PAGE_NOT_PRESENT || load(&self.0.token) != token {
            return false;
        }
        store(&self.0.reason, Self::idle_reason(draining));
        true
    }

    /// Drops the PAGE_NOT_PRESENT in the block, whatever its token: a
    /// wake-all says the host no longer owes it a PAGE_READY.  Returns
    /// whether there was one.
    pub(crate) fn drop_any_unconsumed(&self, draining: bool) -> bool {
        if load(&self.0.reason) != PAGE_NOT_PRESENT {
            return false;
        }
        store(&self.0.reason, Self::idle_reason(draining));
        true
    }

    /// Whether a PAGE_NOT_PRESENT waits to be consumed.
    pub(crate) fn unconsumed(&self) -> bool {
        load(&self.0.reason) == PAGE_NOT_PRESENT
    }

    /// Stops new PAGE_NOT_PRESENT signals, unless one waits to be consumed
    /// (whoever consumes it puts the fence up).
    pub(crate) fn fence(&self) {
        if load(&self.0.reason) == 0 {
            store(&self.0.reason, FENCE);
        }
    }

    /// Writes what the host would to signal PAGE_NOT_PRESENT with `token`.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn host_not_present(&self, token: u32) {
        store(&self.0.token, token);
        store(&self.0.reason, PAGE_NOT_PRESENT);
    }

    /// Writes what the host would to signal PAGE_READY with `token`,
    /// holding another one behind it if `more`.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn host_ready(&self, token: u32, more: bool) {
        store(&self.0.more_ready, u32::from(more));
        store(&self.0.ready_token, token);
    }

    /// `reason`, as the host would read it.
    #[cfg(CONFIG_KVM_ARM64_APF_GUEST_KUNIT_TEST)]
    pub(crate) fn reason(&self) -> u32 {
        load(&self.0.reason)
    }
}
