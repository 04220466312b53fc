#!/bin/sh
# Fetch Debian's busybox-static for each ISA into tests/.cache/busybox/<isa>/busybox.
#
# Usage: scripts/fetch_busybox.sh [--all | ISA...]   (default: x86_64 aarch64)
# ISAs: x86_64 aarch64 i386 arm mipsel riscv64.  Idempotent: a binary already in
# the cache is kept; a Debian architecture is added (and apt updated) only when
# its package is not yet known to apt.  Needs root or sudo, and apt access.
# The binaries are never committed (tests/.cache is gitignored).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/tests/.cache/busybox"
ALL="x86_64 aarch64 i386 arm mipsel riscv64"

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

updated=""
status=0
for isa in "$@"; do
    arch=$(debian_arch "$isa")
    target="$CACHE/$isa/busybox"
    if [ -x "$target" ]; then
        echo "fetch_busybox: $isa: already in $target"
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
