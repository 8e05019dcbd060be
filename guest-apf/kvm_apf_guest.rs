// SPDX-License-Identifier: GPL-2.0

//! Asynchronous page faults for KVM/arm64 guests: the guest side.
//!
//! Under a KVM host that offers asynchronous page faults, a task whose
//! page is still being brought in on the host is told so and can sleep
//! while another task runs, instead of stalling its whole vCPU.  This
//! module registers for the host's signals and turns them into sleeps and
//! wake-ups.

use kernel::prelude::*;

mod hyp;

module! {
    type: KvmApfGuest,
    name: "kvm_apf_guest",
    authors: ["rust-kvm-apf developers"],
    description: "Asynchronous page faults for KVM/arm64 guests (guest)",
    license: "GPL",
}

struct KvmApfGuest;

impl kernel::Module for KvmApfGuest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "guest side initialised ({})\n",
            if cfg!(MODULE) { "module" } else { "built-in" }
        );
        match hyp::discover() {
            hyp::Offer::NotKvm => pr_info!("not running under KVM: nothing to do\n"),
            hyp::Offer::Hidden => {
                pr_info!("the host does not offer asynchronous page faults\n")
            }
            hyp::Offer::Offered { intid, max_pending } => pr_info!(
                "host offers asynchronous page faults: PAGE_READY on INTID {}, {} pages per CPU\n",
                intid,
                max_pending
            ),
        }
        Ok(KvmApfGuest)
    }
}

impl Drop for KvmApfGuest {
    fn drop(&mut self) {
        pr_info!("guest side removed\n");
    }
}
