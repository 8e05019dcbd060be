// SPDX-License-Identifier: GPL-2.0

//! The functions KVM's C code calls, declared in `asm/kvm_apf.h`.
//!
//! Each turns the raw pointers it gets into the engine's types and calls
//! safe code.  `apf` is always a pointer that `kvm_apf_vcpu_create()`
//! returned for the vCPU passed along with it and that
//! `kvm_apf_vcpu_destroy()` has not consumed yet.

use core::ffi::c_void;
use kernel::{
    bindings,
    prelude::*,
    sync::{Arc, ArcBorrow},
};

use crate::{
    engine::{Outcome, VcpuApf},
    kvm::Vcpu,
};

/// # Safety
///
/// `apf` must come from `kvm_apf_vcpu_create()` and not have been passed
/// to `kvm_apf_vcpu_destroy()`; the borrow must not outlive the call.
unsafe fn borrow<'a>(apf: *const c_void) -> ArcBorrow<'a, VcpuApf> {
    // SAFETY: `apf` came from `Arc::into_raw()` in `kvm_apf_vcpu_create()`
    // and the reference it stands for is only given up by
    // `kvm_apf_vcpu_destroy()`, so the count stays above zero meanwhile.
    unsafe { ArcBorrow::from_raw(apf.cast::<VcpuApf>()) }
}

/// Creates the engine state of `vcpu`; NULL when out of memory.
///
/// # Safety
///
/// `vcpu` must be a vCPU being created, from `kvm_arch_vcpu_create()`.
#[export]
pub unsafe extern "C" fn kvm_apf_vcpu_create(vcpu: *mut bindings::kvm_vcpu) -> *mut c_void {
    // SAFETY: KVM keeps the vCPU alive until it calls
    // `kvm_apf_vcpu_destroy()`, and nothing else uses it during creation.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    match VcpuApf::new(vcpu) {
        Ok(apf) => Arc::into_raw(apf).cast_mut().cast(),
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
pub unsafe extern "C" fn kvm_apf_vcpu_destroy(apf: *mut c_void) {
    if apf.is_null() {
        return;
    }
    // SAFETY: The caller hands back the reference `kvm_apf_vcpu_create()`
    // made with `Arc::into_raw()`.
    let apf = unsafe { Arc::from_raw(apf.cast_const().cast::<VcpuApf>()) };
    apf.detach();
}

/// The value of `SYS_ASYNC_PF_EL1`.
///
/// # Safety
///
/// `apf` must be valid as described in the module documentation.
#[export]
pub unsafe extern "C" fn kvm_apf_get_ctrl(apf: *const c_void) -> u64 {
    // SAFETY: The caller passes a valid `apf`.
    unsafe { borrow(apf) }.ctrl()
}

/// Sets `SYS_ASYNC_PF_EL1`: 0, or -EINVAL when `val` was refused.  A
/// refused write `from_guest` disables the feature; a refused restore by
/// the VMM changes nothing.
///
/// # Safety
///
/// `apf` and `vcpu` must be valid as described in the module
/// documentation, and the caller the vCPU's thread or holding its mutex.
#[export]
pub unsafe extern "C" fn kvm_apf_set_ctrl(
    apf: *const c_void,
    vcpu: *mut bindings::kvm_vcpu,
    val: u64,
    from_guest: bool,
) -> c_int {
    // SAFETY: The caller passes a valid `apf`.
    let apf = unsafe { borrow(apf) };
    // SAFETY: The caller passes a live vCPU and owns it for the call.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
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

/// Whether a fault taken at EL1 (`el1`) or EL0 could be signalled.
///
/// # Safety
///
/// `apf` must be valid as described in the module documentation.
#[export]
pub unsafe extern "C" fn kvm_apf_wants(apf: *const c_void, el1: bool) -> bool {
    // SAFETY: The caller passes a valid `apf`.
    unsafe { borrow(apf) }.wants(el1)
}

/// Signals PAGE_NOT_PRESENT and queues the fetch, which takes over the
/// reclaim for `over_high` pages; an `enum kvm_apf_outcome`.
///
/// # Safety
///
/// `apf` and `vcpu` must be valid as described in the module
/// documentation, the caller must be the vCPU's thread, and `token` must
/// be valid for a write.
#[export]
pub unsafe extern "C" fn kvm_apf_queue(
    apf: *const c_void,
    vcpu: *mut bindings::kvm_vcpu,
    ipa: u64,
    hva: usize,
    write: bool,
    over_high: u32,
    token: *mut u32,
) -> c_int {
    // SAFETY: The caller passes a valid `apf`.
    let apf = unsafe { borrow(apf) };
    // SAFETY: The caller passes a live vCPU and runs on its thread.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
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
/// `apf` and `vcpu` must be valid as described in the module
/// documentation, and the caller the vCPU's thread.
#[export]
pub unsafe extern "C" fn kvm_apf_deliver_ready(
    apf: *const c_void,
    vcpu: *mut bindings::kvm_vcpu,
) -> u32 {
    // SAFETY: The caller passes a valid `apf`.
    let apf = unsafe { borrow(apf) };
    // SAFETY: The caller passes a live vCPU and runs on its thread.
    apf.deliver_ready(unsafe { Vcpu::from_raw(vcpu) })
}

/// The VMM changed the memslots; `block_is_ram` says whether the control
/// block of register value `ctrl` is writable guest RAM now.
///
/// # Safety
///
/// `apf` must be valid as described in the module documentation.
#[export]
pub unsafe extern "C" fn kvm_apf_memslots_changed(
    apf: *const c_void,
    ctrl: u64,
    block_is_ram: bool,
) {
    // SAFETY: The caller passes a valid `apf`.
    unsafe { borrow(apf) }.memslots_changed(ctrl, block_is_ram)
}

/// The guest wrote `SYS_ASYNC_PF_ACK_EL1`.
///
/// # Safety
///
/// `apf` and `vcpu` must be valid as described in the module
/// documentation, and the caller the vCPU's thread.
#[export]
pub unsafe extern "C" fn kvm_apf_ack(apf: *const c_void, vcpu: *mut bindings::kvm_vcpu) {
    // SAFETY: The caller passes a valid `apf`.
    let apf = unsafe { borrow(apf) };
    // SAFETY: The caller passes a live vCPU and runs on its thread.
    apf.ack(unsafe { Vcpu::from_raw(vcpu) })
}
