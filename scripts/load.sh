#!/usr/bin/env bash
# Bounded HTTP load against a local URL, summarised on one machine-readable line.
#   scripts/load.sh URL SECONDS CONCURRENCY [MODE]
# MODE: get-keepalive (default), get-close, post-keepalive, post-close
#   (-close: a new connection per request).
# Bounds: hey runs for SECONDS (-z), each client is rate-limited to LOAD_QPS
# requests/s (default 200), which caps the total at SECONDS*CONCURRENCY*LOAD_QPS,
# and `timeout` kills it 15 s after SECONDS in any case. Only http://127.0.0.1 URLs.
# Prints to stdout:  total=N ok=N failed=N   (failed = non-2xx answers + errors);
# when failed > 0, the status/error breakdown goes to stderr.
# SIGTERM/SIGINT stop the load early; the summary covers what ran until then.
# Exit status: 0 when the load ran (whatever failed is), 1 on bad usage or when hey fails.
set -euo pipefail
NR_SCRIPT=load # shown in messages by lib.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$#" -lt 3 ] || [ "$#" -gt 4 ]; then
    nr_die "usage: scripts/load.sh URL SECONDS CONCURRENCY [get-keepalive|get-close|post-keepalive|post-close]"
fi
url="$1" seconds="$2" concurrency="$3" mode="${4:-get-keepalive}"
qps="${LOAD_QPS:-200}"

[[ "$url" =~ ^http://127\.0\.0\.1(:[0-9]{1,5})?(/[^[:space:]]*)?$ ]] ||
    nr_die "only http://127.0.0.1[:PORT]/... URLs are accepted, got '$url'"
nr_int_in SECONDS "$seconds" 1 600
nr_int_in CONCURRENCY "$concurrency" 1 256
nr_int_in LOAD_QPS "$qps" 1 10000
command -v hey >/dev/null || nr_die "hey is not installed (run scripts/dev-env.sh)"

args=(-z "${seconds}s" -c "$concurrency" -q "$qps" -t 20)
case "$mode" in
get-keepalive) ;;
get-close) args+=(-disable-keepalive) ;;
post-keepalive) args+=(-m POST -T text/plain -d 'nginx-rollout load') ;;
post-close) args+=(-m POST -T text/plain -d 'nginx-rollout load' -disable-keepalive) ;;
*) nr_die "unknown MODE '$mode' (get-keepalive, get-close, post-keepalive, post-close)" ;;
esac

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# SIGTERM or SIGINT ends the load early: hey stops its clients and reports
# what it saw so far (a caller stops the load once what it measures is over).
timeout --kill-after=5 "$((seconds + 15))" hey "${args[@]}" "$url" >"$out" 2>&1 &
hey_pid=$!
stopped=0
trap 'stopped=1; kill -INT "$hey_pid" 2>/dev/null || true' INT TERM
rc=0
wait "$hey_pid" || rc=$?
while kill -0 "$hey_pid" 2>/dev/null; do
    rc=0
    wait "$hey_pid" || rc=$?
done
[ "$rc" -eq 0 ] || [ "$stopped" -eq 1 ] || { sed 's/^/    /' "$out" | tail -n 20 >&2; nr_die "hey exited with $rc"; }

# hey lists "[CODE]<tab>N responses" under "Status code distribution:" and
# "[N]<tab>message" under "Error distribution:".
awk '
    /^Status code distribution:/ { section = "status"; next }
    /^Error distribution:/       { section = "error"; next }
    /^[^ ]/                      { section = "" }
    section == "status" && match($0, /\[[0-9]+\][ \t]+[0-9]+ responses/) {
        split(substr($0, RSTART, RLENGTH), f, /[][ \t]+/)
        total += f[3]; if (f[2] >= 200 && f[2] < 300) ok += f[3]; else detail = detail $0 "\n"
    }
    section == "error" && match($0, /^ *\[[0-9]+\]/) {
        n = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", n)
        total += n; detail = detail $0 "\n"
    }
    END {
        printf "total=%d ok=%d failed=%d\n", total, ok, total - ok
        if (total - ok > 0) printf "%s", detail > "/dev/stderr"
    }
' "$out"
