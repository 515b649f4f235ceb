#!/usr/bin/env bash
# Instructions per HTTP request, callback server vs hyper on xtcp::rt, on the simulator
# (stack/examples/rt_cost_sim.rs: same client, same stack, same link; only the server's
# application layer differs). Deterministic: no root, no veth, immune to machine noise.
#
#   ./scripts/rt-cost-callgrind.sh [N]        # N requests (default 1000) and 2N
#
# For each server and mode it runs the example under callgrind with N and 2N requests and
# prints (Ir(2N) - Ir(N)) / N, which cancels set-up costs: for the whole process (both stacks,
# the simulator, the client) and for the server core alone (inclusive cost of SimCore::poll:
# the server's stack plus its application).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
command -v valgrind >/dev/null || { echo "rt-cost-callgrind.sh: valgrind missing" >&2; exit 1; }
cargo build --release -p xtcp --example rt_cost_sim >&2
# Instructions of one run: the whole process, or (with "server") only while inside the
# server core's poll (callgrind --toggle-collect).
ir() {
  local extra=()
  [ "${4:-}" = server ] && extra=("--toggle-collect=*SimCore*as*Host*poll*")
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "${extra[@]}" \
    target/release/examples/rt_cost_sim "$1" "$2" "$3" 2>&1 | awk '/Collected :/ { print $NF }'
}
printf "%-9s %-9s %14s %14s\n" server mode "Ir/request" "server Ir/req"
for mode in keepalive close; do
  for srv in callback hyper; do
    t1=$(ir "$srv" "$mode" "$n")
    t2=$(ir "$srv" "$mode" "$((2 * n))")
    s1=$(ir "$srv" "$mode" "$n" server)
    s2=$(ir "$srv" "$mode" "$((2 * n))" server)
    printf "%-9s %-9s %14d %14d\n" "$srv" "$mode" $(((t2 - t1) / n)) $(((s2 - s1) / n))
  done
done
