#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kconfig.sh BUILD FRAGMENT...: make BUILD/.config allnoconfig plus the
# fragments, and fail if any option a fragment sets did not stick.  The
# .config is only replaced when it changes, so rebuilds stay incremental.
set -euo pipefail

build=$1
shift
top=$(cd "$(dirname "$0")/../.." && pwd)
gen=$build.kconfig
# shellcheck disable=SC2206
kmake=(make -s -C "$top/linux" ${KBUILD_ARGS:?} O="$gen")

mkdir -p "$build" "$gen"
"${kmake[@]}" allnoconfig >/dev/null
(cd "$top/linux" && ARCH=arm64 scripts/kconfig/merge_config.sh -m -O "$gen" \
	"$gen/.config" "${@/#/$top/}" >/dev/null)
"${kmake[@]}" olddefconfig >/dev/null

# later FRAG OPT: whether a fragment after FRAG sets or unsets OPT, which
# then overrides FRAG's setting (rt.config turns off what PREEMPT_RT
# cannot have).
later() {
	local f seen=0
	for f in "${frags[@]}"; do
		[ $seen = 1 ] && grep -qE "^(# )?$2[= ]" "$top/$f" && return 0
		[ "$f" = "$1" ] && seen=1
	done
	return 1
}

frags=("$@")
bad=0
for frag in "$@"; do
	while IFS= read -r line; do
		opt=${line#\# }; opt=${opt%%[= ]*}
		case "$opt" in CONFIG_*) ! later "$frag" "$opt" || continue ;; esac
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$gen/.config" || {
			echo "kconfig: $frag: '$line' did not stick" >&2; bad=1; } ;;
		"# CONFIG_"*" is not set")
			! grep -q "^$opt=" "$gen/.config" || {
				echo "kconfig: $frag: '$opt' is still set" >&2; bad=1; } ;;
		esac
	done <"$top/$frag"
done
[ $bad = 0 ] || exit 1

if ! cmp -s "$gen/.config" "$build/.config"; then
	cp "$gen/.config" "$build/.config"
	echo "==> kconfig: $build/.config updated"
fi
