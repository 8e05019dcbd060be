# SPDX-License-Identifier: GPL-2.0
#
# rust-kvm-apf: asynchronous page faults for KVM/arm64, in Rust.
#
#   make run     build, boot the KVM host (L1) under QEMU, boot a guest (L2)
#                under KVM inside it, show both reached userspace
#   make test    everything from a clean clone: deps, build, boot, tests
#   make bench   what asynchronous page faults buy a guest under pressure
#   make bench-postcopy  ... and while QEMU migrates it with postcopy
#   make test-debug  the tests on a kernel with lockdep, KASAN, kmemleak
#   make test-rt     the tests on a PREEMPT_RT kernel with lockdep
#   make soak    guests under a swap storm for 10 minutes
#   make help    every target

# Build output lives outside the clone, one folder per clone.
CACHE ?= $(HOME)/.cache/rust-kvm-apf
BUILD ?= $(CACHE)/$(notdir $(CURDIR))-$(shell printf %s '$(CURDIR)' | md5sum | cut -c1-8)
export CACHE BUILD
# Multiplies the tests' time limits, and settings for the tests in L1
# (VAR=VALUE,...): test-debug sets them.
export TIME_SCALE APF_ENV
comma := ,

LLVM_BIN := /usr/lib/llvm-19/bin
export PATH := $(LLVM_BIN):$(HOME)/.cargo/bin:$(PATH)
JOBS ?= $(shell nproc)

KBUILD := $(BUILD)/linux
# The configuration fragments merged over allnoconfig.
KCONFIG ?= scripts/build/kernel.config
# How every kbuild invocation here, the scripts' included, builds the kernel.
KBUILD_ARGS := ARCH=arm64 LLVM=1 RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library
export KBUILD_ARGS
KMAKE = $(MAKE) -C linux $(KBUILD_ARGS) O=$(KBUILD)
KSELFTEST := $(BUILD)/kselftest
SELFTEST_MAKE = $(MAKE) -C linux/tools/testing/selftests/kvm ARCH=arm64 \
	CROSS_COMPILE=aarch64-linux-gnu- LLVM= OUTPUT=$(KSELFTEST) \
	abs_objdir=$(KSELFTEST) \
	KHDR_INCLUDES="-isystem $(KBUILD)/usr/include" \
	EXTRA_CFLAGS=-static LDFLAGS=-static

# The tests `make test` runs inside L1; `make test TESTS="..."` picks others.
TESTS ?= $(shell awk '/^\# --- not in the default run/ { exit } \
	!/^\#/ && NF { print $$1 }' scripts/harness/tests.list)

.PHONY: help deps linux linux-reset patches check-series check-bisect config kernel \
	selftests rootfs test test-debug test-rt soak bench bench-postcopy run shell clean

help:
	@echo 'make run          build what is needed, boot L1 and L2 in it'
	@echo 'make shell        an interactive shell in L1 (run-l2 starts a guest)'
	@echo 'make test         deps, build, boot L1, run the tests, report'
	@echo 'make test-debug   make test on a debug kernel (lockdep, KASAN, kmemleak)'
	@echo 'make test-rt      make test on a PREEMPT_RT kernel with lockdep'
	@echo 'make soak         deps, build, boot L1, 2 guests under a swap storm for 10 min'
	@echo 'make bench        deps, build, boot L1, benchmark L2 under memory pressure'
	@echo 'make bench-postcopy  deps, build, boot L1, benchmark L2 while QEMU migrates it with postcopy'
	@echo 'make deps         install the pinned host tools (apt, cargo)'
	@echo 'make linux        create linux/ from the pinned base + patches/'
	@echo 'make patches      regenerate patches/ from linux/ and the source folders'
	@echo 'make check-series fail if patches/ does not give the tree in linux/'
	@echo 'make check-bisect build the Image at every patch of the series'
	@echo 'make linux-reset  drop unexported work in linux/, re-apply patches/'
	@echo 'make config       write the kernel .config in $$(BUILD)/linux from $$(KCONFIG)'
	@echo 'make kernel       build the arm64 Image (L1 and L2) in $$(BUILD)'
	@echo 'make selftests    build the arm64 KVM selftests, static'
	@echo 'make rootfs       build the L1 and L2 initramfs'
	@echo 'make clean        remove this clone'"'"'s build output ($(BUILD), -debug, -rt)'

deps:
	@scripts/build/deps.sh

linux:
	@scripts/series/series.sh tree

linux-reset:
	@scripts/series/series.sh reset

patches:
	@scripts/series/series.sh export

check-series:
	@scripts/series/series.sh check

check-bisect: kernel
	@scripts/series/check-bisect.sh

config: linux
	@scripts/build/kconfig.sh "$(KBUILD)" $(KCONFIG)

kernel: config
	@echo "==> kernel: building Image and modules in $(KBUILD)"
	@+$(KMAKE) -s -j$(JOBS) Image modules
	@echo "==> kernel: $(KBUILD)/arch/arm64/boot/Image"

selftests: config
	@echo "==> selftests: building arm64 KVM selftests (static) in $(KSELFTEST)"
	@+$(KMAKE) -s headers_install
	@mkdir -p $(KSELFTEST)/tools
	@+$(SELFTEST_MAKE) -s -j$(JOBS) >/dev/null

rootfs: selftests
	@scripts/build/rootfs.sh

test: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/harness/run-tests.sh $(TESTS)

# The same tests on a kernel built with scripts/build/debug.config too (L1 and
# L2 both run it), in its own build folder.  The checkers slow L2 down about
# twentyfold: time limits and waits are scaled by 10, and the guests under
# memory pressure sweep 96 MiB against a 64 MiB limit instead of 192/128.
test-debug:
	@+$(MAKE) --no-print-directory test BUILD=$(BUILD)-debug \
		KCONFIG="scripts/build/kernel.config scripts/build/debug.config" TIME_SCALE=10 \
		APF_ENV=APF_MIB=96,APF_LIMIT=64M$(if $(APF_ENV),$(comma)$(APF_ENV))

# The same tests on a PREEMPT_RT kernel with lockdep (scripts/build/rt.config),
# L1 and L2 both, in its own build folder: a spinlock_t taken where KVM
# runs with preemption disabled sleeps there, and lockdep says so.
test-rt:
	@+$(MAKE) --no-print-directory test BUILD=$(BUILD)-rt \
		KCONFIG="scripts/build/kernel.config scripts/build/rt.config" TIME_SCALE=4 \
		APF_ENV=APF_MIB=96,APF_LIMIT=64M$(if $(APF_ENV),$(comma)$(APF_ENV))

soak: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/harness/run-tests.sh soak

bench: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/bench/bench.sh bench

bench-postcopy: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/bench/bench.sh bench-postcopy

run: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/harness/boot.sh run

shell: deps
	@+$(MAKE) --no-print-directory kernel rootfs
	@scripts/harness/boot.sh shell

clean:
	rm -rf "$(BUILD)" "$(BUILD)-debug" "$(BUILD)-rt"
