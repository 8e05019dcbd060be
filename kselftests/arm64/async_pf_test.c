// SPDX-License-Identifier: GPL-2.0
/*
 * async_pf_test - asynchronous page faults for arm64 guests
 *
 * The guest discovers the feature over SMCCC, registers a control block
 * through SYS_ASYNC_PF_EL1 and touches memory served by a userfaultfd
 * handler that holds the pages it is told to hold until the host lets
 * them go.  See Documentation/virt/kvm/arm/async-pf.rst.
 *
 * Every enable that takes effect, the guest's or a VMM's, owes the guest a
 * wake-all (KVM_ARM_APF_WAKE_ALL in ready_token) and drops the tokens it
 * waited for; so does a control block that stopped being guest RAM.
 */
#include <pthread.h>
#include <linux/arm-smccc.h>
#include <linux/sizes.h>
#include <asm/kvm_apf.h>

#include "kvm_util.h"
#include "processor.h"
#include "arch_timer.h"
#include "test_util.h"
#include "userfaultfd_util.h"
#include "gic.h"
#include "gic_v3.h"
#include "vgic.h"

#define TEST_SLOT		10
#define TEST_GPA		0xc0000000ULL
#define RO_SLOT			11
#define RO_GPA			0xd0000000ULL
#define BLOCK_SLOT		12
#define BLOCK_GPA		0xe0000000ULL
#define SCRATCH_SLOT		13
#define SCRATCH_GPA		0xf0000000ULL
#define SCRATCH_PAGES		4
#define TEST_PAGES		64
/* Pages held when the VMM restores the control register. */
#define RESTORE_PAGES		4
#define PATTERN(page)		(0xa5a5000000000000ULL | (page))

#define APF_REG			KVM_ARM64_SYS_REG(SYS_ASYNC_PF_EL1)

enum stage {
	STAGE_DISCOVERED = 1,
	STAGE_REFUSED,
	STAGE_ENABLED,
	STAGE_NOT_PRESENT,
	STAGE_READY,
	STAGE_LIMIT,
	STAGE_LIMIT_READY,
	STAGE_DUPLICATE,
	STAGE_MASKED,
	STAGE_DISABLED,
	STAGE_SPURIOUS_ACK,
	STAGE_MOVED,
	STAGE_MOVED_READY,
	STAGE_BLOCK_GONE,
	STAGE_RESTORE_HELD,
	STAGE_RESTORED,
	STAGE_RESTORE_DROPPED,
	STAGE_SLOT_HELD,
	STAGE_SLOT_GONE,
	STAGE_SLOT_BACK,
	STAGE_PMR,
};

/* Shared with the guest. */
static u64 page_size;
static u64 block_gva, block_gpa;
static u32 ready_intid, max_pending, vtimer_irq;
static u64 test_gva;

/* Guest state, read back by the host. */
/* Written by the exception handlers: read with READ_ONCE(). */
static u32 np_count, np_token, ready_count, ack_count, wake_all_count;
/* PAGE_READY's priority, for the host's message. */
static u32 ready_prio;
static u32 ready_tokens[2 * TEST_PAGES];
static u64 np_far;
static u32 tokens[TEST_PAGES];

/* The userfaultfd side. */
static pthread_mutex_t uffd_lock = PTHREAD_MUTEX_INITIALIZER;
static bool hold[TEST_PAGES];
static bool held[TEST_PAGES];
static int uffd_fd = -1;
static void *test_hva;
static void *pattern_pages;

static struct kvm_arm_apf_block *block(void)
{
	return (struct kvm_arm_apf_block *)block_gva;
}

static u64 *page_ptr(int page)
{
	return (u64 *)(test_gva + page * page_size);
}

/* A single load the abort handler can skip. */
static u64 touch(int page)
{
	u64 val;

	asm volatile("ldr %0, [%1]" : "=r"(val) : "r"(page_ptr(page)) : "memory");
	return val;
}

static void guest_dabt_handler(struct ex_regs *regs)
{
	u64 esr = read_sysreg(esr_el1);

	GUEST_ASSERT_EQ(esr & ESR_ELx_FSC, KVM_ARM_APF_DFSC);
	GUEST_ASSERT_EQ(READ_ONCE(block()->reason), KVM_ARM_APF_PAGE_NOT_PRESENT);

	WRITE_ONCE(np_token, READ_ONCE(block()->token));
	WRITE_ONCE(np_far, read_sysreg(far_el1));
	WRITE_ONCE(block()->reason, 0);
	WRITE_ONCE(np_count, np_count + 1);
	regs->pc += 4;
}

/*
 * PAGE_READY: a page's token goes to ready_tokens[], a wake-all is only
 * counted.  The virtual timer only wakes wait_for_count() at its deadline.
 */
static void guest_irq_handler(struct ex_regs *regs)
{
	u32 intid = gic_get_and_ack_irq();
	u32 token;

	if (intid == IAR_SPURIOUS)
		return;
	if (intid == vtimer_irq) {
		timer_set_ctl(VIRTUAL, CTL_IMASK);
		gic_set_eoi(intid);
		return;
	}

	GUEST_ASSERT_EQ(intid, ready_intid);
	token = READ_ONCE(block()->ready_token);
	WRITE_ONCE(block()->ready_token, 0);
	if (READ_ONCE(block()->more_ready)) {
		write_sysreg_s(0, SYS_ASYNC_PF_ACK_EL1);
		WRITE_ONCE(ack_count, ack_count + 1);
	}
	if (token == KVM_ARM_APF_WAKE_ALL) {
		WRITE_ONCE(wake_all_count, wake_all_count + 1);
	} else {
		GUEST_ASSERT(ready_count < ARRAY_SIZE(ready_tokens));
		WRITE_ONCE(ready_tokens[ready_count], token);
		WRITE_ONCE(ready_count, ready_count + 1);
	}
	gic_set_eoi(intid);
}

/* How long a guest waits for a signal that must come. */
static u64 deadline(void)
{
	return timer_get_cntct(VIRTUAL) + 10ULL * timer_get_cntfrq();
}

/*
 * Waits in WFI until the IRQ handler has counted @count in @counter, for
 * 10 seconds: the virtual timer, armed for the deadline, wakes the WFI
 * when nothing else does.
 */
static void wait_for_count(u32 *counter, u32 count)
{
	u64 end = deadline();

	for (;;) {
		local_irq_disable();
		if (READ_ONCE(*counter) >= count || timer_get_cntct(VIRTUAL) >= end)
			break;
		timer_set_cval(VIRTUAL, end);
		timer_set_ctl(VIRTUAL, CTL_ENABLE);
		asm volatile("wfi");
		local_irq_enable();
	}
	timer_set_ctl(VIRTUAL, 0);
	local_irq_enable();
	GUEST_ASSERT(READ_ONCE(*counter) >= count);
}

static void wait_for_ready(u32 count)
{
	wait_for_count(&ready_count, count);
}

static void wait_for_wake_all(u32 count)
{
	wait_for_count(&wake_all_count, count);
}

/*
 * Gives a signal that must not come time to show up (200 ms), with IRQs
 * unmasked; then no more page tokens and wake-alls than expected came.
 */
static void expect_no_more(u32 ready, u32 wake_alls)
{
	u64 end = timer_get_cntct(VIRTUAL) + timer_get_cntfrq() / 5;

	while (timer_get_cntct(VIRTUAL) < end)
		cpu_relax();
	GUEST_ASSERT_EQ(READ_ONCE(ready_count), ready);
	GUEST_ASSERT_EQ(READ_ONCE(wake_all_count), wake_alls);
}

/*
 * Waits, with IRQs masked since before the pages came in so that the
 * first PAGE_READY stays in the block, until KVM says that another one
 * waits behind it; then takes them.
 */
static void wait_for_more_ready(void)
{
	u64 end = deadline();

	while (!READ_ONCE(block()->more_ready) && timer_get_cntct(VIRTUAL) < end)
		cpu_relax();
	GUEST_ASSERT(READ_ONCE(block()->more_ready));
	GUEST_ASSERT(READ_ONCE(block()->ready_token));
	local_irq_enable();
}

static void set_ctrl(u64 val)
{
	write_sysreg_s(val, SYS_ASYNC_PF_EL1);
	isb();
}

static u64 get_ctrl(void)
{
	return read_sysreg_s(SYS_ASYNC_PF_EL1);
}

/* Touches @page, expecting PAGE_NOT_PRESENT; returns its token. */
static u32 touch_not_present(int page)
{
	u32 before = READ_ONCE(np_count);

	touch(page);
	GUEST_ASSERT_EQ(READ_ONCE(np_count), before + 1);
	GUEST_ASSERT_EQ(READ_ONCE(np_far), (u64)page_ptr(page));
	GUEST_ASSERT(READ_ONCE(np_token));
	return READ_ONCE(np_token);
}

/* Touches @page, expecting no signal and the right data. */
static void touch_present(int page)
{
	u32 before = READ_ONCE(np_count);

	GUEST_ASSERT_EQ(touch(page), PATTERN(page));
	GUEST_ASSERT_EQ(READ_ONCE(np_count), before);
}

/*
 * Waits until the handler consumed what KVM left in the block: KVM raises
 * the PPI for each token it writes.
 */
static void wait_for_block_consumed(void)
{
	u64 end = deadline();

	while (READ_ONCE(block()->ready_token) && timer_get_cntct(VIRTUAL) < end)
		cpu_relax();
	GUEST_ASSERT_EQ(READ_ONCE(block()->ready_token), 0);
}

/* Discovery, then PAGE_READY's PPI and the deadline timer's, IRQs on. */
static void guest_init_irq(void)
{
	struct arm_smccc_res res;

	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT_EQ(res.a0, SMCCC_RET_SUCCESS);
	ready_intid = res.a1;
	max_pending = res.a2;
	gic_init(GIC_V3, 1);
	gic_irq_enable(ready_intid);
	gic_irq_enable(vtimer_irq);
	local_irq_enable();
}

/* Enables the feature with the block at block_gpa: one wake-all comes. */
static void guest_enable(void)
{
	u64 enable = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	u32 base = READ_ONCE(wake_all_count);

	set_ctrl(enable);
	GUEST_ASSERT_EQ(get_ctrl(), enable);
	wait_for_wake_all(base + 1);
	GUEST_ASSERT_EQ(READ_ONCE(wake_all_count), base + 1);
}

static void guest_code(void)
{
	u64 enable = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	u64 bad[] = {
		block_gpa | KVM_ARM_APF_CTRL_ENABLE | 0x4,	/* misaligned */
		block_gpa | KVM_ARM_APF_CTRL_ENABLE | BIT(63),	/* RES0 */
		block_gpa | KVM_ARM_APF_CTRL_ENABLE | BIT(52),	/* RES0 */
		block_gpa,					/* stray bits */
		0xfffffffc0ULL | KVM_ARM_APF_CTRL_ENABLE,	/* not RAM */
		GICD_BASE_GPA | KVM_ARM_APF_CTRL_ENABLE,	/* MMIO */
	};
	struct arm_smccc_res res;
	u32 t, first, base;
	int i, page;

	/* Discovery */
	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT(res.a2 & BIT(KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF));
	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT_EQ(res.a0, SMCCC_RET_SUCCESS);
	ready_intid = res.a1;
	max_pending = res.a2;
	GUEST_ASSERT(ready_intid >= 16 && ready_intid < 32);
	GUEST_ASSERT(max_pending > 1 && max_pending < TEST_PAGES - 8);
	GUEST_SYNC(STAGE_DISCOVERED);

	gic_init(GIC_V3, 1);
	gic_irq_enable(ready_intid);
	gic_irq_enable(vtimer_irq);
	local_irq_enable();

	/* Every invalid value is refused and reads back as disabled. */
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		set_ctrl(enable);
		set_ctrl(bad[i]);
		GUEST_ASSERT_EQ(get_ctrl(), 0);
	}
	/*
	 * Each enable owed a wake-all, delivered as the guest went back in
	 * unless the last one still sat in the block, in which case the
	 * refusal dropped it: the first one came, and at most one each.
	 */
	wait_for_block_consumed();
	GUEST_ASSERT(READ_ONCE(wake_all_count) >= 1);
	GUEST_ASSERT(READ_ONCE(wake_all_count) <= ARRAY_SIZE(bad));
	GUEST_ASSERT_EQ(READ_ONCE(ready_count), 0);
	/* A dropped one may have asked for an acknowledgment: count afresh. */
	WRITE_ONCE(ack_count, 0);
	GUEST_SYNC(STAGE_REFUSED);

	/* Nothing sits in the block: this enable's wake-all comes alone. */
	guest_enable();
	GUEST_ASSERT_EQ(READ_ONCE(ready_count), 0);
	GUEST_SYNC(STAGE_ENABLED);

	/* Page 0 is held: the guest runs on while the handler sleeps. */
	t = touch_not_present(0);
	GUEST_SYNC(STAGE_NOT_PRESENT);

	wait_for_ready(1);
	GUEST_ASSERT_EQ(READ_ONCE(ready_tokens[0]), t);
	/* Nothing waited behind it: no acknowledgment was asked for. */
	GUEST_ASSERT_EQ(READ_ONCE(ack_count), 0);
	touch_present(0);
	GUEST_SYNC(STAGE_READY);

	/* Pages 1..max_pending are held; the next one goes synchronous. */
	for (page = 1; page <= max_pending; page++) {
		tokens[page] = touch_not_present(page);
		for (i = 1; i < page; i++)
			GUEST_ASSERT_NE(tokens[i], tokens[page]);
	}
	touch_present(max_pending + 1);
	/* Nothing is ready while the handler holds the pages. */
	GUEST_ASSERT_EQ(READ_ONCE(ready_count), 1);
	local_irq_disable();
	GUEST_SYNC(STAGE_LIMIT);

	/*
	 * Each token comes back exactly once: those queued behind an
	 * unconsumed one come with the acknowledgments, and the last one
	 * asks for none.
	 */
	wait_for_more_ready();
	wait_for_ready(1 + max_pending);
	GUEST_ASSERT(READ_ONCE(ack_count) >= 1);
	GUEST_ASSERT(READ_ONCE(ack_count) < max_pending);
	for (i = 1; i <= max_pending; i++) {
		for (page = 1; page <= max_pending; page++)
			if (tokens[page] == READ_ONCE(ready_tokens[i]))
				break;
		GUEST_ASSERT(page <= max_pending);
		tokens[page] = 0;
	}
	for (page = 1; page <= max_pending; page++)
		touch_present(page);
	GUEST_SYNC(STAGE_LIMIT_READY);

	/* A page already being fetched is not queued twice. */
	page = max_pending + 2;
	base = READ_ONCE(ready_count);
	first = touch_not_present(page);
	touch_present(page);
	wait_for_ready(base + 1);
	GUEST_ASSERT_EQ(READ_ONCE(ready_tokens[base]), first);
	GUEST_SYNC(STAGE_DUPLICATE);

	/* With IRQs masked PAGE_READY could not be taken: no signal. */
	local_irq_disable();
	touch_present(max_pending + 3);
	local_irq_enable();
	GUEST_SYNC(STAGE_MASKED);

	/* Disabled: served pages come in without a signal. */
	set_ctrl(0);
	GUEST_ASSERT_EQ(get_ctrl(), 0);
	touch_present(max_pending + 4);
	GUEST_SYNC(STAGE_DISABLED);

	GUEST_DONE();
}

static int uffd_handler(int mode, int uffd, struct uffd_msg *msg)
{
	u64 addr = msg->arg.pagefault.address & ~(page_size - 1);
	int page = (addr - (u64)test_hva) / page_size;
	struct uffdio_copy copy = {
		.src = (u64)pattern_pages + page * page_size,
		.dst = addr,
		.len = page_size,
	};
	bool serve;

	TEST_ASSERT(page >= 0 && page < TEST_PAGES, "fault outside the test pages");

	pthread_mutex_lock(&uffd_lock);
	/* A second fault on a held page is served: it waits synchronously. */
	serve = !hold[page] || held[page];
	held[page] = true;
	pthread_mutex_unlock(&uffd_lock);

	if (serve && ioctl(uffd, UFFDIO_COPY, &copy) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Lets the held pages in. */
static void release_held(void)
{
	int page;

	pthread_mutex_lock(&uffd_lock);
	for (page = 0; page < TEST_PAGES; page++) {
		struct uffdio_copy copy = {
			.src = (u64)pattern_pages + page * page_size,
			.dst = (u64)test_hva + page * page_size,
			.len = page_size,
		};

		if (!hold[page] || !held[page])
			continue;
		TEST_ASSERT(!ioctl(uffd_fd, UFFDIO_COPY, &copy) || errno == EEXIST,
			    "UFFDIO_COPY of page %d", page);
		hold[page] = false;
	}
	pthread_mutex_unlock(&uffd_lock);
}

static bool page_requested(int page)
{
	bool ret;

	pthread_mutex_lock(&uffd_lock);
	ret = held[page];
	pthread_mutex_unlock(&uffd_lock);
	return ret;
}

/* The fetch of a held page reaches the handler from a kworker. */
static void wait_requested(int page)
{
	int i;

	for (i = 0; i < 10000 && !page_requested(page); i++)
		usleep(1000);
	TEST_ASSERT(page_requested(page), "page %d never reached the handler", page);
}

static void run_to(struct kvm_vcpu *vcpu, enum stage stage)
{
	struct ucall uc;

	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		TEST_ASSERT_EQ(uc.args[1], stage);
		return;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_DONE:
		TEST_FAIL("guest done before stage %d", stage);
		break;
	default:
		TEST_FAIL("unexpected exit %s", exit_reason_str(vcpu->run->exit_reason));
	}
}

static void run_to_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
}

static bool reg_listed(struct kvm_vcpu *vcpu, u64 id)
{
	struct kvm_reg_list *list = vcpu_get_reg_list(vcpu);
	bool found = false;
	u64 i;

	for (i = 0; i < list->n; i++)
		found |= list->reg[i] == id;
	free(list);
	return found;
}

/*
 * A VM with one vCPU, with EL2 or without: the library gives vCPUs EL2
 * where KVM can, and the feature is for guests without it (see
 * test_refused_with_el2()).
 */
static struct kvm_vm *create_vm(struct kvm_vcpu **vcpu, void *code, bool el2)
{
	struct kvm_vcpu_init init;
	struct kvm_vm *vm;

	vm = vm_create(1);
	kvm_get_default_vcpu_target(vm, &init);
	if (el2)
		init.features[0] |= BIT(KVM_ARM_VCPU_HAS_EL2);
	else
		init.features[0] &= ~BIT(KVM_ARM_VCPU_HAS_EL2);
	*vcpu = aarch64_vcpu_add(vm, 0, &init, code);
	kvm_arch_vm_finalize_vcpus(vm);

	vm_init_descriptor_tables(vm);
	vcpu_init_descriptor_tables(*vcpu);
	page_size = vm->page_size;
	block_gva = vm_alloc_page(vm);
	block_gpa = addr_gva2gpa(vm, block_gva);
	vtimer_irq = vcpu_get_vtimer_irq(*vcpu);
	sync_global_to_guest(vm, page_size);
	sync_global_to_guest(vm, block_gva);
	sync_global_to_guest(vm, block_gpa);
	sync_global_to_guest(vm, vtimer_irq);
	return vm;
}

static void test_one_reg(struct kvm_vcpu *vcpu, u64 enabled)
{
	u64 bad[] = { enabled | BIT(2), enabled | BIT(63), block_gpa, ~0ULL };
	int i;

	TEST_ASSERT(reg_listed(vcpu, APF_REG), "KVM_GET_REG_LIST lacks SYS_ASYNC_PF_EL1");
	TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), enabled);

	/* A value the guest could not have set is refused and changes nothing. */
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		TEST_ASSERT(__vcpu_set_reg(vcpu, APF_REG, bad[i]) == -1 && errno == EINVAL,
			    "KVM_SET_ONE_REG took %#lx", bad[i]);
		TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), enabled);
	}

	vcpu_set_reg(vcpu, APF_REG, 0);
	TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), 0);
	vcpu_set_reg(vcpu, APF_REG, enabled);
	TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), enabled);
}

/* Whether a PPI of vCPU 0 is edge-triggered, from GICR_ICFGR1. */
static bool ppi_is_edge(struct kvm_vm *vm, u32 intid)
{
	u64 attr = SZ_64K + GICD_ICFGR + (intid / 16) * 4;
	u32 val;

	kvm_device_attr_get(vm->arch.gic_fd, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS,
			    attr, &val);
	return val & BIT((intid % 16) * 2 + 1);
}

/* The test pages, in their own memslot, and what the handler serves. */
static void add_test_pages(struct kvm_vm *vm)
{
	int page;

	TEST_ASSERT_EQ(getpagesize(), page_size);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_PAGES, 0);
	test_gva = TEST_GPA;
	virt_map(vm, test_gva, TEST_GPA, TEST_PAGES);
	sync_global_to_guest(vm, test_gva);
	test_hva = addr_gpa2hva(vm, TEST_GPA);

	pattern_pages = malloc(TEST_PAGES * page_size);
	TEST_ASSERT(pattern_pages, "malloc");
	for (page = 0; page < TEST_PAGES; page++)
		*(u64 *)(pattern_pages + page * page_size) = PATTERN(page);
}

/* Starts the userfaultfd handler over the test pages, holding none yet. */
static struct uffd_desc *serve_test_pages(void)
{
	struct uffd_desc *uffd;

	memset(hold, 0, sizeof(hold));
	memset(held, 0, sizeof(held));
	uffd = uffd_setup_demand_paging(UFFDIO_REGISTER_MODE_MISSING, 0, test_hva,
					TEST_PAGES * page_size, 1, uffd_handler);
	uffd_fd = uffd->uffd;
	return uffd;
}

static void test_signals(void)
{
	u64 not_present, ready, sync, enabled;
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int page;

	vm = create_vm(&vcpu, guest_code, false);
	vm_install_sync_handler(vm, VECTOR_SYNC_CURRENT, ESR_ELx_EC_DABT_CUR,
				guest_dabt_handler);
	vm_install_exception_handler(vm, VECTOR_IRQ_CURRENT, guest_irq_handler);

	add_test_pages(vm);
	uffd = serve_test_pages();

	run_to(vcpu, STAGE_DISCOVERED);
	sync_global_from_guest(vm, ready_intid);
	sync_global_from_guest(vm, max_pending);
	ksft_test_result_pass("feature discovered: PPI %u, %u pages per vCPU\n",
			      ready_intid, max_pending);
	TEST_ASSERT(ppi_is_edge(vm, ready_intid),
		    "PPI %u still level-sensitive after discovery", ready_intid);
	ksft_test_result_pass("PAGE_READY's PPI edge-triggered\n");

	run_to(vcpu, STAGE_REFUSED);
	ksft_test_result_pass("invalid control values refused\n");

	run_to(vcpu, STAGE_ENABLED);
	/* The guest took every wake-all delivered, and one for its enable. */
	sync_global_from_guest(vm, wake_all_count);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), wake_all_count);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);
	ksft_test_result_pass("an enable delivers one wake-all (%u so far)\n", wake_all_count);

	enabled = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	test_one_reg(vcpu, enabled);
	ksft_test_result_pass("KVM_GET_REG_LIST and ONE_REG save/restore\n");

	hold[0] = true;
	run_to(vcpu, STAGE_NOT_PRESENT);
	/* The fetch waits in the handler, which has not answered it. */
	wait_requested(0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), 1);
	/* The restored enable's, delivered as the guest went back in. */
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), wake_all_count + 1);
	ksft_test_result_pass("PAGE_NOT_PRESENT while the handler holds the page\n");

	release_held();
	run_to(vcpu, STAGE_READY);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 1);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready_mapped), 1);
	ksft_test_result_pass("PAGE_READY: same token, page mapped, data correct, no ack\n");

	for (page = 1; page <= max_pending; page++)
		hold[page] = true;
	sync = vcpu_get_stat(vcpu, apf_sync);
	run_to(vcpu, STAGE_LIMIT);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), 1 + max_pending);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_sync), sync + 1);
	for (page = 1; page <= max_pending; page++)
		wait_requested(page);
	release_held();
	run_to(vcpu, STAGE_LIMIT_READY);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 1 + max_pending);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready_mapped), 1 + max_pending);
	ksft_test_result_pass("synchronous past %u pending pages\n", max_pending);
	sync_global_from_guest(vm, ack_count);
	ksft_test_result_pass("PAGE_READY queued behind one: more_ready, %u acks for %u\n",
			      ack_count, max_pending);

	page = max_pending + 2;
	hold[page] = true;
	not_present = vcpu_get_stat(vcpu, apf_not_present);
	sync = vcpu_get_stat(vcpu, apf_sync);
	run_to(vcpu, STAGE_DUPLICATE);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), not_present + 1);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_sync), sync + 1);
	ksft_test_result_pass("a page being fetched is not queued twice\n");

	not_present = vcpu_get_stat(vcpu, apf_not_present);
	run_to(vcpu, STAGE_MASKED);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), not_present);
	ksft_test_result_pass("synchronous at EL1 with IRQs masked\n");

	not_present = vcpu_get_stat(vcpu, apf_not_present);
	ready = vcpu_get_stat(vcpu, apf_ready);
	run_to(vcpu, STAGE_DISABLED);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), not_present);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), ready);
	TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), 0);
	ksft_test_result_pass("no signal after disable\n");

	run_to_done(vcpu);

	/* A vCPU reset disables the feature. */
	vcpu_set_reg(vcpu, APF_REG, enabled);
	vcpu_ioctl(vcpu, KVM_ARM_VCPU_INIT, &vcpu->init);
	TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), 0);
	ksft_test_result_pass("vCPU reset disables\n");

	uffd_stop_demand_paging(uffd);
	kvm_vm_free(vm);
	free(pattern_pages);
}

static void guest_teardown(void)
{
	/* KVM signals nothing while the guest could not take PAGE_READY. */
	guest_init_irq();
	guest_enable();
	touch_not_present(0);
	GUEST_SYNC(STAGE_NOT_PRESENT);
	GUEST_FAIL("the VM should be gone");
}

/*
 * Destroy the VM while a fetch waits in the handler, then let the fetch
 * finish by closing the userfaultfd: the host must neither wait for the
 * fetch nor touch the vCPU when it ends (the console check catches a
 * splat, and KASAN a use-after-free where it is on).
 */
static void test_teardown(void)
{
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = create_vm(&vcpu, guest_teardown, false);
	vm_install_sync_handler(vm, VECTOR_SYNC_CURRENT, ESR_ELx_EC_DABT_CUR,
				guest_dabt_handler);
	vm_install_exception_handler(vm, VECTOR_IRQ_CURRENT, guest_irq_handler);
	add_test_pages(vm);
	uffd = serve_test_pages();
	hold[0] = true;

	run_to(vcpu, STAGE_NOT_PRESENT);
	wait_requested(0);
	kvm_vm_free(vm);
	uffd_stop_demand_paging(uffd);
	free(pattern_pages);
	ksft_test_result_pass("VM destroyed with a fetch in flight\n");
}

static u32 undef_count;

static void guest_undef_handler(struct ex_regs *regs)
{
	WRITE_ONCE(undef_count, undef_count + 1);
	regs->pc += 4;
}

static void guest_hidden(void)
{
	struct arm_smccc_res res;

	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT(!(res.a2 & BIT(KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF)));
	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT_EQ(res.a0, SMCCC_RET_NOT_SUPPORTED);
	/* The registers do not exist: both accesses UNDEF. */
	set_ctrl(block_gpa | KVM_ARM_APF_CTRL_ENABLE);
	get_ctrl();
	GUEST_ASSERT_EQ(READ_ONCE(undef_count), 2);
	GUEST_DONE();
}

/*
 * A VMM that hides the feature gets a VM without its register: absent from
 * KVM_GET_REG_LIST and UNDEF to the guest, as on a host without the
 * feature, to which such a VM can migrate.  ONE_REG still reads 0 and
 * takes only 0, for a VMM that listed the registers before it hid the
 * feature (QEMU, on the destination of a migration).
 */
static void test_hidden(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 bmap, val;

	vm = create_vm(&vcpu, guest_hidden, false);
	vm_install_sync_handler(vm, VECTOR_SYNC_CURRENT, ESR_ELx_EC_UNKNOWN,
				guest_undef_handler);
	bmap = vcpu_get_reg(vcpu, KVM_REG_ARM_VENDOR_HYP_BMAP_2);
	vcpu_set_reg(vcpu, KVM_REG_ARM_VENDOR_HYP_BMAP_2,
		     bmap & ~BIT(KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF));
	TEST_ASSERT(!reg_listed(vcpu, APF_REG),
		    "KVM_GET_REG_LIST lists SYS_ASYNC_PF_EL1 of a hidden feature");
	TEST_ASSERT_EQ(__vcpu_get_reg(vcpu, APF_REG, &val), 0);
	TEST_ASSERT_EQ(val, 0);
	TEST_ASSERT_EQ(__vcpu_set_reg(vcpu, APF_REG, 0), 0);
	TEST_ASSERT(__vcpu_set_reg(vcpu, APF_REG,
				   block_gpa | KVM_ARM_APF_CTRL_ENABLE) == -1 &&
		    errno == EINVAL, "the hidden register took an enabled value");
	run_to_done(vcpu);
	kvm_vm_free(vm);
	ksft_test_result_pass("hidden when the VMM clears its bit: no register\n");
}

static void guest_el2(void)
{
	set_ctrl(block_gpa | KVM_ARM_APF_CTRL_ENABLE);
	GUEST_ASSERT_EQ(get_ctrl(), 0);
	GUEST_DONE();
}

static void test_refused_with_el2(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	if (!kvm_check_cap(KVM_CAP_ARM_EL2)) {
		ksft_test_result_skip("refused at EL2: KVM_CAP_ARM_EL2 not available\n");
		return;
	}

	vm = create_vm(&vcpu, guest_el2, true);
	run_to_done(vcpu);
	kvm_vm_free(vm);
	ksft_test_result_pass("refused to a vCPU with EL2 (nested virt)\n");
}

static void guest_ppi_taken(void)
{
	struct arm_smccc_res res;

	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT_EQ(res.a0, SMCCC_RET_NOT_SUPPORTED);
	GUEST_DONE();
}

/* A VM with one vCPU without EL2 and with a PMU, not yet initialised. */
static struct kvm_vm *create_pmu_vm(struct kvm_vcpu **vcpu, void *code)
{
	struct kvm_vcpu_init init;
	struct kvm_vm *vm;

	vm = vm_create(1);
	kvm_get_default_vcpu_target(vm, &init);
	init.features[0] &= ~BIT(KVM_ARM_VCPU_HAS_EL2);
	init.features[0] |= BIT(KVM_ARM_VCPU_PMU_V3);
	*vcpu = aarch64_vcpu_add(vm, 0, &init, code);
	kvm_arch_vm_finalize_vcpus(vm);
	return vm;
}

/* A VMM that gives PAGE_READY's PPI to a PMU: discovery fails. */
static void test_ppi_taken(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int irq = ready_intid;

	if (!kvm_check_cap(KVM_CAP_ARM_PMU_V3)) {
		ksft_test_result_skip("PPI taken by a PMU: KVM_CAP_ARM_PMU_V3 not available\n");
		return;
	}

	vm = create_pmu_vm(&vcpu, guest_ppi_taken);
	vcpu_device_attr_set(vcpu, KVM_ARM_VCPU_PMU_V3_CTRL,
			     KVM_ARM_VCPU_PMU_V3_IRQ, &irq);
	vcpu_device_attr_set(vcpu, KVM_ARM_VCPU_PMU_V3_CTRL,
			     KVM_ARM_VCPU_PMU_V3_INIT, NULL);
	run_to_done(vcpu);
	kvm_vm_free(vm);
	ksft_test_result_pass("PPI %d given to a PMU: discovery fails\n", irq);
}

static u32 chosen_intid;

static void guest_ready_intid(void)
{
	struct arm_smccc_res res;

	smccc_hvc(ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID,
		  0, 0, 0, 0, 0, 0, 0, &res);
	GUEST_ASSERT_EQ(res.a0, SMCCC_RET_SUCCESS);
	GUEST_ASSERT_EQ(res.a1, READ_ONCE(chosen_intid));
	GUEST_DONE();
}

static int set_ready_intid(struct kvm_vcpu *vcpu, int irq)
{
	return __vcpu_device_attr_set(vcpu, KVM_ARM_VCPU_ASYNC_PF_CTRL,
				      KVM_ARM_VCPU_ASYNC_PF_IRQ, &irq);
}

/*
 * The VMM chooses PAGE_READY's PPI before the VM runs; an INTID that is not
 * a PPI, or a PPI a timer has, is refused, and so is any change once the VM
 * has run.  The guest discovers the chosen one.
 */
static void test_ready_intid(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int irq;

	vm = create_vm(&vcpu, guest_ready_intid, false);
	vcpu_device_attr_get(vcpu, KVM_ARM_VCPU_ASYNC_PF_CTRL,
			     KVM_ARM_VCPU_ASYNC_PF_IRQ, &irq);
	TEST_ASSERT_EQ(irq, 17);
	TEST_ASSERT(set_ready_intid(vcpu, 32) == -1 && errno == EINVAL,
		    "an SPI taken as PAGE_READY's PPI");
	TEST_ASSERT(set_ready_intid(vcpu, vcpu_get_vtimer_irq(vcpu)) == -1 &&
		    errno == EBUSY, "the virtual timer's PPI taken for PAGE_READY");
	TEST_ASSERT_EQ(set_ready_intid(vcpu, 20), 0);
	chosen_intid = 20;
	sync_global_to_guest(vm, chosen_intid);
	run_to_done(vcpu);
	TEST_ASSERT(set_ready_intid(vcpu, 21) == -1 && errno == EBUSY,
		    "PAGE_READY's PPI changed after the VM ran");
	vcpu_device_attr_get(vcpu, KVM_ARM_VCPU_ASYNC_PF_CTRL,
			     KVM_ARM_VCPU_ASYNC_PF_IRQ, &irq);
	TEST_ASSERT_EQ(irq, 20);
	kvm_vm_free(vm);
	ksft_test_result_pass("the VMM chooses PAGE_READY's PPI; conflicts refused\n");
}

/* A PMU given the PPI the VMM chose for PAGE_READY fails the first run. */
static void test_ready_intid_pmu(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int irq = 22;

	if (!kvm_check_cap(KVM_CAP_ARM_PMU_V3)) {
		ksft_test_result_skip("chosen PPI given to a PMU: no KVM_CAP_ARM_PMU_V3\n");
		return;
	}

	vm = create_pmu_vm(&vcpu, guest_ready_intid);
	TEST_ASSERT_EQ(set_ready_intid(vcpu, irq), 0);
	vcpu_device_attr_set(vcpu, KVM_ARM_VCPU_PMU_V3_CTRL,
			     KVM_ARM_VCPU_PMU_V3_IRQ, &irq);
	vcpu_device_attr_set(vcpu, KVM_ARM_VCPU_PMU_V3_CTRL,
			     KVM_ARM_VCPU_PMU_V3_INIT, NULL);
	TEST_ASSERT(_vcpu_run(vcpu) == -1 && errno == EBUSY,
		    "KVM_RUN with PAGE_READY's chosen PPI given to the PMU");
	kvm_vm_free(vm);
	ksft_test_result_pass("PPI %d chosen for PAGE_READY, given to a PMU: KVM_RUN fails\n",
			      irq);
}

/*
 * Bad input: every value a guest or a VMM could put in SYS_ASYNC_PF_EL1.
 * The guest RAM KVM may write, for ctrl_takes(); shared with the guest.
 */
static struct {
	u64 start, end;
} ram[4];
static int nr_ram;
static struct kvm_random_state rng;
/* What the guest tried and how many took effect; read back by the host. */
static u64 tried, taken;

/* Whether a write of @val takes effect, as async-pf.rst says. */
static bool ctrl_takes(u64 val)
{
	u64 addr = val & KVM_ARM_APF_CTRL_ADDR_MASK;
	int i;

	if (val & ~(KVM_ARM_APF_CTRL_ADDR_MASK | KVM_ARM_APF_CTRL_ENABLE |
		    KVM_ARM_APF_CTRL_EL1))
		return false;
	if (!(val & KVM_ARM_APF_CTRL_ENABLE))
		return !val;
	for (i = 0; i < nr_ram; i++)
		if (addr >= ram[i].start && addr + sizeof(struct kvm_arm_apf_block) <= ram[i].end)
			return true;
	return false;
}

#define NR_RANDOM	1000

/*
 * The value number @i of a run: first every interesting address with every
 * interesting flag combination, then random values of three kinds: any 64
 * bits, any address field with random low bits, and a random block in RAM
 * with one of the interesting flag combinations.  Returns false past the
 * last one.
 *
 * An enable that takes effect has KVM write its wake-all to the block at
 * once: the blocks in RAM are in a scratch slot the guest does not use, or
 * in slot 0's first page, which the library never allocates.
 */
static bool bad_value(int i, u64 *val)
{
	const u64 flags[] = {
		0, KVM_ARM_APF_CTRL_ENABLE, KVM_ARM_APF_CTRL_EL1,
		KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1,
		KVM_ARM_APF_CTRL_ENABLE | BIT(2), KVM_ARM_APF_CTRL_ENABLE | BIT(5),
		KVM_ARM_APF_CTRL_ENABLE | BIT(52), KVM_ARM_APF_CTRL_ENABLE | BIT(63),
	};
	const u64 scratch_end = SCRATCH_GPA + SCRATCH_PAGES * page_size;
	const u64 addrs[] = {
		block_gpa, SCRATCH_GPA, scratch_end - 64,
		scratch_end - 32,		/* would cross into the next page */
		scratch_end,			/* unmapped */
		SCRATCH_GPA - 64, RO_GPA, RO_GPA + page_size - 64,
		BLOCK_GPA, BLOCK_GPA + page_size, GICD_BASE_GPA, GICR_BASE_GPA,
		0, KVM_ARM_APF_CTRL_ADDR_MASK, BIT(51),
	};
	int n = ARRAY_SIZE(flags) * ARRAY_SIZE(addrs);
	u64 r;

	if (i < n) {
		*val = addrs[i / ARRAY_SIZE(flags)] | flags[i % ARRAY_SIZE(flags)];
		return true;
	}
	if (i >= n + NR_RANDOM)
		return false;

	r = kvm_random_u64(&rng);
	switch (i % 3) {
	case 0:
		*val = r;
		break;
	case 1:
		*val = (r & KVM_ARM_APF_CTRL_ADDR_MASK) | (kvm_random_u32(&rng) & 0x3f);
		break;
	default:
		*val = SCRATCH_GPA + (r % (SCRATCH_PAGES * page_size));
		*val = (*val & KVM_ARM_APF_CTRL_ADDR_MASK) |
		       flags[kvm_random_u32(&rng) % ARRAY_SIZE(flags)];
		break;
	}
	return true;
}

static void guest_bad_values(void)
{
	u64 enable = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	u64 val;
	int i;

	/* Each from enabled, so that a refusal shows as "disabled". */
	for (i = 0; bad_value(i, &val); i++) {
		set_ctrl(enable);
		GUEST_ASSERT_EQ(get_ctrl(), enable);
		set_ctrl(val);
		if (ctrl_takes(val)) {
			GUEST_ASSERT_EQ(get_ctrl(), val);
			WRITE_ONCE(taken, taken + 1);
		} else {
			GUEST_ASSERT_EQ(get_ctrl(), 0);
		}
		WRITE_ONCE(tried, tried + 1);
	}
	set_ctrl(0);
	GUEST_DONE();
}

/* The guest RAM of @vm that KVM may write, into ram[] for ctrl_takes(). */
static void find_ram(struct kvm_vm *vm)
{
	struct userspace_mem_region *region;
	int bkt;

	nr_ram = 0;
	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node) {
		if (region->region.flags & KVM_MEM_READONLY)
			continue;
		TEST_ASSERT(nr_ram < ARRAY_SIZE(ram), "too many memslots");
		ram[nr_ram].start = region->region.guest_phys_addr;
		ram[nr_ram].end = ram[nr_ram].start + region->region.memory_size;
		nr_ram++;
	}
	/* Slot 0 starts at 0: bad_value()'s block at 0 is in RAM. */
	TEST_ASSERT_EQ(memslot2region(vm, 0)->region.guest_phys_addr, 0);
	sync_global_to_guest(vm, ram);
	sync_global_to_guest(vm, nr_ram);
}

/* Beside the VM's RAM: a read-only page and a page for a second block. */
static void add_block_slots(struct kvm_vm *vm)
{
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, RO_GPA, RO_SLOT, 1,
				    KVM_MEM_READONLY);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, BLOCK_GPA, BLOCK_SLOT, 1, 0);
	virt_map(vm, BLOCK_GPA, BLOCK_GPA, 1);
}

/*
 * The same values through KVM_SET_ONE_REG, as a VMM restoring a garbage
 * register would: each is taken or fails with EINVAL, changing nothing.
 */
static void one_reg_bad_values(struct kvm_vcpu *vcpu, u64 *one_tried, u64 *one_taken)
{
	u64 enable = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	u64 val;
	int i;

	rng = new_kvm_random_state(kvm_random_seed + 1);
	for (i = 0; bad_value(i, &val); i++) {
		vcpu_set_reg(vcpu, APF_REG, enable);
		if (ctrl_takes(val)) {
			vcpu_set_reg(vcpu, APF_REG, val);
			TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), val);
			(*one_taken)++;
		} else {
			TEST_ASSERT(__vcpu_set_reg(vcpu, APF_REG, val) == -1 && errno == EINVAL,
				    "KVM_SET_ONE_REG: %#lx not refused with EINVAL", val);
			TEST_ASSERT_EQ(vcpu_get_reg(vcpu, APF_REG), enable);
		}
		(*one_tried)++;
	}
	vcpu_set_reg(vcpu, APF_REG, 0);
}

static void test_bad_values(void)
{
	u64 one_tried = 0, one_taken = 0;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = create_vm(&vcpu, guest_bad_values, false);
	add_block_slots(vm);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, SCRATCH_GPA, SCRATCH_SLOT,
				    SCRATCH_PAGES, 0);
	find_ram(vm);
	rng = new_kvm_random_state(kvm_random_seed);
	sync_global_to_guest(vm, rng);

	run_to_done(vcpu);
	sync_global_from_guest(vm, tried);
	sync_global_from_guest(vm, taken);
	one_reg_bad_values(vcpu, &one_tried, &one_taken);
	TEST_ASSERT(taken && taken < tried && one_taken && one_taken < one_tried,
		    "the values tried should mix taken and refused ones");
	kvm_vm_free(vm);
	ksft_test_result_pass("control values: guest %lu (%lu taken), ONE_REG %lu (%lu taken)\n",
			      tried, taken, one_tried, one_taken);
}

static void guest_moves(void)
{
	u64 block_a = block_gva;
	u64 enable = block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	u64 moved = BLOCK_GPA | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1;
	int i;

	guest_init_irq();

	/*
	 * Enabling twice: a wake-all each.  The second one, if it found the
	 * first still in the block, comes with the acknowledgment.
	 */
	set_ctrl(enable);
	set_ctrl(enable);
	GUEST_ASSERT_EQ(get_ctrl(), enable);
	wait_for_wake_all(2);

	/* An acknowledgment with nothing raised is ignored. */
	for (i = 0; i < 100; i++)
		write_sysreg_s(0, SYS_ASYNC_PF_ACK_EL1);
	isb();
	expect_no_more(0, 2);
	GUEST_SYNC(STAGE_SPURIOUS_ACK);

	/*
	 * Moving the block while a page is fetched is an enable: the token
	 * is dropped, and the wake-all goes to the new block.
	 */
	touch_not_present(0);
	WRITE_ONCE(block_gva, BLOCK_GPA);
	set_ctrl(moved);
	GUEST_ASSERT_EQ(get_ctrl(), moved);
	wait_for_wake_all(3);
	GUEST_ASSERT_EQ(READ_ONCE(((struct kvm_arm_apf_block *)block_a)->ready_token), 0);
	GUEST_SYNC(STAGE_MOVED);

	/* The page came in: no PAGE_READY for the dropped token. */
	expect_no_more(0, 3);
	touch_present(0);
	GUEST_SYNC(STAGE_MOVED_READY);

	/* The VMM took the block's memslot away: faults are synchronous. */
	touch_present(1);
	GUEST_SYNC(STAGE_BLOCK_GONE);
	GUEST_DONE();
}

/*
 * A guest that acknowledges without a signal, enables twice and moves its
 * block with a fetch in flight; then a VMM that deletes the memslot under
 * an enabled block.
 */
static void test_block_moves(void)
{
	u64 not_present, sync;
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = create_vm(&vcpu, guest_moves, false);
	vm_install_sync_handler(vm, VECTOR_SYNC_CURRENT, ESR_ELx_EC_DABT_CUR,
				guest_dabt_handler);
	vm_install_exception_handler(vm, VECTOR_IRQ_CURRENT, guest_irq_handler);
	add_block_slots(vm);
	add_test_pages(vm);
	uffd = serve_test_pages();
	hold[0] = true;

	run_to(vcpu, STAGE_SPURIOUS_ACK);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 2);
	ksft_test_result_pass("stray acknowledgments ignored, enabling twice: two wake-alls\n");

	run_to(vcpu, STAGE_MOVED);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 3);
	wait_requested(0);
	release_held();
	/* Time for the fetch to finish before the guest looks. */
	usleep(100 * 1000);
	run_to(vcpu, STAGE_MOVED_READY);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 3);
	ksft_test_result_pass("block moved, fetch in flight: wake-all there, token dropped\n");

	vm_mem_region_delete(vm, BLOCK_SLOT);
	not_present = vcpu_get_stat(vcpu, apf_not_present);
	sync = vcpu_get_stat(vcpu, apf_sync);
	run_to(vcpu, STAGE_BLOCK_GONE);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), not_present);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_sync), sync + 1);
	/* Owed, not delivered: the block is not there to take it. */
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 3);
	run_to_done(vcpu);
	ksft_test_result_pass("memslot of an enabled block deleted: faults synchronous\n");

	uffd_stop_demand_paging(uffd);
	kvm_vm_free(vm);
	free(pattern_pages);
}

/* A VM whose guest takes signals, with the test pages served. */
static struct kvm_vm *create_apf_vm(struct kvm_vcpu **vcpu, void *code,
				    struct uffd_desc **uffd)
{
	struct kvm_vm *vm = create_vm(vcpu, code, false);

	vm_install_sync_handler(vm, VECTOR_SYNC_CURRENT, ESR_ELx_EC_DABT_CUR,
				guest_dabt_handler);
	vm_install_exception_handler(vm, VECTOR_IRQ_CURRENT, guest_irq_handler);
	add_test_pages(vm);
	*uffd = serve_test_pages();
	return vm;
}

static void destroy_apf_vm(struct kvm_vm *vm, struct uffd_desc *uffd)
{
	uffd_stop_demand_paging(uffd);
	kvm_vm_free(vm);
	free(pattern_pages);
}

static void guest_restore(void)
{
	int page;

	guest_init_irq();
	GUEST_ASSERT(max_pending >= RESTORE_PAGES);
	guest_enable();
	for (page = 0; page < RESTORE_PAGES; page++)
		touch_not_present(page);
	GUEST_SYNC(STAGE_RESTORE_HELD);

	/*
	 * The VMM restored the register: a wake-all, before any page (the
	 * tokens it replaces are not the guest's to wait for any more).
	 */
	wait_for_wake_all(2);
	GUEST_ASSERT_EQ(READ_ONCE(ready_count), 0);
	GUEST_SYNC(STAGE_RESTORED);

	/* The pages came in: no PAGE_READY, no second wake-all. */
	expect_no_more(0, 2);
	for (page = 0; page < RESTORE_PAGES; page++)
		touch_present(page);
	GUEST_SYNC(STAGE_RESTORE_DROPPED);
	GUEST_DONE();
}

/*
 * A VMM restores the control register, as after a migration, while the
 * guest waits for pages: the guest is told to stop waiting, once.
 */
static void test_restore_wakes_all(void)
{
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 val;
	int page;

	vm = create_apf_vm(&vcpu, guest_restore, &uffd);
	for (page = 0; page < RESTORE_PAGES; page++)
		hold[page] = true;

	run_to(vcpu, STAGE_RESTORE_HELD);
	for (page = 0; page < RESTORE_PAGES; page++)
		wait_requested(page);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), RESTORE_PAGES);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 1);

	/*
	 * What a destination does: a fresh vCPU's register is 0 until the
	 * VMM restores it.  Writing back the value it has is a no-op, as a
	 * VMM does after it merely looked at the registers.
	 */
	val = vcpu_get_reg(vcpu, APF_REG);
	TEST_ASSERT_EQ(val, block_gpa | KVM_ARM_APF_CTRL_ENABLE | KVM_ARM_APF_CTRL_EL1);
	vcpu_set_reg(vcpu, APF_REG, val);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 1);
	vcpu_set_reg(vcpu, APF_REG, 0);
	vcpu_set_reg(vcpu, APF_REG, val);
	run_to(vcpu, STAGE_RESTORED);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 2);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);

	release_held();
	/* Time for the fetches to finish before the guest looks. */
	usleep(100 * 1000);
	run_to(vcpu, STAGE_RESTORE_DROPPED);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 2);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready_mapped), 0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), RESTORE_PAGES);
	run_to_done(vcpu);

	destroy_apf_vm(vm, uffd);
	ksft_test_result_pass("restore with %d pages pending: one wake-all, tokens dropped\n",
			      RESTORE_PAGES);
}

static void guest_slot(void)
{
	guest_init_irq();
	guest_enable();
	touch_not_present(0);
	GUEST_SYNC(STAGE_SLOT_HELD);

	/* The block's memslot is gone: a fault is resolved synchronously. */
	touch_present(1);
	GUEST_SYNC(STAGE_SLOT_GONE);

	/* It is back: a wake-all, and no PAGE_READY for the lost token. */
	wait_for_wake_all(2);
	expect_no_more(0, 2);
	touch_present(0);
	GUEST_SYNC(STAGE_SLOT_BACK);
	GUEST_DONE();
}

/*
 * The VMM deletes the memslot of the control block while a page is
 * fetched, the fetch finishes meanwhile, and the VMM adds the memslot back
 * with the same memory: the guest hears a wake-all instead.
 */
static void test_block_slot_readded(void)
{
	struct userspace_mem_region *region;
	u64 not_present, sync;
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = create_apf_vm(&vcpu, guest_slot, &uffd);
	/* The block alone in its memslot. */
	add_block_slots(vm);
	block_gva = BLOCK_GPA;
	block_gpa = BLOCK_GPA;
	sync_global_to_guest(vm, block_gva);
	sync_global_to_guest(vm, block_gpa);
	region = memslot2region(vm, BLOCK_SLOT);
	hold[0] = true;

	run_to(vcpu, STAGE_SLOT_HELD);
	wait_requested(0);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 1);

	/*
	 * The vCPU stays out while the fetch finishes: whatever KVM would
	 * signal then, it could only find the block gone.
	 */
	vm_set_user_memory_region(vm, BLOCK_SLOT, 0, BLOCK_GPA, 0, NULL);
	release_held();
	usleep(100 * 1000);
	not_present = vcpu_get_stat(vcpu, apf_not_present);
	sync = vcpu_get_stat(vcpu, apf_sync);
	run_to(vcpu, STAGE_SLOT_GONE);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), not_present);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_sync), sync + 1);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 1);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);

	vm_set_user_memory_region(vm, BLOCK_SLOT, region->region.flags, BLOCK_GPA,
				  region->region.memory_size, region->host_mem);
	run_to(vcpu, STAGE_SLOT_BACK);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_wake_all), 2);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 0);
	run_to_done(vcpu);

	destroy_apf_vm(vm, uffd);
	ksft_test_result_pass("block's memslot deleted and added back: wake-all, token dropped\n");
}

static void guest_pmr(void)
{
	u32 prio, pmr, t;

	guest_init_irq();
	guest_enable();

	/* PAGE_READY's priority, as gic_init() left it in vCPU 0's redistributor. */
	prio = readl(GICR_BASE_GVA + SZ_64K + GICR_IPRIORITYR0 + (ready_intid & ~3));
	prio = (prio >> ((ready_intid % 4) * 8)) & 0xff;
	pmr = read_sysreg_s(SYS_ICC_PMR_EL1);
	GUEST_ASSERT(prio < pmr);
	WRITE_ONCE(ready_prio, prio);

	/*
	 * A priority mask at the PPI's priority masks it, as a guest using
	 * pseudo-NMIs masks IRQs, PSTATE.I clear: no signal.
	 */
	gic_set_priority_mask(prio);
	isb();
	GUEST_ASSERT(read_sysreg_s(SYS_ICC_PMR_EL1) <= prio);
	touch_present(0);
	gic_set_priority_mask(pmr);
	isb();

	/* Unmasked again: the next page is signalled. */
	t = touch_not_present(1);
	wait_for_ready(1);
	GUEST_ASSERT_EQ(READ_ONCE(ready_tokens[0]), t);
	touch_present(1);
	GUEST_SYNC(STAGE_PMR);
	GUEST_DONE();
}

static void test_pmr_masked(void)
{
	struct uffd_desc *uffd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = create_apf_vm(&vcpu, guest_pmr, &uffd);
	run_to(vcpu, STAGE_PMR);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_not_present), 1);
	TEST_ASSERT_EQ(vcpu_get_stat(vcpu, apf_ready), 1);
	sync_global_from_guest(vm, ready_prio);
	run_to_done(vcpu);

	destroy_apf_vm(vm, uffd);
	ksft_test_result_pass("synchronous with PAGE_READY masked by ICC_PMR_EL1 (priority %#x)\n",
			      ready_prio);
}

/* Whether this KVM offers the feature by default. */
static bool feature_offered(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 bmap;

	vm = vm_create_with_one_vcpu(&vcpu, NULL);
	bmap = vcpu_get_reg(vcpu, KVM_REG_ARM_VENDOR_HYP_BMAP_2);
	kvm_vm_free(vm);
	return bmap & BIT(KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF);
}

int main(int argc, char *argv[])
{
	TEST_REQUIRE(kvm_supports_vgic_v3());
	TEST_REQUIRE(feature_offered());

	ksft_print_header();
	ksft_set_plan(26);

	test_signals();
	test_teardown();
	test_bad_values();
	test_block_moves();
	test_restore_wakes_all();
	test_block_slot_readded();
	test_pmr_masked();
	test_hidden();
	test_refused_with_el2();
	test_ppi_taken();
	test_ready_intid();
	test_ready_intid_pmu();

	ksft_finished();
}
