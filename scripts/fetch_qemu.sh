#!/bin/sh
# Fetch Debian's qemu-user-static into tests/.cache/qemu/ when the machine has no qemu-user, for the
# tests that compare bdemu with qemu-user live (tests/test_dynamic.py).
#
# Usage: scripts/fetch_qemu.sh NAME...   (e.g. qemu-aarch64 qemu-riscv64)
# Prints nothing on success; each NAME ends up as tests/.cache/qemu/NAME. Idempotent. Needs apt access
# (apt-get download: no root). The binaries are never committed (tests/.cache is gitignored).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/tests/.cache/qemu"

missing=""
for name in "$@"; do
    [ -x "$CACHE/$name" ] || missing="$missing $name"
done
[ -n "$missing" ] || exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"  # apt drops privileges to _apt for downloads
(cd "$work" && apt-get download -qq qemu-user-static 2>&1 | grep -v -e 'sandbox' >&2) || true
deb=$(ls "$work"/qemu-user-static_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    echo "fetch_qemu: apt-get download qemu-user-static failed" >&2
    exit 1
fi
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$CACHE"
for name in $missing; do
    if [ ! -f "$work/root/usr/bin/$name-static" ]; then
        echo "fetch_qemu: $(basename "$deb") has no usr/bin/$name-static" >&2
        exit 1
    fi
    cp "$work/root/usr/bin/$name-static" "$CACHE/$name.tmp"
    chmod 755 "$CACHE/$name.tmp"
    mv "$CACHE/$name.tmp" "$CACHE/$name"
done
