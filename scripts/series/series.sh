#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel series and its work tree.
#
#   series.sh tree    create linux/ from the pinned base and apply patches/;
#                     bring an untouched linux/ up to date with patches/
#   series.sh export  fold edits made in the top-level source folders into
#                     linux/, then regenerate patches/ from linux/
#   series.sh check   fail unless patches/, the top-level source folders and
#                     linux/ all describe the same tree
#
# patches/ is the single truth.  linux/ is a git repository whose first
# commit, tagged "base", is the pristine Debian source; `git log base..` in
# it is the series.  The folders in MAP hold the files the series adds under
# the mapped kernel paths, for reading and editing outside the kernel tree.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/build/versions.sh"

CACHE=${CACHE:-$HOME/.cache/rust-kvm-apf}
LINUX=$top/linux
PATCHES=$top/patches
dl=$CACHE/dl
stamp=$LINUX/.git/rust-kvm-apf-tree

# top-level folder  ->  kernel path of the files the series adds there.
# A file belongs to the longest kernel path that holds it.  A README.md at
# the top of a folder documents the folder and is not part of the tree.
MAP=(
	"rust-kvm-apf:arch/arm64/kvm/apf"
	"guest-apf:drivers/virt/kvm_apf"
	"kselftests:tools/testing/selftests/kvm"
	"kunit/host:arch/arm64/kvm/apf/tests"
	"kunit/guest:drivers/virt/kvm_apf/tests"
)

# Fixed identities and dates make the base and every applied commit
# reproducible, so the same patches/ always gives the same linux/ HEAD.
base_date="2026-11-15T22:30:00Z"
export GIT_COMMITTER_NAME="rust-kvm-apf" GIT_COMMITTER_EMAIL="rust-kvm-apf@localhost"

die() { echo "series: $*" >&2; exit 1; }
say() { echo "==> series: $*"; }
g() { git -C "$LINUX" "$@"; }

fetch_source() {
	local deb=$dl/${LINUX_SOURCE_PKG}_${LINUX_SOURCE_VERSION}_all.deb
	mkdir -p "$dl"
	if [ ! -f "$deb" ]; then
		say "downloading $LINUX_SOURCE_PKG=$LINUX_SOURCE_VERSION" >&2
		(cd "$dl" && apt-get download -qq \
			"$LINUX_SOURCE_PKG=$LINUX_SOURCE_VERSION" 2>&1 |
			grep -v 'unsandboxed' >&2 || true)
		[ -f "$deb" ] || die "could not download $LINUX_SOURCE_PKG"
	fi
	echo "$LINUX_SOURCE_SHA256  $deb" | sha256sum --quiet -c - ||
		die "$deb: sha256 mismatch (want $LINUX_SOURCE_SHA256)"
	echo "$deb"
}

# A commit or `git am` starts an automatic gc in the background once
# enough loose objects pile up, and the base alone is some 100000: its
# `reflog expire` locks HEAD under the next `git am`, which then fails.
# linux/ is rebuilt from patches/, never published: it needs no gc.
no_auto_gc() {
	git -C "$1" config gc.auto 0
	git -C "$1" config maintenance.auto false
}

create_base() {
	local deb tmp
	deb=$(fetch_source)
	tmp=$top/linux.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	say "unpacking Linux $LINUX_SOURCE_VERSION"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xO "./usr/src/$LINUX_SOURCE_PKG.tar.xz" |
		tar -xJ -C "$tmp" --strip-components=1
	git -C "$tmp" init -q -b main
	no_auto_gc "$tmp"
	# Debian's top-level .gitignore ignores everything ("/*"): force.
	git -C "$tmp" add -f -A
	GIT_AUTHOR_NAME="$GIT_COMMITTER_NAME" GIT_AUTHOR_EMAIL="$GIT_COMMITTER_EMAIL" \
	GIT_AUTHOR_DATE="$base_date" GIT_COMMITTER_DATE="$base_date" \
		git -C "$tmp" commit -q -m \
		"Linux 7.3.4 ($LINUX_SOURCE_PKG $LINUX_SOURCE_VERSION)"
	git -C "$tmp" tag base
	git -C "$tmp" rev-parse 'HEAD^{tree}' >"$tmp/.git/rust-kvm-apf-tree"
	mv "$tmp" "$LINUX"
}

series_files() {
	[ -f "$PATCHES/series" ] || return 0
	grep -v '^#' "$PATCHES/series" | sed "s|^|$PATCHES/|"
}

# The tree that applying patches/ to base gives, computed in a scratch
# index without touching any work tree.
series_tree() {
	local idx p
	idx=$(mktemp)
	GIT_INDEX_FILE=$idx g read-tree base
	while read -r p; do
		[ -n "$p" ] || continue
		GIT_INDEX_FILE=$idx g apply --cached "$p" ||
			{ rm -f "$idx"; die "$(basename "$p") does not apply"; }
	done < <(series_files)
	GIT_INDEX_FILE=$idx g write-tree
	rm -f "$idx"
}

# The MAP entry that owns kernel path $1, printed as "folder:kpath".
owner_of() {
	local m k best= bestk=
	for m in "${MAP[@]}"; do
		k=${m#*:}
		case "$1" in
		"$k"/*) [ ${#k} -le ${#bestk} ] || { best=$m; bestk=$k; } ;;
		esac
	done
	echo "$best"
}

# The files the series adds under the kernel path of MAP entry $1, in the
# tree $2, that this entry owns.
added_files() {
	local f
	while IFS= read -r f; do
		[ "$(owner_of "$f")" = "$1" ] && echo "$f"
	done < <(g diff --name-only --diff-filter=A base "$2" -- "${1#*:}")
	return 0
}

# The files under the top-level folder of MAP entry $1 (paths relative to
# it), less its README.md and the folders of more specific entries.
folder_files() {
	local dir=$top/${1%%:*} f
	[ -d "$dir" ] || return 0
	while IFS= read -r f; do
		[ "$f" = README.md ] && continue
		[ "$(owner_of "${1#*:}/$f")" = "$1" ] && echo "$f"
	done < <(cd "$dir" && find . -type f | sed 's|^\./||' | sort)
	return 0
}

is_clean() {
	[ -z "$(g status --porcelain --ignored)" ]
}

apply_series() {
	local p
	no_auto_gc "$LINUX"
	g reset -q --hard base
	while read -r p; do
		[ -n "$p" ] || continue
		g am -q --keep-cr --committer-date-is-author-date "$p" ||
			die "git am $(basename "$p") failed"
	done < <(series_files)
	g rev-parse 'HEAD^{tree}' >"$stamp"
}

cmd_tree() {
	[ -d "$LINUX/.git" ] || create_base
	local want head
	want=$(series_tree)
	head=$(g rev-parse 'HEAD^{tree}')
	if [ "$head" = "$want" ]; then
		echo "$head" >"$stamp"
		return 0
	fi
	if [ "$head" != "$(cat "$stamp" 2>/dev/null)" ] || ! is_clean; then
		die "linux/ has work that is not in patches/: run 'make patches' to" \
		    "export it, or 'make linux-reset' to drop it"
	fi
	say "applying patches/ to base"
	apply_series
}

# Whether path $1 was in the tree last exported or applied.
was_exported() {
	g cat-file -e "$(cat "$stamp" 2>/dev/null):$1" 2>/dev/null
}

# Whether file $1 has the content path $2 had in that tree.
as_exported() {
	was_exported "$2" && cmp -s "$1" <(g cat-file -p "$(cat "$stamp"):$2")
}

# Copy the edited top-level files into linux/ and commit each as a fixup
# of the patch that last touched it (or that last touched its folder, for
# a new file), then fold the fixups in.  A folder file still as last
# exported is not an edit: linux/ may have moved on, and wins.  A file
# edited on both sides is a conflict for the developer to settle.
sync_sources() {
	local m dir kpath f rel dst target fixups=0
	for m in "${MAP[@]}"; do
		dir=$top/${m%%:*}
		kpath=${m#*:}
		while IFS= read -r rel; do
			f=$dir/$rel
			dst=$LINUX/$kpath/$rel
			if [ -f "$dst" ] && cmp -s "$f" "$dst"; then
				continue
			fi
			as_exported "$f" "$kpath/$rel" && continue
			if [ -f "$dst" ] && was_exported "$kpath/$rel" &&
			   ! as_exported "$dst" "$kpath/$rel"; then
				die "${m%%:*}/$rel and linux/$kpath/$rel were both" \
				    "edited since the last export: keep one"
			fi
			target=$(g log -1 --format=%H base..HEAD -- "$kpath/$rel")
			[ -n "$target" ] ||
				target=$(g log -1 --format=%H base..HEAD -- "$kpath")
			[ -n "$target" ] ||
				die "${m%%:*}/$rel: no patch adds files under $kpath yet;" \
				    "commit it in linux/ first"
			mkdir -p "$(dirname "$dst")"
			cp "$f" "$dst"
			g add -f "$kpath/$rel"
			g commit -q --fixup="$target"
			fixups=$((fixups + 1))
		done < <(folder_files "$m")
	done
	# Fold these, and any fixup! or squash! commit made in linux/.
	if [ $fixups -gt 0 ] ||
	   [ -n "$(g log --format=%s base..HEAD | grep -E '^(fixup|squash|amend)! ')" ]; then
		say "folding fixups into their patches"
		GIT_SEQUENCE_EDITOR=: g -c rebase.autoSquash=true rebase -q -i \
			--committer-date-is-author-date base
	fi
}

# The reverse direction: the top-level folders get exactly the files the
# series adds under their kernel paths.
mirror_sources() {
	local m dir kpath f
	for m in "${MAP[@]}"; do
		dir=$top/${m%%:*}
		kpath=${m#*:}
		folder_files "$m" | sed "s|^|$dir/|" | xargs -r rm -f
		while IFS= read -r f; do
			mkdir -p "$dir/$(dirname "${f#"$kpath"/}")"
			g show "HEAD:$f" >"$dir/${f#"$kpath"/}"
		done < <(added_files "$m" HEAD)
	done
}

cmd_export() {
	[ -d "$LINUX/.git" ] || die "no linux/: run 'make linux' first"
	is_clean || die "linux/ has uncommitted or untracked files:" \
		"$(g status --porcelain --ignored | head -5)"
	sync_sources
	local desc tmp
	tmp=$(mktemp -d)
	desc=$(cat "$top/scripts/series/cover-letter.txt")
	# The index lines' hashes at a fixed length: git's default grows
	# with the number of packed objects, which differs between clones.
	g -c "branch.main.description=$desc" -c core.abbrev=9 format-patch -q \
		--cover-letter --cover-from-description=subject \
		--base=base --zero-commit --no-signature --no-thread \
		--subject-prefix="RFC PATCH" -o "$tmp" base..HEAD >/dev/null
	sed -i '/^Date: /d' "$tmp/0000-cover-letter.patch"
	(cd "$tmp" && ls [0-9]*.patch | grep -v '^0000-') >"$tmp/series"
	rm -rf "$PATCHES"
	mv "$tmp" "$PATCHES"
	chmod 755 "$PATCHES"
	mirror_sources
	g rev-parse 'HEAD^{tree}' >"$stamp"
	say "patches/ regenerated: $(wc -l <"$PATCHES/series") patches"
}

cmd_check() {
	local want head bad=0 m dir kpath f rel
	[ -d "$LINUX/.git" ] || die "no linux/: run 'make linux' first"
	want=$(series_tree)
	head=$(g rev-parse 'HEAD^{tree}')
	if [ "$want" != "$head" ]; then
		echo "series: STALE: patches/ applied to base is not linux/ HEAD;" \
		     "run 'make patches'" >&2
		bad=1
	fi
	if ! is_clean; then
		echo "series: STALE: linux/ has uncommitted files:" >&2
		g status --porcelain --ignored | head -10 >&2
		bad=1
	fi
	for m in "${MAP[@]}"; do
		dir=$top/${m%%:*}
		kpath=${m#*:}
		while IFS= read -r f; do
			rel=${f#"$kpath"/}
			if ! g cat-file -e "$want:$f" 2>/dev/null ||
			   ! cmp -s "$dir/$rel" <(g cat-file -p "$want:$f"); then
				echo "series: STALE: ${m%%:*}/$rel differs from" \
				     "$f in patches/" >&2
				bad=1
			fi
		done < <(added_files "$m" "$want"; folder_files "$m" | sed "s|^|$kpath/|")
	done
	[ $bad = 0 ] || exit 1
	say "patches/ is fresh: it gives exactly the tree in linux/"
}

case "${1:-}" in
tree) cmd_tree ;;
export) cmd_export ;;
check) cmd_check ;;
reset)
	[ -d "$LINUX/.git" ] || create_base
	g clean -q -fdx
	apply_series
	;;
*) die "usage: series.sh tree|export|check|reset" ;;
esac
