#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-style.sh checkpatch|rustfmt|clippy: the kernel's conventions, on
# what the series changes.
#   checkpatch  scripts/checkpatch.pl --strict on every patch of patches/,
#               and MAINTAINERS covering every file the series adds
#   rustfmt     rustfmt --check, with the kernel's .rustfmt.toml, on every
#               Rust file the series adds or changes
#   clippy      the series' Rust objects (and the kernel crate, if the
#               series changes it) rebuilt with CLIPPY=1; any
#               clippy (or rustc) warning fails
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top/linux" || exit 1

rust_files() {
	git diff --name-only --diff-filter=AM base HEAD -- '*.rs'
}

case "${1:-}" in
checkpatch)
	bad=0
	while read -r p; do
		# spdxcheck.py runs on the python3 that has Debian's ply and git.
		# The base is Debian's kernel source, one commit with no upstream
		# history: checkpatch cannot look up the upstream commit a Fixes:
		# tag names (UNKNOWN_COMMIT_ID); the tag's form is still checked.
		out=$(PATH=/usr/bin:$PATH perl scripts/checkpatch.pl --strict --quiet --no-summary \
			--show-types --ignore FILE_PATH_CHANGES,UNKNOWN_COMMIT_ID \
			"$top/patches/$p" 2>&1) || bad=1
		[ -z "$out" ] || { echo "$p:"; echo "$out"; bad=1; }
	done < <(grep -v '^#' "$top/patches/series")
	# checkpatch's FILE_PATH_CHANGES only asks whether a patch that adds
	# a file also touches MAINTAINERS; ask MAINTAINERS itself instead.
	# The series' entry covers what it adds, except what it adds to the
	# Rust kernel crate, which that crate's entries cover.
	while read -r f; do
		case $f in
		rust/*) who='(maintainer:' ;;
		*) who='^rust-kvm-apf developers .*(maintainer:' ;;
		esac
		# grep reads it all: with -q it would stop at the first match
		# and pipefail would see get_maintainer.pl die of SIGPIPE.
		perl scripts/get_maintainer.pl --no-git -f "$f" 2>/dev/null |
			grep "$who" >/dev/null ||
			{ echo "MAINTAINERS: no maintainer entry covers $f"; bad=1; }
	done < <(git diff --name-only --diff-filter=A base HEAD)
	exit $bad
	;;
rustfmt)
	files=$(rust_files)
	[ -n "$files" ] || exit 0
	# shellcheck disable=SC2086
	rustfmt --check --edition 2021 --config-path .rustfmt.toml $files
	;;
clippy)
	: "${BUILD:?}"
	objs=()
	for f in $(rust_files); do
		o=$(basename "$f" .rs).o
		grep -qw "$o" "$(dirname "$f")/Makefile" 2>/dev/null &&
			objs+=("${f%.rs}.o")
	done
	# The kernel crate is one object.
	rust_files | grep -q '^rust/kernel/' && objs+=(rust/kernel.o)
	[ ${#objs[@]} -gt 0 ] || exit 0
	# shellcheck disable=SC2086
	out=$(make -s ${KBUILD_ARGS:?} O="$BUILD/linux" CLIPPY=1 \
		"${objs[@]}" 2>&1)
	rc=$?
	echo "$out"
	[ $rc -eq 0 ] && ! grep -qE '^(warning|error)' <<<"$out"
	;;
*)
	echo "usage: check-style.sh checkpatch|rustfmt|clippy" >&2
	exit 2
	;;
esac
