#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing,
# starts dockerd (and stops it again if it started it), builds the fixture
# images, checks formatting, lints and doc links, then runs every test against the real
# Docker engine and the real nginx.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-env.sh
trap 'scripts/dev-env.sh --stop' EXIT

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Doc comments link only to items the docs show.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
# Every test target built first, so that the two runs below only run.
cargo test --locked --all-targets --no-run
# The live tests take most of the time: four at a time share the daemon
# (the stacks check health every 2 s; loads exclude each other, see
# tests/support: Stack::load, so load results do not depend on each
# other), and every other test binary runs beside them.
mkdir -p target
RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}" \
    cargo test --locked --test live --no-fail-fast >target/live-output.log 2>&1 &
live=$!
echo "live tests running beside the others; their output: target/live-output.log" >&2
status=0
cargo test --locked --lib --bins --examples --benches --test offline --test daemon_restart \
    --no-fail-fast 2>&1 | tee target/test-output.log || status=$?
wait "$live" || status=$?
cat target/live-output.log
exit "$status"
