#!/usr/bin/env bash
# Rollout benchmark on the seed-002 stack (release build, real dockerd/nginx).
#   scripts/bench-rollout.sh [LOAD_SECONDS] [CONCURRENCY]
# For each mode (engine: --env MESSAGE=...; compose: MESSAGE edited in
# docker-compose.yml) and each load profile (GET keep-alive, GET close,
# POST close, POST keep-alive) it runs one full deploy of app1 and app2 under
# that load and measures:
#   wall      the deploy command's wall time,
#   physical  per server, old container stop (Docker's kill -> die events)
#             + new container create -> healthy (create -> health_status:
#             healthy events), summed: the time Docker itself needs,
#   ratio     wall / physical,
#   reloads   from the --output json summary,
#   failed    failed requests of the load (non-2xx + errors) / total.
# A control run per profile does the same number of bare reloads
# (`docker exec nginx nginx -s reload`, N+1 = 3) under the same load.
# Then the engine-mode runs again on the same stack with the seeds' own
# healthcheck (seed 000/001: interval 10s, timeout 5s, retries 3), added as a
# compose override file (seed 003), where the containers take seconds, not
# one, to be healthy; its load runs at least 30 s to cover the deploy.
# Prints a markdown table on stdout; progress on stderr.
# Bounds: load via scripts/load.sh (bounded, 127.0.0.1 only); everything this
# creates is one compose project `nrbench<pid>` (then `nrbenchhc<pid>`) in a
# temp dir, removed on exit.
set -euo pipefail
NR_SCRIPT=bench-rollout
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_seconds="${1:-25}" concurrency="${2:-16}"
[[ "$load_seconds" =~ ^[0-9]+$ ]] && [ "$load_seconds" -ge 5 ] && [ "$load_seconds" -le 120 ] ||
    nr_die "LOAD_SECONDS must be 5..120, got '$load_seconds'"
[[ "$concurrency" =~ ^[0-9]+$ ]] && [ "$concurrency" -ge 1 ] && [ "$concurrency" -le 64 ] ||
    nr_die "CONCURRENCY must be 1..64, got '$concurrency'"
nr_docker_up || nr_die "the docker daemon does not answer (run scripts/dev-env.sh)"
command -v python3 >/dev/null || nr_die "python3 is needed to read docker events"

log() { printf '%s: %s\n' "$NR_SCRIPT" "$*" >&2; }

log "building the release binary"
nr_quiet "cargo build --release" cargo build --release --quiet --manifest-path "$NR_ROOT/Cargo.toml"
tool="$NR_ROOT/target/release/nginx-rollout"

dir="$(mktemp -d /tmp/nr-bench-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port/"
project="" compose_files=()
compose() { (cd "$dir" && NGINX_PORT="$port" COMPOSE_FILE="$(IFS=:; echo "${compose_files[*]}")" docker-compose -p "$project" "$@"); }
down() {
    [ -z "$project" ] || compose down -v --remove-orphans -t 1 >/dev/null 2>&1 || true
}
cleanup() {
    down
    rm -rf "$dir"
}
trap cleanup EXIT
cp -r "$NR_ROOT/fixtures/seed002/." "$dir/"
cat >"$dir/seed-healthcheck.yml" <<'YAML'
# The healthcheck of seeds 000 and 001, as an override file (seed 003).
version: '2.4'
services:
  app1:
    healthcheck: {interval: 10s, timeout: 5s, retries: 3, start_period: 1s}
  app2:
    healthcheck: {interval: 10s, timeout: 5s, retries: 3, start_period: 1s}
YAML

# up NAME FILE...: brings up the seed stack as compose project NAME from FILEs.
up() {
    down
    project="$1"
    shift
    compose_files=("$@")
    nginx="${project}_nginx_1"
    log "bringing up the seed stack as project $project (${compose_files[*]}) on 127.0.0.1:$port"
    nr_quiet "compose up" compose up -d
    for _ in $(seq 1 100); do
        curl -fsS "$url" >/dev/null 2>&1 && break
        sleep 0.2
    done
}

now() { date +%s.%N; }

# watch_events: streams the project's container events to $events_file (the
# daemon keeps only its last 256 events, so they are recorded as they happen).
watch_events() {
    events_file="$(mktemp)"
    docker events --filter "label=com.docker.compose.project=$project" \
        --filter type=container --format '{{json .}}' >"$events_file" &
    events_pid=$!
    sleep 0.3
}

# physical: stops the event stream and prints the summed stop (kill -> die)
# and create -> healthy seconds of the app containers it saw.
physical() {
    sleep 0.5
    kill "$events_pid"
    wait "$events_pid" 2>/dev/null || true
    python3 -c '
import json, sys
first = {}
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    e = json.loads(line)
    if "_nginx_" in e["Actor"]["Attributes"].get("name", ""):
        continue
    action = e["Action"].replace(" ", "")
    first.setdefault((e["id"], action), e["timeNano"] / 1e9)
total = 0.0
for i in {k[0] for k in first}:
    t = lambda a: first.get((i, a))
    if t("kill") is not None and t("die") is not None:
        total += t("die") - t("kill")
    if t("create") is not None and t("health_status:healthy") is not None:
        total += t("health_status:healthy") - t("create")
print(f"{total:.2f}")
' "$events_file"
    rm -f "$events_file"
}


# run_load PROFILE [SECONDS]: starts scripts/load.sh in the background, output in $load_out.
run_load() {
    load_out="$(mktemp)"
    "$NR_ROOT/scripts/load.sh" "$url" "${2:-$load_seconds}" "$concurrency" "$1" >"$load_out" 2>/dev/null &
    load_pid=$!
    sleep 1
}
# finish_load: waits for it and sets $failed to "failed/total".
finish_load() {
    wait "$load_pid" || nr_die "load failed"
    local line total
    line="$(cat "$load_out")"
    rm -f "$load_out"
    total="$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$line")"
    failed="$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")/$total"
}

rows=()
round=0
profiles=(get-keepalive get-close post-close post-keepalive)

# deploy_row MODE LABEL PROFILE [LOAD_SECONDS]: one deploy under load, one table row.
deploy_row() {
    local mode="$1" label="$2" profile="$3" message out start end wall phys ratio reloads body
    round=$((round + 1))
    message="r$round"
    local args=(deploy apps --yes --monitor 0s --output json)
    if [ "$mode" = engine ]; then
        args+=(--mode engine --env "MESSAGE={{service}},$message")
    else
        sed -i -E "s/MESSAGE=(app[12]),[^']*/MESSAGE=\\1,$message/" "$dir/docker-compose.yml"
        args+=(--mode compose)
    fi
    log "$label deploy under $profile"
    run_load "$profile" "${4:-}"
    watch_events
    start="$(now)"
    out="$(cd "$dir" && NGINX_PORT="$port" "$tool" "${args[@]}")" || nr_die "$label deploy failed: $out"
    end="$(now)"
    finish_load
    wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
    phys="$(physical)"
    ratio="$(python3 -c "print(f'{$wall / $phys:.2f}' if $phys > 0 else 'n/a')")"
    reloads="$(python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.strip()][-1]["reloads"])' <<<"$out")"
    body="$(curl -fsS "$url")"
    [[ "$body" == *",$message" ]] || nr_die "after the $label deploy nginx answers '$body', not $message"
    rows+=("| $label | $profile | $wall | $phys | $ratio | $reloads | $failed |")
}

up "nrbench$$" docker-compose.yml
for mode in engine compose; do
    for profile in "${profiles[@]}"; do
        deploy_row "$mode" "$mode" "$profile"
    done
done

for profile in "${profiles[@]}"; do
    log "control: 3 bare reloads under $profile"
    run_load "$profile"
    start="$(now)"
    for _ in 1 2 3; do
        docker exec "$nginx" nginx -s reload
        sleep 3
    done
    end="$(now)"
    finish_load
    wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
    rows+=("| control (bare reloads) | $profile | $wall | - | - | 3 | $failed |")
done

up "nrbenchhc$$" docker-compose.yml seed-healthcheck.yml
hc_seconds=$((load_seconds > 30 ? load_seconds : 30))
for profile in "${profiles[@]}"; do
    deploy_row engine "engine, seed healthcheck" "$profile" "$hc_seconds"
done

echo "| run | load ($concurrency clients) | wall s | physical min s | ratio | reloads | failed/total |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
