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
# Three live tests at a time fit two cores (five made the stacks'
# healthchecks miss their 1-s timeout); loads exclude each other
# (tests/support: Stack::load), so load results do not depend on each other.
RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}" \
    cargo test --locked --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
