# TIME-WAIT pressure: `./scripts/bench.sh --tw [--quick] [--tw-target N]` (sourced by bench.sh,
# which defines fresh_net, start_server, pin_napi, stop_server, napi_record, OUT, LG, ...).
#
# For each server (linux: `xtcp-loadgen kernel-server --mode respond-close`; xtcp:
# stack/examples/http), one long server-close run at the highest rate it sustains (closed
# loop, --concurrency in flight, capped at --max-rate, as bench.sh's max runs): the server
# closes first and holds TIME-WAIT. Default 90 s per server (2×MSL is 60 s for both: Linux's
# TCP_TIMEWAIT_LEN, xtcp's TcpConfig::msl = 30 s), so the table reaches steady state (or, for
# xtcp above ~167 K/s, its 10 M-entry capacity); --quick: 8 s per server.
# Linux's net.ipv4.tcp_max_tw_buckets is raised in the server's namespace (it is per-netns;
# past it the kernel skips TIME-WAIT for new connections). --tw-target N prefills the xtcp
# server's table with N synthetic entries (--prefill-time-wait N) before the run; Linux has
# no prefill, and the output says so.
#
# A sampler (scripts/bench_tw.py sample, in the server's namespace, pinned to the client's
# core) reads once a second the server core's /proc/stat line, /proc/slabinfo's tw_sock_TCP,
# the namespace's TIME-WAIT count and passive opens, and the server's stats file;
# scripts/bench_tw.py join turns that into tw.json, tw.svg (tw.png) and the summary lines.
# See docs/time-wait.md.

TW_BUCKETS=${TW_BUCKETS:-16777216}
TW_SAMPLER_PID=""

tw_cleanup() {
  if [ -n "$TW_SAMPLER_PID" ]; then
    kill "$TW_SAMPLER_PID" 2>/dev/null || true
    wait "$TW_SAMPLER_PID" 2>/dev/null || true
    TW_SAMPLER_PID=""
  fi
}

# tw_run SERVER: one server-close run with the sampler; files $OUT/tw-SERVER.*.
tw_run() {
  local kind=$1 dur=$2 warm=$3
  local tag=tw-$kind
  fresh_net
  ip netns exec "$XT_NS_B" sysctl -qw net.ipv4.tcp_max_tw_buckets="$TW_BUCKETS"
  echo "net.ipv4.tcp_max_tw_buckets=$(ip netns exec "$XT_NS_B" sysctl -n net.ipv4.tcp_max_tw_buckets)" \
    >"$OUT/$tag.sysctl.txt"
  XTCP_EXTRA=()
  START_TICKS=100
  if [ "$kind" != linux ] && [ "$tw_target" -gt 0 ]; then
    XTCP_EXTRA=(--prefill-time-wait "$tw_target")
    # The prefill runs before the server reports ready: 5 s plus 1 s per million entries.
    START_TICKS=$((100 + 20 * (tw_target / 1000000 + 1)))
  fi
  if ! start_server "$kind" server-close "$OUT/$tag.server.json" "$OUT/$tag.server.log"; then
    XTCP_EXTRA=()
    stop_server
    return 1
  fi
  XTCP_EXTRA=()
  pin_napi
  echo "# before" >"$OUT/$tag.napi.txt"
  napi_record "$OUT/$tag.napi.txt"
  local skind=xtcp
  [ "$kind" = linux ] && skind=linux
  rm -f "$OUT/$tag.samples.jsonl"
  taskset -c "$CLIENT_CORE" ip netns exec "$XT_NS_B" python3 "$ROOT/scripts/bench_tw.py" sample \
    --cpu "$SERVER_CORE" --kind "$skind" --stats "$OUT/$tag.server.json" \
    --out "$OUT/$tag.samples.jsonl" --pids "$SERVER_PID,$(napi_pids "$XT_IF_B" | paste -sd,)" \
    --max-s "$(python3 -c "print($dur + $warm + 60)")" &
  TW_SAMPLER_PID=$!
  echo "-- $tag: server-close, ${dur} s, --concurrency $concurrency --max-rate $max_rate" >&2
  local rc=0
  timeout "$(python3 -c "import math; print(math.ceil($dur + $warm + 60))")" \
    ip netns exec "$XT_NS_A" "$LG" run --backend xtcp --iface "$XT_IF_A" \
    --cores "$CLIENT_CORE" --server-cores "$SERVER_CORE" \
    --src-ip "$SRC_NET.0/24" --target "$XT_IP_B:8080" --workload server-close \
    --duration "$dur" --warmup "$warm" --timeout-ms "$timeout_ms" \
    --concurrency "$concurrency" --max-rate "$max_rate" \
    --server-stats "$OUT/$tag.server.json" --server-kind "$skind" \
    --json "$OUT/$tag.json" --plot "$OUT/$tag.svg" --quiet >"$OUT/$tag.txt" 2>&1 || rc=$?
  tw_cleanup
  echo "# after" >>"$OUT/$tag.napi.txt"
  napi_record "$OUT/$tag.napi.txt"
  stop_server
  if [ $rc -ne 0 ]; then
    echo "bench.sh --tw: load generator failed ($tag):" >&2
    cat "$OUT/$tag.txt" >&2
    return 1
  fi
}

tw_main() {
  trap 'tw_cleanup; cleanup' EXIT
  local dur warm
  if [ "$quick" = 1 ]; then
    dur=${tw_duration:-8}
    warm=0.5
  else
    dur=${tw_duration:-90}
    warm=1
  fi
  if ! [[ "$dur" =~ ^[0-9]+$ ]] || [ "$dur" -lt 2 ] || [ "$dur" -gt 600 ]; then
    echo "bench.sh: --tw-duration must be 2..600 s, got '$dur'" >&2
    exit 2
  fi
  if ! [[ "$tw_target" =~ ^[0-9]+$ ]]; then
    echo "bench.sh: --tw-target must be a number of entries, got '$tw_target'" >&2
    exit 2
  fi
  local servers=(linux) args=()
  [ "$XTCP_OK" = 1 ] && servers+=(xtcp)
  echo "== TIME-WAIT pressure (server-close, ${dur} s per server; results in $OUT)"
  if [ "$tw_target" -gt 0 ]; then
    echo "   xtcp prefilled to $tw_target TIME-WAIT entries; Linux has no prefill (the kernel" \
      "offers no way to insert TIME-WAIT sockets): its occupancy is what its rate reaches"
  fi
  local s
  for s in "${servers[@]}"; do
    if tw_run "$s" "$dur" "$warm"; then
      args+=("$s=$OUT/tw-$s.samples.jsonl,$OUT/tw-$s.json")
    else
      echo "bench.sh --tw: the $s run failed" >&2
    fi
  done
  if [ ${#args[@]} -eq 0 ]; then
    echo "bench.sh --tw: no run succeeded" >&2
    exit 1
  fi
  python3 "$ROOT/scripts/bench_tw.py" join --out "$OUT" --target "$tw_target" "${args[@]}"
  echo "tw.json and tw.svg$(command -v rsvg-convert >/dev/null && echo ", tw.png") in $OUT"
}
