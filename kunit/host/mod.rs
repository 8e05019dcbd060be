// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the engine's logic that needs no VM.

use kernel::prelude::*;

#[kunit_tests(kvm_arm64_apf_ctrl)]
mod ctrl {
    use crate::ctrl::{Ctrl, Env, Refused, ADDR_MASK, EL1, ENABLE};

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

    #[test]
    fn zero_disables() {
        assert_eq!(Ctrl::parse(0, &VM), Ok(Ctrl::DISABLED));
        assert!(!Ctrl::DISABLED.enabled());
        assert_eq!(Ctrl::DISABLED.value(), 0);
    }

    #[test]
    fn valid_values_read_back() {
        for val in [
            0x8000_0000 | ENABLE,
            0x8000_0040 | ENABLE | EL1,
            0x800f_ffc0 | ENABLE,
        ] {
            let ctrl = Ctrl::parse(val, &VM).unwrap();
            assert_eq!(ctrl.value(), val);
            assert!(ctrl.enabled());
            assert_eq!(ctrl.block(), val & ADDR_MASK);
        }
    }

    #[test]
    fn reserved_bits_refused() {
        let base = 0x8000_0000 | ENABLE;
        for bit in (2..6).chain(52..64) {
            assert_eq!(Ctrl::parse(base | 1 << bit, &VM), Err(Refused::Reserved));
        }
        // A misaligned block sets one of the RES0 bits [5:2].
        assert_eq!(
            Ctrl::parse(0x8000_0004 | ENABLE, &VM),
            Err(Refused::Reserved)
        );
    }

    #[test]
    fn stray_bits_without_enable_refused() {
        assert_eq!(Ctrl::parse(0x8000_0000, &VM), Err(Refused::Stray));
        assert_eq!(Ctrl::parse(EL1, &VM), Err(Refused::Stray));
    }

    #[test]
    fn hidden_feature_refused() {
        let vm = Vm {
            offered: false,
            ..VM
        };
        assert_eq!(
            Ctrl::parse(0x8000_0000 | ENABLE, &vm),
            Err(Refused::NotOffered)
        );
        assert_eq!(Ctrl::parse(0, &vm), Ok(Ctrl::DISABLED));
    }

    #[test]
    fn block_outside_ram_refused() {
        for gpa in [0, 0x7fff_ffc0, 0x8010_0000, ADDR_MASK] {
            assert_eq!(Ctrl::parse(gpa | ENABLE, &VM), Err(Refused::BadBlock));
        }
    }

    #[test]
    fn el1_faults_only_when_asked() {
        let el0 = Ctrl::parse(0x8000_0000 | ENABLE, &VM).unwrap();
        assert!(el0.wants(false));
        assert!(!el0.wants(true));
        let el1 = Ctrl::parse(0x8000_0000 | ENABLE | EL1, &VM).unwrap();
        assert!(el1.wants(false));
        assert!(el1.wants(true));
        assert!(!Ctrl::DISABLED.wants(false));
    }
}

#[kunit_tests(kvm_arm64_apf_pending)]
mod pending {
    use crate::pending::{Full, Page, Pending, MAX_PENDING, WAKE_ALL};
    use kernel::prelude::*;

    /// The page at `gfn`, read.
    fn read(gfn: u64) -> Page {
        Page { gfn, write: false }
    }

    /// Fills every slot with gfns 0.., returning the tokens.
    fn fill(p: &mut Pending) -> KVec<u32> {
        let mut tokens = KVec::new();
        for gfn in 0..MAX_PENDING as u64 {
            tokens
                .push(p.start(read(gfn)).unwrap(), GFP_KERNEL)
                .unwrap();
        }
        tokens
    }

    #[test]
    fn tokens_are_unique_and_non_zero() {
        let mut p = Pending::new();
        let tokens = fill(&mut p);
        for (i, t) in tokens.iter().enumerate() {
            assert_ne!(*t, 0);
            assert!(!tokens[i + 1..].contains(t));
        }
    }

    #[test]
    fn limit_then_slot_reused() {
        let mut p = Pending::new();
        let tokens = fill(&mut p);
        assert_eq!(p.start(read(1000)), Err(Full::Limit));

        assert!(p.complete(tokens[3]));
        assert_eq!(p.start(read(1000)), Err(Full::Limit));
        assert!(p.delivered(tokens[3]));
        let t = p.start(read(1000)).unwrap();
        assert!(!tokens.iter().any(|old| *old == t && *old != tokens[3]));
    }

    #[test]
    fn duplicate_page_not_queued_twice() {
        let mut p = Pending::new();
        let t = p.start(read(42)).unwrap();
        assert_eq!(p.start(read(42)), Err(Full::Duplicate));
        assert!(p.complete(t));
        assert!(p.delivered(t));
        assert!(p.start(read(42)).is_ok());
    }

    #[test]
    fn ready_in_completion_order() {
        let mut p = Pending::new();
        let a = p.start(read(1)).unwrap();
        let b = p.start(read(2)).unwrap();
        let c = p.start(read(3)).unwrap();
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
    }

    #[test]
    fn ready_page_is_the_one_that_faulted() {
        let mut p = Pending::new();
        let written = Page {
            gfn: 0x12345,
            write: true,
        };
        let t = p.start(written).unwrap();
        // The same frame read is the same page for the duplicate check.
        assert_eq!(p.start(read(0x12345)), Err(Full::Duplicate));
        assert!(p.complete(t));
        assert_eq!(p.next_ready(), Some((t, written)));
    }

    #[test]
    fn each_token_completes_and_is_delivered_once() {
        let mut p = Pending::new();
        let t = p.start(read(7)).unwrap();
        assert!(!p.delivered(t));
        assert!(p.complete(t));
        assert!(!p.complete(t));
        assert!(p.delivered(t));
        assert!(!p.delivered(t));
        assert!(!p.complete(0));
        assert!(!p.delivered(0));
    }

    #[test]
    fn cancel_frees_the_slot() {
        let mut p = Pending::new();
        let tokens = fill(&mut p);
        p.cancel(tokens[0]);
        assert!(!p.complete(tokens[0]));
        assert!(p.start(read(1000)).is_ok());
    }

    #[test]
    fn clear_orphans_fetches_in_flight() {
        let mut p = Pending::new();
        let tokens = fill(&mut p);
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
    }

    #[test]
    fn wrap_skips_zero_and_tokens_in_use() {
        let mut p = Pending::new();
        let first = p.start(read(0)).unwrap();
        assert_eq!(first, 1);
        p.skip_tokens_to(u32::MAX - 2);
        assert_eq!(p.start(read(1)), Ok(u32::MAX - 1));
        // The wake-all's token and 0 are never a page's, and 1 is still
        // in flight.
        assert_eq!(WAKE_ALL, u32::MAX);
        assert_eq!(p.start(read(2)), Ok(2));
    }

    /// What the engine reads to tell the guest that another PAGE_READY
    /// waits behind the one it delivers.
    #[test]
    fn ready_counts_pages_not_yet_signalled() {
        let mut p = Pending::new();
        let tokens = fill(&mut p);
        assert_eq!(p.ready(), 0);
        assert!(p.complete(tokens[2]));
        assert!(p.complete(tokens[0]));
        assert_eq!(p.ready(), 2);
        assert!(p.delivered(tokens[2]));
        assert_eq!(p.ready(), 1);
        p.clear();
        assert_eq!(p.ready(), 0);
    }
}
