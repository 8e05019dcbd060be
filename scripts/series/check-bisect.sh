#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-bisect.sh: build the Image and modules at every patch of the
# series, in order, so that each patch is known to build on its own; then
# the last one again with the guest module built in, as it is tristate.  It works in a git
# worktree and a build folder of its own under $BUILD, incrementally: the
# first patch builds from scratch, each next one rebuilds what it changed.
# Each step starts from the final configuration, less what its tree does
# not know yet (olddefconfig).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:?}"
src=$BUILD/bisect-src
obj=$BUILD/bisect
final=$BUILD/linux/.config
[ -f "$final" ] || { echo "check-bisect: no $final: run 'make kernel'" >&2; exit 1; }

g() { git -C "$top/linux" "$@"; }
[ -d "$src" ] || g worktree add -q --detach "$src" base
# shellcheck disable=SC2206
kmake=(make -s -C "$src" ${KBUILD_ARGS:?} O="$obj")
mkdir -p "$obj"

n=0 bad=0
for c in $(g rev-list --reverse base..HEAD); do
	n=$((n + 1))
	git -C "$src" checkout -q --detach "$c"
	cp "$final" "$obj/.config"
	"${kmake[@]}" olddefconfig >/dev/null
	if "${kmake[@]}" -j"$(nproc)" Image modules >"$obj/build-$n.log" 2>&1; then
		echo "ok $n $(g log -1 --format=%s "$c")"
	else
		echo "not ok $n $(g log -1 --format=%s "$c")"
		tail -n 20 "$obj/build-$n.log" | sed 's/^/#   /'
		bad=1
	fi
done
n=$((n + 1))
sed 's/^CONFIG_KVM_ARM64_APF_GUEST=m$/CONFIG_KVM_ARM64_APF_GUEST=y/' "$final" >"$obj/.config"
"${kmake[@]}" olddefconfig >/dev/null
if grep -qx CONFIG_KVM_ARM64_APF_GUEST=y "$obj/.config" &&
	"${kmake[@]}" -j"$(nproc)" Image >"$obj/build-$n.log" 2>&1; then
	echo "ok $n the last patch, the guest built in"
else
	echo "not ok $n the last patch, the guest built in"
	tail -n 20 "$obj/build-$n.log" | sed 's/^/#   /'
	bad=1
fi
echo "# $n build(s) in $obj"
exit $bad
