#!/usr/bin/env bash
# The main job: connection churn, xtcp server vs the Linux kernel server, side by side.
#
#   ./scripts/bench.sh [--quick] [--workloads connect,crr,server-close] [--duration S]
#                      [--warmup S] [--concurrency N] [--max-rate R] [--sim]
#
# As root on a fresh machine: installs what is missing, builds in release mode, creates a veth
# pair between two network namespaces (removed on exit), and for each workload runs the same
# load generator (xtcp backend, AF_XDP, pinned to core 0, in namespace A) against
#   (a) the Linux server: `xtcp-loadgen kernel-server` (epoll, pinned to core 1), and
#   (b) the xtcp server: `stack/examples/echo` (connect, crr) or `stack/examples/http`
#       (server-close), pinned to core 1,
# both in namespace B, one after the other. Each server is measured twice:
#   max   closed loop (--concurrency in flight, starts capped at --max-rate): the rate it reaches;
#   lat   open loop at the same offered rate for both servers (half of Linux's max rate):
#         connect latency measured from the intended start (coordinated-omission free).
# Namespace B is recreated before every server start, so no server inherits the previous
# one's TIME-WAIT entries. The client uses 254 source addresses (10.78.X.0/24), which the
# server reaches through an on-link route and permanent neighbour entries.
#
# Output: a side-by-side table on stdout, and results/<timestamp>/ with every run's JSON
# (--json) and SVG plot (--plot), the servers' stats files, and summary.md.
# Default: about 2.5 minutes of measurement; --quick: under 30 s (build time not counted).
# --sim also runs the deterministic simulator demo (two xtcp stacks in one process) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export BENCH_CMD="./scripts/bench.sh${*:+ $*}"

quick=0
sim=0
workloads="connect,crr,server-close"
duration=""
warmup=""
concurrency=256
max_rate=300000
usage() { sed -n 2,24p "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1; shift ;;
  --sim) sim=1; shift ;;
  --workloads) workloads=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --warmup) warmup=$2; shift 2 ;;
  --concurrency) concurrency=$2; shift 2 ;;
  --max-rate) max_rate=$2; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
IFS=, read -r -a WL <<<"$workloads"
for w in "${WL[@]}"; do
  case "$w" in
  connect | crr | server-close) ;;
  *) echo "bench.sh: unknown workload '$w' (connect, crr, server-close)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  duration=${duration:-1}
  warmup=${warmup:-0.3}
  timeout_ms=1000
else
  duration=${duration:-5}
  warmup=${warmup:-1}
  timeout_ms=2000
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
NAME=xtbench
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
  eval "$(./scripts/veth.sh up --name "$NAME" 2>/dev/null)"
  local octet=${XT_IP_A#10.77.}
  octet=${octet%%.*}
  SRC_NET=10.78.$octet
  ip -n "$XT_NS_B" route replace "$SRC_NET.0/24" dev "$XT_IF_B"
  for i in $(seq 1 254); do
    echo "neigh replace $SRC_NET.$i lladdr $XT_MAC_A dev $XT_IF_B nud permanent"
  done | ip -n "$XT_NS_B" -batch -
  # The Linux server as a fair reference: deep accept and SYN queues (set in its namespace).
  ip netns exec "$XT_NS_B" sysctl -qw net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535
}

# start_server linux|xtcp WORKLOAD STATS_FILE LOG
start_server() {
  local kind=$1 wl=$2 stats=$3 log=$4
  rm -f "$stats"
  if [ "$kind" = linux ]; then
    local mode=echo
    [ "$wl" = server-close ] && mode=respond-close
    ip netns exec "$XT_NS_B" "$LG" kernel-server --ip "$XT_IP_B" --port 8080 --mode "$mode" \
      --cores 1 --stats "$stats" >"$log" 2>&1 &
  else
    local ex=echo
    [ "$wl" = server-close ] && ex=http
    ip netns exec "$XT_NS_B" "$TARGET/release/examples/$ex" --iface "$XT_IF_B" --ip "$XT_IP_B" \
      --port 8080 --cores 1 --stats "$stats" >"$log" 2>&1 &
  fi
  SERVER_PID=$!
  # Ready once it printed its listening line (both servers print one on stdout).
  for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench.sh: the $kind server exited at start:" >&2
      cat "$log" >&2
      SERVER_PID=""
      return 1
    fi
    grep -q "listening" "$log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench.sh: the $kind server did not report ready within 5 s" >&2
  return 1
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# measure SERVER WORKLOAD PHASE LOAD_ARGS...: one load generator run against a fresh server.
measure() {
  local kind=$1 wl=$2 phase=$3
  shift 3
  local tag=$wl-$kind-$phase
  fresh_net
  if ! start_server "$kind" "$wl" "$OUT/$tag.server.json" "$OUT/$tag.server.log"; then
    stop_server
    return 1
  fi
  echo "-- $tag: $*" >&2
  local rc=0
  timeout 120 ip netns exec "$XT_NS_A" "$LG" run --backend xtcp --iface "$XT_IF_A" --cores 0 \
    --src-ip "$SRC_NET.0/24" --target "$XT_IP_B:8080" --workload "$wl" \
    --duration "$duration" --warmup "$warmup" --timeout-ms "$timeout_ms" \
    --server-stats "$OUT/$tag.server.json" --server-kind "$kind" \
    --json "$OUT/$tag.json" --plot "$OUT/$tag.svg" --quiet "$@" >"$OUT/$tag.txt" 2>&1 || rc=$?
  stop_server
  if [ $rc -ne 0 ]; then
    echo "bench.sh: load generator failed ($tag):" >&2
    cat "$OUT/$tag.txt" >&2
    return 1
  fi
}

json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rates"]["handshakes_per_s"])' "$1"; }

SERVERS=(linux)
[ "$XTCP_OK" = 1 ] && SERVERS+=(xtcp)
started=$(date +%s)
for wl in "${WL[@]}"; do
  echo "== $wl"
  for s in "${SERVERS[@]}"; do
    measure "$s" "$wl" max --concurrency "$concurrency" --max-rate "$max_rate" ||
      echo "bench.sh: $wl against $s (max) failed" >&2
  done
  # The common offered rate: half of what Linux reached, so Linux is not overloaded.
  lat_rate=1000
  if [ -f "$OUT/$wl-linux-max.json" ]; then
    lat_rate=$(python3 -c 'import sys; print(max(1000, int(float(sys.argv[1]) * 0.5 / 1000) * 1000))' \
      "$(json_get "$OUT/$wl-linux-max.json")")
  fi
  for s in "${SERVERS[@]}"; do
    measure "$s" "$wl" lat --rate "$lat_rate" || echo "bench.sh: $wl against $s (lat) failed" >&2
  done
done
elapsed=$(($(date +%s) - started))

python3 - "$OUT" "$elapsed" "$workloads" "$XTCP_OK" <<'PY'
import json, os, sys, platform
out, elapsed, workloads, xtcp_ok = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4] == "1"

def load(tag):
    p = os.path.join(out, tag + ".json")
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

def num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)

rows = []
header = ["workload", "server", "max rate /s", "failed", "offered /s", "p50 connect us",
          "p99 connect us", "TW client max", "TW server max", "loadgen CPU", "xtcp/Linux rate",
          "Linux/xtcp p99"]
verdicts = []
for wl in workloads:
    res = {}
    for s in ("linux", "xtcp"):
        res[s] = (load(f"{wl}-{s}-max"), load(f"{wl}-{s}-lat"))
    lmax, llat = res["linux"]
    for s in ("linux", "xtcp"):
        m, l = res[s]
        if m is None and l is None:
            rows.append([wl, s] + ["unavailable"] + [""] * (len(header) - 3))
            continue
        rate = m["rates"]["handshakes_per_s"] if m else None
        failed = (m["connections"]["failed"] if m else 0) + (l["connections"]["failed"] if l else 0)
        p50 = l["latency_us"]["connect"]["p50"] if l else None
        p99 = l["latency_us"]["connect"]["p99"] if l else None
        tw = [x["time_wait"] for x in (m, l) if x]
        twc = max((t["client_max"] or 0) for t in tw) if tw else None
        tws = max((t["server_max"] or 0) for t in tw) if tw else None
        cpu = m["loadgen_cpu"] if m else None
        ratio = p99ratio = ""
        if s == "xtcp" and lmax and m and lmax["rates"]["handshakes_per_s"] > 0:
            r = rate / lmax["rates"]["handshakes_per_s"]
            ratio = f"{r:.2f}x"
            verdicts.append(f"{wl}: xtcp/Linux rate {r:.2f}x (goal >= 6x: {'met' if r >= 6 else 'not met'})")
        if s == "xtcp" and llat and l:
            lp, xp = llat["latency_us"]["connect"]["p99"], p99
            if lp and xp:
                pr = lp / xp
                p99ratio = f"{pr:.2f}x"
                verdicts.append(f"{wl}: p99 connect at {l['load']['rate']:.0f}/s: Linux {lp:.0f} us, xtcp {xp:.0f} us (goal xtcp <= 1/3 of Linux: {'met' if pr >= 3 else 'not met'})")
        rows.append([wl, s, num(rate), str(failed), num(l["load"]["rate"] if l else None),
                     num(p50, "{:.1f}"), num(p99, "{:.1f}"), num(twc), num(tws),
                     num(cpu, "{:.2f}"), ratio, p99ratio])

widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
def line(r):
    return "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
table = "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
print()
print(table)
print()
for v in verdicts:
    print("  " + v)
print(f"\nmeasurement took {elapsed} s; results in {out}")

cpu = ""
try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except (OSError, IndexError):
    pass
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("# xtcp benchmark: xtcp server vs Linux server\n\n")
    f.write(f"Command: `{os.environ.get('BENCH_CMD', './scripts/bench.sh')}`\n\n")
    f.write(f"Machine: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs ({cpu}).\n")
    f.write("Load generator: xtcp backend (AF_XDP, copy mode on veth), core 0, namespace A, 254 source "
            "addresses. Server: core 1, namespace B. `max`: closed loop; `lat`: open loop at the offered "
            "rate shown (half of Linux's max), latency from the intended start.\n\n")
    f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    for r in rows:
        f.write("| " + " | ".join(str(c) for c in r) + " |\n")
    f.write("\n" + "\n".join("- " + v for v in verdicts) + "\n")
    f.write("\nFiles: `<workload>-<server>-<max|lat>.json` (load generator report, keys in README.md), "
            "`.svg` (rate, TIME-WAIT, latency distribution), `.txt` (printed table), "
            "`.server.json` (server stats), `.server.log`.\n")
PY

if [ "$sim" = 1 ]; then
  echo "== simulator demo (two xtcp stacks in one process, no network)"
  cargo build --release -q -p xtcp --example sim_demo
  n=200000
  [ "$quick" = 1 ] && n=20000
  "$TARGET/release/examples/sim_demo" --connections "$n" --concurrency 64
fi
