#!/usr/bin/env bash
# Prepares the real test environment for nginx-rollout. Idempotent; quiet on
# success except for the final list of fixture images; clear on failure.
#   scripts/dev-env.sh          install missing Debian packages, make sure dockerd
#                               answers (starting it if needed), build the fixture
#                               images when their inputs changed
#   scripts/dev-env.sh --stop   stop dockerd, only if a previous run started it
set -euo pipefail
NR_SCRIPT=dev-env # shown in messages by lib.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKERD_PID_FILE="${NR_DOCKERD_PID_FILE:-/run/nginx-rollout-dockerd.pid}"
DOCKERD_LOG=/var/log/nginx-rollout-dockerd.log

# Debian package providing each thing we need, checked by the given test.
missing_packages() {
    command -v dockerd >/dev/null || echo docker.io
    command -v docker-compose >/dev/null || echo docker-compose
    [ -x /usr/sbin/nginx ] || echo nginx
    command -v hey >/dev/null || echo hey
    command -v wrk >/dev/null || echo wrk
    command -v curl >/dev/null || echo curl
    # The remote-daemon test reaches a second dockerd through an sshd of its own.
    [ -x /usr/sbin/sshd ] || echo openssh-server
    # The fixture app is linked statically against glibc.
    [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || echo libc6-dev
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
        echo busybox-static
}

install_missing() {
    local pkgs
    mapfile -t pkgs < <(missing_packages)
    [ "${#pkgs[@]}" -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || nr_die "missing packages (${pkgs[*]}) and not root to install them"
    export DEBIAN_FRONTEND=noninteractive
    nr_quiet "apt-get update" apt-get update -q
    nr_quiet "installing ${pkgs[*]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

start_dockerd() {
    nr_docker_up && return
    [ "$(id -u)" -eq 0 ] || nr_die "the docker daemon does not answer and we are not root to start it"
    # Only stdin/out/err go to the daemon: an inherited descriptor (a caller's
    # lock file, a pipe) would stay open, held, for as long as dockerd runs.
    setsid bash -c 'for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec dockerd' \
        >"$DOCKERD_LOG" 2>&1 </dev/null &
    echo "$!" >"$DOCKERD_PID_FILE"
    local waited=0
    until nr_docker_up; do
        if ! kill -0 "$(cat "$DOCKERD_PID_FILE")" 2>/dev/null; then
            rm -f "$DOCKERD_PID_FILE"
            tail -n 20 "$DOCKERD_LOG" | sed 's/^/    /' >&2
            nr_die "dockerd exited during start-up (log: $DOCKERD_LOG)"
        fi
        [ "$waited" -ge 60 ] && nr_die "dockerd did not answer within 60 s (log: $DOCKERD_LOG)"
        sleep 1
        waited=$((waited + 1))
    done
}

# Stops the dockerd recorded in the pid file, if it is still that process.
stop_dockerd() {
    [ -f "$DOCKERD_PID_FILE" ] || return 0
    local pid
    pid="$(cat "$DOCKERD_PID_FILE")"
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
        kill -TERM "$pid"
        local waited=0
        while kill -0 "$pid" 2>/dev/null; do
            [ "$waited" -ge 60 ] && nr_die "dockerd (pid $pid) still running 30 s after SIGTERM"
            sleep 0.5
            waited=$((waited + 1))
        done
    fi
    rm -f "$DOCKERD_PID_FILE"
}

case "${1:-}" in
--stop)
    stop_dockerd
    ;;
"")
    install_missing
    start_dockerd
    "$NR_ROOT/fixtures/images/build.sh"
    docker images --format '{{.Repository}}:{{.Tag}}' 'nginx-rollout-fixture/*' | LC_ALL=C sort
    ;;
*)
    nr_die "usage: scripts/dev-env.sh [--stop]"
    ;;
esac
