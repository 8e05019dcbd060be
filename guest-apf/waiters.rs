// SPDX-License-Identifier: GPL-2.0

//! The contexts of one CPU that wait for pages, keyed by token.
//!
//! A PAGE_NOT_PRESENT parks the faulting context in a slot under the
//! signal's token; the PAGE_READY with that token marks exactly that slot
//! woken, and says whether a context sleeps there to be woken (one that
//! cannot sleep polls its slot).  Both run on the CPU the block belongs
//! to with interrupts off, so a PAGE_READY cannot slip between consuming
//! a PAGE_NOT_PRESENT and parking; one that comes before the
//! PAGE_NOT_PRESENT is consumed drops it from the block, and the context
//! that took the abort retries.  A wake-all marks every slot woken: the
//! host owes none of them a PAGE_READY any more (the VM was restored or
//! migrated, or the host lost its signals), and their contexts retry.

#![forbid(unsafe_code)]

use crate::block::{Block, WAKE_ALL};

/// How many contexts of one CPU can wait at once.
pub(crate) const SLOTS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    Free,
    Waiting { token: u32, sleeps: bool },
    Woken,
}

/// What the signals of one CPU came to.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Stats {
    /// PAGE_NOT_PRESENT signals, consumed or dropped as already ready.
    pub(crate) not_present: u64,
    /// PAGE_READY signals.
    pub(crate) ready: u64,
    /// Acknowledgments: PAGE_READY signals the host held another one
    /// behind.
    pub(crate) acks: u64,
    /// Waits that slept, letting another task run.
    pub(crate) sleeps: u64,
    /// Waits in the low-power state, where the context could not sleep.
    pub(crate) lowpower_waits: u64,
    /// PAGE_READY signals that came before their PAGE_NOT_PRESENT was
    /// consumed.
    pub(crate) ready_first: u64,
    /// IMPDEF aborts with no PAGE_NOT_PRESENT in the block.
    pub(crate) spurious: u64,
    /// PAGE_NOT_PRESENT signals with no free slot: their context retried.
    pub(crate) overflow: u64,
    /// Waiters woken because the CPU stopped taking signals.
    pub(crate) woken_by_disable: u64,
    /// Wake-all signals.
    pub(crate) wake_alls: u64,
    /// Waiters woken by a wake-all, or because the host forgot the
    /// control block.
    pub(crate) woken_by_wake_all: u64,
    /// Times the host was found to have forgotten the control block: the
    /// VMM restored the vCPU without its register.
    pub(crate) host_forgot: u64,
}

/// What a PAGE_NOT_PRESENT abort comes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Parked {
    /// Nothing to wait for: return and retry the access.
    Retry,
    /// Wait until slot `.0` is woken, then release it.
    Wait(usize),
    /// Not a signal of the host's: report the abort as the fault it is.
    Unhandled,
}

impl core::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.not_present += o.not_present;
        self.ready += o.ready;
        self.acks += o.acks;
        self.sleeps += o.sleeps;
        self.lowpower_waits += o.lowpower_waits;
        self.ready_first += o.ready_first;
        self.spurious += o.spurious;
        self.overflow += o.overflow;
        self.woken_by_disable += o.woken_by_disable;
        self.wake_alls += o.wake_alls;
        self.woken_by_wake_all += o.woken_by_wake_all;
        self.host_forgot += o.host_forgot;
    }
}

/// What a PAGE_READY interrupt comes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ready {
    /// No signal in the block: a spurious interrupt.
    Nothing,
    /// A signal, consumed, that nobody sleeps on: no context is parked
    /// for it, or the one parked polls its slot.
    Consumed,
    /// A signal, consumed: wake the context sleeping in slot `.0`.
    Wake(usize),
    /// A wake-all, consumed: wake the contexts sleeping in the slots of
    /// bitmap `.0`.
    WakeAll(u64),
}

/// The waiters of one CPU, and whether it takes signals.
pub(crate) struct Waiters {
    slots: [Slot; SLOTS],
    enabled: bool,
    draining: bool,
    /// PAGE_NOT_PRESENT signals consumed whose PAGE_READY did not come yet.
    owed: u64,
    /// PAGE_NOT_PRESENT signals dropped from the block before anyone
    /// consumed them, whose aborts may still be on their way here.
    dropped: u64,
    stats: Stats,
}

impl Waiters {
    /// A CPU that takes no signals.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [Slot::Free; SLOTS],
            enabled: false,
            draining: false,
            owed: 0,
            dropped: 0,
            stats: Stats {
                not_present: 0,
                ready: 0,
                acks: 0,
                sleeps: 0,
                lowpower_waits: 0,
                ready_first: 0,
                spurious: 0,
                overflow: 0,
                woken_by_disable: 0,
                wake_alls: 0,
                woken_by_wake_all: 0,
                host_forgot: 0,
            },
        }
    }

    /// Starts taking signals afresh; what was owed before is forgotten
    /// (the host dropped it when the CPU was disabled).
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
        self.draining = false;
        self.owed = 0;
        self.dropped = 0;
    }

    /// Stops taking signals and marks every waiter woken.  Returns the
    /// slots of those that sleep, to be woken, as a bitmap.
    pub(crate) fn disable(&mut self) -> u64 {
        self.enabled = false;
        let (sleeping, woken) = self.wake_every_waiter();
        self.stats.woken_by_disable += woken;
        sleeping
    }

    /// The host no longer has this CPU's control block: nothing it owed
    /// will come.  Wakes every waiter, as a wake-all does, before the CPU
    /// registers again.  Returns the slots of those that sleep, as a
    /// bitmap.
    pub(crate) fn host_forgot(&mut self) -> u64 {
        self.stats.host_forgot += 1;
        self.owed = 0;
        let (sleeping, woken) = self.wake_every_waiter();
        self.stats.woken_by_wake_all += woken;
        sleeping
    }

    /// Marks every waiter woken.  Returns the slots of those that sleep,
    /// as a bitmap, and how many there were.
    fn wake_every_waiter(&mut self) -> (u64, u64) {
        let (mut sleeping, mut woken) = (0, 0);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Waiting { sleeps, .. } = *slot {
                *slot = Slot::Woken;
                if sleeps {
                    sleeping |= 1 << i;
                }
                woken += 1;
            }
        }
        (sleeping, woken)
    }

    /// Whether the CPU takes signals.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether new PAGE_NOT_PRESENT signals are stopped (`drain`).
    pub(crate) fn draining(&self) -> bool {
        self.draining
    }

    /// Stops new PAGE_NOT_PRESENT signals; PAGE_READY still comes.
    pub(crate) fn drain(&mut self, block: &Block) {
        self.draining = true;
        block.fence();
    }

    /// Whether the host owes this CPU nothing.
    pub(crate) fn drained(&self, block: &Block) -> bool {
        !self.enabled || (self.owed == 0 && !block.unconsumed())
    }

    /// The IMPDEF abort, on the CPU that owns `block`, interrupts off; its
    /// context will sleep (`sleeps`) or poll in the low-power state.
    ///
    /// An abort with no signal in the block is the host's only if one was
    /// dropped before it was consumed, or while the CPU takes signals (the
    /// context may have moved here from the CPU whose signal it was); on a
    /// CPU that never asked for signals it is reported, never retried.
    pub(crate) fn not_present(&mut self, block: &Block, sleeps: bool) -> Parked {
        let token = match block.take_not_present(self.draining) {
            Some(token) if self.enabled => token,
            Some(_) => {
                // Signalled before the CPU stopped taking signals: the
                // host resolves the retry synchronously now.
                self.stats.spurious += 1;
                return Parked::Retry;
            }
            None if self.enabled || self.dropped > 0 => {
                self.dropped = self.dropped.saturating_sub(1);
                self.stats.spurious += 1;
                return Parked::Retry;
            }
            None => return Parked::Unhandled,
        };
        self.stats.not_present += 1;
        self.owed += 1;
        match self.slots.iter().position(|s| *s == Slot::Free) {
            Some(i) => {
                self.slots[i] = Slot::Waiting { token, sleeps };
                if sleeps {
                    self.stats.sleeps += 1;
                } else {
                    self.stats.lowpower_waits += 1;
                }
                Parked::Wait(i)
            }
            None => {
                self.stats.overflow += 1;
                Parked::Retry
            }
        }
    }

    /// The PAGE_READY interrupt, on the CPU that owns `block`, interrupts
    /// off: consumes the signal, acknowledges it with `ack` if the host
    /// asks for that, and marks woken the slot waiting for its token.
    pub(crate) fn ready(&mut self, block: &Block, ack: impl FnOnce()) -> Ready {
        let Some((token, more)) = block.take_ready() else {
            return Ready::Nothing;
        };
        if more {
            ack();
            self.stats.acks += 1;
        }
        if token == WAKE_ALL {
            self.stats.wake_alls += 1;
            if block.drop_any_unconsumed(self.draining) {
                self.stats.not_present += 1;
                self.dropped += 1;
            }
            self.owed = 0;
            let (sleeping, woken) = self.wake_every_waiter();
            self.stats.woken_by_wake_all += woken;
            return Ready::WakeAll(sleeping);
        }
        self.stats.ready += 1;
        if block.drop_unconsumed(token, self.draining) {
            self.stats.not_present += 1;
            self.stats.ready_first += 1;
            self.dropped += 1;
            return Ready::Consumed;
        }
        self.owed = self.owed.saturating_sub(1);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match *slot {
                Slot::Waiting { token: t, sleeps } if t == token => {
                    *slot = Slot::Woken;
                    return if sleeps {
                        Ready::Wake(i)
                    } else {
                        Ready::Consumed
                    };
                }
                _ => {}
            }
        }
        Ready::Consumed
    }

    /// Whether the context parked in slot `i` may go on.
    pub(crate) fn woken(&self, i: usize) -> bool {
        self.slots[i] == Slot::Woken
    }

    /// Frees slot `i` once its context went on.
    pub(crate) fn release(&mut self, i: usize) {
        self.slots[i] = Slot::Free;
    }

    /// How many contexts wait now.
    pub(crate) fn sleepers(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Waiting { .. }))
            .count()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }
}
