// SPDX-License-Identifier: GPL-2.0

//! Asynchronous page faults for KVM/arm64 guests: the host engine.
//!
//! When a guest's stage-2 fault can only be resolved by waiting for the
//! page to be brought in on the host, KVM hands the fault-in to a work
//! item, tells the guest the page is not present yet and resumes it, then
//! tells it the page is ready once the work is done.  This crate holds that
//! engine; the C side of KVM/arm64 only calls into it.  The ABI is
//! described in `Documentation/virt/kvm/arm/async-pf.rst`.
//!
//! - [`ctrl`]: the control register and its validation,
//! - [`pending`]: the pages a vCPU waits for and their tokens,
//! - [`engine`]: queueing, fetching and delivery, over [`engine::VcpuEnv`],
//! - [`vcpu`]: that environment on a KVM vCPU, and the fetch's work item,
//! - [`ffi`]: the entry points KVM's C code calls, the only `unsafe`.
//!
//! What the engine needs from KVM comes from `kernel::kvm`.

mod ctrl;
mod engine;
pub mod ffi;
mod pending;
mod vcpu;

#[cfg(CONFIG_KVM_ARM64_ASYNC_PF_KUNIT_TEST)]
mod tests;

/// The prefix of the messages the KUnit tests print; `module!` would
/// define it, but this crate is part of KVM, not a module.
#[cfg(CONFIG_KVM_ARM64_ASYNC_PF_KUNIT_TEST)]
const __LOG_PREFIX: &[u8] = b"kvm_apf\0";
