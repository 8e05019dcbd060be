// SPDX-License-Identifier: GPL-2.0

//! The pages one vCPU waits for, and their tokens.
//!
//! A slot is taken when a fault is queued and holds its token until the
//! guest has been told PAGE_READY.  The slots bound the work a vCPU can have
//! in flight: a fetch keeps its slot until it finishes, even when the guest
//! disables the feature meanwhile and will never hear of it.

#![forbid(unsafe_code)]

use kernel::bindings;

/// How many pages one vCPU may wait for at once.
pub(crate) const MAX_PENDING: usize = bindings::KVM_ARM_APF_MAX_PENDING as usize;

/// The token of a wake-all, reserved: no page has it.
pub(crate) const WAKE_ALL: u32 = bindings::KVM_ARM_APF_WAKE_ALL;

/// A page the guest waits for: its frame number, and whether the access
/// that faulted on it was a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) gfn: u64,
    pub(crate) write: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    /// Being fetched; the guest waits for the token.
    Fetching {
        token: u32,
        page: Page,
    },
    /// Being fetched, but the guest no longer waits: it disabled the feature.
    Orphan {
        token: u32,
    },
    /// Fetched; PAGE_READY not yet delivered.  `seq` orders delivery.
    Ready {
        token: u32,
        page: Page,
        seq: u64,
    },
}

impl Slot {
    fn token(self) -> Option<u32> {
        match self {
            Slot::Free => None,
            Slot::Fetching { token, .. } | Slot::Orphan { token } | Slot::Ready { token, .. } => {
                Some(token)
            }
        }
    }
}

/// Why a fault could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every slot is taken.
    Limit,
    /// The page is being fetched for this vCPU already.
    Duplicate,
}

/// The outstanding asynchronous faults of one vCPU.
pub(crate) struct Pending {
    slots: [Slot; MAX_PENDING],
    last_token: u32,
    completions: u64,
}

impl Pending {
    /// No fault outstanding.
    pub(crate) const fn new() -> Self {
        Pending {
            slots: [Slot::Free; MAX_PENDING],
            last_token: 0,
            completions: 0,
        }
    }

    /// Takes a slot for a fetch of `page` and returns its token: neither 0
    /// nor [`WAKE_ALL`], and not the token of any other slot.
    pub(crate) fn start(&mut self, page: Page) -> Result<u32, Full> {
        let mut free = None;
        for (i, slot) in self.slots.iter().enumerate() {
            match *slot {
                Slot::Fetching { page: p, .. } if p.gfn == page.gfn => return Err(Full::Duplicate),
                Slot::Free if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = free.ok_or(Full::Limit)?;
        let token = self.fresh_token();
        self.slots[i] = Slot::Fetching { token, page };
        Ok(token)
    }

    // At most `MAX_PENDING - 1` tokens are in use when this runs, so the
    // loop ends within `MAX_PENDING` steps.
    fn fresh_token(&mut self) -> u32 {
        loop {
            self.last_token = self.last_token.wrapping_add(1);
            let t = self.last_token;
            if t != 0 && t != WAKE_ALL && !self.slots.iter().any(|s| s.token() == Some(t)) {
                return t;
            }
        }
    }

    /// Gives back the slot of a fault that was not signalled after all.
    pub(crate) fn cancel(&mut self, token: u32) {
        if let Some(slot) = self.find(token) {
            *slot = Slot::Free;
        }
    }

    /// The fetch for `token` finished.  Returns whether the guest now has a
    /// PAGE_READY to be told.
    pub(crate) fn complete(&mut self, token: u32) -> bool {
        let seq = self.completions;
        let Some(slot) = self.find(token) else {
            return false;
        };
        match *slot {
            Slot::Fetching { page, .. } => {
                *slot = Slot::Ready { token, page, seq };
                self.completions += 1;
                true
            }
            Slot::Orphan { .. } => {
                *slot = Slot::Free;
                false
            }
            _ => false,
        }
    }

    /// The oldest fetched page not yet signalled, and its token.
    pub(crate) fn next_ready(&self) -> Option<(u32, Page)> {
        self.slots
            .iter()
            .filter_map(|s| match *s {
                Slot::Ready { token, page, seq } => Some((seq, token, page)),
                _ => None,
            })
            .min_by_key(|(seq, _, _)| *seq)
            .map(|(_, token, page)| (token, page))
    }

    /// How many fetched pages are not signalled yet.
    pub(crate) fn ready(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Ready { .. }))
            .count()
    }

    /// PAGE_READY for `token` was delivered: its slot is free again.
    pub(crate) fn delivered(&mut self, token: u32) -> bool {
        match self.find(token) {
            Some(slot) if matches!(*slot, Slot::Ready { .. }) => {
                *slot = Slot::Free;
                true
            }
            _ => false,
        }
    }

    /// The guest stopped listening, or was told to stop waiting (a
    /// wake-all): drop what it waits for.  Fetches in flight keep their
    /// slots until they finish.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            *slot = match *slot {
                Slot::Fetching { token, .. } | Slot::Orphan { token } => Slot::Orphan { token },
                Slot::Free | Slot::Ready { .. } => Slot::Free,
            };
        }
    }

    /// Makes `token` the last one handed out, to test wrapping.
    #[cfg(CONFIG_KVM_ARM64_ASYNC_PF_KUNIT_TEST)]
    pub(crate) fn skip_tokens_to(&mut self, token: u32) {
        self.last_token = token;
    }

    fn find(&mut self, token: u32) -> Option<&mut Slot> {
        if token == 0 {
            return None;
        }
        self.slots.iter_mut().find(|s| s.token() == Some(token))
    }
}
