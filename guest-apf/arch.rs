// SPDX-License-Identifier: GPL-2.0

//! The CPU and kernel interfaces the module uses, with `hyp`, its only
//! `unsafe` code.
//!
//! The registers, the PAGE_READY interrupt, and the hooks through which the
//! kernel calls the module: the IMPDEF data abort handler, CPU hotplug and
//! reboot.  The hooks reach the module's state through one pointer,
//! published by [`Hooks::install`] and withdrawn when every hook is gone.

use core::pin::Pin;
use kernel::alloc::KBox;
use kernel::bindings;
use kernel::cpu::CpuId;
use kernel::error::{to_result, Result};
use kernel::ffi::{c_int, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Atomic, Release};
use kernel::sync::ArcBorrow;
use kernel::types::Opaque;

use crate::guest::Guest;

/// Writes `SYS_ASYNC_PF_EL1`.
pub(crate) fn write_ctrl(val: u64) {
    // SAFETY: The register is trapped by the host, which either takes the
    // value or ignores it; writing it changes nothing in this kernel's
    // state.  Only `kvm_apf_guest` accesses it, and only when the host
    // offered the feature, so the access does not UNDEF, unless a VMM
    // withdraws the feature from the running guest, which the ABI
    // forbids: the access then UNDEFs, an oops like any other.
    unsafe { core::arch::asm!("msr s3_0_c15_c0_0, {}", in(reg) val, options(nostack)) };
}

/// Reads `SYS_ASYNC_PF_EL1`: the value that took effect.
pub(crate) fn read_ctrl() -> u64 {
    let val: u64;
    // SAFETY: As for `write_ctrl`; a read has no side effect.
    unsafe { core::arch::asm!("mrs {}, s3_0_c15_c0_0", out(reg) val, options(nostack)) };
    val
}

/// Writes `SYS_ASYNC_PF_ACK_EL1`: the PAGE_READY in the block is consumed.
pub(crate) fn ack_ready() {
    // SAFETY: As for `write_ctrl`; the host lowers the PAGE_READY line.
    unsafe { core::arch::asm!("msr s3_0_c15_c0_1, xzr", options(nostack)) };
}

/// Waits in the low-power state until an interrupt is pending; called with
/// interrupts masked, it returns without taking the interrupt.  Masked by
/// the GIC's priority mask (pseudo-NMIs), an interrupt would not wake a
/// bare WFI: cpu_do_idle() masks it with PSTATE.I instead for the wait.
pub(crate) fn wait_for_interrupt() {
    // SAFETY: cpu_do_idle() only changes the interrupt masks for the
    // duration of one WFI and puts them back as they were: it may be
    // called in any context that runs with interrupts masked.
    unsafe { bindings::cpu_do_idle() };
}

/// The physical address of a reference-counted object.
pub(crate) fn phys_addr<T>(obj: ArcBorrow<'_, T>) -> u64 {
    let ptr: *const T = &*obj;
    // SAFETY: `Arc` memory comes from kmalloc, which is in the linear
    // map, where virt_to_phys() is defined.
    unsafe { bindings::virt_to_phys(ptr.cast_mut().cast()) }
}

/// The PAGE_READY PPI, mapped and requested as a per-CPU interrupt.
pub(crate) struct Ppi {
    virq: c_uint,
    cookie: *mut c_void,
    acpi: bool,
}

// SAFETY: The fields are a Linux IRQ number and a per-CPU cookie, which
// any thread may use.
unsafe impl Send for Ppi {}
// SAFETY: As above; `&Ppi` only enables and disables the IRQ.
unsafe impl Sync for Ppi {}

/// `GIC_PPI` in a GICv3 interrupt specifier.
const GIC_PPI: u32 = 1;

/// ACPI's edge-triggered and active-high interrupt flags
/// (`include/acpi/acrestyp.h`, whose casts bindgen does not evaluate).
#[cfg(CONFIG_ACPI)]
const ACPI_EDGE_SENSITIVE: c_int = 1;
#[cfg(CONFIG_ACPI)]
const ACPI_ACTIVE_HIGH: c_int = 0;

/// Maps PPI `intid` through ACPI, when the kernel booted with it: on arm64
/// a GSI below 32 is the GIC's PPI of that INTID.
#[cfg(CONFIG_ACPI)]
fn map_ppi_acpi(intid: u32) -> Option<Result<c_uint>> {
    // SAFETY: `acpi_disabled` is set once during early boot, before any
    // module can load, and only read after.
    if unsafe { bindings::acpi_disabled } != 0 {
        return None;
    }
    // SAFETY: No device is needed for a PPI; the constants are ACPI's own
    // for an edge-triggered, active-high interrupt.
    let irq = unsafe {
        bindings::acpi_register_gsi(
            core::ptr::null_mut(),
            intid,
            ACPI_EDGE_SENSITIVE,
            ACPI_ACTIVE_HIGH,
        )
    };
    Some(if irq > 0 {
        Ok(irq as c_uint)
    } else {
        Err(ENXIO)
    })
}

#[cfg(not(CONFIG_ACPI))]
fn map_ppi_acpi(_intid: u32) -> Option<Result<c_uint>> {
    None
}

/// Maps PPI `intid` on the interrupt controller of the device tree's root
/// (the host does not describe it in the tree).
#[cfg(not(CONFIG_OF))]
fn map_ppi_of(_intid: u32) -> Result<c_uint> {
    Err(ENODEV)
}

/// Maps PPI `intid` on the interrupt controller of the device tree's root
/// (the host does not describe it in the tree).
#[cfg(CONFIG_OF)]
fn map_ppi_of(intid: u32) -> Result<c_uint> {
    // SAFETY: The path is a NUL-terminated string; the result is a
    // reference to the root node, or NULL without a device tree.
    let root =
        unsafe { bindings::of_find_node_opts_by_path(c"/".as_char_ptr(), core::ptr::null_mut()) };
    if root.is_null() {
        return Err(ENODEV);
    }
    // SAFETY: `root` is a counted reference; the result is another
    // one, or NULL.  The root's reference is put right after.
    let gic = unsafe { bindings::of_irq_find_parent(root) };
    // SAFETY: `root` came from `of_find_node_opts_by_path`.
    unsafe { bindings::of_node_put(root) };
    if gic.is_null() {
        return Err(ENODEV);
    }
    let mut spec = bindings::irq_fwspec {
        // SAFETY: `gic` is a valid node; its fwnode lives as long.
        fwnode: unsafe { &raw mut (*gic).fwnode },
        param_count: 3,
        ..Default::default()
    };
    spec.param[0] = GIC_PPI;
    spec.param[1] = intid - 16;
    spec.param[2] = bindings::IRQ_TYPE_EDGE_RISING;
    // SAFETY: `spec` is a valid specifier for the GIC's domain, which
    // takes its own reference to the fwnode if it keeps it.
    let virq = unsafe { bindings::irq_create_fwspec_mapping(&mut spec) };
    // SAFETY: `gic` came from `of_irq_find_parent`.
    unsafe { bindings::of_node_put(gic) };
    if virq == 0 {
        return Err(ENXIO);
    }
    Ok(virq)
}

impl Ppi {
    /// Maps PPI `intid`, through ACPI or the device tree, whichever the
    /// kernel booted with, and requests it.
    pub(crate) fn request(intid: u32) -> Result<Self> {
        if !(16..32).contains(&intid) {
            return Err(EINVAL);
        }
        let (virq, acpi) = match map_ppi_acpi(intid) {
            Some(virq) => (virq?, true),
            None => (map_ppi_of(intid)?, false),
        };
        // SAFETY: A one-byte per-CPU allocation; the interrupt core only
        // compares it and passes it back.
        let cookie = unsafe { bindings::pcpu_alloc_noprof(1, 1, false, bindings::GFP_KERNEL) };
        if cookie.is_null() {
            // SAFETY: `virq` was mapped above and nothing uses it.
            unsafe { bindings::irq_dispose_mapping(virq) };
            return Err(ENOMEM);
        }
        // SAFETY: `virq` is a per-CPU interrupt (a PPI), `page_ready` has
        // the handler's signature, the name is static and `cookie` is a
        // per-CPU allocation that lives until the IRQ is freed.
        let ret = unsafe {
            bindings::request_percpu_irq_affinity(
                virq,
                Some(page_ready),
                c"kvm-apf-ready".as_char_ptr(),
                core::ptr::null(),
                cookie,
            )
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: Both were set up above and nothing uses them.
            unsafe {
                bindings::free_percpu(cookie);
                bindings::irq_dispose_mapping(virq);
            }
            return Err(e);
        }
        Ok(Self { virq, cookie, acpi })
    }

    /// What described the interrupt controller the PPI was mapped on.
    pub(crate) fn firmware(&self) -> &'static str {
        if self.acpi {
            "ACPI"
        } else {
            "the device tree"
        }
    }

    /// Lets this CPU take the interrupt.
    pub(crate) fn enable_here(&self) {
        // SAFETY: `virq` is a requested per-CPU interrupt.
        unsafe { bindings::enable_percpu_irq(self.virq, bindings::IRQ_TYPE_NONE) };
    }

    /// Stops this CPU taking the interrupt.
    pub(crate) fn disable_here(&self) {
        // SAFETY: `virq` is a requested per-CPU interrupt.
        unsafe { bindings::disable_percpu_irq(self.virq) };
    }
}

impl Drop for Ppi {
    fn drop(&mut self) {
        // SAFETY: Requested in `request` with this cookie; the owner
        // disabled it on every CPU.  free_percpu_irq() waits for running
        // handlers, so the cookie and the mapping are unused after it.
        unsafe {
            bindings::free_percpu_irq(self.virq, self.cookie);
            bindings::free_percpu(self.cookie);
            bindings::irq_dispose_mapping(self.virq);
        }
    }
}

/// The module's state, as the hooks see it: set by [`Hooks::install`],
/// cleared by dropping the [`Hooks`] once no hook can run any more.
static GUEST: Atomic<*const Guest> = Atomic::new(core::ptr::null());

fn guest() -> Option<&'static Guest> {
    let ptr = GUEST.load(Acquire);
    // SAFETY: A non-NULL pointer was published by `Hooks::install` from a
    // reference that outlives the `Hooks`; it is withdrawn only after every
    // hook was unregistered and the kernel waited for running ones.
    unsafe { ptr.as_ref() }
}

/// The IMPDEF data abort hook; 0 means handled.
extern "C" fn impdef_abort(_far: c_ulong, _esr: c_ulong, may_sleep: bool) -> c_int {
    match guest() {
        Some(g) if g.impdef_abort(may_sleep) => 0,
        _ => 1,
    }
}

static ABORT_HANDLER: bindings::arm64_impdef_abort_handler = bindings::arm64_impdef_abort_handler {
    handle: Some(impdef_abort),
};

extern "C" fn page_ready(_irq: c_int, _cookie: *mut c_void) -> bindings::irqreturn_t {
    match guest() {
        Some(g) if g.page_ready() => bindings::irqreturn::IRQ_HANDLED,
        _ => bindings::irqreturn::IRQ_NONE,
    }
}

extern "C" fn cpu_online(cpu: c_uint) -> c_int {
    match (guest(), CpuId::from_u32(cpu)) {
        (Some(g), Some(cpu)) => {
            g.cpu_online(cpu);
            0
        }
        _ => EINVAL.to_errno(),
    }
}

extern "C" fn cpu_offline(cpu: c_uint) -> c_int {
    if let (Some(g), Some(cpu)) = (guest(), CpuId::from_u32(cpu)) {
        g.cpu_offline(cpu);
    }
    0
}

extern "C" fn on_cpu(info: *mut c_void) {
    // SAFETY: `on_each_cpu` passes a `fn(&Guest)` as `info`.
    let f: fn(&Guest) = unsafe { core::mem::transmute(info) };
    if let Some(g) = guest() {
        f(g);
    }
}

/// Runs `f` on every online CPU, interrupts off, and waits for it.
pub(crate) fn on_each_cpu(f: fn(&Guest)) {
    // SAFETY: `on_cpu` turns `info` back into `f`, a function pointer that
    // is valid forever; the call waits until every CPU ran it.
    unsafe {
        bindings::on_each_cpu_cond_mask(
            None,
            Some(on_cpu),
            f as *mut c_void,
            true,
            &raw const bindings::__cpu_online_mask,
        )
    };
}

extern "C" fn reboot(
    _nb: *mut bindings::notifier_block,
    _ev: c_ulong,
    _data: *mut c_void,
) -> c_int {
    if let Some(g) = guest() {
        g.shut_down();
    }
    bindings::NOTIFY_DONE as c_int
}

/// The registrations that make the kernel call the module.
pub(crate) struct Hooks {
    cpuhp: c_int,
    reboot: Pin<KBox<Opaque<bindings::notifier_block>>>,
}

// SAFETY: The notifier block is only touched by the reboot notifier chain,
// under its own lock, and by `Hooks` to register and unregister it.
unsafe impl Send for Hooks {}
// SAFETY: `&Hooks` gives no access to anything.
unsafe impl Sync for Hooks {}

impl Hooks {
    /// Publishes `guest` and registers the hooks; CPU hotplug brings every
    /// online CPU up through [`Guest::cpu_online`].
    pub(crate) fn install(guest: &Guest) -> Result<Self> {
        let reboot = KBox::pin(
            Opaque::new(bindings::notifier_block {
                notifier_call: Some(reboot),
                next: core::ptr::null_mut(),
                priority: 0,
            }),
            GFP_KERNEL,
        )?;
        GUEST.store(guest, Release);
        // SAFETY: `ABORT_HANDLER` is static; it is unregistered in `drop`
        // or below on failure.
        let ret = unsafe { bindings::arm64_register_impdef_abort_handler(&ABORT_HANDLER) };
        if let Err(e) = to_result(ret) {
            GUEST.store(core::ptr::null(), Release);
            return Err(e);
        }
        // SAFETY: The notifier block is pinned and lives in `Hooks`, which
        // unregisters it in `drop`.
        unsafe { bindings::register_reboot_notifier(reboot.get()) };
        // SAFETY: The name is static; the callbacks have the right
        // signature and find the state through `GUEST`, published above.
        let cpuhp = unsafe {
            bindings::__cpuhp_setup_state(
                bindings::cpuhp_state_CPUHP_AP_ONLINE_DYN,
                c"virt/kvm_apf_guest:online".as_char_ptr(),
                true,
                Some(cpu_online),
                Some(cpu_offline),
                false,
            )
        };
        if cpuhp < 0 {
            unregister(&reboot);
            return Err(Error::from_errno(cpuhp));
        }
        Ok(Self { cpuhp, reboot })
    }
}

/// Undoes what `Hooks::install` registered before CPU hotplug.
fn unregister(reboot: &Opaque<bindings::notifier_block>) {
    // SAFETY: Both were registered by `Hooks::install`.  No CPU takes
    // signals any more (CPU hotplug teardown disabled each one, or none was
    // enabled), as unregistering the abort handler requires; it then waits
    // for the aborts taken before and until no CPU runs the handler, and
    // the caller made sure that every context waiting in it was woken.
    unsafe {
        bindings::unregister_reboot_notifier(reboot.get());
        bindings::arm64_unregister_impdef_abort_handler(&ABORT_HANDLER);
    }
    GUEST.store(core::ptr::null(), Release);
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // SAFETY: `cpuhp` is the dynamic state `install` set up; removing
        // it runs `cpu_offline` on every online CPU, which disables the
        // feature there and wakes its waiters.
        unsafe { bindings::__cpuhp_remove_state(self.cpuhp as bindings::cpuhp_state, true) };
        unregister(&self.reboot);
    }
}
