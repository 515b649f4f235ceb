#!/usr/bin/env bash
# Every test of xtcp: installs what is missing, builds, runs unit, simulator, property and
# (as root, with XDP) privileged veth + AF_XDP integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "== fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== unit, simulator and property tests (release: the heavy matrices need it)"
cargo test --workspace --release --no-fail-fast
