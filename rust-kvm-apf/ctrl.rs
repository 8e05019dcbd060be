// SPDX-License-Identifier: GPL-2.0

//! The value of `SYS_ASYNC_PF_EL1`, the control register.

#![forbid(unsafe_code)]

use kernel::bindings;

/// Deliver signals to this vCPU.
pub(crate) const ENABLE: u64 = bindings::KVM_ARM_APF_CTRL_ENABLE;
/// Signal faults taken at EL1 too.
pub(crate) const EL1: u64 = bindings::KVM_ARM_APF_CTRL_EL1;
/// The bits that hold the IPA of the control block.
pub(crate) const ADDR_MASK: u64 = bindings::KVM_ARM_APF_CTRL_ADDR_MASK;
/// Size of the control block in guest memory, `struct kvm_arm_apf_block`;
/// the ABI makes it 64 bytes, 64-byte aligned ([`ADDR_MASK`]).
pub(crate) const BLOCK_SIZE: u64 = core::mem::size_of::<bindings::kvm_arm_apf_block>() as u64;
const _: () = assert!(BLOCK_SIZE == 64 && ADDR_MASK & (BLOCK_SIZE - 1) == 0);

/// What KVM reports of a stage-2 data abort, `struct kvm_apf_fault`.
pub(crate) type Fault = bindings::kvm_apf_fault;

/// Whether the facts of `fault` alone allow signalling it: the feature is
/// offered (a VMM may hide it after the guest's register was restored,
/// before the VM first runs), the access can be retried at the same address
/// (a data abort, with a valid FAR, in AArch64), and PSTATE.I is clear.
/// A vCPU with nested virtualization never has the register enabled: it is
/// refused to it ([`Env::offered`]).
pub(crate) fn fault_allows(fault: &Fault) -> bool {
    fault.offered
        && !fault.instruction
        && !fault.far_unknown
        && !fault.aarch32
        && !fault.irqs_masked
}

/// Why a value was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A bit that is RES0 was set.
    Reserved,
    /// ENABLE was clear but other bits were set: no read returns that.
    Stray,
    /// The VMM hid the feature, or this VM or vCPU cannot have it.
    NotOffered,
    /// The control block is not writable guest RAM.
    BadBlock,
}

/// What checking a value needs to know about the vCPU and its VM.
pub(crate) trait Env {
    /// Whether the feature is offered to this vCPU.
    fn offered(&self) -> bool;
    /// Whether `[gpa, gpa + len)` is guest RAM KVM may write, in one page.
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
}

/// A control register value that took effect: disabled, or enabled with a
/// control block that was valid when it was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ctrl(u64);

impl Ctrl {
    /// The feature is off.
    pub(crate) const DISABLED: Ctrl = Ctrl(0);

    /// Checks `val` as written by the guest or restored by the VMM.
    pub(crate) fn parse(val: u64, env: &impl Env) -> Result<Ctrl, Refused> {
        if val & !(ADDR_MASK | ENABLE | EL1) != 0 {
            return Err(Refused::Reserved);
        }
        if val & ENABLE == 0 {
            return if val == 0 {
                Ok(Ctrl::DISABLED)
            } else {
                Err(Refused::Stray)
            };
        }
        if !env.offered() {
            return Err(Refused::NotOffered);
        }
        if !env.is_ram(val & ADDR_MASK, BLOCK_SIZE) {
            return Err(Refused::BadBlock);
        }
        Ok(Ctrl(val))
    }

    /// The register value, as a read returns it.
    pub(crate) fn value(self) -> u64 {
        self.0
    }

    /// Whether signals are delivered.
    pub(crate) fn enabled(self) -> bool {
        self.0 & ENABLE != 0
    }

    /// Whether a fault taken at EL1 (`el1`) or EL0 may be signalled.
    pub(crate) fn wants(self, el1: bool) -> bool {
        self.enabled() && (!el1 || self.0 & EL1 != 0)
    }

    /// Whether `fault` is signalled: [`fault_allows`] it, the guest asked
    /// for faults where it took this one, and, asked last as it takes a
    /// lock, `ready_masked()` (the PPI disabled or below the priority mask)
    /// is false: a context that could not take PAGE_READY could not wait
    /// for it.
    pub(crate) fn signals(self, fault: &Fault, ready_masked: impl FnOnce() -> bool) -> bool {
        fault_allows(fault) && self.wants(fault.el1) && !ready_masked()
    }

    /// The IPA of the control block.
    pub(crate) fn block(self) -> u64 {
        self.0 & ADDR_MASK
    }
}
