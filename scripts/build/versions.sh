# SPDX-License-Identifier: GPL-2.0
# Every pinned version and checksum of the project, in one place.
LINUX_SOURCE_PKG=linux-source-7.3
LINUX_SOURCE_VERSION=7.3.4-1~bpo13+1
LINUX_SOURCE_SHA256=703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3
CLANG_VERSION=1:19.1.7-3~deb12u1
RUST_SRC_VERSION=1.95.0+dfsg1-2~bpo13+1
QEMU_VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
BINDGEN_VERSION=0.73.2
# bench.png of `make bench`
MATPLOTLIB_VERSION=3.6.3-1+b1
# The arm64 userspace of L1: Debian's QEMU to boot L2, and busybox.
L1_QEMU_VERSION=1:7.2+dfsg-7+deb12u18+b3
L1_BUSYBOX_VERSION=1:1.35.0-4+deb12u1+b1
# UEFI firmware for an L2 that boots through UEFI with ACPI
L1_EFI_VERSION=2022.11-6+deb12u2
