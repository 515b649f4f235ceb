#!/usr/bin/env bash
# Every test of xtcp: installs what is missing, builds, runs unit, simulator, property and
# (as root, with XDP) privileged veth + AF_XDP integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "== fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== bench post-processors on canned input"
python3 scripts/bench_tw.py selftest

echo "== unit, simulator and property tests (release: the heavy matrices need it)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log" || status=$?

# One closing line over every test binary (cargo prints one summary per binary, the last of
# which is often a doc-test binary with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
