// SPDX-License-Identifier: GPL-2.0
/*
 * apf-touch [--bench] MIB [PASSES [SECONDS]]: the workload L2 runs in the
 * tests and in `make bench`.
 *
 * The victim writes a pattern over MIB MiB of anonymous memory and reads
 * every word back, PASSES times (default 2); it exits 1 on the first
 * mismatch.  Run in a guest whose host keeps less than MIB resident, every
 * pass brings pages back from the host's swap.  With SECONDS, it goes on
 * with more passes until that long has passed: a run without memory
 * pressure, whose passes take a second, then lasts as long as one with.
 *
 * With --bench a bystander that needs only resident memory runs beside
 * it: in every period of PERIOD_US it does units of CPU work for half the
 * period, then sleeps until the next period starts, and measures how late
 * it woke.  When the victim is done, one line reports the victim's time
 * and passes, the bystander's throughput and its wakeup latencies
 * (percentiles and a histogram with power-of-two microsecond buckets).
 */
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_US	10000
#define MAX_SAMPLES	200000
#define BUCKETS		24

struct shared {
	int stop;
	unsigned long long units;
	unsigned long samples;
	unsigned int lat_us[MAX_SAMPLES];
};

static __u64 pattern(__u64 word, unsigned int pass)
{
	return (word * 0x9e3779b97f4a7c15ULL) ^ ((__u64)pass << 56) ^ 0x5a5a;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * Writes and verifies MIB MiB PASSES times, then more until SECONDS have
 * passed; the number of passes, or -1 on a mismatch.
 */
static int victim(size_t mib, unsigned int passes, unsigned int seconds,
		  int verbose)
{
	__u64 *mem, t0, end = now_ns() + seconds * 1000000000ULL;
	size_t words = mib << 17, i;
	unsigned int pass;

	mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("apf-touch: mmap");
		return -1;
	}
	for (pass = 0; pass < passes || now_ns() < end; pass++) {
		t0 = now_ns();
		for (i = 0; i < words; i++)
			mem[i] = pattern(i, pass);
		for (i = 0; i < words; i++) {
			if (mem[i] != pattern(i, pass)) {
				printf("apf-touch: pass %u: word %zu is %#llx, not %#llx\n",
				       pass, i, (unsigned long long)mem[i],
				       (unsigned long long)pattern(i, pass));
				return -1;
			}
		}
		if (verbose)
			printf("apf-touch: pass %u: %zu MiB written and verified in %.1f s\n",
			       pass, mib, (now_ns() - t0) / 1e9);
	}
	munmap(mem, mib << 20);
	return pass;
}

/* One unit of CPU work that the compiler cannot drop. */
static __u64 unit(__u64 x)
{
	int i;

	for (i = 0; i < 1000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

static void bystander(struct shared *sh)
{
	__u64 next = now_ns(), x = 1, t;
	struct timespec ts;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		next += PERIOD_US * 1000ULL;
		while (now_ns() < next - PERIOD_US * 500ULL &&
		       !__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
			x = unit(x);
			sh->units++;
		}
		ts.tv_sec = next / 1000000000ULL;
		ts.tv_nsec = next % 1000000000ULL;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		t = now_ns();
		if (sh->samples < MAX_SAMPLES)
			sh->lat_us[sh->samples++] = t > next ? (t - next) / 1000 : 0;
		/* A period missed entirely is not made up for. */
		if (t > next + PERIOD_US * 1000ULL)
			next = t;
	}
	exit(x == 0);
}

static int cmp(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

static void report(struct shared *sh, __u64 victim_ns, int passes)
{
	unsigned int hist[BUCKETS] = { 0 }, b;
	unsigned long n = sh->samples, i;

	qsort(sh->lat_us, n, sizeof(sh->lat_us[0]), cmp);
	for (i = 0; i < n; i++) {
		for (b = 0; b < BUCKETS - 1 && sh->lat_us[i] >= (2U << b); b++)
			;
		hist[b]++;
	}
	printf("@@BENCH victim_s=%.3f passes=%d verified=%d units_per_s=%.1f wakeups=%lu",
	       victim_ns / 1e9, passes, passes >= 0,
	       sh->units / (victim_ns / 1e9), n);
	if (n)
		printf(" lat_p50_us=%u lat_p99_us=%u lat_max_us=%u",
		       sh->lat_us[n / 2], sh->lat_us[n * 99 / 100],
		       sh->lat_us[n - 1]);
	printf(" hist=");
	for (b = 0; b < BUCKETS; b++)
		printf("%s%u", b ? "," : "", hist[b]);
	printf("@@\n");
}

int main(int argc, char **argv)
{
	int bench = argc > 1 && !strcmp(argv[1], "--bench");
	size_t mib = argc > 1 + bench ? strtoul(argv[1 + bench], NULL, 0) : 0;
	unsigned int passes = argc > 2 + bench ? atoi(argv[2 + bench]) : 2;
	unsigned int seconds = argc > 3 + bench ? atoi(argv[3 + bench]) : 0;
	__u64 t0, victim_ns;
	struct shared *sh;
	int done;
	pid_t pid;

	if (!mib || !passes) {
		fprintf(stderr, "usage: apf-touch [--bench] MIB [PASSES [SECONDS]]\n");
		return 2;
	}
	if (!bench)
		return victim(mib, passes, seconds, 1) < 0;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("apf-touch: mmap");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("apf-touch: fork");
		return 2;
	}
	if (!pid)
		bystander(sh);
	t0 = now_ns();
	done = victim(mib, passes, seconds, 0);
	victim_ns = now_ns() - t0;
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	waitpid(pid, NULL, 0);
	report(sh, victim_ns, done);
	return done < 0;
}
