#!/usr/bin/env bash
# The newcomer's first five minutes, from a fresh clone:
#   scripts/demo.sh [PORT]
# installs what is missing and starts dockerd (scripts/dev-env.sh), builds the
# tool (release), brings up a private copy of fixtures/seed002 (nginx in front
# of app1/app2, compose project "nrdemo<pid>") on 127.0.0.1:PORT (default 18480),
# shows `status` and the dry run, changes MESSAGE to v2 and deploys under bounded
# load (scripts/load.sh, 16 clients), then prints the tool's summary and the load
# result. The stack and its temp dir are removed on exit, whatever happens.
set -euo pipefail
NR_SCRIPT=demo
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
port="${1:-18480}"
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] || nr_die "PORT must be 1024..65535, got '$port'"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    step() { printf '\n== %s\n' "$*"; }
fi
get() { busybox wget -qO- "http://127.0.0.1:$port/"; echo; }

step "environment (packages, dockerd, fixture images)"
scripts/dev-env.sh
step "building nginx-rollout (release)"
cargo build --release --locked --quiet
tool="$root/target/release/nginx-rollout"

dir="$(mktemp -d /tmp/nginx-rollout-demo.XXXXXX)"
project="nrdemo$$"
load_out="$dir.load"
cleanup() {
    (cd "$dir" && NGINX_PORT="$port" docker-compose -p "$project" down -v --remove-orphans -t 1 >/dev/null 2>&1) || true
    rm -rf "$dir" "$load_out"
}
trap cleanup EXIT
cp -r fixtures/seed002/. "$dir/"
cd "$dir"
export NGINX_PORT="$port"

step "the seed's stack: nginx on 127.0.0.1:$port, upstream apps = app1, app2 (in $dir)"
docker-compose -p "$project" up -d
for _ in $(seq 60); do
    busybox wget -qO- "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 1
done
get; get

step "nginx-rollout status"
"$tool" status

step "MESSAGE=app1,v2 / app2,v2 in docker-compose.yml; nginx-rollout deploy apps --dry-run"
sed -i "s/'MESSAGE=app1,v1'/'MESSAGE=app1,v2'/; s/'MESSAGE=app2,v1'/'MESSAGE=app2,v2'/" docker-compose.yml
"$tool" deploy apps --dry-run --monitor 2s

step "nginx-rollout deploy apps --yes, under load (scripts/load.sh: 25 s, 16 clients, keep-alive)"
"$root/scripts/load.sh" "http://127.0.0.1:$port/" 25 16 get-keepalive >"$load_out" &
load_pid=$!
sleep 2
"$tool" deploy apps --yes --monitor 2s
wait "$load_pid"

step "result"
get; get
"$tool" history apps
echo "load during the deploy: $(cat "$load_out")"
grep -q ' failed=0$' "$load_out" || nr_die "requests failed during the deploy"
