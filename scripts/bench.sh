#!/usr/bin/env bash
# The main job: measure connection churn. Until the load generator runs over AF_XDP this runs
# the simulator demo (two xtcp stacks, one core) and prints handshake/teardown counts.
#   ./scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n 2,4p "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $a (expected --quick)" >&2; exit 2 ;;
  esac
done

./scripts/install-deps.sh
cargo build --release -p xtcp --example sim_demo
n=200000
[ "$quick" = 1 ] && n=20000
echo "== simulator: $n connect/close lifecycles between two xtcp stacks"
./target/release/examples/sim_demo --connections "$n" --concurrency 64
echo "== simulator: same with 1% loss"
./target/release/examples/sim_demo --connections $((n / 10)) --concurrency 64 --loss 0.01
