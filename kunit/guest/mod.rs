// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the guest's logic that needs no host: the control block
//! as the host writes it, and the waiters.

use kernel::prelude::*;

#[kunit_tests(kvm_arm64_apf_guest)]
mod waiters {
    use crate::block::{Block, PAGE_NOT_PRESENT, WAKE_ALL};
    use crate::waiters::{Parked, Ready, Waiters, SLOTS};
    use kernel::prelude::*;

    fn enabled() -> Waiters {
        let mut w = Waiters::new();
        w.enable();
        w
    }

    /// The slot of a context that `parked` says waits; one that does not
    /// fails the test, saying what became of it.
    fn slot(parked: Parked) -> Result<usize> {
        match parked {
            Parked::Wait(slot) => Ok(slot),
            other => {
                pr_err!("unexpected: PAGE_NOT_PRESENT came to {other:?}\n");
                Err(EINVAL)
            }
        }
    }

    /// Parks a context that sleeps on `token`, as the abort handler does;
    /// one that is not parked fails the test.
    fn park(w: &mut Waiters, b: &Block, token: u32) -> Result<usize> {
        b.host_not_present(token);
        slot(w.not_present(b, true))
    }

    /// Signals PAGE_READY with `token`, with nothing queued behind it;
    /// returns what it came to and how many acknowledgements were written.
    fn ready(w: &mut Waiters, b: &Block, token: u32) -> (Ready, u32) {
        let mut acks = 0;
        b.host_ready(token, false);
        let r = w.ready(b, || acks += 1);
        (r, acks)
    }

    #[test]
    fn ready_wakes_exactly_its_waiter() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        let s1 = park(&mut w, &b, 11)?;
        let s2 = park(&mut w, &b, 22)?;
        assert!(s1 != s2);
        // The abort handler consumed the reason.
        assert_eq!(b.reason(), 0);
        assert_eq!(ready(&mut w, &b, 22), (Ready::Wake(s2), 0));
        assert!(w.woken(s2));
        assert!(!w.woken(s1));
        assert_eq!(w.sleepers(), 1);
        w.release(s2);
        assert_eq!(ready(&mut w, &b, 11), (Ready::Wake(s1), 0));
        w.release(s1);
        assert_eq!(w.sleepers(), 0);
        Ok(())
    }

    #[test]
    fn ready_before_the_waiter_sleeps() -> Result {
        // The PAGE_READY comes between parking and sleeping, and the CPU
        // takes another fault before the first context looks: the woken
        // slot is not reused, so that context still finds it woken, and
        // the second context's PAGE_READY wakes only that context.
        let (mut w, b) = (enabled(), Block::new()?);
        let s = park(&mut w, &b, 5)?;
        assert_eq!(ready(&mut w, &b, 5), (Ready::Wake(s), 0));
        let t = park(&mut w, &b, 6)?;
        assert!(s != t);
        assert!(w.woken(s));
        assert!(!w.woken(t));
        assert_eq!(w.sleepers(), 1);
        assert_eq!(ready(&mut w, &b, 6), (Ready::Wake(t), 0));
        assert!(w.woken(s) && w.woken(t));
        w.release(s);
        w.release(t);
        assert_eq!(w.sleepers(), 0);
        Ok(())
    }

    #[test]
    fn ready_before_not_present_is_consumed() -> Result {
        // The PAGE_READY comes before the abort handler read the block:
        // the PAGE_NOT_PRESENT is dropped and the handler retries.
        let (mut w, b) = (enabled(), Block::new()?);
        b.host_not_present(9);
        assert_eq!(ready(&mut w, &b, 9), (Ready::Consumed, 0));
        assert_eq!(b.reason(), 0);
        assert_eq!(w.not_present(&b, true), Parked::Retry);
        let s = w.stats();
        assert_eq!((s.not_present, s.ready, s.ready_first), (1, 1, 1));
        assert!(w.drained(&b));
        Ok(())
    }

    #[test]
    fn every_ready_is_consumed_once() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        // No signal in the block: a spurious interrupt, nothing to ack.
        let mut acks = 0;
        assert_eq!(w.ready(&b, || acks += 1), Ready::Nothing);
        // A PAGE_READY nobody waits for is still consumed.
        assert_eq!(ready(&mut w, &b, 77), (Ready::Consumed, 0));
        // Consumed once.
        assert_eq!(w.ready(&b, || acks += 1), Ready::Nothing);
        assert_eq!(acks, 0);
        assert_eq!(w.stats().ready, 1);
        Ok(())
    }

    #[test]
    fn acknowledged_only_when_the_host_holds_more() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        let s = park(&mut w, &b, 3)?;
        let mut acks = 0;
        b.host_ready(3, true);
        assert_eq!(w.ready(&b, || acks += 1), Ready::Wake(s));
        assert_eq!(acks, 1);
        // The host delivered the one it held, with nothing behind it.
        b.host_ready(4, false);
        assert_eq!(w.ready(&b, || acks += 1), Ready::Consumed);
        assert_eq!(acks, 1);
        let st = w.stats();
        assert_eq!((st.ready, st.acks), (2, 1));
        Ok(())
    }

    #[test]
    fn spurious_abort_retries() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        assert_eq!(w.not_present(&b, true), Parked::Retry);
        assert_eq!(w.stats().spurious, 1);
        // A disabled CPU parks nobody.
        let mut off = Waiters::new();
        b.host_not_present(3);
        assert_eq!(off.not_present(&b, true), Parked::Retry);
        Ok(())
    }

    #[test]
    fn an_abort_nobody_signalled_is_reported() -> Result {
        // On a CPU that takes no signals, an abort with nothing in the
        // block is not the host's: retrying it would loop forever.
        let (mut off, b) = (Waiters::new(), Block::new()?);
        assert_eq!(off.not_present(&b, true), Parked::Unhandled);
        // Unless a signal was dropped before its abort got here: that one
        // abort retries, the next is reported.
        let (mut w, b) = (enabled(), Block::new()?);
        b.host_not_present(8);
        assert_eq!(ready(&mut w, &b, 8), (Ready::Consumed, 0));
        w.disable();
        assert_eq!(w.not_present(&b, true), Parked::Retry);
        assert_eq!(w.not_present(&b, true), Parked::Unhandled);
        Ok(())
    }

    #[test]
    fn wake_all_wakes_every_waiter_and_drops_the_unconsumed() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        let s1 = park(&mut w, &b, 1)?;
        let s2 = park(&mut w, &b, 2)?;
        // A PAGE_NOT_PRESENT of the host before, not consumed yet.
        b.host_not_present(3);
        assert_eq!(
            ready(&mut w, &b, WAKE_ALL),
            (Ready::WakeAll((1 << s1) | (1 << s2)), 0)
        );
        assert!(w.woken(s1) && w.woken(s2));
        assert_eq!(b.reason(), 0);
        // Its abort finds nothing and retries; nothing is owed any more.
        assert_eq!(w.not_present(&b, true), Parked::Retry);
        assert!(w.drained(&b));
        assert!(w.enabled());
        let st = w.stats();
        assert_eq!((st.wake_alls, st.woken_by_wake_all, st.ready), (1, 2, 0));
        w.release(s1);
        w.release(s2);
        // The CPU still takes signals.
        let s = park(&mut w, &b, 4)?;
        assert_eq!(ready(&mut w, &b, 4), (Ready::Wake(s), 0));
        Ok(())
    }

    #[test]
    fn a_host_that_forgot_owes_nothing() -> Result {
        // The VMM restored the vCPU without its register: what the source
        // owed will never come.
        let (mut w, b) = (enabled(), Block::new()?);
        let s1 = park(&mut w, &b, 1)?;
        let s2 = park(&mut w, &b, 2)?;
        assert_eq!(w.host_forgot(), (1 << s1) | (1 << s2));
        assert!(w.woken(s1) && w.woken(s2));
        assert!(w.enabled());
        w.release(s1);
        w.release(s2);
        w.drain(&b);
        assert!(w.drained(&b));
        let st = w.stats();
        assert_eq!(
            (st.host_forgot, st.woken_by_wake_all, st.wake_alls),
            (1, 2, 0)
        );
        Ok(())
    }

    #[test]
    fn disable_wakes_every_waiter() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        let s1 = park(&mut w, &b, 1)?;
        let s2 = park(&mut w, &b, 2)?;
        let woken = w.disable();
        assert_eq!(woken, (1 << s1) | (1 << s2));
        assert!(w.woken(s1) && w.woken(s2));
        assert!(!w.enabled());
        assert_eq!(w.stats().woken_by_disable, 2);
        Ok(())
    }

    #[test]
    fn a_polling_waiter_is_not_woken() -> Result {
        // A context that cannot sleep polls its slot: its PAGE_READY, or
        // disabling the CPU, marks the slot woken but asks for no wakeup.
        let (mut w, b) = (enabled(), Block::new()?);
        b.host_not_present(6);
        let p = slot(w.not_present(&b, false))?;
        assert_eq!(ready(&mut w, &b, 6), (Ready::Consumed, 0));
        assert!(w.woken(p));
        w.release(p);
        b.host_not_present(7);
        let p = slot(w.not_present(&b, false))?;
        let s = park(&mut w, &b, 8)?;
        assert_eq!(w.disable(), 1 << s);
        assert!(w.woken(p) && w.woken(s));
        let st = w.stats();
        assert_eq!(
            (st.sleeps, st.lowpower_waits, st.woken_by_disable),
            (1, 2, 2)
        );
        Ok(())
    }

    #[test]
    fn full_table_retries() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        for token in 1..=SLOTS as u32 {
            park(&mut w, &b, token)?;
        }
        b.host_not_present(1000);
        assert_eq!(w.not_present(&b, true), Parked::Retry);
        assert_eq!(w.stats().overflow, 1);
        // Its PAGE_READY finds no waiter and is still consumed.
        assert_eq!(ready(&mut w, &b, 1000), (Ready::Consumed, 0));
        Ok(())
    }

    #[test]
    fn drain_fences_and_counts_what_is_owed() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        let s = park(&mut w, &b, 4)?;
        w.drain(&b);
        // The fence stops new PAGE_NOT_PRESENT.
        assert!(b.reason() != 0);
        assert!(b.reason() != PAGE_NOT_PRESENT);
        // One PAGE_READY is owed.
        assert!(!w.drained(&b));
        assert_eq!(ready(&mut w, &b, 4), (Ready::Wake(s), 0));
        w.release(s);
        assert!(w.drained(&b));
        // The fence stays up.
        assert!(b.reason() != 0);
        Ok(())
    }

    #[test]
    fn consuming_while_draining_keeps_the_fence() -> Result {
        let (mut w, b) = (enabled(), Block::new()?);
        b.host_not_present(8);
        w.drain(&b);
        // An unconsumed signal stays.
        assert_eq!(b.reason(), PAGE_NOT_PRESENT);
        let s = slot(w.not_present(&b, true))?;
        assert!(b.reason() != 0);
        assert!(b.reason() != PAGE_NOT_PRESENT);
        assert_eq!(ready(&mut w, &b, 8), (Ready::Wake(s), 0));
        Ok(())
    }
}
