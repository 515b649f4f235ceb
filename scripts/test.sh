#!/usr/bin/env bash
# Every test of xtcp: installs what is missing, builds, runs unit, simulator, property and
# (as root, with XDP) privileged veth + AF_XDP integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "== documentation links"
python3 scripts/check-docs.py

echo "== fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== xtcp as a dependency (throw-away crate outside the workspace, clean environment)"
./scripts/dependent-build.sh
echo "== bench post-processors on canned input"
python3 scripts/bench_tw.py selftest

echo "== unit, simulator and property tests (release: the heavy matrices need it)"
log=$(mktemp)
# Privileged tests that cannot run (not root, no AF_XDP, a tool missing) return early, which
# libtest counts as passed; each also appends a line here (xtcp_testkit::veth::skip), so the
# closing line moves them from passed to skipped.
export XTCP_SKIP_LOG
XTCP_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$XTCP_SKIP_LOG"' EXIT
status=0
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log" || status=$?

# Fuzz smoke (scripts/fuzz.sh): stack_receive 30 s, each wire target 10 s, after the fuzz
# crate's own tests (harness, simulator seeds, saved crash inputs). Its own closing lines.
echo "== fuzz smoke"
./scripts/fuzz.sh smoke || status=$?

# One closing line over every test binary (cargo prints one summary per binary, the last of
# which is often a doc-test binary with nothing in it).
skipped=$(wc -l < "$XTCP_SKIP_LOG")
if [ "$skipped" -gt 0 ]; then
  echo "== skipped (privileged tests that could not run here):"
  sed 's/^/   /' "$XTCP_SKIP_LOG"
fi
awk -v skipped="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - skipped, f, s + skipped }' "$log"
exit "$status"
