// SPDX-License-Identifier: GPL-2.0
/*
 * hide-apf.so: preloaded into a VMM, hides asynchronous page faults from
 * its guest the way a VMM does: it clears KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF
 * in the KVM_REG_ARM_VENDOR_HYP_BMAP_2 firmware register after every
 * KVM_ARM_VCPU_INIT, before the VM first runs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real)(int, unsigned long, ...);
	__u64 bmap;
	struct kvm_one_reg reg = {
		.id = KVM_REG_ARM_VENDOR_HYP_BMAP_2,
		.addr = (__u64)(uintptr_t)&bmap,
	};
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	ret = real(fd, request, arg);
	if (ret || request != KVM_ARM_VCPU_INIT)
		return ret;
	if (real(fd, KVM_GET_ONE_REG, &reg)) {
		perror("hide-apf: KVM_GET_ONE_REG");
		abort();
	}
	if (!(bmap & (1ULL << KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF)))
		return 0;
	bmap &= ~(1ULL << KVM_REG_ARM_VENDOR_HYP_BIT_ASYNC_PF);
	if (real(fd, KVM_SET_ONE_REG, &reg)) {
		perror("hide-apf: KVM_SET_ONE_REG");
		abort();
	}
	return 0;
}
