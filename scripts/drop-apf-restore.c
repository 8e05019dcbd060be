// SPDX-License-Identifier: GPL-2.0
/*
 * drop-apf-restore.so: preloaded into a VMM, makes it one that never
 * restores SYS_ASYNC_PF_EL1: its KVM_SET_ONE_REG of that register is
 * answered with success and never reaches KVM, so that a restored or
 * migrated guest finds the feature off on the destination.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* SYS_ASYNC_PF_EL1 (S3_0_C15_C0_0), as KVM_GET_REG_LIST names it */
#define ASYNC_PF_REG	ARM64_SYS_REG(3, 0, 15, 0, 0)

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real)(int, unsigned long, ...);
	const struct kvm_one_reg *reg;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	reg = arg;
	if (request == KVM_SET_ONE_REG && reg->id == ASYNC_PF_REG)
		return 0;
	return real(fd, request, arg);
}
