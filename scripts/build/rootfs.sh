#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the two initramfs images:
#   l2.cpio.gz  the guest's: static busybox and scripts/harness/l2-init
#   l1.cpio     the host's: Debian's arm64 QEMU (to boot L2) with its
#               libraries, busybox, the KVM selftests, the Image and
#               l2.cpio.gz, and scripts/harness/l1-init
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/build/versions.sh"
: "${CACHE:?}" "${BUILD:?}"

say() { echo "==> rootfs: $*"; }

image=$BUILD/linux/arch/arm64/boot/Image
[ -f "$image" ] || { echo "rootfs: no $image: run 'make kernel'" >&2; exit 1; }

# Debian's arm64 userspace, fetched once per pinned version set.
pkgs="qemu-system-arm=$L1_QEMU_VERSION,busybox-static=$L1_BUSYBOX_VERSION"
pkgs="$pkgs,qemu-efi-aarch64=$L1_EFI_VERSION"
key=$(printf %s "$pkgs" | md5sum | cut -c1-8)
base=$CACHE/dl/l1-userspace-$key.tar
if [ ! -f "$base" ]; then
	say "fetching Debian arm64 userspace ($pkgs)"
	mkdir -p "$CACHE/dl"
	# mmdebstrap picks the output format from the name: keep ".tar".
	mmdebstrap --quiet --arch=arm64 --variant=extract --include="$pkgs" \
		bookworm "${base%.tar}.part.tar"
	mv "${base%.tar}.part.tar" "$base"
fi

# cpio_from DIR OUT: an initramfs archive of DIR, owned by root.
cpio_from() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) >"$2"
}

work=$BUILD/rootfs
rm -rf "$work"
mkdir -p "$work/l2" "$work/l1"

module=$BUILD/linux/drivers/virt/kvm_apf/kvm_apf_guest.ko
[ -f "$module" ] || { echo "rootfs: no $module: run 'make kernel'" >&2; exit 1; }
khdr=$BUILD/linux/usr/include
cc=(aarch64-linux-gnu-gcc -O2 -Wall -Werror -isystem "$khdr")

say "L2 initramfs"
tar -xf "$base" -C "$work/l2" ./bin/busybox
mkdir -p "$work/l2"/{dev,proc,sys,tmp,lib/modules}
install -m 755 "$top/scripts/harness/l2-init" "$work/l2/init"
install -m 644 "$module" "$work/l2/lib/modules/"
for t in apf-touch apf-kexec; do
	"${cc[@]}" -static -o "$work/l2/bin/$t" "$top/scripts/tests/$t.c"
done
cpio_from "$work/l2" /dev/stdout | gzip -1 >"$BUILD/l2.cpio.gz"

say "L1 initramfs"
tar -xf "$base" -C "$work/l1"
# L2's UEFI boot needs QEMU_EFI.fd only; the 64 MiB flash images beside it
# would double L1's initramfs, which lives in its RAM.
rm -rf "$work/l1/usr/share/AAVMF"
mkdir -p "$work/l1"/{dev,proc,sys,tmp,run,boot,etc/apf}
install -m 755 "$top/scripts/harness/l1-init" "$work/l1/init"
install -m 755 "$top/scripts/harness/run-l2" "$work/l1/bin/run-l2"
install -m 755 "$top/scripts/tests/l2-boot-test" "$work/l1/bin/l2-boot-test"
install -m 755 "$top/scripts/tests/l2-pressure-test" "$work/l1/bin/l2-pressure-test"
install -m 755 "$top/scripts/bench/l2-bench" "$work/l1/bin/l2-bench"
install -m 755 "$top/scripts/bench/l2-bench-postcopy" "$work/l1/bin/l2-bench-postcopy"
install -m 755 "$work/l2/bin/apf-touch" "$work/l1/bin/apf-touch"
for t in teardown idle soak migrate; do
	install -m 755 "$top/scripts/tests/l2-$t-test" "$work/l1/bin/l2-$t-test"
done
mkdir -p "$work/l1/lib/modules" "$work/l1/usr/lib/apf"
install -m 644 "$top/scripts/harness/l2-lib.sh" "$work/l1/usr/lib/apf/l2-lib.sh"
install -m 644 "$top/scripts/harness/kernel-reports" "$work/l1/usr/lib/apf/kernel-reports"
install -m 644 "$module" "$work/l1/lib/modules/"
for so in hide-apf forget-apf; do
	"${cc[@]}" -shared -fPIC -o "$work/l1/usr/lib/apf/$so.so" \
		"$top/scripts/tests/$so.c" -ldl
done
install -m 644 "$top/scripts/harness/tests.list" "$work/l1/etc/apf/tests.list"
cp "$image" "$work/l1/boot/Image"
cp "$BUILD/l2.cpio.gz" "$work/l1/boot/l2.cpio.gz"
mkdir -p "$work/l1/kselftest"
(cd "$BUILD/kselftest" && find . -type f -perm -u+x -print0 |
	cpio --quiet -0 -pdm "$work/l1/kselftest")
cpio_from "$work/l1" "$BUILD/l1.cpio"
rm -rf "$work"
say "$BUILD/l1.cpio ($(du -m "$BUILD/l1.cpio" | cut -f1) MiB)"
