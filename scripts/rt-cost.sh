#!/usr/bin/env bash
# The cost of xtcp::rt (async, hyper) against the callback API: wrk against the callback
# `http` example and against `hyper_server`, same veth, same core, same response bytes
# (body, Server, Content-Type; hyper adds a Date header), keep-alive and `Connection: close`.
#
#   ./scripts/rt-cost.sh [--rounds N] [--duration S] [--conns C] [--idle-spins N]
#
# As root. Builds both examples (release), creates a veth pair (removed on exit, also on
# failure), then for each round runs http, then hyper_server (interleaved, so slow drifts of
# a shared machine hit both alike): the server pinned to core 1 (--cores 1, busy polling),
# wrk (1 thread, C connections, --latency) pinned to core 0 in the peer namespace, first
# keep-alive, then with `Connection: close`. Each run's server is stopped with SIGINT.
# Output: one line per run, then per server and mode the range (min..max over rounds) of
# requests/s, p99 latency, and the server process's CPU time per request (utime + stime
# from /proc, over the wrk run). With busy polling (the default) the server burns its core
# whatever the load, so CPU per request only means something with --idle-spins N (passed to
# the servers: wait on the socket after N empty loop iterations). Defaults: 3 rounds, 5 s,
# 20 connections (~2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
duration=5
conns=20
idle=()
while [ $# -gt 0 ]; do
  case "$1" in
  --idle-spins) idle=(--idle-spins "$2"); shift 2 ;;
  --rounds) rounds=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --conns) conns=$2; shift 2 ;;
  *) echo "usage: $0 [--rounds N] [--duration S] [--conns C] [--idle-spins N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "rt-cost.sh: needs root (namespaces, XDP)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "rt-cost.sh: wrk missing (scripts/install-deps.sh)" >&2; exit 1; }

cargo build --release -p xtcp --example http --example hyper_server >&2
name="rc$$"
name=${name:0:12}
server_pid=""
log=$(mktemp)
cleanup() {
  if [ -n "$server_pid" ]; then kill -INT "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  ./scripts/veth.sh down --name "$name" >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT
eval "$(./scripts/veth.sh up --name "$name" 2>/dev/null)"
port=8080
url="http://$XT_IP_A:$port/"

start_server() {
  : >"$log"
  ip netns exec "$XT_NS_A" "target/release/examples/$1" --iface "$XT_IF_A" --ip "$XT_IP_A" \
    --port "$port" --cores 1 "${idle[@]}" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$log" && return 0
    sleep 0.1
  done
  echo "rt-cost.sh: $1 did not start: $(cat "$log")" >&2
  exit 1
}

stop_server() {
  kill -INT "$server_pid"
  wait "$server_pid" || { echo "rt-cost.sh: server exited non-zero: $(cat "$log")" >&2; exit 1; }
  server_pid=""
}

# CPU time of the server process in clock ticks (utime + stime).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }

# One wrk run; prints "requests/s p99_us errors server_cpu_us_per_request".
run_wrk() {
  local t0 t1 out hz
  hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks)
  out=$(wrk_once "$1")
  t1=$(cpu_ticks)
  echo "$out" | awk -v t="$((t1 - t0))" -v hz="$hz" -v d="$duration" \
    '{ req = $1 * d; printf "%s %s %s %.1f\n", $1, $2, $3, (req > 0 ? t * 1e6 / hz / req : 0) }'
}

wrk_once() {
  local extra=()
  [ "$1" = close ] && extra=(-H "Connection: close")
  ip netns exec "$XT_NS_B" taskset -c 0 wrk -t 1 -c "$conns" -d "${duration}s" --timeout 2s \
    --latency "${extra[@]}" "$url" | awk '
      function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
      /^ *99%/ { p99 = us($2) }
      /^Requests\/sec:/ { rps = $2 }
      /^ *Socket errors:/ { for (i = 3; i <= NF; i++) { gsub(",", "", $i); if ($i ~ /^[0-9]+$/) err += $i } }
      /Non-2xx/ { err += $NF }
      END { printf "%.0f %.0f %d\n", rps, p99, err }'
}

results=$(mktemp)
trap 'cleanup; rm -f "$results"' EXIT
echo "round server mode requests_per_s p99_us errors cpu_us_per_request"
for r in $(seq "$rounds"); do
  for srv in http hyper_server; do
    start_server "$srv"
    for mode in keepalive close; do
      line="$r $srv $mode $(run_wrk $mode)"
      echo "$line" | tee -a "$results"
    done
    stop_server
  done
done
echo
echo "ranges over $rounds rounds (wrk -t1 -c$conns -d${duration}s, server on core 1 ${idle[*]:-busy polling}, wrk on core 0):"
for mode in keepalive close; do
  for srv in http hyper_server; do
    awk -v s="$srv" -v m="$mode" '$2 == s && $3 == m {
        if (n == 0 || $4 < rlo) rlo = $4; if ($4 > rhi) rhi = $4;
        if (n == 0 || $5 < plo) plo = $5; if ($5 > phi) phi = $5; e += $6;
        if (n == 0 || $7 < clo) clo = $7; if ($7 > chi) chi = $7; n++ }
      END { printf "  %-9s %-12s %7d..%-7d requests/s   p99 %6d..%-6d us   cpu %5.1f..%-5.1f us/request   errors %d\n", m, s, rlo, rhi, plo, phi, clo, chi, e }' "$results"
  done
done
