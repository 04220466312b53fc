# Sourced by fetch_busybox.sh and make_rootfs.sh: which Debian suite an architecture's packages
# come from, and apt-get on a private configuration for the ones the host's apt cannot serve.
#
# The host's apt sources (Debian bookworm here) serve amd64, arm64, i386, armhf and mipsel.
# riscv64 became an official Debian architecture only with trixie (13), so its packages come
# from trixie through a private apt directory, tests/.cache/apt-trixie/<arch>/, with its own
# sources list, package lists, cache and (empty) dpkg status: the machine's own apt
# configuration, lists and installed packages are neither read for it nor changed. apt
# verifies trixie's InRelease against Debian's archive keyring (Signed-By below; the
# keyring package of bookworm already holds the trixie keys), the Packages index against
# InRelease's hashes and every .deb against the index: nothing is trusted unverified.
# Needs no root: the private state belongs to whoever runs the script.
#
# Callers set ROOT (the repo) and PROG (their name, for messages).

DEBIAN_MIRROR=${BDEMU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The suites an architecture's packages may come from, in order of preference: "host" (the
# machine's apt) or suite names. trixie (stable) first; forky (testing) when trixie's lists
# cannot be verified: an archive mirror caught mid-sync can serve a Packages index that does
# not match its signed InRelease, and apt rightly refuses it.
debian_suites() {
    case "$1" in
        riscv64) echo trixie forky ;;
        *) echo host ;;
    esac
}

# debian_suite ARCH: the first of its suites whose verified lists are cached or can be
# fetched now (the lists are left in place for the caller). Errors are shown only when no
# suite serves the architecture.
debian_suite() {
    _errors=""
    for _candidate in $(debian_suites "$1"); do
        if [ "$_candidate" = host ]; then echo host; return 0; fi
        _err=$(private_apt_ready "$_candidate" "$1" 2>&1 >/dev/null) && { echo "$_candidate"; return 0; }
        _errors="$_errors$_err
"
    done
    printf '%s' "$_errors" >&2
    return 1
}

# The private apt directory of a suite and architecture.
private_apt_dir() {
    echo "$ROOT/tests/.cache/apt-$1/$2"
}

# private_apt SUITE ARCH apt-get|apt-cache ARGS...: apt on the private configuration.
private_apt() {
    _suite=$1
    _arch=$2
    _program=$3
    shift 3
    _dir=$(private_apt_dir "$_suite" "$_arch")
    "$_program" -q \
        -o Dir::Etc::SourceList="$_dir/sources.list" \
        -o Dir::Etc::SourceParts="$_dir/sources.list.d" \
        -o Dir::Etc::Preferences="$_dir/preferences" \
        -o Dir::Etc::PreferencesParts="$_dir/preferences.d" \
        -o Dir::State="$_dir/state" \
        -o Dir::State::status="$_dir/status" \
        -o Dir::Cache="$_dir/cache" \
        -o APT::Architecture="$_arch" \
        -o APT::Architectures="$_arch" \
        -o Acquire::Languages=none \
        "$@"
}

# private_apt_setup SUITE ARCH: write the private configuration (idempotent).
private_apt_setup() {
    _dir=$(private_apt_dir "$1" "$2")
    if [ ! -r "$DEBIAN_KEYRING" ]; then
        echo "$PROG: $DEBIAN_KEYRING is missing: install Debian's debian-archive-keyring package" >&2
        return 1
    fi
    mkdir -p "$_dir/sources.list.d" "$_dir/preferences.d" "$_dir/state/lists/partial" \
             "$_dir/cache/archives/partial"
    : > "$_dir/preferences"
    [ -f "$_dir/status" ] || : > "$_dir/status"
    echo "deb [arch=$2 signed-by=$DEBIAN_KEYRING] $DEBIAN_MIRROR $1 main" > "$_dir/sources.list.new"
    mv "$_dir/sources.list.new" "$_dir/sources.list"
    # apt downloads as the unprivileged _apt user when run as root: let it write here.
    chmod 755 "$ROOT/tests/.cache" "$ROOT/tests/.cache/apt-$1" "$_dir" 2>/dev/null || true
}

# private_apt_update SUITE ARCH: fetch and verify the suite's lists; a clear error when it cannot.
private_apt_update() {
    _log=$(mktemp)
    if private_apt "$1" "$2" apt-get update > "$_log" 2>&1 && ! grep -q -e '^E: ' -e '^W: GPG' -e '^W: Failed' "$_log"; then
        rm -f "$_log"
        return 0
    fi
    echo "$PROG: cannot fetch Debian $1's verified package lists for $2 from $DEBIAN_MIRROR" \
         "(offline, or the archive is unreachable or its signature does not check out); apt said:" >&2
    grep -e '^[WE]: ' -e 'Err:' "$_log" | grep -v -e 'sandbox' | sed 's/^/    /' >&2
    rm -f "$_log"
    return 1
}

# private_apt_refresh SUITE ARCH: fetch the lists anew, as when a cached one names a .deb the
# archive has since replaced (or the cached lists were damaged).
private_apt_refresh() {
    rm -rf "$(private_apt_dir "$1" "$2")/state/lists"
    mkdir -p "$(private_apt_dir "$1" "$2")/state/lists/partial"
    private_apt_update "$1" "$2"
}

# private_apt_ready SUITE ARCH: configuration written and lists fetched (only when not yet there).
private_apt_ready() {
    private_apt_setup "$1" "$2" || return 1
    if ! ls "$(private_apt_dir "$1" "$2")/state/lists/"*_Packages* > /dev/null 2>&1; then
        private_apt_update "$1" "$2" || return 1
    fi
}
