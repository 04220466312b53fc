#!/bin/sh
# Build a minimal Debian root filesystem for a foreign architecture from .deb packages.
#
# Usage: scripts/make_rootfs.sh DEBIAN_ARCH DIR [PACKAGE...]   (default packages: coreutils)
#
# Downloads each PACKAGE:DEBIAN_ARCH with `apt-get download`, then everything in
# their Depends/Pre-Depends, recursively (the first of alternatives), and unpacks
# every package into DIR with `dpkg-deb -x`: libc6 and the dynamic loader, and
# the shared libraries the programs need, no maintainer scripts run. The .debs
# are kept in DIR.debs/. Idempotent: a DIR whose DIR.complete stamp lists the
# same packages is left alone. Adds the Debian architecture (and runs apt-get
# update) only when apt does not know the package yet. Needs root or sudo.
# riscv64 comes from Debian trixie through a private apt directory instead (see
# scripts/debian_suite.sh): no root needed, the machine's apt left alone; as
# trixie is /usr-merged, the rootfs gets the /bin, /lib... -> usr/ links that
# every such Debian system has (the programs' PT_INTERP is /lib/ld-linux-*).
# Used by tests/test_dynamic.py with DIR under tests/.cache/ (never committed).
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 DEBIAN_ARCH DIR [PACKAGE...]" >&2
    exit 2
fi
arch=$1
dir=$2
shift 2
if [ "$#" -eq 0 ]; then set -- coreutils; fi
wanted="$*"

if [ -f "$dir.complete" ] && [ "$(cat "$dir.complete")" = "$arch: $wanted" ]; then
    echo "make_rootfs: $dir: already complete ($wanted)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROG=make_rootfs
. "$ROOT/scripts/debian_suite.sh"
suite=$(debian_suite "$arch")

# download PACKAGE: PACKAGE:$arch into the current directory, from the host's apt or the suite.
download() {
    if [ "$suite" = host ]; then
        apt-get download -qq "$1:$arch"
    else
        private_apt "$suite" "$arch" apt-get download -qq "$1:$arch"
    fi
}

known_to_apt() {
    apt-cache policy "$1:$arch" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

if [ "$suite" != host ]; then
    private_apt_ready "$suite" "$arch"
elif ! known_to_apt "$1"; then
    native=$(dpkg --print-architecture)
    if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        $SUDO dpkg --add-architecture "$arch"
    fi
    $SUDO apt-get update -qq || true
    if ! known_to_apt "$1"; then
        echo "make_rootfs: Debian has no $1:$arch in the configured suites" >&2
        exit 1
    fi
fi

debs="$dir.debs"
mkdir -p "$debs"
chmod 777 "$debs"  # apt drops privileges to _apt for downloads
rm -rf "$dir"
mkdir -p "$dir"

# Breadth-first over the dependency graph; $done holds every package seen.
queue="$wanted"
refreshed=""
done_list=" "
while [ -n "$queue" ]; do
    set -- $queue
    package=$1
    shift
    queue="$*"
    case "$done_list" in *" $package "*) continue ;; esac
    done_list="$done_list$package "
    deb=$(ls "$debs/${package}_"*"_$arch.deb" "$debs/${package}_"*"_all.deb" 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        (cd "$debs" && download "$package" 2>&1 | grep -v -e 'sandbox' >&2 || true)
        deb=$(ls "$debs/${package}_"*"_$arch.deb" "$debs/${package}_"*"_all.deb" 2>/dev/null | head -n 1 || true)
    fi
    if [ -z "$deb" ] && [ "$suite" != host ] && [ -z "$refreshed" ]; then
        # The cached list may name a .deb the archive has since replaced: refresh it once.
        private_apt_update "$suite" "$arch"
        refreshed=yes
        (cd "$debs" && download "$package" 2>&1 | grep -v -e 'sandbox' >&2 || true)
        deb=$(ls "$debs/${package}_"*"_$arch.deb" "$debs/${package}_"*"_all.deb" 2>/dev/null | head -n 1 || true)
    fi
    if [ -z "$deb" ]; then
        echo "make_rootfs: apt-get download $package:$arch failed" >&2
        exit 1
    fi
    dpkg-deb -x "$deb" "$dir"
    # "libc6 (>= 2.34), libgcc-s1 | libgcc1" -> "libc6 libgcc-s1"
    deps=$( { dpkg-deb -f "$deb" Pre-Depends; dpkg-deb -f "$deb" Depends; } \
            | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/ //g' | grep -v '^$' || true)
    queue="$queue $deps"
done

# A /usr-merged suite ships nothing in /bin, /lib...: link them to usr/ as its systems do.
for alias in bin sbin lib lib32 lib64 libx32; do
    if [ "$suite" != host ] && [ -d "$dir/usr/$alias" ] && [ ! -e "$dir/$alias" ] && [ ! -L "$dir/$alias" ]; then
        ln -s "usr/$alias" "$dir/$alias"
    fi
done

echo "$arch: $wanted" > "$dir.complete"
echo "make_rootfs: $dir: $(echo $done_list | wc -w) packages ($wanted and dependencies)"
