#!/usr/bin/env bash
# Coverage-guided fuzzing of xtcp's wire parsers and Stack::receive (cargo-fuzz, libFuzzer).
#
#   scripts/fuzz.sh smoke [SECS]        every target for SECS seconds (default: see below)
#   scripts/fuzz.sh run TARGET SECS     one target for SECS seconds (long runs), then its stats
#                                       (RUNS=N stops after N executions if that comes first)
#   scripts/fuzz.sh list                the targets
#
# cargo-fuzz needs nightly compiler features: this build alone sets RUSTC_BOOTSTRAP=1 on the
# stable toolchain. No sanitizer (the fuzzed code is safe Rust: a panic is the crash) and
# debug assertions on (overflow checks and the core's debug_asserts become crashes too).
# Corpora live in fuzz/corpus/<target>/ (seeded from simulator captures by
# `cargo run --example seed_corpus` in fuzz/); crashes in fuzz/artifacts/<target>/.
# Smoke durations: stack_receive 30 s, each wire target 10 s (~110 s in all), unless SECS.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(wire_ethernet wire_arp wire_ipv4 wire_icmpv4 wire_ipv6 wire_icmpv6 wire_tcp wire_tcp_options wire_frame stack_receive)
BIN=target/x86_64-unknown-linux-gnu/release

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked >/dev/null
  fi
}

build() {
  ensure_cargo_fuzz
  RUSTC_BOOTSTRAP=1 cargo fuzz build -s none -a --release >/dev/null
  if [ ! -d corpus/stack_receive ]; then
    cargo run -q --release --example seed_corpus corpus
  fi
}

# Runs $1 for $2 seconds; prints one summary line; fails on a crash.
run_one() {
  local t=$1 secs=$2 log
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  local status=0 start=$SECONDS
  "$BIN/$t" "corpus/$t" -max_total_time="$secs" ${RUNS:+-runs="$RUNS"} -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" -close_fd_mask=3 >"$log" 2>&1 || status=$?
  local runs cov
  runs=$(awk '/number_of_executed_units/ { print $2 }' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf 'fuzz %-18s %5ss: %10s executions, coverage %s edges, corpus %s files%s\n' \
    "$t" "$((SECONDS - start))" "${runs:-?}" "${cov:-?}" "$(ls "corpus/$t" | wc -l)" \
    "$([ $status -ne 0 ] && echo ", CRASH (see artifacts/$t/)")"
  if [ $status -ne 0 ]; then
    grep -A30 -m1 "panicked\|ERROR: libFuzzer" "$log" || tail -30 "$log"
  fi
  rm -f "$log"
  return $status
}

case "${1:-smoke}" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  smoke)
    build
    status=0
    # The harness on stable, the simulator seeds through it, and every saved crash input.
    cargo test -q --release 2>&1 | grep -E '^test result|FAILED|panicked' || true
    cargo test -q --release >/dev/null 2>&1 || { echo "fuzz: cargo test in fuzz/ FAILED"; status=1; }
    for t in "${TARGETS[@]}"; do
      secs=${2:-$([ "$t" = stack_receive ] && echo 30 || echo 10)}
      run_one "$t" "$secs" || status=1
    done
    exit $status
    ;;
  run)
    build
    run_one "$2" "$3"
    ;;
  *) echo "usage: $0 smoke [SECS] | run TARGET SECS | list" >&2; exit 2 ;;
esac
