# shellcheck shell=bash
# Shared helpers for scripts/engines/*. Sourced, never run: each engine script sets
# `set -euo pipefail` itself and then sources this file.
#
# Conventions every engine script follows:
#   - data and logs live under "$ENGINES_DIR/<engine>" (STUDYCAFE_ENGINES_DIR overrides);
#   - everything listens on 127.0.0.1 only;
#   - progress goes to stderr, so `eval "$(scripts/engines/up)"` only sees the exports;
#   - running a script again when the engine is already up changes nothing.

ENGINES_DIR="${STUDYCAFE_ENGINES_DIR:-${HOME:?HOME is not set}/.cache/studycafe/engines}"
# Absolute, because the daemons are started from other working directories.
[[ $ENGINES_DIR == /* ]] || ENGINES_DIR="$PWD/$ENGINES_DIR"

# Ports, read in one place so `up` prints exactly what the engine scripts bound.
# They sit below Linux's ephemeral range (32768-60999 by default): an outgoing connection takes
# its local port from that range, so a fixed listening port inside it is sometimes taken (even
# in TIME-WAIT) when an engine starts. They also stay below 20000, where the tests' free-port
# walker starts (libs/testkit), so a test's service never lands on an engine's port.
# shellcheck disable=SC2034  # used by the scripts that source this file
{
    PG_PORT="${STUDYCAFE_PG_PORT:-15432}"
    MYSQL_PORT="${STUDYCAFE_MYSQL_PORT:-13306}"
    REDIS_PORT="${STUDYCAFE_REDIS_PORT:-16379}"
    KAFKA_PORT="${STUDYCAFE_KAFKA_PORT:-19092}"
    KAFKA_CONTROLLER_PORT="${STUDYCAFE_KAFKA_CONTROLLER_PORT:-19093}"
}

# Refuses a port inside the kernel's ephemeral range (see above): it would start or not by luck.
check_port_outside_ephemeral_range() {
    local port=$1 var=$2 low high
    read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
    if ((port >= low && port <= high)); then
        die "$var=$port is inside the ephemeral port range $low-$high (/proc/sys/net/ipv4/ip_local_port_range): an outgoing connection may hold it; choose a port below $low"
    fi
}

# Progress on stderr, prefixed with the engine so interleaved `up` output stays readable.
log() {
    printf '[engines:%s] %s\n' "${ENGINE:-engines}" "$*" >&2
}

# Fail with a message and, when a log file is given, its tail: the log usually says why.
die() {
    local msg=$1 logfile=${2:-}
    printf '[engines:%s] ERROR: %s\n' "${ENGINE:-engines}" "$msg" >&2
    if [[ -n $logfile && -s $logfile ]]; then
        printf '[engines:%s] --- last 40 lines of %s ---\n' "${ENGINE:-engines}" "$logfile" >&2
        tail -n 40 "$logfile" >&2
        printf '[engines:%s] --- end of %s ---\n' "${ENGINE:-engines}" "$logfile" >&2
    fi
    exit 1
}

is_root() {
    [[ $EUID -eq 0 ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1. Uses bash's /dev/tcp so no
# extra tool (nc, ss) has to be installed.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when process $1 exists and is not a zombie (a daemon whose parent is init may stay a
# zombie for a moment after it exited; kill -0 alone would call that alive).
proc_running() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

# True when $1 is a live process whose command line contains $2: a pid file left behind by a
# crash can point at an unrelated process once the pid is reused.
pid_is() {
    local pid=$1 pattern=$2
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_running "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# Daemons that drop privileges (postgres, mariadbd --user=mysql) must be able to reach their
# data dir. The default engines dir is under $HOME, and root's home is usually 0700, so give
# that user search (x, not read) permission on every ancestor it cannot traverse yet.
ensure_traversable() {
    local user=$1 dir=$2 d="" part
    local -a parts
    # Walk from / downwards: a directory deeper down can only be tested once its parents
    # are passable, and this way only the directories that actually block get changed.
    IFS=/ read -r -a parts <<<"${dir#/}"
    for part in "${parts[@]}"; do
        d="$d/$part"
        if ! runuser -u "$user" -- test -x "$d" 2>/dev/null; then
            log "granting search permission (o+x) on $d so the '$user' user can reach $dir"
            chmod o+x "$d"
        fi
    done
}

# Install Debian packages without starting the distro's services: we start our own instance
# in the engines dir. apt lists are refreshed only when the first attempt fails (a clean
# machine may have no lists, but updating every time would be slow and needless).
apt_install() {
    local aptlog="$ENGINES_DIR/apt.log" created_policy=0 rc=0
    is_root || die "need root to install $* (or install it yourself and re-run)"
    command -v apt-get >/dev/null || die "apt-get not found; install $* yourself and re-run"
    mkdir -p "$ENGINES_DIR"
    # The postinst scripts would otherwise start a second, distro-configured server on the
    # default port. Only add the policy file if the machine has none, and remove it after.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    log "installing $* with apt-get (log: $aptlog)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$aptlog" 2>&1; then
        log "apt-get install failed; refreshing package lists (apt-get update) and retrying"
        if ! apt-get update >>"$aptlog" 2>&1 ||
            ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$aptlog" 2>&1; then
            rc=1
        fi
    fi
    if [[ $created_policy -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [[ $rc -eq 0 ]] || die "could not install $*" "$aptlog"
}

# Poll `$@` until it succeeds, at most $timeout seconds. Between tries, the function named
# ALIVE_FN must keep succeeding: when the server process died there is no point waiting.
# Usage: wait_until TIMEOUT LOGFILE WHAT ALIVE_FN -- COMMAND...
wait_until() {
    local timeout=$1 logfile=$2 what=$3 alive=$4
    shift 5
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! "$alive"; then
            die "$what: the server process exited while starting" "$logfile"
        fi
        if ((SECONDS >= deadline)); then
            die "$what: not ready after ${timeout}s" "$logfile"
        fi
        sleep 0.3
    done
}

# Each engine script takes one optional action; `up` and `down` call them with start/stop.
engine_main() {
    local action=${1:-start}
    case $action in
        start | stop | status | prune) "engine_$action" ;;
        *) die "usage: $0 [start|stop|status|prune]" ;;
    esac
}

# Tests leave their databases and topics behind (a test that dies cannot clean up after
# itself), so `prune` drops the ones older than this many minutes; `scripts/test` runs it
# before the tests. Younger ones may belong to a run in progress.
PRUNE_AFTER_MIN="${STUDYCAFE_PRUNE_AFTER_MIN:-120}"

# libs/testkit names test data `<prefix>_<UUIDv7>` (hex, no dashes); the UUID's first 48 bits
# are its creation time in milliseconds. True when $1 is such a name older than
# $PRUNE_AFTER_MIN minutes.
stale_test_name() {
    local now_ms
    [[ $1 =~ ^[a-z0-9]+_([0-9a-f]{12})[0-9a-f]{20} ]] || return 1
    now_ms=$(date +%s%3N)
    ((now_ms - 16#${BASH_REMATCH[1]} > PRUNE_AFTER_MIN * 60000))
}
