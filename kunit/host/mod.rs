// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the engine's logic that needs no VM.

use kernel::{fmt, prelude::*};

/// What a case returns when a step it builds on comes out otherwise than
/// it expects: the case fails, and the log says how, which the returned
/// error alone would not.
fn unexpected(what: fmt::Arguments<'_>) -> Error {
    pr_err!("unexpected: {what}\n");
    EINVAL
}

#[kunit_tests(kvm_arm64_apf_ctrl)]
mod ctrl {
    use super::unexpected;
    use crate::ctrl::{Ctrl, Env, Fault, Refused, ADDR_MASK, EL1, ENABLE};
    use kernel::error::Result;

    /// A VM whose RAM is `[base, base + size)`.
    struct Vm {
        offered: bool,
        base: u64,
        size: u64,
    }

    impl Env for Vm {
        fn offered(&self) -> bool {
            self.offered
        }

        fn is_ram(&self, gpa: u64, len: u64) -> bool {
            let page = |a: u64| a >> 12;
            gpa >= self.base
                && gpa + len <= self.base + self.size
                && page(gpa) == page(gpa + len - 1)
        }
    }

    const VM: Vm = Vm {
        offered: true,
        base: 0x8000_0000,
        size: 0x10_0000,
    };

    /// `val` as the register takes it on `VM`; a refusal fails the test.
    fn parse(val: u64) -> Result<Ctrl> {
        Ctrl::parse(val, &VM).map_err(|e| unexpected(format_args!("{val:#x} refused: {e:?}")))
    }

    #[test]
    fn zero_disables() -> Result {
        assert_eq!(Ctrl::parse(0, &VM), Ok(Ctrl::DISABLED));
        assert!(!Ctrl::DISABLED.enabled());
        assert_eq!(Ctrl::DISABLED.value(), 0);
        Ok(())
    }

    #[test]
    fn valid_values_read_back() -> Result {
        for val in [
            0x8000_0000 | ENABLE,
            0x8000_0040 | ENABLE | EL1,
            0x800f_ffc0 | ENABLE,
        ] {
            let ctrl = parse(val)?;
            assert_eq!(ctrl.value(), val);
            assert!(ctrl.enabled());
            assert_eq!(ctrl.block(), val & ADDR_MASK);
        }
        Ok(())
    }

    #[test]
    fn reserved_bits_refused() -> Result {
        let base = 0x8000_0000 | ENABLE;
        for bit in (2..6).chain(52..64) {
            assert_eq!(Ctrl::parse(base | 1 << bit, &VM), Err(Refused::Reserved));
        }
        // A misaligned block sets one of the RES0 bits [5:2].
        assert_eq!(
            Ctrl::parse(0x8000_0004 | ENABLE, &VM),
            Err(Refused::Reserved)
        );
        Ok(())
    }

    #[test]
    fn stray_bits_without_enable_refused() -> Result {
        assert_eq!(Ctrl::parse(0x8000_0000, &VM), Err(Refused::Stray));
        assert_eq!(Ctrl::parse(EL1, &VM), Err(Refused::Stray));
        Ok(())
    }

    #[test]
    fn hidden_feature_refused() -> Result {
        let vm = Vm {
            offered: false,
            ..VM
        };
        assert_eq!(
            Ctrl::parse(0x8000_0000 | ENABLE, &vm),
            Err(Refused::NotOffered)
        );
        assert_eq!(Ctrl::parse(0, &vm), Ok(Ctrl::DISABLED));
        Ok(())
    }

    #[test]
    fn block_outside_ram_refused() -> Result {
        for gpa in [0, 0x7fff_ffc0, 0x8010_0000, ADDR_MASK] {
            assert_eq!(Ctrl::parse(gpa | ENABLE, &VM), Err(Refused::BadBlock));
        }
        Ok(())
    }

    #[test]
    fn el1_faults_only_when_asked() -> Result {
        let el0 = parse(0x8000_0000 | ENABLE)?;
        assert!(el0.wants(false));
        assert!(!el0.wants(true));
        let el1 = parse(0x8000_0000 | ENABLE | EL1)?;
        assert!(el1.wants(false));
        assert!(el1.wants(true));
        assert!(!Ctrl::DISABLED.wants(false));
        Ok(())
    }

    /// A data abort at EL0, in AArch64, with a valid FAR, interrupts
    /// unmasked: what the guest may be told of.
    fn signalled() -> Fault {
        Fault {
            offered: true,
            instruction: false,
            far_unknown: false,
            aarch32: false,
            el1: false,
            irqs_masked: false,
        }
    }

    /// Each fact alone keeps a fault from being signalled; with none, it is
    /// signalled where the guest asked, and the PPI's state is asked last.
    #[test]
    fn each_fact_alone_keeps_a_fault_unsignalled() -> Result {
        let el0 = parse(0x8000_0000 | ENABLE)?;
        let el1 = parse(0x8000_0000 | ENABLE | EL1)?;
        assert!(el0.signals(&signalled(), || false));
        assert!(!el0.signals(&signalled(), || true));
        assert!(!Ctrl::DISABLED.signals(&signalled(), || false));
        let facts: [fn(&mut Fault); 5] = [
            |f| f.offered = false,
            |f| f.instruction = true,
            |f| f.far_unknown = true,
            |f| f.aarch32 = true,
            |f| f.irqs_masked = true,
        ];
        // Each fact alone rules the fault out, without asking for the
        // PPI's state, which takes a lock.
        for set in facts {
            let mut f = signalled();
            set(&mut f);
            let mut asked = false;
            assert!(!el1.signals(&f, || {
                asked = true;
                false
            }));
            assert!(!asked);
        }
        let at_el1 = Fault {
            el1: true,
            ..signalled()
        };
        assert!(!el0.signals(&at_el1, || false));
        assert!(el1.signals(&at_el1, || false));
        // The lock is not taken for a fault the other facts rule out.
        let mut asked = false;
        assert!(!el0.signals(&at_el1, || {
            asked = true;
            false
        }));
        assert!(!asked);
        Ok(())
    }
}

#[kunit_tests(kvm_arm64_apf_pending)]
mod pending {
    use super::unexpected;
    use crate::pending::{Full, Page, Pending, MAX_PENDING, WAKE_ALL};
    use kernel::prelude::*;

    /// The page at `gfn`, read.
    fn read(gfn: u64) -> Page {
        Page { gfn, write: false }
    }

    /// Starts the fetch of `page`; a refusal fails the test.
    fn start(p: &mut Pending, page: Page) -> Result<u32> {
        p.start(page)
            .map_err(|e| unexpected(format_args!("{page:?} refused: {e:?}")))
    }

    /// Fills every slot with gfns 0.., returning the tokens.
    fn fill(p: &mut Pending) -> Result<KVec<u32>> {
        let mut tokens = KVec::new();
        for gfn in 0..MAX_PENDING as u64 {
            tokens.push(start(p, read(gfn))?, GFP_KERNEL)?;
        }
        Ok(tokens)
    }

    #[test]
    fn tokens_are_unique_and_non_zero() -> Result {
        let mut p = Pending::new();
        let tokens = fill(&mut p)?;
        for (i, t) in tokens.iter().enumerate() {
            assert!(*t != 0);
            assert!(!tokens[i + 1..].contains(t));
        }
        Ok(())
    }

    #[test]
    fn limit_then_slot_reused() -> Result {
        let mut p = Pending::new();
        let tokens = fill(&mut p)?;
        assert_eq!(p.start(read(1000)), Err(Full::Limit));

        assert!(p.complete(tokens[3]));
        assert_eq!(p.start(read(1000)), Err(Full::Limit));
        assert!(p.delivered(tokens[3]));
        let t = start(&mut p, read(1000))?;
        assert!(!tokens.iter().any(|old| *old == t && *old != tokens[3]));
        Ok(())
    }

    #[test]
    fn duplicate_page_not_queued_twice() -> Result {
        let mut p = Pending::new();
        let t = start(&mut p, read(42))?;
        assert_eq!(p.start(read(42)), Err(Full::Duplicate));
        assert!(p.complete(t));
        assert!(p.delivered(t));
        assert!(p.start(read(42)).is_ok());
        Ok(())
    }

    #[test]
    fn ready_in_completion_order() -> Result {
        let mut p = Pending::new();
        let a = start(&mut p, read(1))?;
        let b = start(&mut p, read(2))?;
        let c = start(&mut p, read(3))?;
        assert_eq!(p.next_ready(), None);
        assert!(p.complete(c));
        assert!(p.complete(a));
        assert_eq!(p.next_ready(), Some((c, read(3))));
        assert!(p.delivered(c));
        assert_eq!(p.next_ready(), Some((a, read(1))));
        assert!(p.delivered(a));
        assert_eq!(p.next_ready(), None);
        assert!(p.complete(b));
        assert_eq!(p.next_ready(), Some((b, read(2))));
        Ok(())
    }

    #[test]
    fn ready_page_is_the_one_that_faulted() -> Result {
        let mut p = Pending::new();
        let written = Page {
            gfn: 0x12345,
            write: true,
        };
        let t = start(&mut p, written)?;
        // The same frame read is the same page for the duplicate check.
        assert_eq!(p.start(read(0x12345)), Err(Full::Duplicate));
        assert!(p.complete(t));
        assert_eq!(p.next_ready(), Some((t, written)));
        Ok(())
    }

    #[test]
    fn each_token_completes_and_is_delivered_once() -> Result {
        let mut p = Pending::new();
        let t = start(&mut p, read(7))?;
        assert!(!p.delivered(t));
        assert!(p.complete(t));
        assert!(!p.complete(t));
        assert!(p.delivered(t));
        assert!(!p.delivered(t));
        assert!(!p.complete(0));
        assert!(!p.delivered(0));
        Ok(())
    }

    #[test]
    fn cancel_frees_the_slot() -> Result {
        let mut p = Pending::new();
        let tokens = fill(&mut p)?;
        p.cancel(tokens[0]);
        assert!(!p.complete(tokens[0]));
        assert!(p.start(read(1000)).is_ok());
        Ok(())
    }

    #[test]
    fn clear_orphans_fetches_in_flight() -> Result {
        let mut p = Pending::new();
        let tokens = fill(&mut p)?;
        assert!(p.complete(tokens[0]));
        p.clear();
        assert_eq!(p.next_ready(), None);

        // The fetches still in flight keep their slots: the limit holds
        // across disable and enable.
        assert!(p.start(read(1000)).is_ok());
        assert_eq!(p.start(read(1001)), Err(Full::Limit));

        // Finishing an orphaned fetch frees its slot without a PAGE_READY.
        assert!(!p.complete(tokens[1]));
        assert_eq!(p.next_ready(), None);
        assert!(p.start(read(1002)).is_ok());
        Ok(())
    }

    #[test]
    fn wrap_skips_zero_and_tokens_in_use() -> Result {
        let mut p = Pending::new();
        let first = start(&mut p, read(0))?;
        assert_eq!(first, 1);
        p.skip_tokens_to(u32::MAX - 2);
        assert_eq!(p.start(read(1)), Ok(u32::MAX - 1));
        // The wake-all's token and 0 are never a page's, and 1 is still
        // in flight.
        assert_eq!(WAKE_ALL, u32::MAX);
        assert_eq!(p.start(read(2)), Ok(2));
        Ok(())
    }

    /// What the engine reads to tell the guest that another PAGE_READY
    /// waits behind the one it delivers.
    #[test]
    fn ready_counts_pages_not_yet_signalled() -> Result {
        let mut p = Pending::new();
        let tokens = fill(&mut p)?;
        assert_eq!(p.ready(), 0);
        assert!(p.complete(tokens[2]));
        assert!(p.complete(tokens[0]));
        assert_eq!(p.ready(), 2);
        assert!(p.delivered(tokens[2]));
        assert_eq!(p.ready(), 1);
        p.clear();
        assert_eq!(p.ready(), 0);
        Ok(())
    }
}

/// The engine's protocol with a guest: PAGE_NOT_PRESENT, the fetch,
/// PAGE_READY and its acknowledgment, the wake-all, and what the host and
/// the guest race on.  The guest is a control block in a [`Guest`], which
/// also records what the engine asks of KVM.
#[kunit_tests(kvm_arm64_apf_engine)]
mod engine {
    use core::{
        cell::{Cell, RefCell},
        mem::offset_of,
    };
    use kernel::{bindings, bindings::kvm_arm_apf_block as Block, prelude::*, sync::Arc};

    use super::unexpected;
    use crate::{
        ctrl::{Env, Fault, ENABLE},
        engine::{FetchReq, Kick, Outcome, VcpuApf, VcpuEnv},
        pending::{MAX_PENDING, WAKE_ALL},
    };

    /// The control block's IPA.
    const BLOCK: u64 = 0x8000_0000;
    const REASON: u64 = BLOCK + offset_of!(Block, reason) as u64;
    const TOKEN: u64 = BLOCK + offset_of!(Block, token) as u64;
    const READY: u64 = BLOCK + offset_of!(Block, ready_token) as u64;
    const MORE: u64 = BLOCK + offset_of!(Block, more_ready) as u64;
    const NOT_PRESENT: u32 = bindings::KVM_ARM_APF_PAGE_NOT_PRESENT;
    /// More fetches than any test starts.
    const FETCHES: usize = MAX_PENDING + 1;
    const PAGE: u64 = bindings::PAGE_SIZE as u64;

    /// The IPA of guest page `n`, which faults: not the block's.
    const fn page(n: u64) -> u64 {
        0x4000_0000 + n * PAGE
    }

    /// The token of the fault at `ipa` that came to `outcome`, which must
    /// be `Queued`.
    fn queued(ipa: u64, outcome: Outcome) -> Result<u32> {
        match outcome {
            Outcome::Queued(token) => Ok(token),
            other => Err(unexpected(format_args!(
                "a fault at {ipa:#x} came to {other:?}"
            ))),
        }
    }

    /// Counts the times a fetch asked the vCPU to deliver.
    #[derive(Default)]
    struct Kicks(Cell<u32>);

    impl Kick for Kicks {
        fn kick(&self) {
            self.0.set(self.0.get() + 1);
        }
    }

    type Apf = VcpuApf<Kicks>;

    /// What happens on the host while the engine writes the block.
    #[derive(Clone, Copy)]
    enum Race {
        /// The fetch of this token finishes.
        Fetched(u32),
        /// The VMM removes the block's memory.
        BlockGone,
        /// The memslots hook sees the block's memory gone, and it is back.
        BlockFlickers,
    }

    /// A guest whose memory is its control block, and the KVM the engine
    /// talks to.
    struct Guest {
        block: RefCell<[u32; 16]>,
        present: Cell<bool>,
        masked: Cell<bool>,
        irq_fails: Cell<bool>,
        alloc_fails: Cell<bool>,
        race: Cell<Option<Race>>,
        apf: Arc<Apf>,
        irqs: Cell<u32>,
        requests: Cell<u32>,
        mapped: RefCell<KVec<(u64, bool)>>,
        fetches: RefCell<KVec<FetchReq>>,
    }

    impl Guest {
        fn new() -> Result<(Guest, Arc<Apf>)> {
            let apf = Apf::new(Kicks::default())?;
            let g = Guest {
                block: RefCell::new([0; 16]),
                present: Cell::new(true),
                masked: Cell::new(false),
                irq_fails: Cell::new(false),
                alloc_fails: Cell::new(false),
                race: Cell::new(None),
                apf: apf.clone(),
                irqs: Cell::new(0),
                requests: Cell::new(0),
                mapped: RefCell::new(KVec::with_capacity(FETCHES, GFP_KERNEL)?),
                fetches: RefCell::new(KVec::with_capacity(FETCHES, GFP_KERNEL)?),
            };
            Ok((g, apf))
        }

        /// A guest that enabled the feature and took the wake-all its
        /// enable is owed.
        fn enabled() -> Result<(Guest, Arc<Apf>)> {
            let (g, apf) = Guest::new()?;
            apf.set_ctrl(&g, BLOCK | ENABLE)
                .map_err(|e| unexpected(format_args!("enabling refused: {e:?}")))?;
            let delivered = apf.deliver_ready(&g);
            if delivered != WAKE_ALL {
                return Err(unexpected(format_args!(
                    "the enable's wake-all delivered {delivered:#x}"
                )));
            }
            let read = g.take_ready(&apf);
            if read != WAKE_ALL {
                return Err(unexpected(format_args!(
                    "the guest read {read:#x} for the enable's wake-all"
                )));
            }
            Ok((g, apf))
        }

        fn word(&self, gpa: u64) -> u32 {
            self.block.borrow()[((gpa - BLOCK) / 4) as usize]
        }

        fn set_word(&self, gpa: u64, val: u32) {
            self.block.borrow_mut()[((gpa - BLOCK) / 4) as usize] = val;
        }

        /// The guest takes PAGE_READY: clears `ready` and acknowledges.
        fn take_ready(&self, apf: &Apf) -> u32 {
            let token = self.word(READY);
            self.set_word(READY, 0);
            apf.ack(self);
            token
        }

        /// The page at `ipa` faults and is signalled; the guest consumes
        /// the signal.  Returns its token.
        fn fault(&self, ipa: u64) -> Result<u32> {
            let token = queued(ipa, self.queue(ipa))?;
            let (reason, read) = (self.word(REASON), self.word(TOKEN));
            if reason != NOT_PRESENT || read != token {
                return Err(unexpected(format_args!(
                    "a fault at {ipa:#x}, token {token}, left reason {reason}, token {read}"
                )));
            }
            self.set_word(REASON, 0);
            Ok(token)
        }

        /// The page at `ipa` faults and its fetch finishes: its PAGE_READY
        /// is owed.  Returns its token.
        fn ready_page(&self, ipa: u64) -> Result<u32> {
            let token = self.fault(ipa)?;
            self.apf.fetched(token);
            Ok(token)
        }

        /// The page at `ipa` faults on a read.
        fn queue(&self, ipa: u64) -> Outcome {
            self.apf.as_arc_borrow().queue(self, ipa, 0x1000, false, 0)
        }

        fn kicks(apf: &Apf) -> u32 {
            apf.vcpu().0.get()
        }

        fn in_block(&self, gpa: u64) -> Result {
            if self.present.get() && (BLOCK..BLOCK + 64).contains(&gpa) {
                Ok(())
            } else {
                Err(EFAULT)
            }
        }
    }

    impl Env for Guest {
        fn offered(&self) -> bool {
            true
        }

        fn is_ram(&self, gpa: u64, len: u64) -> bool {
            self.present.get() && gpa == BLOCK && len <= 64
        }
    }

    impl VcpuEnv for Guest {
        type Kept = Kicks;
        type Fetch = FetchReq;

        fn read_u32(&self, gpa: u64) -> Result<u32> {
            self.in_block(gpa)?;
            Ok(self.word(gpa))
        }

        fn write_u32(&self, gpa: u64, val: u32) -> Result {
            match self.race.take() {
                Some(Race::Fetched(token)) => self.apf.fetched(token),
                Some(Race::BlockGone) => self.present.set(false),
                Some(Race::BlockFlickers) => self.apf.memslots_changed(BLOCK | ENABLE, false),
                None => {}
            }
            self.in_block(gpa)?;
            self.set_word(gpa, val);
            Ok(())
        }

        fn ready_masked(&self) -> bool {
            self.masked.get()
        }

        fn request_ready(&self) {
            self.requests.set(self.requests.get() + 1);
        }

        fn map_present(&self, ipa: u64, write: bool) -> Result {
            self.mapped.borrow_mut().push((ipa, write), GFP_KERNEL)?;
            Ok(())
        }

        fn signal_ready(&self) -> Result {
            if self.irq_fails.get() {
                return Err(EBUSY);
            }
            self.irqs.set(self.irqs.get() + 1);
            Ok(())
        }

        fn new_fetch(&self, _apf: Arc<Apf>, req: FetchReq) -> Result<FetchReq> {
            if self.alloc_fails.get() {
                return Err(ENOMEM);
            }
            Ok(req)
        }

        fn start_fetch(&self, fetch: FetchReq) {
            // Within the capacity reserved in `Guest::new()`: cannot fail.
            let _ = self.fetches.borrow_mut().push(fetch, GFP_KERNEL);
        }
    }

    #[test]
    fn enable_owes_a_wake_all_first() -> Result {
        let (g, apf) = Guest::new()?;
        assert_eq!(apf.set_ctrl(&g, BLOCK | ENABLE), Ok(()));
        assert_eq!(g.requests.get(), 1);
        // No fault is signalled before the guest had its wake-all.
        assert_eq!(g.queue(page(0)), Outcome::Busy);
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        assert_eq!(g.word(READY), WAKE_ALL);
        assert_eq!(g.irqs.get(), 1);
        assert!(g.mapped.borrow().is_empty());
        assert_eq!(g.take_ready(&apf), WAKE_ALL);
        // Nothing else is owed.
        assert_eq!(g.requests.get(), 1);
        assert_eq!(apf.deliver_ready(&g), 0);
        Ok(())
    }

    #[test]
    fn fault_is_fetched_mapped_and_signalled_ready() -> Result {
        let (g, apf) = Guest::enabled()?;
        let ipa = page(1) + 0x234;
        let token = queued(ipa, apf.as_arc_borrow().queue(&g, ipa, 0xabc000, true, 3))?;
        assert_eq!(g.word(REASON), NOT_PRESENT);
        assert_eq!(g.word(TOKEN), token);
        {
            let fetches = g.fetches.borrow();
            assert_eq!(fetches.len(), 1);
            let f = &fetches[0];
            assert_eq!(
                (f.hva, f.write, f.over_high, f.token),
                (0xabc000, true, 3, token)
            );
        }
        // Nothing is ready until the fetch is done.
        assert_eq!(apf.deliver_ready(&g), 0);
        apf.fetched(token);
        assert_eq!(Guest::kicks(&apf), 1);
        let irqs = g.irqs.get();
        assert_eq!(apf.deliver_ready(&g), token);
        assert_eq!(g.word(READY), token);
        assert_eq!(g.word(MORE), 0);
        assert_eq!(g.irqs.get(), irqs + 1);
        // The page is mapped before the guest retries, for the same access.
        assert_eq!(&g.mapped.borrow()[..], &[(page(1), true)]);
        assert_eq!(g.take_ready(&apf), token);
        assert_eq!(apf.deliver_ready(&g), 0);
        Ok(())
    }

    #[test]
    fn not_present_waits_for_the_guest_to_consume_the_last() -> Result {
        let (g, _) = Guest::enabled()?;
        let q = |ipa| g.queue(ipa);
        assert!(matches!(q(page(0)), Outcome::Queued(_)));
        assert_eq!(q(page(1)), Outcome::Busy);
        g.set_word(REASON, 0);
        assert!(matches!(q(page(1)), Outcome::Queued(_)));
        g.set_word(REASON, 0);
        // The same page again is not fetched twice.
        assert_eq!(q(page(1)), Outcome::Duplicate);
        assert_eq!(g.fetches.borrow().len(), 2);
        Ok(())
    }

    #[test]
    fn ready_behind_an_unconsumed_ready_is_announced_by_more() -> Result {
        let (g, apf) = Guest::enabled()?;
        let a = g.fault(page(0))?;
        let b = g.fault(page(1))?;
        apf.fetched(a);
        apf.fetched(b);
        assert_eq!(apf.deliver_ready(&g), a);
        assert_eq!(g.word(MORE), 1);
        // The guest has not taken `a`: `b` waits, and says so again.
        g.set_word(MORE, 0);
        assert_eq!(apf.deliver_ready(&g), 0);
        assert_eq!(g.word(READY), a);
        assert_eq!(g.word(MORE), 1);
        let requests = g.requests.get();
        assert_eq!(g.take_ready(&apf), a);
        assert_eq!(g.requests.get(), requests + 1);
        assert_eq!(apf.deliver_ready(&g), b);
        assert_eq!(g.word(MORE), 0);
        Ok(())
    }

    /// A fetch that finishes while PAGE_READY of another is written is
    /// neither lost nor delivered over it.
    #[test]
    fn fetch_done_during_a_delivery_is_not_lost() -> Result {
        let (g, apf) = Guest::enabled()?;
        let a = g.fault(page(0))?;
        let b = g.fault(page(1))?;
        apf.fetched(a);
        let kicks = Guest::kicks(&apf);
        g.race.set(Some(Race::Fetched(b)));
        assert_eq!(apf.deliver_ready(&g), a);
        // It asked for a delivery, which finds `a` not taken yet.
        assert_eq!(Guest::kicks(&apf), kicks + 1);
        assert_eq!(apf.deliver_ready(&g), 0);
        assert_eq!(g.word(MORE), 1);
        assert_eq!(g.take_ready(&apf), a);
        assert_eq!(apf.deliver_ready(&g), b);
        Ok(())
    }

    /// The block's memory goes away: the guest is owed a wake-all for the
    /// signals it lost, delivered once the memory is back.
    #[test]
    fn lost_block_owes_a_wake_all() -> Result {
        let (g, apf) = Guest::enabled()?;
        g.ready_page(page(0))?;
        g.present.set(false);
        assert_eq!(apf.deliver_ready(&g), 0);
        // While the block is gone, no fault is signalled.
        assert_eq!(g.queue(page(1)), Outcome::Busy);
        g.present.set(true);
        let kicks = Guest::kicks(&apf);
        apf.memslots_changed(BLOCK | ENABLE, true);
        assert_eq!(Guest::kicks(&apf), kicks + 1);
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        assert_eq!(g.take_ready(&apf), WAKE_ALL);
        // `a` was forgotten: the wake-all woke its waiter.
        assert_eq!(apf.deliver_ready(&g), 0);
        Ok(())
    }

    /// The block goes between the check that the guest consumed the last
    /// PAGE_NOT_PRESENT and the write of the next: the fault is resolved
    /// synchronously, its slot freed (the wake-all that is owed forgets
    /// slots, but keeps those of fetches in flight, and there is none), and
    /// a wake-all owed.
    #[test]
    fn block_gone_while_not_present_is_written() -> Result {
        let (g, apf) = Guest::enabled()?;
        g.race.set(Some(Race::BlockGone));
        assert_eq!(g.queue(page(0)), Outcome::Error);
        assert!(g.fetches.borrow().is_empty());
        g.present.set(true);
        apf.memslots_changed(BLOCK | ENABLE, true);
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        g.take_ready(&apf);
        // Every slot is free: as many pages as the limit fault, the one
        // that could not be signalled among them, and then no more.
        for n in 0..MAX_PENDING as u64 {
            g.fault(page(n))?;
        }
        assert_eq!(g.queue(page(MAX_PENDING as u64)), Outcome::Limit);
        Ok(())
    }

    /// A wake-all owed again while one is written stays owed after it.
    #[test]
    fn wake_all_owed_during_its_delivery_stays_owed() -> Result {
        let (g, apf) = Guest::enabled()?;
        g.ready_page(page(0))?;
        g.present.set(false);
        assert_eq!(apf.deliver_ready(&g), 0);
        g.present.set(true);
        g.race.set(Some(Race::BlockFlickers));
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        let requests = g.requests.get();
        assert_eq!(g.take_ready(&apf), WAKE_ALL);
        assert_eq!(g.requests.get(), requests + 1);
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        Ok(())
    }

    /// Without its interrupt the guest would never look at `ready`.
    #[test]
    fn signal_without_its_interrupt_stays_owed() -> Result {
        let (g, apf) = Guest::enabled()?;
        let a = g.ready_page(page(0))?;
        g.irq_fails.set(true);
        assert_eq!(apf.deliver_ready(&g), 0);
        assert_eq!(g.word(READY), 0);
        g.irq_fails.set(false);
        assert_eq!(apf.deliver_ready(&g), a);
        Ok(())
    }

    #[test]
    fn allocation_failure_signals_nothing() -> Result {
        let (g, _) = Guest::enabled()?;
        g.alloc_fails.set(true);
        assert_eq!(g.queue(page(0)), Outcome::Error);
        assert_eq!(g.word(REASON), 0);
        g.alloc_fails.set(false);
        // The page's token was given back.
        g.fault(page(0))?;
        Ok(())
    }

    /// A guest that disables the feature, and a vCPU being destroyed,
    /// forget what was in flight; a fetch that finishes later is ignored.
    #[test]
    fn disable_and_detach_forget_fetches_in_flight() -> Result {
        let (g, apf) = Guest::enabled()?;
        let a = g.fault(page(0))?;
        assert_eq!(apf.set_ctrl(&g, 0), Ok(()));
        apf.fetched(a);
        assert_eq!(apf.deliver_ready(&g), 0);

        let (g, apf) = Guest::enabled()?;
        let a = g.fault(page(0))?;
        let kicks = Guest::kicks(&apf);
        apf.detach();
        apf.fetched(a);
        assert_eq!(Guest::kicks(&apf), kicks);
        assert_eq!(apf.ctrl(), 0);
        assert_eq!(apf.deliver_ready(&g), 0);
        Ok(())
    }

    /// A VMM writing back the value it read loses nothing; restoring
    /// another value drops what was pending and owes a wake-all.
    #[test]
    fn restore_of_the_same_value_keeps_pending_pages() -> Result {
        let (g, apf) = Guest::enabled()?;
        let a = g.ready_page(page(0))?;
        assert_eq!(apf.restore_ctrl(&g, BLOCK | ENABLE), Ok(()));
        assert_eq!(apf.deliver_ready(&g), a);
        g.take_ready(&apf);

        g.ready_page(page(1))?;
        assert_eq!(
            apf.restore_ctrl(&g, BLOCK | ENABLE | crate::ctrl::EL1),
            Ok(())
        );
        assert_eq!(apf.deliver_ready(&g), WAKE_ALL);
        g.take_ready(&apf);
        assert_eq!(apf.deliver_ready(&g), 0);
        Ok(())
    }

    /// A fault in a context that cannot take PAGE_READY is not signalled.
    #[test]
    fn masked_page_ready_keeps_faults_synchronous() -> Result {
        let (g, apf) = Guest::enabled()?;
        let fault = Fault {
            offered: true,
            instruction: false,
            far_unknown: false,
            aarch32: false,
            el1: false,
            irqs_masked: false,
        };
        assert!(apf.wants(&g, &fault));
        g.masked.set(true);
        assert!(!apf.wants(&g, &fault));
        Ok(())
    }
}
