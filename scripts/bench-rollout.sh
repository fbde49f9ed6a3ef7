#!/usr/bin/env bash
# Rollout benchmarks on the seed stacks (release build, real dockerd/nginx).
#   scripts/bench-rollout.sh [LOAD_SECONDS] [CONCURRENCY] [all|seed002|seed000]
#
# seed002 (2 servers): for each mode (engine: --env MESSAGE=...; the compose
# fast path twice — compose-read, where compose reads the files as on a first
# deploy (the readings kept in the state directory removed first), and
# compose, where only MESSAGE changed since the last reading, which answers
# without a compose run; compose-cli, one `docker-compose up` per server:
# MESSAGE edited in docker-compose.yml) and each load profile (GET keep-alive,
# GET close, POST close, POST keep-alive) one full deploy of app1 and app2
# under that load:
#   wall      the deploy command's wall time,
#   physical  per server, from the old container's kill to the new one's
#             healthy (Docker's kill and health_status: healthy events),
#             summed: the time Docker itself needs to stop the old
#             container, start the new one and see its first healthcheck
#             pass. The new container's create is not counted: stop-first
#             it can be made while the old one still serves, as the tool
#             makes it (compose-cli creates it after the stop: counted),
#   ratio     wall / physical,
#   reloads   from the --output json summary,
#   failed    failed requests of the load (non-2xx + errors) / total.
# A control run per profile does the same reloads without the deploy: the
# same number of SIGHUPs to nginx (`docker kill -s HUP`, as the tool sends
# them), at the same moments after its start as the kept-reading deploy
# under that load sent its own (read from Docker's kill events), under the
# same load. Then NR_BENCH_REPEATS (default 5) kept-reading deploys and as
# many controls, alternated (each control replays the deploy before it),
# under POST keep-alive, where what a reload costs is a race that spreads
# single runs: each run's failures and the sums.
# Then the engine-mode runs again on the same stack with the seeds' own
# healthcheck (seed 000/001: interval 10s, timeout 5s, retries 3), added as a
# compose override file (seed 003), where the containers take seconds, not
# one, to be healthy; its load runs at least 30 s to cover the deploy.
#
# seed000 (a compose service with 3 replicas behind one `server web:8000;`,
# update_config start-first, parallelism 1, delay 1s): the seed's own
# `docker-compose up -d` after MESSAGE changes (failed requests, and the
# outage: first to last failed probe of a 20-per-second probe), then
# `nginx-rollout deploy backend` in compose-read, compose (the fast path as
# above) and engine mode (the compose CLI
# recreates every replica at once: nginx-rollout refuses it for replicas). Its physical
# minimum is the issue's: the new replicas' create -> healthy, summed, plus
# the delays between them (as planned: update_config's delay), plus one reload
# and drain per replica (nginx's own hand-over: the mean reload + wait-drained
# step of the run), plus the part of the watch after the last replica (as
# planned: Swarm's delay + 1 s) that outlasts its hand-over.
#
# Every stack runs with bench-net.yml beside its files: nginx may reuse its
# sockets to the apps in TIME_WAIT (see bench_net below).
#
# NR_BENCH_KEEP=DIR keeps each seed-000 deploy's JSON output and its container
# events there (MODE-PROFILE.jsonl, MODE-PROFILE.events.jsonl), for a per-step
# timeline.
# Prints markdown tables on stdout; progress on stderr.
# Bounds: load via scripts/load.sh (bounded, 127.0.0.1 only); everything this
# creates is one compose project at a time (`nrbench<pid>`, `nrbenchhc<pid>`,
# `nrbench0<pid>`) in a temp dir, removed on exit.
set -euo pipefail
NR_SCRIPT=bench-rollout
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_seconds="${1:-25}" concurrency="${2:-16}" section="${3:-all}"
case "$section" in all | seed002 | seed000) ;; *) nr_die "the section must be all, seed002 or seed000, got '$section'" ;; esac
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
events_pid="" load_pid="" probe_pid=""
cleanup() {
    # Background helpers (event stream, load, probe) must not outlive the run:
    # they would hold whatever the caller holds (a lock, a terminal).
    for pid in "$events_pid" "$load_pid" "$probe_pid"; do
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    done
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

# bench_net [VERSION_LINE]: writes bench-net.yml, an override file that lets
# nginx reuse its sockets to the apps in TIME_WAIT (net.ipv4.tcp_tw_reuse, as
# proxies are set up in production). The seeds' nginx opens a connection to
# an app per request (no upstream keep-alive), tens of thousands a minute to
# the same two or three addresses, and each waits 60 s in TIME_WAIT: a few
# rounds into the bench nginx ran out of source ports (`connect() failed (99:
# Cannot assign requested address)`), marked every server failed and answered
# 502 to everything for 10 s, whatever the rollout did.
bench_net() {
    {
        [ -z "${1:-}" ] || echo "$1"
        printf 'services:\n  nginx:\n    sysctls:\n      net.ipv4.tcp_tw_reuse: 1\n'
    } >"$dir/bench-net.yml"
}
bench_net "version: '2.4'"

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
# The caller ends it with stop_events, reads the file and removes it.
watch_events() {
    events_file="$(mktemp)"
    docker events --filter "label=com.docker.compose.project=$project" \
        --filter type=container --format '{{json .}}' >"$events_file" &
    events_pid=$!
    sleep 0.3
}

# stop_events: ends the stream watch_events started, 0.5 s on for the
# run's last events to arrive.
stop_events() {
    sleep 0.5
    kill "$events_pid"
    wait "$events_pid" 2>/dev/null || true
}

# physical: prints, summed over the app services in $events_file, the
# seconds from the old container's first kill to the new one's first healthy
# report.
physical() {
    python3 -c '
import json, sys
kills, healthy = {}, {}
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    e = json.loads(line)
    service = e["Actor"]["Attributes"].get("com.docker.compose.service")
    if service in (None, "nginx"):
        continue
    action = e["Action"].replace(" ", "")
    if action == "kill":
        kills.setdefault(service, []).append(e["timeNano"] / 1e9)
    elif action == "health_status:healthy":
        healthy.setdefault(service, []).append(e["timeNano"] / 1e9)
total = 0.0
for service, times in kills.items():
    kill = min(times)
    after = [t for t in healthy.get(service, []) if t > kill]
    if not after:
        sys.exit(f"service {service}: no healthy report after its old container was killed")
    total += min(after) - kill
print(f"{total:.2f}")
' "$events_file"
}

# reload_moments START: the seconds after START (unix s) at which the run in
# $events_file sent nginx a SIGHUP (its kill events with signal 1).
reload_moments() {
    python3 -c '
import json, sys
start = float(sys.argv[2])
moments = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    e = json.loads(line)
    attributes = e["Actor"]["Attributes"]
    if attributes.get("com.docker.compose.service") == "nginx" and e["Action"] == "kill" \
            and attributes.get("signal") == "1":
        moments.append(e["timeNano"] / 1e9 - start)
print(" ".join(f"{m:.3f}" for m in sorted(moments)))
' "$events_file" "$1"
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
# replay[PROFILE]: the moments (s after its start) the last kept-reading
# deploy under PROFILE sent nginx a SIGHUP, for the controls (see control).
declare -A replay=()
round=0
profiles=(get-keepalive get-close post-close post-keepalive)

# mode_args MODE: the deploy's --mode and state directory for a bench mode
# (compose-read is the fast path with the kept readings removed first).
mode_args() {
    case "$1" in
    compose-read)
        rm -rf "$dir/state-$project/kept"
        echo compose
        ;;
    *) echo "$1" ;;
    esac
}

# label MODE: a bench mode as the tables name it.
label() {
    case "$1" in
    compose-read) echo "compose (fast path), compose reads the files" ;;
    compose) echo "compose (fast path), kept reading" ;;
    *) echo "$1" ;;
    esac
}

# check_reading MODE STDERR: the fast path read the files as the mode says.
check_reading() {
    case "$1" in
    compose-read) ! grep -q "compose did not run" "$2" || nr_die "compose-read: a kept reading answered" ;;
    compose) grep -q "compose did not run" "$2" || nr_die "compose: compose read the files: $(cat "$2")" ;;
    esac
}

# deploy_row MODE LABEL PROFILE [LOAD_SECONDS]: one deploy under load, one table row.
deploy_row() {
    local mode="$1" label="$2" profile="$3" message out start end wall phys moments ratio reloads body
    round=$((round + 1))
    message="r$round"
    local args=(deploy apps --yes --monitor 0s --output json --state-dir "$dir/state-$project")
    if [ "$mode" = engine ]; then
        args+=(--mode engine --env "MESSAGE={{service}},$message")
    else
        sed -i -E "s/MESSAGE=(app[12]),[^']*/MESSAGE=\\1,$message/" "$dir/docker-compose.yml"
        args+=(--mode "$(mode_args "$mode")")
    fi
    log "$label deploy under $profile"
    run_load "$profile" "${4:-}"
    watch_events
    start="$(now)"
    out="$(cd "$dir" && NGINX_PORT="$port" "$tool" "${args[@]}" 2>"$dir/deploy.err")" ||
        nr_die "$label deploy failed: $out $(cat "$dir/deploy.err")"
    end="$(now)"
    finish_load
    check_reading "$mode" "$dir/deploy.err"
    wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
    stop_events
    phys="$(physical)"
    moments="$(reload_moments "$start")"
    rm -f "$events_file"
    [ -n "$moments" ] || nr_die "$label deploy: no SIGHUP to nginx among its events"
    [ "$mode" != compose ] || replay[$profile]="$moments"
    ratio="$(python3 -c "print(f'{$wall / $phys:.2f}' if $phys > 0 else 'n/a')")"
    reloads="$(python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.strip()][-1]["reloads"])' <<<"$out")"
    body="$(curl -fsS "$url")"
    [[ "$body" == *",$message" ]] || nr_die "after the $label deploy nginx answers '$body', not $message"
    rows+=("| $label | $profile | $wall | $phys | $ratio | $reloads | $failed |")
}

# control PROFILE: the reloads of the last kept-reading deploy under PROFILE
# (${replay[PROFILE]}) alone: a SIGHUP to nginx at each of its moments, timed
# from the same point of the same load (the deploy starts once its event
# stream has run 0.3 s); sets $wall and $failed.
control() {
    local moments="${replay[$1]:-}" start end moment
    [ -n "$moments" ] || nr_die "control under $1: no kept-reading deploy under it to replay"
    log "control: the deploy's reloads alone under $1 (at $moments s)"
    run_load "$1"
    sleep 0.3
    start="$(now)"
    for moment in $moments; do
        sleep "$(python3 -c "print(max(0.0, $start + $moment - $(now)))")"
        docker kill -s HUP "$nginx" >/dev/null
    done
    end="$(now)"
    finish_load
    wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
}

# post_keepalive_repeated: what a reload costs POST keep-alive clients is a
# race (nginx closes idle keep-alive connections as it reloads; a POST sent
# on one just then fails and is not retried), so single runs spread from 0
# to about 15 either way. NR_BENCH_REPEATS (default 5, at most 50)
# kept-reading deploys (3 reloads each) and as many controls (each the
# reloads of the deploy before it, alone), alternated, under POST
# keep-alive: each run's failures and the sums, in $repeat_rows.
post_keepalive_repeated() {
    local n="${NR_BENCH_REPEATS:-5}" saved=("${rows[@]}") deploys=() controls=()
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -le 50 ] || nr_die "NR_BENCH_REPEATS must be 0..50, got '$n'"
    for _ in $(seq 1 "$n"); do
        deploy_row compose "$(label compose)" post-keepalive
        deploys+=("$failed")
        control post-keepalive
        controls+=("$failed")
    done
    rows=("${saved[@]}")
    repeat_rows=()
    [ "$n" -gt 0 ] || return 0
    repeat_rows+=("| $(label compose) (3 reloads) | $n | $(runs_and_sum "${deploys[@]}") |")
    repeat_rows+=("| control (the same reloads alone) | $n | $(runs_and_sum "${controls[@]}") |")
}

# runs_and_sum F/T...: "F1 F2 … | ΣF/ΣT".
runs_and_sum() {
    python3 -c '
import sys
runs = [tuple(map(int, a.split("/"))) for a in sys.argv[1:]]
print(" ".join(str(f) for f, _ in runs), "|", f"{sum(f for f, _ in runs)}/{sum(t for _, t in runs)}")
' "$@"
}

seed002() {
    up "nrbench$$" docker-compose.yml bench-net.yml
    for mode in engine compose-read compose compose-cli; do
        for profile in "${profiles[@]}"; do
            deploy_row "$mode" "$(label "$mode")" "$profile"
        done
    done

    for profile in "${profiles[@]}"; do
        control "$profile"
        rows+=("| control (the same reloads alone) | $profile | $wall | - | - | $(wc -w <<<"${replay[$profile]}") | $failed |")
    done
    post_keepalive_repeated

    up "nrbenchhc$$" docker-compose.yml seed-healthcheck.yml bench-net.yml
    hc_seconds=$((load_seconds > 30 ? load_seconds : 30))
    for profile in "${profiles[@]}"; do
        deploy_row engine "engine, seed healthcheck" "$profile" "$hc_seconds"
    done
    echo "| run | load ($concurrency clients) | wall s | physical min s | ratio | reloads | failed/total |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    if [ "${#repeat_rows[@]}" -gt 0 ]; then
        echo
        echo "| POST keep-alive ($concurrency clients), alternated | runs | failed per run | failed/total |"
        echo "|---|---|---|---|"
        printf '%s\n' "${repeat_rows[@]}"
    fi
}

# probe_start: GETs $url 20 times a second (bounded: at most 3000) and
# records the time of each failure, until probe_stop.
probe_start() {
    probe_out="$(mktemp)"
    python3 -c '
import sys, time, urllib.request
url, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    for _ in range(3000):
        t = time.time()
        try:
            urllib.request.urlopen(url, timeout=2).read()
        except Exception:
            f.write(f"{t}\n"); f.flush()
        time.sleep(max(0.0, 0.05 - (time.time() - t)))
' "$url" "$probe_out" &
    probe_pid=$!
}
# probe_stop: sets $outage to the seconds from the first to the last failed probe.
probe_stop() {
    kill "$probe_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
    outage="$(python3 -c '
import sys
t = [float(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{max(t) - min(t) + 0.05:.2f}" if t else "0")
' "$probe_out")"
    rm -f "$probe_out"
}

# replicas_serve VERSION: waits (up to 60 s) until the stack answers VERSION
# 12 times in a row.
replicas_serve() {
    local ok=0
    for _ in $(seq 1 600); do
        if [ "$(curl -fsS "$url" 2>/dev/null)" = "Hi there, I love ! $1" ]; then
            ok=$((ok + 1))
            [ "$ok" -ge 12 ] && return 0
        else
            ok=0
        fi
        sleep 0.1
    done
    nr_die "the replicas did not all answer $1 within 60 s"
}

# physical_replicas JSON: the seed-000 physical minimum of a run from its
# container events and its JSON output (see the header).
physical_replicas() {
    python3 -c '
import json, re, sys
events, out = sys.argv[1], sys.argv[2]
first = {}
for line in open(events):
    if line.strip():
        e = json.loads(line)
        if "_web_" in e["Actor"]["Attributes"].get("name", ""):
            first.setdefault((e["id"], e["Action"].replace(" ", "")), e["timeNano"] / 1e9)
healthy = sum(first[(i, "health_status:healthy")] - first[(i, "create")]
              for i in {k[0] for k in first}
              if (i, "create") in first and (i, "health_status:healthy") in first)
lines = [json.loads(l) for l in out.splitlines() if l.strip()]
actions = {e["step"]["index"]: e["step"]["action"] for e in lines if e["event"] == "step-start"}
kinds = {i: a["action"] for i, a in actions.items()}
secs = {e["index"]: e["seconds"] for e in lines if e["event"] == "step-finish"}
reloads = [secs[i] for i, k in kinds.items() if k == "reload" and i in secs]
drains = [secs[i] for i, k in kinds.items() if k == "wait-drained" and i in secs]
unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
def planned(d):  # a humantime duration: "1s", "500ms", "1m 30s"
    return sum(float(n) * unit[u] for n, u in re.findall(r"(\d+)\s*(ns|us|ms|s|m|h)\b", d))
# The delays as planned (update_config): a delay counted from the old replica
# stop request waits only what the stop left of it.
delays = sum(planned(actions[i]["duration"]) for i, k in kinds.items() if k == "delay" and i in secs)
replicas = len(drains)
handover = (sum(reloads) / len(reloads) + (sum(drains) / len(drains) if drains else 0)) if reloads else 0
# The watch after the last replica turned healthy, as planned (as Swarm
# watches: the delay and 1 s when that is at least the monitor window), where
# it outlasts that replica reload and drain.
watch = max((planned(actions[i]["window"]) for i, k in kinds.items() if k == "monitor"), default=0)
print(f"{healthy + delays + replicas * handover + max(0, watch - handover):.2f}")
' "$events_file" "$1"
}

seed000() {
    down
    rm -rf "${dir:?}"/*
    cp -r "$NR_ROOT/fixtures/seed000/." "$dir/"
    bench_net
    project="nrbench0$$"
    compose_files=(docker-compose.yml bench-net.yml)
    log "bringing up the seed-000 stack as project $project on 127.0.0.1:$port"
    nr_quiet "compose up" compose up -d
    replicas_serve v1
    local rows0=() round0=1 profile out start end wall phys ratio reloads
    for profile in get-keepalive post-close; do
        round0=$((round0 + 1))
        sed -i -E "s/MESSAGE=[^ ]*/MESSAGE=v$round0/" "$dir/docker-compose.yml"
        log "seed's own docker-compose up -d under $profile"
        run_load "$profile"
        probe_start
        start="$(now)"
        nr_quiet "compose up -d" compose up -d
        replicas_serve "v$round0"
        end="$(now)"
        probe_stop
        finish_load
        wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
        rows0+=("| docker-compose up -d (the seed's own) | $profile | $wall | - | - | - | $outage | $failed |")
    done
    for mode in compose-read compose engine; do
        for profile in get-keepalive post-close post-keepalive; do
            round0=$((round0 + 1))
            local args=(deploy backend --yes --monitor 0s --output json --state-dir "$dir/state-$project")
            if [ "$mode" = engine ]; then
                args+=(--mode engine --env "MESSAGE=v$round0")
            else
                sed -i -E "s/MESSAGE=[^ ]*/MESSAGE=v$round0/" "$dir/docker-compose.yml"
                args+=(--mode "$(mode_args "$mode")")
            fi
            log "nginx-rollout ($mode mode) under $profile"
            run_load "$profile" "$((load_seconds > 30 ? load_seconds : 30))"
            watch_events
            probe_start
            start="$(now)"
            out="$(cd "$dir" && NGINX_PORT="$port" "$tool" "${args[@]}" 2>"$dir/deploy.err")" ||
                nr_die "$mode deploy failed: $out $(cat "$dir/deploy.err")"
            end="$(now)"
            probe_stop
            finish_load
            check_reading "$mode" "$dir/deploy.err"
            wall="$(python3 -c "print(f'{$end - $start:.2f}')")"
            stop_events
            if [ -n "${NR_BENCH_KEEP:-}" ]; then
                mkdir -p "$NR_BENCH_KEEP"
                printf '%s\n' "$out" >"$NR_BENCH_KEEP/$mode-$profile.jsonl"
                cp "$events_file" "$NR_BENCH_KEEP/$mode-$profile.events.jsonl"
            fi
            phys="$(physical_replicas "$out")"
            rm -f "$events_file"
            ratio="$(python3 -c "print(f'{$wall / $phys:.2f}' if $phys > 0 else 'n/a')")"
            reloads="$(python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.strip()][-1]["reloads"])' <<<"$out")"
            replicas_serve "v$round0"
            rows0+=("| nginx-rollout deploy, $(label "$mode") | $profile | $wall | $phys | $ratio | $reloads | $outage | $failed |")
        done
    done
    echo
    echo "| seed 000 (3 replicas) | load ($concurrency clients) | wall s | physical min s | ratio | reloads | outage s | failed/total |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows0[@]}"
}

case "$section" in
all) seed002 && seed000 ;;
seed002) seed002 ;;
seed000) seed000 ;;
esac
