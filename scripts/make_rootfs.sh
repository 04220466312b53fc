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
# riscv64 comes from Debian trixie (or forky) through a private apt directory instead (see
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

# download PACKAGE...: each PACKAGE:$arch into the current directory, from the host's apt or
# the suite, in one apt-get run (each run reads the whole package list anew).
download() {
    for _name do set -- "$@" "$_name:$arch"; shift; done
    if [ "$suite" = host ]; then
        apt-get download -qq "$@"
    else
        private_apt "$suite" "$arch" apt-get download -qq "$@"
    fi
}

# deb_of PACKAGE: its downloaded .deb, if there is one.
deb_of() {
    ls "$debs/${1}_"*"_$arch.deb" "$debs/${1}_"*"_all.deb" 2>/dev/null | head -n 1 || true
}

# pending PACKAGE...: those not yet unpacked nor downloaded, once each.
pending() {
    _seen=" "
    for _name do
        case "$done_list$_seen" in *" $_name "*) continue ;; esac
        _seen="$_seen$_name "
        if [ -z "$(deb_of "$_name")" ]; then echo "$_name"; fi
    done
}

# provider VIRTUAL: a package that provides VIRTUAL (e.g. awk), one already wanted if any.
provider() {
    if [ "$suite" = host ]; then
        providers=$(apt-cache showpkg "$1:$arch" 2>/dev/null)
    else
        providers=$(private_apt "$suite" "$arch" apt-cache showpkg "$1:$arch" 2>/dev/null)
    fi
    providers=$(echo "$providers" | sed -n '/^Reverse Provides:/,$p' | sed -e '1d' -e 's/ .*//' -e 's/:.*//')
    for candidate in $providers; do
        case " $done_list $queue " in *" $candidate "*) echo "$candidate"; return ;; esac
    done
    echo "$providers" | head -n 1
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
    deb=$(deb_of "$package")
    if [ -z "$deb" ]; then
        # This package and all others queued, in one run; one that apt cannot give (a virtual
        # package) fails the whole run, so each is then tried on its own.
        (cd "$debs" && download $package $(pending $queue) > /dev/null 2>&1) || true
        deb=$(deb_of "$package")
    fi
    if [ -z "$deb" ]; then
        (cd "$debs" && download "$package" 2>&1 | grep -v -e 'sandbox' >&2 || true)
        deb=$(deb_of "$package")
    fi
    if [ -z "$deb" ] && [ -n "$(provider "$package")" ]; then
        # A virtual package (awk): take a provider, one already wanted if there is one.
        queue="$(provider "$package") $queue"
        continue
    fi
    if [ -z "$deb" ] && [ "$suite" != host ] && [ -z "$refreshed" ]; then
        # The cached list may name a .deb the archive has since replaced: refresh it once.
        private_apt_refresh "$suite" "$arch"
        refreshed=yes
        (cd "$debs" && download "$package" 2>&1 | grep -v -e 'sandbox' >&2 || true)
        deb=$(deb_of "$package")
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

# A /usr-merged suite ships nothing in /bin, /lib...: link them to usr/ as its systems do
# (trixie's base-files has these links, a rootfs without it gets them here).
for alias in bin sbin lib lib32 lib64 libx32; do
    if [ "$suite" != host ] && [ -d "$dir/usr/$alias" ] && [ ! -e "$dir/$alias" ] && [ ! -L "$dir/$alias" ]; then
        ln -s "usr/$alias" "$dir/$alias"
    fi
done

echo "$arch: $wanted" > "$dir.complete"
echo "make_rootfs: $dir: $(echo $done_list | wc -w) packages ($wanted and dependencies)"
