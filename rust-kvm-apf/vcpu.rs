// SPDX-License-Identifier: GPL-2.0

//! The engine's environment on a KVM vCPU: guest memory, the PAGE_READY
//! interrupt and the stage-2 map through `kernel::kvm`, and the work item
//! that fetches a page.

#![forbid(unsafe_code)]

use kernel::{
    kvm::{self, Vcpu, VcpuRef},
    mm::Mm,
    new_work,
    prelude::*,
    sync::{aref::ARef, Arc},
    workqueue::{Work, WorkItem},
};

use crate::{
    ctrl::Env,
    engine::{FetchReq, Kick, VcpuApf, VcpuEnv},
};

impl Kick for VcpuRef {
    fn kick(&self) {
        VcpuRef::kick(self)
    }
}

impl Env for Vcpu {
    fn offered(&self) -> bool {
        self.apf_offered()
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        Vcpu::is_ram(self, gpa, len)
    }
}

impl VcpuEnv for Vcpu {
    type Kept = VcpuRef;
    type Fetch = Arc<Fetch>;

    fn read_u32(&self, gpa: u64) -> Result<u32> {
        Vcpu::read_u32(self, gpa)
    }

    fn write_u32(&self, gpa: u64, val: u32) -> Result {
        Vcpu::write_u32(self, gpa, val)
    }

    fn ready_masked(&self) -> bool {
        self.apf_ready_masked()
    }

    fn request_ready(&self) {
        Vcpu::request_ready(self)
    }

    fn map_present(&self, ipa: u64, write: bool) -> Result {
        Vcpu::map_present(self, ipa, write)
    }

    fn signal_ready(&self) -> Result {
        Vcpu::signal_ready(self)
    }

    fn new_fetch(&self, apf: Arc<VcpuApf<VcpuRef>>, req: FetchReq) -> Result<Arc<Fetch>> {
        Arc::pin_init(
            pin_init!(Fetch {
                work <- new_work!("kvm_apf::Fetch"),
                apf,
                mm: self.mm(),
                req,
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn start_fetch(&self, fetch: Arc<Fetch>) {
        // A fresh work item is never already queued.
        let _ = self.fetch_queue().enqueue(fetch);
    }
}

/// The fetch of one page, run by a work item on the VM's workqueue.
#[pin_data]
pub(crate) struct Fetch {
    #[pin]
    work: Work<Fetch>,
    apf: Arc<VcpuApf<VcpuRef>>,
    mm: ARef<Mm>,
    req: FetchReq,
}

kernel::impl_has_work! {
    impl HasWork<Self> for Fetch { self.work }
}

impl WorkItem for Fetch {
    type Pointer = Arc<Fetch>;

    fn run(this: Arc<Fetch>) {
        let req = &this.req;
        kvm::fault_in(&this.mm, req.hva, req.write, req.over_high);
        this.apf.fetched(req.token);
    }
}
