#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install every host tool the build and the tests need, from Debian's
# registries and crates.io only, at pinned versions.  Idempotent: a second
# run changes nothing and returns quickly.
set -euo pipefail

. "$(dirname "$0")/versions.sh"

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

say() { printf '==> deps: %s\n' "$*"; }

sources=/etc/apt/sources.list.d/rust-kvm-apf.sources
prefs=/etc/apt/preferences.d/rust-kvm-apf
want_sources="Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
# trixie-backports stays below the base system: nothing of bookworm is
# ever upgraded from it; only what is named at a pinned version below is
# taken from there.
want_prefs="Package: *
Pin: release n=trixie-backports
Pin-Priority: 100"

changed=0
if [ "$(cat "$sources" 2>/dev/null)" != "$want_sources" ]; then
	printf '%s\n' "$want_sources" | $SUDO tee "$sources" >/dev/null
	changed=1
fi
if [ "$(cat "$prefs" 2>/dev/null)" != "$want_prefs" ]; then
	printf '%s\n' "$want_prefs" | $SUDO tee "$prefs" >/dev/null
	changed=1
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	$SUDO dpkg --add-architecture arm64
	changed=1
fi

pkgs=(
	"clang-19=$CLANG_VERSION" "lld-19=$CLANG_VERSION" "llvm-19=$CLANG_VERSION"
	"libclang-19-dev=$CLANG_VERSION"
	"rust-src=$RUST_SRC_VERSION"
	"qemu-system-arm=$QEMU_VERSION" "qemu-system-data=$QEMU_VERSION"
	"qemu-system-common=$QEMU_VERSION"
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	mmdebstrap cpio xz-utils zstd bc bison flex libelf-dev libssl-dev
	python3 python3-ply python3-git rsync kmod
	"python3-matplotlib=$MATPLOTLIB_VERSION"
)

missing=()
for p in "${pkgs[@]}"; do
	name=${p%%=*}
	ver=${p#*=}
	have=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name" 2>/dev/null || true)
	case "$have" in
	ii\ *) [ "$name" = "$ver" ] || [ "${have#ii }" = "$ver" ] || missing+=("$p") ;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -gt 0 ] || [ $changed = 1 ]; then
	say "apt-get update"
	$SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}"
fi

if ! command -v bindgen >/dev/null ||
   [ "$(bindgen --version 2>/dev/null)" != "bindgen $BINDGEN_VERSION" ]; then
	say "cargo install bindgen-cli $BINDGEN_VERSION"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked \
		--version "$BINDGEN_VERSION" bindgen-cli
fi

rustc_ver=$(rustc --version | awk '{print $2}')
case "$RUST_SRC_VERSION" in
"$rustc_ver"+*) ;;
*) echo "deps: rustc $rustc_ver does not match rust-src $RUST_SRC_VERSION" >&2
   exit 1 ;;
esac
say "all host tools present"
