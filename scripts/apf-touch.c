// SPDX-License-Identifier: GPL-2.0
/*
 * apf-touch MIB [PASSES]: write a pattern over MIB MiB of anonymous memory,
 * then read every word back, PASSES times (default 2); exit 1 on the first
 * mismatch.  Run in a guest whose host keeps less than MIB resident, every
 * pass brings pages back from the host's swap.
 */
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static __u64 pattern(__u64 word, unsigned int pass)
{
	return (word * 0x9e3779b97f4a7c15ULL) ^ ((__u64)pass << 56) ^ 0x5a5a;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned int passes = argc > 2 ? atoi(argv[2]) : 2, pass;
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 0;
	size_t words = mib << 17, i;
	__u64 *mem;
	double t0;

	if (!mib || !passes) {
		fprintf(stderr, "usage: apf-touch MIB [PASSES]\n");
		return 2;
	}
	mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("apf-touch: mmap");
		return 2;
	}
	for (pass = 0; pass < passes; pass++) {
		t0 = now();
		for (i = 0; i < words; i++)
			mem[i] = pattern(i, pass);
		for (i = 0; i < words; i++) {
			if (mem[i] != pattern(i, pass)) {
				printf("apf-touch: pass %u: word %zu is %#llx, not %#llx\n",
				       pass, i, (unsigned long long)mem[i],
				       (unsigned long long)pattern(i, pass));
				return 1;
			}
		}
		printf("apf-touch: pass %u: %zu MiB written and verified in %.1f s\n",
		       pass, mib, now() - t0);
	}
	return 0;
}
