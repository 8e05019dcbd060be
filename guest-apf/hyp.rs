// SPDX-License-Identifier: GPL-2.0

//! The KVM hypervisor services, as the guest module uses them.
//!
//! SMCCC, through the conduit the firmware reported, and the bitmap of KVM
//! services the kernel read at boot.

use kernel::bindings;

/// What the host offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Not running under KVM.
    NotKvm,
    /// KVM without asynchronous page faults, or with them hidden by the VMM.
    Hidden,
    /// Asynchronous page faults, PAGE_READY on PPI `intid`, at most
    /// `max_pending` pages outstanding per CPU.
    Offered { intid: u32, max_pending: u32 },
}

fn service_available(func: u32) -> bool {
    // SAFETY: The function only reads a bitmap that the kernel filled at
    // boot, before any module could load.
    unsafe { bindings::kvm_arm_hyp_service_available(func) }
}

/// Calls the fast SMCCC function `func_id` with no arguments; returns
/// registers a0 to a3, or `None` when there is no SMCCC 1.1 conduit.
fn smccc_call(func_id: u32) -> Option<[usize; 4]> {
    let mut res = bindings::arm_smccc_res::default();
    let id = func_id as usize;
    let null = core::ptr::null_mut();
    // SAFETY: Reading the conduit has no precondition.
    let conduit = unsafe { bindings::arm_smccc_1_1_get_conduit() };
    match conduit {
        // SAFETY: `res` is valid for writes for the whole call, and KVM's
        // vendor hypervisor calls need no quirk handling, so it may be NULL.
        bindings::arm_smccc_conduit_SMCCC_CONDUIT_HVC => unsafe {
            bindings::__arm_smccc_hvc(id, 0, 0, 0, 0, 0, 0, 0, &mut res, null)
        },
        // SAFETY: As above, through the SMC conduit.
        bindings::arm_smccc_conduit_SMCCC_CONDUIT_SMC => unsafe {
            bindings::__arm_smccc_smc(id, 0, 0, 0, 0, 0, 0, 0, &mut res, null)
        },
        _ => return None,
    }
    Some([res.a0, res.a1, res.a2, res.a3])
}

/// Asks the host whether it offers asynchronous page faults.
pub(crate) fn discover() -> Offer {
    if !service_available(bindings::ARM_SMCCC_KVM_FUNC_FEATURES) {
        return Offer::NotKvm;
    }
    if !service_available(bindings::ARM_SMCCC_KVM_FUNC_ASYNC_PF) {
        return Offer::Hidden;
    }
    match smccc_call(bindings::ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID) {
        Some([0, intid, max_pending, _]) => Offer::Offered {
            intid: intid as u32,
            max_pending: max_pending as u32,
        },
        _ => Offer::Hidden,
    }
}
