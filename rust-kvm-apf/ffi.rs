// SPDX-License-Identifier: GPL-2.0

//! The functions KVM's C code calls, declared in `asm/kvm_apf.h`.
//!
//! A vCPU's engine state is an `Arc<VcpuApf<VcpuRef>>` that C holds as a
//! `struct kvm_apf_vcpu *`, from `kvm_apf_vcpu_create()` until
//! `kvm_apf_vcpu_destroy()`.  Each function turns it back into the
//! engine's types and calls safe code; the state knows its vCPU.

use kernel::{
    bindings::{self, kvm_apf_vcpu},
    kvm::{Vcpu, VcpuRef},
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
};

use crate::engine::{Outcome, VcpuApf};

/// The engine state of a KVM vCPU.
type Apf = VcpuApf<VcpuRef>;

/// The engine state `apf` stands for.
///
/// # Safety
///
/// `apf` must come from `kvm_apf_vcpu_create()` and not be passed to
/// `kvm_apf_vcpu_destroy()` for `'a`: the duration of a call from KVM.
unsafe fn engine<'a>(apf: *const kvm_apf_vcpu) -> ArcBorrow<'a, Apf> {
    // SAFETY: `apf` came from `into_foreign()` in `kvm_apf_vcpu_create()`,
    // and the reference it stands for is only given up by
    // `kvm_apf_vcpu_destroy()`, so it outlives the call.
    unsafe { <Arc<Apf> as ForeignOwnable>::borrow(apf.cast_mut().cast()) }
}

/// The engine state `apf` stands for, and its vCPU.
///
/// # Safety
///
/// As for `engine()`, and for `'a` the caller must be the vCPU's thread or
/// hold `vcpu->mutex`.
unsafe fn state<'a>(apf: *const kvm_apf_vcpu) -> (ArcBorrow<'a, Apf>, &'a Vcpu) {
    // SAFETY: As the caller guarantees.
    let apf = unsafe { engine(apf) };
    // SAFETY: KVM destroys the state before it frees the vCPU, so the vCPU
    // is alive for the call too, and the caller owns it as `Vcpu` requires.
    let vcpu = unsafe { apf.vcpu().get() };
    (apf, vcpu)
}

/// Creates the engine state of `vcpu`; NULL when out of memory.
///
/// # Safety
///
/// `vcpu` must be a vCPU being created, from `kvm_arch_vcpu_create()`, whose
/// state is passed to `kvm_apf_vcpu_destroy()` before KVM frees it.
#[export]
pub unsafe extern "C" fn kvm_apf_vcpu_create(vcpu: *mut bindings::kvm_vcpu) -> *mut kvm_apf_vcpu {
    // SAFETY: KVM keeps the vCPU alive until it destroys the state, which
    // detaches from it first, so the reference is not used past the vCPU's
    // life; nothing else uses the vCPU during its creation.
    let vcpu = unsafe { VcpuRef::new(Vcpu::from_raw(vcpu)) };
    match Apf::new(vcpu) {
        Ok(apf) => apf.into_foreign().cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Forgets the vCPU and drops the state's reference.
///
/// # Safety
///
/// `apf` must come from `kvm_apf_vcpu_create()`, or be NULL; it is
/// consumed, before KVM frees the vCPU.
#[export]
pub unsafe extern "C" fn kvm_apf_vcpu_destroy(apf: *mut kvm_apf_vcpu) {
    if apf.is_null() {
        return;
    }
    // SAFETY: The caller hands back the reference `kvm_apf_vcpu_create()`
    // made with `into_foreign()`.
    let apf = unsafe { <Arc<Apf> as ForeignOwnable>::from_foreign(apf.cast()) };
    apf.detach();
}

/// The value of `SYS_ASYNC_PF_EL1`.
///
/// # Safety
///
/// As for `engine()`.
#[export]
pub unsafe extern "C" fn kvm_apf_get_ctrl(apf: *const kvm_apf_vcpu) -> u64 {
    // SAFETY: The caller passes a valid `apf` from a call KVM makes.
    let apf = unsafe { engine(apf) };
    apf.ctrl()
}

/// Sets `SYS_ASYNC_PF_EL1`: 0, or -EINVAL when `val` was refused.  A
/// refused write `from_guest` disables the feature; a refused restore by
/// the VMM changes nothing.
///
/// # Safety
///
/// As for `state()`.
#[export]
pub unsafe extern "C" fn kvm_apf_set_ctrl(
    apf: *const kvm_apf_vcpu,
    val: u64,
    from_guest: bool,
) -> c_int {
    // SAFETY: The caller passes a valid `apf` from a call KVM makes.
    let (apf, vcpu) = unsafe { state(apf) };
    let result = if from_guest {
        apf.set_ctrl(vcpu, val)
    } else {
        apf.restore_ctrl(vcpu, val)
    };
    match result {
        Ok(()) => 0,
        Err(_) => EINVAL.to_errno(),
    }
}

/// Whether the stage-2 data abort `fault` describes could be signalled.
///
/// # Safety
///
/// As for `state()`, from the vCPU's thread; `fault` must be valid for
/// reads.
#[export]
pub unsafe extern "C" fn kvm_apf_wants(
    apf: *const kvm_apf_vcpu,
    fault: *const bindings::kvm_apf_fault,
) -> bool {
    // SAFETY: The caller passes a valid `apf` from the vCPU's thread.
    let (apf, vcpu) = unsafe { state(apf) };
    // SAFETY: The caller passes a pointer to an initialised, aligned
    // `struct kvm_apf_fault`, valid for reads for the call; its C bools are
    // 0 or 1, as Rust's are.
    let fault = unsafe { &*fault };
    apf.wants(vcpu, fault)
}

/// Signals PAGE_NOT_PRESENT and queues the fetch, which takes over the
/// reclaim for `over_high` pages; an `enum kvm_apf_outcome`.
///
/// # Safety
///
/// As for `state()`, from the vCPU's thread; `token` must be valid for a
/// write.
#[export]
pub unsafe extern "C" fn kvm_apf_queue(
    apf: *const kvm_apf_vcpu,
    ipa: u64,
    hva: usize,
    write: bool,
    over_high: u32,
    token: *mut u32,
) -> c_int {
    // SAFETY: The caller passes a valid `apf` from the vCPU's thread.
    let (apf, vcpu) = unsafe { state(apf) };
    let outcome = match apf.queue(vcpu, ipa, hva, write, over_high) {
        Outcome::Queued(t) => {
            // SAFETY: The caller passes a pointer valid for a write.
            unsafe { token.write(t) };
            bindings::kvm_apf_outcome_KVM_APF_QUEUED
        }
        Outcome::Disabled => bindings::kvm_apf_outcome_KVM_APF_DISABLED,
        Outcome::Busy => bindings::kvm_apf_outcome_KVM_APF_BUSY,
        Outcome::Limit => bindings::kvm_apf_outcome_KVM_APF_LIMIT,
        Outcome::Duplicate => bindings::kvm_apf_outcome_KVM_APF_DUPLICATE,
        Outcome::Error => bindings::kvm_apf_outcome_KVM_APF_ERROR,
    };
    outcome as c_int
}

/// Delivers a ready page if the guest can take it; its token, or 0.
///
/// # Safety
///
/// As for `state()`, from the vCPU's thread.
#[export]
pub unsafe extern "C" fn kvm_apf_deliver_ready(apf: *const kvm_apf_vcpu) -> u32 {
    // SAFETY: The caller passes a valid `apf` from the vCPU's thread.
    let (apf, vcpu) = unsafe { state(apf) };
    apf.deliver_ready(vcpu)
}

/// The VMM changed the memslots; `block_is_ram` says whether the control
/// block of register value `ctrl` is writable guest RAM now.
///
/// # Safety
///
/// As for `engine()`.
#[export]
pub unsafe extern "C" fn kvm_apf_memslots_changed(
    apf: *const kvm_apf_vcpu,
    ctrl: u64,
    block_is_ram: bool,
) {
    // SAFETY: The caller passes a valid `apf` from a call KVM makes.
    let apf = unsafe { engine(apf) };
    apf.memslots_changed(ctrl, block_is_ram)
}

/// The guest wrote `SYS_ASYNC_PF_ACK_EL1`.
///
/// # Safety
///
/// As for `state()`, from the vCPU's thread.
#[export]
pub unsafe extern "C" fn kvm_apf_ack(apf: *const kvm_apf_vcpu) {
    // SAFETY: The caller passes a valid `apf` from the vCPU's thread.
    let (apf, vcpu) = unsafe { state(apf) };
    apf.ack(vcpu)
}
