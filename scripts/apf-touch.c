// SPDX-License-Identifier: GPL-2.0
/*
 * apf-touch [--bench] MIB [PASSES [SECONDS]]: the workload L2 runs in the
 * tests and in `make bench`; apf-touch --canary: L1's speed in the bench
 * (see canary()).
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
 * (percentiles and a histogram with power-of-two microsecond buckets),
 * and the same figures over the passes after the first ("warm_"): the
 * first pass is where the guest first touches the memory and the host
 * allocates it; after it, every page comes back from where the host put
 * it (its swap, under pressure).  It also counts the wakeups on whose way
 * back the bystander blocked on something of its own ("own_waits"): a
 * page of its own the host had swapped out, which the feature cannot hide
 * from the task that waits for it.
 *
 * Each task's figures are also given per second of CPU time it got
 * ("units_per_cpu_s", "victim_mwords_per_cpu_s"): its efficiency, apart
 * from how the guest's scheduler shared one vCPU between the two.  The
 * host's time on a vCPU exit counts as CPU time of the task that was
 * running (the guest has no steal-time accounting), so a cost the feature
 * adds on the host shows there.
 */
#define _GNU_SOURCE
#include <linux/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_US	10000
#define MAX_SAMPLES	200000
#define BUCKETS		24

struct shared {
	int stop;
	int warm;		/* the victim is past its first pass */
	__u64 warm_ns;		/* when it got there */
	unsigned long long units, warm_units;
	unsigned long samples;
	unsigned long own_waits;	/* wakeups late for a wait of its own */
	__u64 bystander_cpu_ns;	/* CPU time the bystander got */
	unsigned int lat_us[MAX_SAMPLES];
	unsigned char lat_warm[MAX_SAMPLES];
};

static __u64 pattern(__u64 word, unsigned int pass)
{
	return (word * 0x9e3779b97f4a7c15ULL) ^ ((__u64)pass << 56) ^ 0x5a5a;
}

static __u64 clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static __u64 now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/*
 * Writes and verifies MIB MiB PASSES times, then more until SECONDS have
 * passed; the number of passes, or -1 on a mismatch.  With SH, tells the
 * bystander when the first pass is done.
 */
static int victim(size_t mib, unsigned int passes, unsigned int seconds,
		  struct shared *sh, int verbose)
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
		if (sh && !pass) {
			sh->warm_ns = now_ns();
			__atomic_store_n(&sh->warm, 1, __ATOMIC_RELEASE);
		}
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

/* How often this thread blocked, its sleeps included. */
static long blocked(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) ? 0 : ru.ru_nvcsw;
}

static void bystander(struct shared *sh)
{
	__u64 next = now_ns(), x = 1, t;
	struct timespec ts;
	int warm, sleeps;
	long b0;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		next += PERIOD_US * 1000ULL;
		while (now_ns() < next - PERIOD_US * 500ULL &&
		       !__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
			x = unit(x);
			sh->units++;
			if (__atomic_load_n(&sh->warm, __ATOMIC_ACQUIRE))
				sh->warm_units++;
		}
		ts.tv_sec = next / 1000000000ULL;
		ts.tv_nsec = next % 1000000000ULL;
		sleeps = now_ns() < next;
		b0 = blocked();
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		t = now_ns();
		/*
		 * Blocked more than its sleep: it waited for something of its
		 * own on the way back (a page of its own the guest was told
		 * is not present).
		 */
		if (blocked() - b0 > sleeps)
			sh->own_waits++;
		/* A wakeup counts as warm if the whole period was. */
		warm = __atomic_load_n(&sh->warm, __ATOMIC_ACQUIRE) &&
		       sh->warm_ns < next - PERIOD_US * 1000ULL;
		if (sh->samples < MAX_SAMPLES) {
			sh->lat_warm[sh->samples] = warm;
			sh->lat_us[sh->samples++] = t > next ? (t - next) / 1000 : 0;
		}
		/* A period missed entirely is not made up for. */
		if (t > next + PERIOD_US * 1000ULL)
			next = t;
	}
	sh->bystander_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	exit(x == 0);
}

static int cmp(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

/* " PREFIXlat_p50_us=.. p99 .. max ..": percentiles of N sorted latencies. */
static void percentiles(const char *prefix, unsigned int *lat, unsigned long n)
{
	if (n)
		printf(" %slat_p50_us=%u %slat_p99_us=%u %slat_max_us=%u",
		       prefix, lat[n / 2], prefix, lat[n * 99 / 100],
		       prefix, lat[n - 1]);
}

/*
 * The victim ran from T0 to T1 with CPU_NS of CPU time, over MIB MiB
 * PASSES times.
 */
static void report(struct shared *sh, __u64 t0, __u64 t1, __u64 cpu_ns,
		   size_t mib, int passes)
{
	/* Every pass writes each word once and reads it back once. */
	double mwords = passes > 0 ? 2.0 * passes * (mib << 17) / 1e6 : 0;
	unsigned int hist[BUCKETS] = { 0 }, b;
	unsigned long n = sh->samples, nwarm = 0, i;
	unsigned int *warm = calloc(n + 1, sizeof(*warm));

	for (i = 0; warm && i < n; i++)
		if (sh->lat_warm[i])
			warm[nwarm++] = sh->lat_us[i];
	qsort(sh->lat_us, n, sizeof(sh->lat_us[0]), cmp);
	for (i = 0; i < n; i++) {
		for (b = 0; b < BUCKETS - 1 && sh->lat_us[i] >= (2U << b); b++)
			;
		hist[b]++;
	}
	printf("@@BENCH victim_s=%.3f passes=%d verified=%d units_per_s=%.1f wakeups=%lu",
	       (t1 - t0) / 1e9, passes, passes >= 0,
	       sh->units / ((t1 - t0) / 1e9), n);
	percentiles("", sh->lat_us, n);
	if (cpu_ns && sh->bystander_cpu_ns) {
		printf(" victim_cpu_s=%.3f victim_mwords_per_cpu_s=%.2f",
		       cpu_ns / 1e9, mwords / (cpu_ns / 1e9));
		printf(" bystander_cpu_s=%.3f units_per_cpu_s=%.1f",
		       sh->bystander_cpu_ns / 1e9,
		       sh->units / (sh->bystander_cpu_ns / 1e9));
	}
	if (sh->warm && t1 > sh->warm_ns && warm) {
		qsort(warm, nwarm, sizeof(warm[0]), cmp);
		printf(" warm_s=%.3f warm_units_per_s=%.1f warm_wakeups=%lu",
		       (t1 - sh->warm_ns) / 1e9,
		       sh->warm_units / ((t1 - sh->warm_ns) / 1e9), nwarm);
		percentiles("warm_", warm, nwarm);
	}
	free(warm);
	printf(" own_waits=%lu", sh->own_waits);
	printf(" hist=");
	for (b = 0; b < BUCKETS; b++)
		printf("%s%u", b ? "," : "", hist[b]);
	printf("@@\n");
}

/*
 * --canary: how fast the machine itself runs, apart from how any guest
 * shares its CPU: 50 ms of units every second until SIGTERM, then their
 * number per second of the CPU time they took, at nice 19.  scripts/l2-bench
 * runs it in L1 beside each run, to tell a slowdown of the emulated CPU
 * under memory pressure, which every task on it suffers, from a cost of
 * the feature.
 */
static volatile sig_atomic_t canary_stop;

static void canary_term(int sig)
{
	canary_stop = 1;
}

static int canary(void)
{
	struct sigaction sa = { .sa_handler = canary_term };
	__u64 units = 0, cpu = 0, next = now_ns(), end, c0, x = 1;
	unsigned int samples = 0;
	struct timespec ts;

	/* Only what L1's other tasks leave of its CPUs. */
	if (sigaction(SIGTERM, &sa, NULL) || setpriority(PRIO_PROCESS, 0, 19)) {
		perror("apf-touch: canary");
		return 2;
	}
	while (!canary_stop) {
		end = now_ns() + 50 * 1000000ULL;
		c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		while (now_ns() < end && !canary_stop) {
			x = unit(x);
			units++;
		}
		cpu += clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
		samples++;
		next += 1000000000ULL;
		if (next < now_ns())
			next = now_ns();
		ts.tv_sec = next / 1000000000ULL;
		ts.tv_nsec = next % 1000000000ULL;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	printf("@@CANARY canary_units_per_cpu_s=%.0f canary_samples=%u@@\n",
	       cpu ? units * 1e9 / cpu : 0.0, samples);
	return x == 0;
}

int main(int argc, char **argv)
{
	int bench = argc > 1 && !strcmp(argv[1], "--bench");
	size_t mib = argc > 1 + bench ? strtoul(argv[1 + bench], NULL, 0) : 0;
	unsigned int passes = argc > 2 + bench ? atoi(argv[2 + bench]) : 2;
	unsigned int seconds = argc > 3 + bench ? atoi(argv[3 + bench]) : 0;
	struct shared *sh;
	__u64 t0, t1, cpu0, cpu1;
	int done;
	pid_t pid;

	if (argc == 2 && !strcmp(argv[1], "--canary"))
		return canary();
	if (!mib || !passes) {
		fprintf(stderr, "usage: apf-touch [--bench] MIB [PASSES [SECONDS]] | --canary\n");
		return 2;
	}
	if (!bench)
		return victim(mib, passes, seconds, NULL, 1) < 0;

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
	cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	done = victim(mib, passes, seconds, sh, 0);
	t1 = now_ns();
	cpu1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	waitpid(pid, NULL, 0);
	report(sh, t0, t1, cpu1 - cpu0, mib, done);
	return done < 0;
}
