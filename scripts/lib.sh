# shellcheck shell=bash
# Shared helpers for the nginx-rollout scripts. Source it; it defines functions only.
# Callers set NR_SCRIPT (the name shown in messages) before sourcing.

# Repository root (the directory holding scripts/); used by the sourcing scripts.
# shellcheck disable=SC2034
NR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# nr_die MESSAGE...: print "<script>: error: MESSAGE" to stderr and exit 1.
nr_die() {
    printf '%s: error: %s\n' "${NR_SCRIPT:-nginx-rollout}" "$*" >&2
    exit 1
}

# nr_quiet WHAT CMD...: run CMD with its output captured; on failure print
# what failed, the last 40 lines of output, and exit 1.
nr_quiet() {
    local what="$1" log rc=0
    shift
    log="$(mktemp)"
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s: error: %s failed (exit %s): %s\n' "${NR_SCRIPT:-nginx-rollout}" "$what" "$rc" "$*" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

# nr_int_in NAME VALUE MIN MAX: exit with an error unless VALUE is an integer in MIN..MAX.
nr_int_in() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        nr_die "$1 must be an integer in $3..$4, got '$2'"
    fi
}

# nr_docker_up: true when the docker daemon answers within 10 s.
nr_docker_up() {
    timeout 10 docker info >/dev/null 2>&1
}
