// SPDX-License-Identifier: GPL-2.0
/*
 * apf-kexec: kexec for the L2 guest, whose busybox has none.
 *
 *   apf-kexec load KERNEL INITRD CMDLINE   load them with kexec_file_load(2)
 *   apf-kexec load-crash KERNEL INITRD CMDLINE
 *                                          load them as the crash kernel,
 *                                          which a panic boots (kdump)
 *   apf-kexec exec                         boot what is loaded
 *
 * Loading is slow and exec is not, so l2-init loads first and execs at the
 * moment it wants: while a task sleeps on a token.  A crash kernel goes into
 * the memory crashkernel= reserved, and a panic, not exec, boots it.
 */
#include <fcntl.h>
#include <linux/kexec.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_or_complain(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		perror(path);
	return fd;
}

static int load(const char *kernel, const char *initrd, const char *cmdline,
		unsigned long flags)
{
	int kfd = open_or_complain(kernel), ifd = open_or_complain(initrd);

	if (kfd < 0 || ifd < 0)
		return 1;
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(cmdline) + 1,
		    cmdline, flags)) {
		perror("kexec_file_load");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "load"))
		return load(argv[2], argv[3], argv[4], 0);
	if (argc == 5 && !strcmp(argv[1], "load-crash"))
		return load(argv[2], argv[3], argv[4], KEXEC_FILE_ON_CRASH);
	if (argc == 2 && !strcmp(argv[1], "exec")) {
		sync();
		reboot(RB_KEXEC);
		perror("reboot(RB_KEXEC)");
		return 1;
	}
	fprintf(stderr,
		"usage: apf-kexec load|load-crash KERNEL INITRD CMDLINE | exec\n");
	return 2;
}
