// SPDX-License-Identifier: GPL-2.0
/*
 * forget-apf.so: preloaded into the VMM that restores a VM, makes it one
 * that never restores SYS_ASYNC_PF_EL1 (a VMM that saves a fixed list of
 * registers, older than the feature): every KVM_SET_ONE_REG of that
 * register succeeds without reaching KVM, which keeps the value a vCPU
 * has after KVM_ARM_VCPU_INIT, 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#define SYS_ASYNC_PF_EL1_ID	ARM64_SYS_REG(3, 0, 15, 0, 0)

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real)(int, unsigned long, ...);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	if (request == KVM_SET_ONE_REG &&
	    ((struct kvm_one_reg *)arg)->id == SYS_ASYNC_PF_EL1_ID)
		return 0;
	return real(fd, request, arg);
}
