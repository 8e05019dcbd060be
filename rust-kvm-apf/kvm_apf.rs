// SPDX-License-Identifier: GPL-2.0

//! Asynchronous page faults for KVM/arm64 guests: the host engine.
//!
//! When a guest's stage-2 fault can only be resolved by waiting for the
//! page to be brought in on the host, KVM can hand the fault-in to a work
//! item, tell the guest the page is not present yet and resume it, then
//! tell it the page is ready once the work is done.  This crate holds that
//! engine; the C side of KVM/arm64 only calls into it.

use kernel::prelude::*;

module! {
    type: KvmArm64Apf,
    name: "kvm_arm64_apf",
    authors: ["rust-kvm-apf developers"],
    description: "Asynchronous page faults for KVM/arm64 guests (host)",
    license: "GPL",
}

struct KvmArm64Apf;

impl kernel::Module for KvmArm64Apf {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("host engine initialised\n");
        Ok(KvmArm64Apf)
    }
}
