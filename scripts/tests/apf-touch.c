// SPDX-License-Identifier: GPL-2.0
/*
 * apf-touch [--bench] MIB [PASSES [SECONDS]]: the workload L2 runs in the
 * tests and in `make bench`; apf-touch --canary: L1's speed in the bench
 * (see canary()); apf-touch --migrate CASE MIB FILE: the guest's side of
 * `make bench-postcopy` (see migrate()).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
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
	/* --migrate: each wakeup's time, in ms after the start */
	unsigned int lat_ms[MAX_SAMPLES];
	__u64 t0_ns;
	__u64 victim_words;	/* words the victim wrote or verified */
	__u64 gzip_bytes;	/* input the compressor got through */
	unsigned long gzip_runs, gzip_bad;
	int victim_bad;
	int stop_victim;	/* the victim stops mid-pass (--migrate) */
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
 * Every 4096 words of a pass: counts them, and with --migrate, once told
 * to stop, verifies every word as the pass left it (the first WRITTEN
 * words hold this pass's pattern, the others the last pass's) and tells
 * the caller to stop.
 */
static int victim_progress(struct shared *sh, __u64 *mem, size_t words,
			   size_t written, unsigned int pass)
{
	size_t i;

	__atomic_add_fetch(&sh->victim_words, 4096, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&sh->stop_victim, __ATOMIC_ACQUIRE))
		return 0;
	for (i = 0; i < words; i++) {
		if (i >= written && !pass)
			break;
		if (mem[i] != pattern(i, i < written ? pass : pass - 1)) {
			printf("apf-touch: after the move, word %zu is %#llx\n",
			       i, (unsigned long long)mem[i]);
			sh->victim_bad = 1;
			break;
		}
	}
	return 1;
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
		for (i = 0; i < words; i++) {
			mem[i] = pattern(i, pass);
			if (sh && !(i & 4095) && victim_progress(sh, mem, words, i + 1, pass))
				return pass;
		}
		for (i = 0; i < words; i++) {
			if (sh && !(i & 4095) && victim_progress(sh, mem, words, words, pass))
				return pass;
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

/*
 * --migrate idle: writes MIB MiB once, tells the bystander's mark it is
 * done, sleeps until told to stop, then verifies every word; exits 1 on
 * a mismatch.
 */
static void idle_victim(size_t mib, struct shared *sh)
{
	size_t words = mib << 17, i;
	__u64 *mem;

	mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		exit(1);
	for (i = 0; i < words; i++)
		mem[i] = pattern(i, 0);
	__atomic_store_n(&sh->warm, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sh->stop_victim, __ATOMIC_ACQUIRE))
		sleep(1);
	for (i = 0; i < words; i++) {
		if (mem[i] != pattern(i, 0)) {
			printf("apf-touch: after the move, word %zu is %#llx\n",
			       i, (unsigned long long)mem[i]);
			exit(1);
		}
	}
	exit(0);
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
			__atomic_add_fetch(&sh->units, 1, __ATOMIC_RELAXED);
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
			sh->lat_ms[sh->samples] = (t - sh->t0_ns) / 1000000;
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
 * number per second of the CPU time they took, at nice 19.  scripts/bench/l2-bench
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

/*
 * --migrate's compressor: busybox gzip over FILE (fixed input from
 * Debian's busybox-static), over and over until told to stop; each run's
 * output must hash the same as the first.
 */
static void compressor(struct shared *sh, const char *file)
{
	__u64 first = 0, h;
	unsigned char buf[65536];
	struct stat st;
	int fd[2], i;
	ssize_t n;
	pid_t pid;

	if (stat(file, &st))
		exit(2);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		if (pipe(fd))
			exit(2);
		pid = fork();
		if (!pid) {
			dup2(fd[1], 1);
			close(fd[0]);
			execlp("gzip", "gzip", "-c", file, (char *)NULL);
			_exit(127);
		}
		close(fd[1]);
		h = 14695981039346656037ULL;
		while ((n = read(fd[0], buf, sizeof(buf))) > 0)
			for (i = 0; i < n; i++)
				h = (h ^ buf[i]) * 1099511628211ULL;
		close(fd[0]);
		waitpid(pid, &i, 0);
		if (!WIFEXITED(i) || WEXITSTATUS(i) || (first && h != first))
			sh->gzip_bad++;
		if (!first)
			first = h;
		sh->gzip_runs++;
		__atomic_add_fetch(&sh->gzip_bytes, st.st_size, __ATOMIC_RELAXED);
	}
	exit(0);
}

/* What the counters stood at when a mark came. */
struct mark {
	__u64 ns, units, words, gzip;
};

static void take_mark(struct shared *sh, struct mark *m)
{
	m->ns = now_ns();
	m->units = __atomic_load_n(&sh->units, __ATOMIC_RELAXED);
	m->words = __atomic_load_n(&sh->victim_words, __ATOMIC_RELAXED);
	m->gzip = __atomic_load_n(&sh->gzip_bytes, __ATOMIC_RELAXED);
}

/*
 * " NAME_s=.. NAME_units_per_s=.. NAME_lat_p50_us=.. .. NAME_victim_mwords_per_s=..
 * NAME_gzip_kib_per_s=..": what the tasks did between marks A and B.
 */
static void window(struct shared *sh, const char *name, struct mark *a,
		   struct mark *b)
{
	double secs = (b->ns - a->ns) / 1e9;
	unsigned int from = (a->ns - sh->t0_ns) / 1000000;
	unsigned int to = (b->ns - sh->t0_ns) / 1000000;
	unsigned long n = 0, i;
	unsigned int *lat = calloc(sh->samples + 1, sizeof(*lat));
	char prefix[32];

	if (secs <= 0 || !lat) {
		free(lat);
		return;
	}
	for (i = 0; i < sh->samples; i++)
		if (sh->lat_ms[i] >= from && sh->lat_ms[i] < to)
			lat[n++] = sh->lat_us[i];
	qsort(lat, n, sizeof(lat[0]), cmp);
	printf(" %s_s=%.3f %s_units_per_s=%.1f %s_wakeups=%lu", name, secs,
	       name, (b->units - a->units) / secs, name, n);
	snprintf(prefix, sizeof(prefix), "%s_", name);
	percentiles(prefix, lat, n);
	printf(" %s_victim_mwords_per_s=%.3f %s_gzip_kib_per_s=%.1f", name,
	       (b->words - a->words) / secs / 1e6, name,
	       (b->gzip - a->gzip) / secs / 1024);
	free(lat);
}

/*
 * --migrate CASE MIB FILE: the guest's side of a postcopy migration.
 * CASE "busy": a victim writing and verifying MIB MiB over and over, the
 * bystander, and busybox gzip compressing FILE over and over; "alone": the
 * victim only; "idle": MIB MiB written once, then nothing until the end.
 * Once the victim has written its memory once it prints
 * "@@L2 pcbench ready@@"; then it takes a mark for each line L1 types on
 * the console, through the VMM's serial port: "m" when the migration
 * starts, "p" as postcopy starts, "e" when it completed; it echoes each
 * as "@@PCMARK m@@" (and so on), which L1 waits for.  At "e" every
 * task stops, the victim verifies every word of its memory, and one line
 * reports what the tasks did between the marks: "base" (ready to m: the
 * same guest not migrating), "pre" (m to p) and "post" (p to e).
 */
static int migrate(const char *what, size_t mib, const char *file)
{
	int busy = !strcmp(what, "busy"), alone = !strcmp(what, "alone");
	pid_t bystander_pid = 0, compressor_pid = 0, victim_pid = 0;
	struct mark marks[4] = { 0 };
	int nmarks = 1, verified = 1, status;
	struct shared *sh;
	char line[64];

	if (!busy && !alone && strcmp(what, "idle")) {
		fprintf(stderr, "apf-touch: no case '%s': busy, alone or idle\n", what);
		return 2;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("apf-touch: mmap");
		return 2;
	}
	sh->t0_ns = now_ns();
	if (busy) {
		bystander_pid = fork();
		if (!bystander_pid)
			bystander(sh);
		compressor_pid = fork();
		if (!compressor_pid)
			compressor(sh, file);
	}
	victim_pid = fork();
	if (!victim_pid && (busy || alone))
		exit(victim(mib, ~0U, 0, sh, 0) < 0 || sh->victim_bad);
	if (!victim_pid)
		idle_victim(mib, sh);
	if (bystander_pid < 0 || compressor_pid < 0 || victim_pid < 0) {
		perror("apf-touch: fork");
		sh->stop = sh->stop_victim = 1;
		return 2;
	}
	/* Ready once the victim's memory is all written. */
	while (victim_pid && !__atomic_load_n(&sh->warm, __ATOMIC_ACQUIRE) &&
	       waitpid(victim_pid, &status, WNOHANG) == 0)
		usleep(10000);
	take_mark(sh, &marks[0]);
	printf("@@L2 pcbench ready@@\n");
	fflush(stdout);
	/* Each mark is echoed: L1 waits for it before going on. */
	while (nmarks < 4 && fgets(line, sizeof(line), stdin))
		if (line[0] == "-mpe"[nmarks]) {
			take_mark(sh, &marks[nmarks++]);
			printf("@@PCMARK %c@@\n", line[0]);
			fflush(stdout);
		}
	__atomic_store_n(&sh->stop_victim, 1, __ATOMIC_RELEASE);
	if (victim_pid) {
		waitpid(victim_pid, &status, 0);
		verified = WIFEXITED(status) && !WEXITSTATUS(status);
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	if (bystander_pid)
		waitpid(bystander_pid, NULL, 0);
	if (compressor_pid)
		waitpid(compressor_pid, NULL, 0);
	printf("@@PCBENCH case=%s marks=%d verified=%d gzip_runs=%lu gzip_bad=%lu",
	       what, nmarks, verified, sh->gzip_runs, sh->gzip_bad);
	if (nmarks == 4) {
		window(sh, "base", &marks[0], &marks[1]);
		window(sh, "pre", &marks[1], &marks[2]);
		window(sh, "post", &marks[2], &marks[3]);
	}
	printf("@@\n");
	return nmarks < 4 || !verified || sh->gzip_bad;
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
	if (argc == 5 && !strcmp(argv[1], "--migrate"))
		return migrate(argv[2], strtoul(argv[3], NULL, 0), argv[4]);
	if (!mib || !passes) {
		fprintf(stderr, "usage: apf-touch [--bench] MIB [PASSES [SECONDS]] | --canary | --migrate CASE MIB FILE\n");
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
