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
# The test binaries are built by clippy-driver, the rustc that `cargo clippy`
# runs, with every warning an error: one pass both lints every target (lib,
# bin, unit and integration tests, benches, examples: what `cargo clippy
# --all-targets -- -D warnings` checks) and builds it, where a separate
# `cargo clippy` type-checked every crate a second time. Their own target
# directory: these flags would make plain cargo builds rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/suite}"
export RUSTC_WORKSPACE_WRAPPER=clippy-driver RUSTFLAGS="-D warnings"
cargo test --locked --all-targets --no-run
# Doc comments link only to items the docs show.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
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
