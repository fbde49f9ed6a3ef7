#!/usr/bin/env bash
# Benchmarks the config engine on a generated ~10 MB nginx.conf (5,000
# upstreams x 4 servers, 5,000 server blocks) and compares with crossplane;
# then loads a config with 100,000 `include` lines of one small file (include
# handling must stay linear). Prints one table. Needs: cargo, python3 (venv).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/nginx-rollout-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
runs=${RUNS:-7}

cargo build --release --quiet --bin nginx-rollout --example gen-conf
bin=target/release/nginx-rollout
./target/release/examples/gen-conf 5000 > "$work/big.conf"
size=$(stat -c %s "$work/big.conf")
mb=$(python3 -c "print($size/1e6)")

if [ ! -x /tmp/nginx-rollout-bench-venv/bin/crossplane ]; then
    python3 -m venv /tmp/nginx-rollout-bench-venv >/dev/null
    /tmp/nginx-rollout-bench-venv/bin/pip install --quiet crossplane
fi
xp=/tmp/nginx-rollout-bench-venv/bin/crossplane

$bin conf print "$work/big.conf" | cmp -s - "$work/big.conf" || { echo "print is not byte-identical" >&2; exit 1; }

python3 - "$work" "$bin" "$xp" "$runs" <<'PY'
import os, shutil, subprocess, sys, time
work, bin, xp, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
big = os.path.join(work, "big.conf")
mb = os.path.getsize(big) / 1e6

def once(cmd):
    """wall s, cpu s (user+sys, from wait4), peak RSS KB of one run."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss

def best(cmd, n=runs):
    rs = [once(cmd) for _ in range(n)]
    return min(r[0] for r in rs), min(r[1] for r in rs), max(r[2] for r in rs)

server = ["up2500", "10.10.0.1:8080"]
rows = [
    ("nginx-rollout conf print", best([bin, "conf", "print", big])),
    ("nginx-rollout conf drain --dry-run", best([bin, "conf", "drain", "--dry-run", big, *server])),
]
edit = os.path.join(work, "edit.conf")
shutil.copy(big, edit)
drains = []
for _ in range(runs):
    drains.append(once([bin, "conf", "drain", edit, *server]))
    once([bin, "conf", "undrain", edit, *server])
if open(edit, "rb").read() != open(big, "rb").read():
    sys.exit("drain + undrain changed the file")
rows.append(("nginx-rollout conf drain (in place)", (min(d[0] for d in drains), min(d[1] for d in drains), max(d[2] for d in drains))))
rows.append(("crossplane parse", best([xp, "parse", "-o", os.devnull, big], 3)))

# 100,000 includes of one small file: conf check reads the main file and the
# small one once, but resolves every include line.
inc_dir = os.path.join(work, "includes")
os.mkdir(inc_dir)
with open(os.path.join(inc_dir, "small.conf"), "w") as f:
    f.write("gzip on;\n")
with open(os.path.join(inc_dir, "nginx.conf"), "w") as f:
    f.write("events {}\nhttp {\n    upstream u { server 127.0.0.1:1; }\n")
    f.write("    include small.conf;\n" * 100_000)
    f.write("}\n")
inc_main = os.path.join(inc_dir, "nginx.conf")
rows_inc = [("conf check, 100,000 includes", best([bin, "conf", "check", inc_main]))]

print(f"generated config: {mb:.1f} MB (5,000 upstreams x 4 servers, 5,000 server blocks); best of {runs}")
print(f"{'operation':<38}{'wall s':>8}{'cpu s':>8}{'MB/s cpu':>10}{'MB/s wall':>11}{'peak RSS':>10}")
for name, (w, c, r) in rows:
    print(f"{name:<38}{w:>8.3f}{c:>8.3f}{mb/c:>10.0f}{mb/w:>11.0f}{r/1024:>7.1f} MB")
for name, (w, c, r) in rows_inc:
    print(f"{name:<38}{w:>8.3f}{c:>8.3f}{'-':>10}{'-':>11}{r/1024:>7.1f} MB")
p, x = rows[0][1], rows[-1][1]
print(f"conf print: peak RSS {p[2]/1024/mb:.2f}x the file size; crossplane parse takes {x[1]/p[1]:.0f}x the CPU time ({x[0]/p[0]:.0f}x wall)")
print(f"load average: {' '.join(f'{l:.2f}' for l in os.getloadavg())}")
PY
