// SPDX-License-Identifier: GPL-2.0

//! KVM/arm64 as the engine sees it: a vCPU, and its VM's address space.
//!
//! This is the only module that calls C.  The helpers it calls live in
//! `arch/arm64/kvm/async_pf.c` and are declared in `asm/kvm_apf.h`.

use core::ptr::NonNull;
use kernel::{
    bindings, error::to_result, mm::Mm, prelude::*, sync::aref::ARef, types::Opaque,
    workqueue::Queue,
};

use crate::ctrl;

/// A KVM vCPU.
///
/// # Invariants
///
/// A `&Vcpu` is only made for a `struct kvm_vcpu` that KVM keeps alive for
/// the reference's lifetime, by the vCPU's own thread or while KVM holds
/// `vcpu->mutex`, so the vCPU does not run guest code meanwhile.
#[repr(transparent)]
pub(crate) struct Vcpu(Opaque<bindings::kvm_vcpu>);

impl Vcpu {
    /// Wraps the vCPU that C handed to the engine.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a `struct kvm_vcpu` that stays alive for `'a`, and
    /// the caller must be the vCPU's thread or hold `vcpu->mutex` for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::kvm_vcpu) -> &'a Vcpu {
        // SAFETY: `Vcpu` is a transparent wrapper of `struct kvm_vcpu`, and
        // the caller guarantees the pointee outlives `'a`.
        unsafe { &*ptr.cast::<Vcpu>() }
    }

    fn as_raw(&self) -> *mut bindings::kvm_vcpu {
        self.0.get()
    }

    /// Reads a little-endian word of guest memory.
    pub(crate) fn read_u32(&self, gpa: u64) -> Result<u32> {
        let mut buf = [0u8; 4];
        // SAFETY: By the type invariant the vCPU is alive; `buf` is valid for
        // writes of `buf.len()` bytes for the whole call.
        to_result(unsafe {
            bindings::kvm_arm_apf_read_guest(self.as_raw(), gpa, buf.as_mut_ptr().cast(), buf.len())
        })?;
        Ok(u32::from_le_bytes(buf))
    }

    /// Writes a little-endian word of guest memory.
    pub(crate) fn write_u32(&self, gpa: u64, val: u32) -> Result {
        let buf = val.to_le_bytes();
        // SAFETY: By the type invariant the vCPU is alive; `buf` is valid for
        // reads of `buf.len()` bytes for the whole call.
        to_result(unsafe {
            bindings::kvm_arm_apf_write_guest(self.as_raw(), gpa, buf.as_ptr().cast(), buf.len())
        })
    }

    /// The address space of the VMM that created the VM, referenced.
    pub(crate) fn mm(&self) -> ARef<Mm> {
        // SAFETY: By the type invariant the vCPU is alive.
        let mm = unsafe { bindings::kvm_arm_apf_vcpu_mm(self.as_raw()) };
        // SAFETY: `kvm->mm` is set when the VM is created and KVM holds a
        // reference on it (mmgrab()) until the VM is destroyed, which cannot
        // happen while one of its vCPUs is alive; `ARef::from` takes our own
        // reference before that borrow ends.
        ARef::from(unsafe { Mm::from_raw(mm) })
    }

    /// The workqueue of the vCPU's VM, on which its pages are fetched.
    pub(crate) fn fetch_queue(&self) -> &Queue {
        // SAFETY: By the type invariant the vCPU is alive.
        let wq = unsafe { bindings::kvm_arm_apf_fetch_wq(self.as_raw()) };
        // SAFETY: KVM allocates the queue with the VM and destroys it only
        // once every vCPU is gone, so it outlives this borrow of one.
        unsafe { Queue::from_raw(wq) }
    }

    /// Maps the page at `ipa` at stage 2 if the VMM has it in memory, for
    /// an access that writes when `write`; never waits for the page.
    pub(crate) fn map_present(&self, ipa: u64, write: bool) -> Result {
        // SAFETY: By the type invariant the vCPU is alive and does not run
        // meanwhile, so the helper may stand in a fault for its last one;
        // the caller is the vCPU's thread or holds its mutex, so it runs in
        // the VMM's address space (KVM refuses vCPU ioctls from any other),
        // as the stage-2 fault path requires.
        to_result(unsafe { bindings::kvm_arm_apf_map_ready(self.as_raw(), ipa, write) })
    }

    /// Signals PAGE_READY: makes the vCPU's edge-triggered PPI pending.
    pub(crate) fn signal_ready(&self) -> Result {
        // SAFETY: By the type invariant the vCPU is alive.
        to_result(unsafe { bindings::kvm_arm_apf_signal_ready(self.as_raw()) })
    }

    /// Makes the vCPU look for ready pages before it next enters the guest.
    pub(crate) fn request_ready(&self) {
        // SAFETY: By the type invariant the vCPU is alive.
        unsafe { bindings::kvm_arm_apf_kick(self.as_raw()) }
    }

    /// A handle that can kick this vCPU from another thread.
    ///
    /// # Safety
    ///
    /// The caller must drop the handle, or stop using it, before KVM frees
    /// the vCPU.
    pub(crate) unsafe fn kicker(&self) -> Kicker {
        // INVARIANT: the caller promises the handle does not outlive the vCPU.
        Kicker(NonNull::from(self).cast())
    }
}

impl ctrl::Env for Vcpu {
    fn offered(&self) -> bool {
        // SAFETY: By the type invariant the vCPU is alive.
        unsafe { bindings::kvm_arm_apf_offered(self.as_raw()) }
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        // SAFETY: By the type invariant the vCPU is alive.
        unsafe { bindings::kvm_arm_apf_gpa_is_ram(self.as_raw(), gpa, len) }
    }
}

/// Kicks a vCPU from a work item, to tell it a page is ready.
///
/// # Invariants
///
/// The vCPU is alive for as long as the `Kicker` is.
pub(crate) struct Kicker(NonNull<bindings::kvm_vcpu>);

// SAFETY: `kvm_arm_apf_kick()` only sets request bits and wakes or IPIs the
// vCPU, which KVM allows from any thread and from atomic context.
unsafe impl Send for Kicker {}

impl Kicker {
    /// Asks the vCPU to deliver ready pages, waking it if it waits.
    pub(crate) fn kick(&self) {
        // SAFETY: By the type invariant the vCPU is alive.
        unsafe { bindings::kvm_arm_apf_kick(self.0.as_ptr()) }
    }
}

/// Brings in the page at `hva` of `mm`, waiting as long as that takes,
/// then reclaims what the fetch, and the `over_high` pages the vCPU thread
/// handed it, charged past the memory cgroup's `memory.high`.
pub(crate) fn fault_in(mm: &Mm, hva: usize, write: bool, over_high: u32) {
    // SAFETY: `mm` is a live `mm_struct`: the reference keeps it allocated,
    // and the helper pins the address space itself before using it.
    unsafe { bindings::kvm_arm_apf_fault_in(mm.as_raw(), hva, write, over_high) }
}
