#!/bin/sh
# Fetch Debian's busybox-static for each ISA into tests/.cache/busybox/<isa>/busybox.
#
# Usage: scripts/fetch_busybox.sh [--all | ISA...]   (default: x86_64 aarch64)
# ISAs: x86_64 aarch64 i386 arm mipsel riscv64.  Idempotent: a binary already in
# the cache is kept; a Debian architecture is added (and apt updated) only when
# its package is not yet known to apt.  Needs root or sudo, and apt access.
# riscv64 comes from Debian trixie (or forky) through a private apt directory instead (see
# scripts/debian_suite.sh): no root needed, the machine's apt left alone.
# The binaries are never committed (tests/.cache is gitignored).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/tests/.cache/busybox"
ALL="x86_64 aarch64 i386 arm mipsel riscv64"
PROG=fetch_busybox
. "$ROOT/scripts/debian_suite.sh"

if [ "$#" -eq 0 ]; then set -- x86_64 aarch64; fi
if [ "$1" = "--all" ]; then set -- $ALL; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

debian_arch() {
    case "$1" in
        x86_64) echo amd64 ;;
        aarch64) echo arm64 ;;
        i386) echo i386 ;;
        arm) echo armhf ;;
        mipsel) echo mipsel ;;
        riscv64) echo riscv64 ;;
        *) echo "fetch_busybox: unknown ISA '$1' (known: $ALL)" >&2; return 1 ;;
    esac
}

known_to_apt() {
    apt-cache policy "busybox-static:$1" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

# fetch_private ISA ARCH SUITE TARGET: busybox-static from a suite the host's apt does not serve.
fetch_private() {
    private_apt_ready "$3" "$2" || return 1
    work=$(mktemp -d)
    chmod 777 "$work"  # apt drops privileges to _apt for downloads
    (cd "$work" && private_apt "$3" "$2" apt-get download -qq "busybox-static:$2" 2>&1 \
         | grep -v -e 'sandbox' >&2) || true
    # A cached list may name a .deb the archive has since replaced: refetch it and retry once.
    if ! ls "$work"/busybox-static_*.deb > /dev/null 2>&1; then
        private_apt_refresh "$3" "$2" || { rm -rf "$work"; return 1; }
        (cd "$work" && private_apt "$3" "$2" apt-get download -qq "busybox-static:$2" 2>&1 \
             | grep -v -e 'sandbox' >&2) || true
    fi
    deb=$(ls "$work"/busybox-static_*.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ]; then
        echo "$PROG: $1: apt-get download busybox-static:$2 from Debian $3 failed" >&2
        rm -rf "$work"
        return 1
    fi
    dpkg-deb -x "$deb" "$work/root"
    mkdir -p "$CACHE/$1"
    # A /usr-merged suite (trixie) ships usr/bin/busybox, older ones bin/busybox.
    for binary in "$work/root/usr/bin/busybox" "$work/root/bin/busybox"; do
        if [ -f "$binary" ]; then cp "$binary" "$4.tmp"; break; fi
    done
    chmod 755 "$4.tmp"
    mv "$4.tmp" "$4"
    basename "$deb" > "$CACHE/$1/VERSION"
    rm -rf "$work"
    echo "$PROG: $1: $(cat "$CACHE/$1/VERSION") (Debian $3) -> $4"
}

updated=""
status=0
for isa in "$@"; do
    arch=$(debian_arch "$isa")
    target="$CACHE/$isa/busybox"
    if [ -x "$target" ]; then
        echo "fetch_busybox: $isa: already in $target"
        continue
    fi
    if ! suite=$(debian_suite "$arch"); then status=1; continue; fi
    if [ "$suite" != host ]; then
        if ! fetch_private "$isa" "$arch" "$suite" "$target"; then status=1; fi
        continue
    fi
    if ! known_to_apt "$arch"; then
        native=$(dpkg --print-architecture)
        if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
            $SUDO dpkg --add-architecture "$arch"
            updated=""
        fi
        if [ -z "$updated" ]; then
            $SUDO apt-get update -qq || true
            updated=yes
        fi
    fi
    if ! known_to_apt "$arch"; then
        echo "fetch_busybox: $isa: Debian has no busybox-static:$arch in the configured suites" >&2
        status=1
        continue
    fi
    work=$(mktemp -d)
    chmod 755 "$work"
    # apt drops privileges to _apt for downloads; let it write here.
    (cd "$work" && chmod 777 . && apt-get download -qq "busybox-static:$arch" 2>&1 | grep -v -e 'sandbox' >&2 || true)
    deb=$(ls "$work"/busybox-static_*.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ]; then
        echo "fetch_busybox: $isa: apt-get download busybox-static:$arch failed" >&2
        rm -rf "$work"
        status=1
        continue
    fi
    dpkg-deb -x "$deb" "$work/root"
    mkdir -p "$CACHE/$isa"
    cp "$work/root/bin/busybox" "$target.tmp"
    chmod 755 "$target.tmp"
    mv "$target.tmp" "$target"
    basename "$deb" > "$CACHE/$isa/VERSION"
    rm -rf "$work"
    echo "fetch_busybox: $isa: $(cat "$CACHE/$isa/VERSION") -> $target"
done
exit $status
