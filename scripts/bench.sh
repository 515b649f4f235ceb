#!/usr/bin/env bash
# The main job: connection churn, xtcp server vs the Linux kernel server, side by side.
#
#   ./scripts/bench.sh [--quick] [--workloads connect,crr,server-close,rr] [--repeat N]
#                      [--servers linux,xtcp,xtcp-sat[,xtcp-busy,xtcp-idle]] [--duration S]
#                      [--warmup S] [--concurrency N] [--max-rate R] [--no-threaded-napi] [--sim]
#                      [--client stateless|full] [--stateless-concurrency N] [--ipv6]
#                      [--idle-spins N] [--sat-concurrency N] [--sat-spins N]
#   ./scripts/bench.sh --tw [--quick] [--tw-target N] [--tw-duration S]
#                      TIME-WAIT pressure instead: one long server-close run per server, rate
#                      and server µs/connection against TIME-WAIT occupancy, tw.json + plot
#                      (scripts/bench_tw.sh, docs/time-wait.md)
#
# As root on a fresh machine: installs what is missing, builds in release mode, creates a veth
# pair between two network namespaces (removed on exit), and for each workload runs the same
# load generator (xtcp backend, AF_XDP, pinned to core 0, in namespace A) against
#   linux       the Linux server: `xtcp-loadgen kernel-server` (epoll, pinned to core 1),
#   xtcp        the xtcp server, `stack/examples/echo` (connect, crr, rr) or
#               `stack/examples/http` (server-close), pinned to core 1, in the engine's
#               default poll mode, preferred busy polling; on veth (copy mode) the kernel
#               has no NAPI for it to poll and the engine falls back to idle waiting, as its
#               log says (leaving the core to the server side's NAPI kthread between bursts);
#   xtcp-busy   (opt-in) plain busy polling, xtcp-idle (opt-in) idle waiting asked for
#               explicitly, to compare the poll modes on the same topology (--idle-spins N:
#               xtcp-idle's empty iterations before it waits, the engine's default 1000);
#   xtcp-sat    (default, connect with the stateless client only, max phase only) the xtcp
#               server in the configuration that makes its core the limit: idle waiting with
#               --sat-spins (64) empty iterations, --sat-concurrency (160) connections in
#               flight. Fewer spins leave the core to the server side's NAPI kthread sooner
#               and a larger window keeps the loop from being latency-bound, at a cost per
#               connection (wake-ups); a window the Linux server cannot take (its ring
#               overflows above ~96; docs/benchmark.md), so Linux stays at its own window:
#               where both are server-bound, the ratio compares each core at its limit;
#   ceiling     (with any xtcp server, max phase only) the copy-mode AF_XDP I/O ceiling:
#               `xtcp-loadgen reflector`, a stateless responder (not a TCP server) answering
#               each client frame with the frames a server would send; each xtcp max run gets
#               `ceiling_pct` = its rate / the ceiling's median rate;
# all in namespace B. The client of the connect workload is, for every server alike,
# `xtcp-loadgen run --backend xdp-stateless` (--client stateless, the default): NOT a full TCP,
# SYNs sent in batches over AF_XDP and the server's SYN-ACK and FIN answered by an XDP program
# (XDP_TX), cheap enough that one client core can saturate the server core; --client full uses
# the full-TCP xtcp backend there too. The other workloads always use the xtcp backend. The
# summary names the client of each workload. The stateless client's max runs keep
# --stateless-concurrency (default 96) connections in flight instead of --concurrency: it
# does not retransmit, and a veth end's receive ring holds 256 frames, which up to two
# frames per connection in flight (an ACK and the next SYN) must not overflow.
# Each server is measured twice per repetition:
#   max   closed loop (--concurrency in flight, starts capped at --max-rate): the rate it reaches;
#   lat   open loop at the same offered rate for all servers (half of Linux's median max
#         rate): connect latency measured from the intended start (coordinated-omission free).
# --repeat N (default 3, --quick 1) runs every measurement N times, servers interleaved
# (linux, xtcp, linux, xtcp, ...); the table gives the median and the min-max range.
#
# Each side pays for its own packets: both veth ends get GRO on (which gives them a NAPI
# instance) and threaded NAPI, and the `napi/<dev>-<id>` kernel threads are pinned to that
# side's core (client end to core 0, server end to core 1), for every server alike, same
# offloads and MTU. The kthreads' CPU time and the CPU they ran on are recorded per run
# (`*.napi.txt`); --no-threaded-napi leaves the kernel's default (the receive path then runs in
# the sender's softirq, on the other side's core).
#
# Every run's JSON carries the per-CPU accounting of the measured window (`cpu`: /proc/stat
# shares of both cores, the xtcp engine's own work fraction, server µs per connection) and a
# `bound` verdict (server, client, both, neither); see docs/benchmark.md.
#
# Namespace B is recreated before every server start, so no server inherits the previous
# one's TIME-WAIT entries. The client uses 254 source addresses (10.78.X.0/24), which the
# server reaches through an on-link route and permanent neighbour entries.
#
# Output: a side-by-side table on stdout, and results/<timestamp>/ with every run's JSON
# (--json) and SVG plot (--plot), the servers' stats files, and summary.md.
# Default: 63 runs of 5 s windows (4 workloads x (2 servers x max+lat + ceiling) x 3, plus
# xtcp-sat's 3 connect max runs), about 11 minutes with per-run set-up; --quick: 21 runs of
# 1 s windows, about 2.5 minutes on a busy 2-vCPU machine (build time not counted).
# --sim also runs the deterministic simulator demo (two xtcp stacks in one process) at the end.
#
# --ipv6: the same comparison over IPv6 (a `veth.sh up --ipv6` pair, target [fd00:77:X::2]:8080,
# 255 client source addresses fd00:78:X::1-ff, local on the client side through a `local`
# route and net.ipv6.ip_nonlocal_bind, routed back via the client on the server side). The
# load generator uses its xtcp backend as over IPv4 (the engine's IPv6 stack; the `local`
# route and the non-local binds are only needed by the kernel backend and are harmless
# here). An xtcp server is started with both addresses (`--ip A --ip fd00:..`) and serves
# the IPv6 one. There is no reflector ceiling (the reflector is IPv4 only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export BENCH_CMD="./scripts/bench.sh${*:+ $*}"

quick=0
sim=0
ipv6=0
workloads="connect,crr,server-close,rr"
servers="linux,xtcp,xtcp-sat"
repeat=""
threaded=1
duration=""
warmup=""
concurrency=256
max_rate=300000
client=stateless
idle_spins=""
stateless_concurrency=96
sat_concurrency=160
sat_spins=64
CLIENT_CORE=0
SERVER_CORE=1
tw=0
tw_target=0
tw_duration=""
XTCP_EXTRA=()      # extra xtcp server arguments (bench_tw.sh: --prefill-time-wait N)
START_TICKS=100    # 50 ms ticks start_server waits for the ready line (bench_tw.sh: more)
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1; shift ;;
  --sim) sim=1; shift ;;
  --ipv6) ipv6=1; shift ;;
  --workloads) workloads=$2; shift 2 ;;
  --servers) servers=$2; shift 2 ;;
  --repeat) repeat=$2; shift 2 ;;
  --no-threaded-napi) threaded=0; shift ;;
  --duration) duration=$2; shift 2 ;;
  --warmup) warmup=$2; shift 2 ;;
  --concurrency) concurrency=$2; shift 2 ;;
  --max-rate) max_rate=$2; shift 2 ;;
  --client) client=$2; shift 2 ;;
  --stateless-concurrency) stateless_concurrency=$2; shift 2 ;;
  --idle-spins) idle_spins=$2; shift 2 ;;
  --sat-concurrency) sat_concurrency=$2; shift 2 ;;
  --sat-spins) sat_spins=$2; shift 2 ;;
  --tw) tw=1; shift ;;
  --tw-target) tw=1; tw_target=$2; shift 2 ;;
  --tw-duration) tw=1; tw_duration=$2; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
IFS=, read -r -a WL <<<"$workloads"
for w in "${WL[@]}"; do
  case "$w" in
  connect | crr | server-close | rr) ;;
  *) echo "bench.sh: unknown workload '$w' (connect, crr, server-close, rr)" >&2; exit 2 ;;
  esac
done
case "$client" in
stateless | full) ;;
*) echo "bench.sh: unknown client '$client' (stateless, full)" >&2; exit 2 ;;
esac
IFS=, read -r -a SV <<<"$servers"
for s in "${SV[@]}"; do
  case "$s" in
  linux | xtcp | xtcp-sat | xtcp-busy | xtcp-idle) ;;
  *) echo "bench.sh: unknown server '$s' (linux, xtcp, xtcp-sat, xtcp-busy, xtcp-idle)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  duration=${duration:-1}
  warmup=${warmup:-0.3}
  repeat=${repeat:-1}
  timeout_ms=1000
else
  duration=${duration:-5}
  warmup=${warmup:-1}
  repeat=${repeat:-3}
  timeout_ms=2000
fi
if ! [[ "$repeat" =~ ^[0-9]+$ ]] || [ "$repeat" -lt 1 ] || [ "$repeat" -gt 20 ]; then
  echo "bench.sh: --repeat must be 1..20, got '$repeat'" >&2
  exit 2
fi
if [ "$ipv6" = 1 ] && [ "$tw" = 1 ]; then
  echo "bench.sh: --tw runs over IPv4 only" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bench.sh: must run as root (network namespaces, XDP, AF_XDP)" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "bench.sh: needs 2 cores (one for the load generator, one for the server)" >&2
  exit 1
fi

./scripts/install-deps.sh
# The PNG copies of the plots (SVG -> PNG); not needed for anything else.
if ! command -v rsvg-convert >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends librsvg2-bin \
    >/dev/null 2>&1 || echo "bench.sh: could not install librsvg2-bin: plots as SVG only" >&2
fi
if ! command -v cargo >/dev/null; then
  echo "bench.sh: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
echo "== build (release)"
cargo build --release -q -p xtcp-loadgen
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LG=$TARGET/release/xtcp-loadgen
XTCP_OK=1
if ! cargo build --release -q -p xtcp --example echo --example http; then
  XTCP_OK=0
  echo "bench.sh: the xtcp server examples (stack/examples/echo.rs, http.rs) do not build;" \
    "only the Linux server will be measured" >&2
fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/results/$STAMP
mkdir -p "$OUT"
NAME=${XT_BENCH_NAME:-xtbench}   # XT_BENCH_NAME: another name, for parallel runs
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  ./scripts/veth.sh down --name "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fresh namespaces and veth pair, plus the route and neighbour entries through which the
# server reaches the client's source addresses (the client kernel does not own them, so it
# would not answer ARP for them; the xtcp client never sees ARP, the XDP program passes it).
fresh_net() {
  ./scripts/veth.sh down --name "$NAME" >/dev/null 2>&1 || true
  local v6flag=()
  [ "$ipv6" = 1 ] && v6flag=(--ipv6)
  eval "$(./scripts/veth.sh up --name "$NAME" "${v6flag[@]}" 2>/dev/null)"
  local octet=${XT_IP_A#10.77.}
  octet=${octet%%.*}
  SRC_NET=10.78.$octet
  if [ "$ipv6" = 1 ]; then
    # B routes the sources back via A (whose kernel answers Neighbor Discovery for A's
    # address). For a kernel-backend client (`run --backend kernel` by hand) they are also
    # local to A (a `local` route, and non-local binds, which IPv6 needs even with it).
    local group=0 # the default prefix's fd00:77::1; else fd00:77:X::1
    [ "$XT_IP6_A" != fd00:77::1 ] && { group=${XT_IP6_A#fd00:77:}; group=${group%%::*}; }
    SRC_PREFIX=fd00:78:$group::/120
    TARGET_ADDR="[$XT_IP6_B]:8080"
    ip -n "$XT_NS_A" -6 route replace local "$SRC_PREFIX" dev lo
    ip netns exec "$XT_NS_A" sysctl -qw net.ipv6.ip_nonlocal_bind=1
    ip -n "$XT_NS_B" -6 route replace "$SRC_PREFIX" via "$XT_IP6_A" dev "$XT_IF_B"
  else
    SRC_PREFIX=$SRC_NET.0/24
    TARGET_ADDR=$XT_IP_B:8080
    ip -n "$XT_NS_B" route replace "$SRC_NET.0/24" dev "$XT_IF_B"
    for i in $(seq 1 254); do
      echo "neigh replace $SRC_NET.$i lladdr $XT_MAC_A dev $XT_IF_B nud permanent"
    done | ip -n "$XT_NS_B" -batch -
  fi
  # The Linux server as a fair reference: deep accept and SYN queues (set in its namespace).
  ip netns exec "$XT_NS_B" sysctl -qw net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535
  if [ "$threaded" = 1 ]; then
    napi_threaded "$XT_NS_A" "$XT_IF_A"
    napi_threaded "$XT_NS_B" "$XT_IF_B"
  fi
}

# napi_threaded NS IF: GRO on (gives a veth end a NAPI instance, reused by an XDP program
# attached later) and threaded NAPI, so the end's receive path runs in a `napi/IF-N` kthread
# that can be pinned, instead of in the sender's softirq.
napi_threaded() {
  ip netns exec "$1" ethtool -K "$2" gro on >/dev/null
  ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
}

# PIDs of the NAPI kthreads of interface $1 (found by comm: kthreads have no cmdline). The
# comm is cut to 15 bytes, so "napi/IF-" may lose its id digits: match the prefix.
napi_pids() {
  local want="napi/$1-" p c
  want=${want:0:15}
  for p in /proc/[0-9]*; do
    c=$(cat "$p/comm" 2>/dev/null) || continue
    case "$c" in "$want"*) echo "${p#/proc/}" ;; esac
  done
}

# Pins each side's NAPI kthreads to that side's core.
pin_napi() {
  [ "$threaded" = 1 ] || return 0
  local pid
  for pid in $(napi_pids "$XT_IF_A"); do taskset -pc "$CLIENT_CORE" "$pid" >/dev/null || true; done
  for pid in $(napi_pids "$XT_IF_B"); do taskset -pc "$SERVER_CORE" "$pid" >/dev/null || true; done
}

# napi_record FILE: one line per NAPI kthread: side, pid, comm, allowed CPUs, last CPU, and
# its CPU time so far in clock ticks (utime + stime), the evidence of who paid for receiving.
napi_record() {
  local side ifn pid st
  for side in client server; do
    ifn=$XT_IF_A
    [ "$side" = server ] && ifn=$XT_IF_B
    for pid in $(napi_pids "$ifn"); do
      st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
      # After the comm: field 3 is state, so utime/stime/processor are 14/15/39 - 2.
      set -- $st
      echo "$side pid=$pid comm=$(cat "/proc/$pid/comm") allowed=$(taskset -pc "$pid" | sed 's/.*: //') last_cpu=${37} ticks=$((${12} + ${13}))"
    done
  done >>"$1"
}

# start_server linux|xtcp|xtcp-sat|xtcp-busy|xtcp-idle WORKLOAD STATS_FILE LOG
start_server() {
  local kind=$1 wl=$2 stats=$3 log=$4
  rm -f "$stats"
  if [ "$kind" = linux ]; then
    local mode=echo
    [ "$wl" = server-close ] && mode=respond-close
    local lip=$XT_IP_B
    [ "$ipv6" = 1 ] && lip=$XT_IP6_B
    ip netns exec "$XT_NS_B" "$LG" kernel-server --ip "$lip" --port 8080 --mode "$mode" \
      --cores "$SERVER_CORE" --stats "$stats" >"$log" 2>&1 &
  elif [ "$kind" = ceiling ]; then
    local mode=echo
    [ "$wl" = server-close ] && mode=respond-close
    ip netns exec "$XT_NS_B" "$LG" reflector --iface "$XT_IF_B" --ip "$XT_IP_B" --port 8080 \
      --mode "$mode" --core "$SERVER_CORE" --stats "$stats" >"$log" 2>&1 &
  else
    local ex=echo poll=prefer-busy
    [ "$wl" = server-close ] && ex=http
    local spins=()
    case "$kind" in
    xtcp-busy) poll=busy ;;
    xtcp-idle) poll=idle; [ -n "$idle_spins" ] && spins=(--idle-spins "$idle_spins") ;;
    xtcp-sat) poll=idle; spins=(--idle-spins "$sat_spins") ;;
    esac
    local v6ip=()
    [ "$ipv6" = 1 ] && v6ip=(--ip "$XT_IP6_B")
    ip netns exec "$XT_NS_B" "$TARGET/release/examples/$ex" --iface "$XT_IF_B" --ip "$XT_IP_B" \
      "${v6ip[@]}" --port 8080 --cores "$SERVER_CORE" --stats "$stats" --stats-interval-ms 100 \
      --poll-mode "$poll" "${spins[@]}" "${XTCP_EXTRA[@]}" >"$log" 2>&1 &
  fi
  SERVER_PID=$!
  # Ready once it printed its listening line (both servers print one on stdout).
  for _ in $(seq 1 "$START_TICKS"); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench.sh: the $kind server exited at start:" >&2
      cat "$log" >&2
      SERVER_PID=""
      return 1
    fi
    grep -q "listening" "$log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench.sh: the $kind server did not report ready within $((START_TICKS / 20)) s" >&2
  return 1
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# measure SERVER WORKLOAD PHASE REP LOAD_ARGS...: one load generator run against a fresh
# server.
measure() {
  local kind=$1 wl=$2 phase=$3 rep=$4
  shift 4
  local tag=$wl-$kind-$phase-r$rep
  local skind=xtcp
  [ "$kind" = linux ] && skind=linux
  [ "$kind" = ceiling ] && skind=reflector
  fresh_net
  if ! start_server "$kind" "$wl" "$OUT/$tag.server.json" "$OUT/$tag.server.log"; then
    stop_server
    return 1
  fi
  # Pinned after the server started: an XDP attach may add NAPI instances.
  pin_napi
  echo "-- $tag: $*" >&2
  local rc=0
  echo "# before" >"$OUT/$tag.napi.txt"
  napi_record "$OUT/$tag.napi.txt"
  # The client: the stateless XDP client for IPv4 connect (--client stateless), else the
  # full-TCP xtcp backend (IPv4 or IPv6).
  local lg=(--backend xtcp --iface "$XT_IF_A")
  [ "$wl" = connect ] && [ "$client" = stateless ] && [ "$ipv6" = 0 ] &&
    lg=(--backend xdp-stateless --iface "$XT_IF_A")
  timeout 120 ip netns exec "$XT_NS_A" "$LG" run "${lg[@]}" \
    --cores "$CLIENT_CORE" --server-cores "$SERVER_CORE" \
    --src-ip "$SRC_PREFIX" --target "$TARGET_ADDR" --workload "$wl" \
    --duration "$duration" --warmup "$warmup" --timeout-ms "$timeout_ms" \
    --server-stats "$OUT/$tag.server.json" --server-kind "$skind" \
    --json "$OUT/$tag.json" --plot "$OUT/$tag.svg" --quiet "$@" >"$OUT/$tag.txt" 2>&1 || rc=$?
  echo "# after" >>"$OUT/$tag.napi.txt"
  napi_record "$OUT/$tag.napi.txt"
  stop_server
  if [ $rc -ne 0 ]; then
    echo "bench.sh: load generator failed ($tag):" >&2
    cat "$OUT/$tag.txt" >&2
    return 1
  fi
}

# The rate a workload is measured by: transactions for rr (persistent connections),
# handshakes otherwise. Prints the median over the given run files.
median_rate() {
  python3 - "$@" <<'PY'
import json, statistics, sys
v = []
for p in sys.argv[1:]:
    if p.endswith(".server.json"):
        continue
    try:
        r = json.load(open(p))
    except (OSError, ValueError):
        continue
    k = "transactions_per_s" if r["workload"] == "rr" else "handshakes_per_s"
    v.append(r["rates"][k])
print(statistics.median(v) if v else 0)
PY
}

# TIME-WAIT pressure mode (scripts/bench_tw.sh): its own runs, then exit.
if [ "$tw" = 1 ]; then
  . "$ROOT/scripts/bench_tw.sh"
  tw_main
  exit 0
fi

SERVERS=()
for s in "${SV[@]}"; do
  if [ "$s" != linux ] && [ "$XTCP_OK" != 1 ]; then continue; fi
  SERVERS+=("$s")
done
# The I/O ceiling (stateless reflector, `xtcp-loadgen reflector`), measured in the same run
# (max phase, interleaved with the servers) wherever an xtcp server is measured.
CEILING=()
for s in "${SERVERS[@]}"; do
  [ "$s" != linux ] && [ "$ipv6" = 0 ] && CEILING=(ceiling)
done
started=$(date +%s)
for wl in "${WL[@]}"; do
  echo "== $wl"
  # Servers interleaved within each repetition, so slow drifts of the machine hit all alike.
  for rep in $(seq 1 "$repeat"); do
    for s in "${SERVERS[@]}" "${CEILING[@]}"; do
      conc=$concurrency
      [ "$wl" = connect ] && [ "$client" = stateless ] && [ "$ipv6" = 0 ] && conc=$stateless_concurrency
      if [ "$s" = xtcp-sat ]; then
        [ "$wl" = connect ] && [ "$client" = stateless ] && [ "$ipv6" = 0 ] || continue
        conc=$sat_concurrency
      fi
      measure "$s" "$wl" max "$rep" --concurrency "$conc" --max-rate "$max_rate" ||
        echo "bench.sh: $wl against $s (max, run $rep) failed" >&2
    done
  done
  # The common offered rate: half of Linux's median max rate, so Linux is not overloaded.
  lat_rate=1000
  if compgen -G "$OUT/$wl-linux-max-r*.json" >/dev/null; then
    lat_rate=$(python3 -c 'import sys; print(max(1000, int(float(sys.argv[1]) * 0.5 / 1000) * 1000))' \
      "$(median_rate "$OUT/$wl-linux-max-r"*.json)")
  fi
  for rep in $(seq 1 "$repeat"); do
    for s in "${SERVERS[@]}"; do
      [ "$s" = xtcp-sat ] && continue
      measure "$s" "$wl" lat "$rep" --rate "$lat_rate" ||
        echo "bench.sh: $wl against $s (lat, run $rep) failed" >&2
    done
  done
done
elapsed=$(($(date +%s) - started))

# One picture per workload, every server on the same axes (the first repetition's runs), as
# SVG, and as PNG (rsvg-convert, librsvg2-bin).
for wl in "${WL[@]}"; do
  args=()
  for s in "${SERVERS[@]}"; do
    [ "$s" = xtcp-sat ] && continue
    args+=(--run "$s=$OUT/$wl-$s-max-r1.json,$OUT/$wl-$s-lat-r1.json")
  done
  if "$LG" compare-plot --workload "$wl" --out "$OUT/$wl-compare.svg" "${args[@]}"; then
    if command -v rsvg-convert >/dev/null; then
      rsvg-convert -b white -o "$OUT/$wl-compare.png" "$OUT/$wl-compare.svg" || true
    fi
  fi
done

python3 "$ROOT/scripts/bench_summary.py" "$OUT" "$elapsed" "$workloads" "$(IFS=,; echo "${SERVERS[*]}")"

if [ "$sim" = 1 ]; then
  echo "== simulator demo (two xtcp stacks in one process, no network)"
  cargo build --release -q -p xtcp --example sim_demo
  n=200000
  [ "$quick" = 1 ] && n=20000
  "$TARGET/release/examples/sim_demo" --connections "$n" --concurrency 64
fi
