#!/usr/bin/env bash
# Instruction counts per request of the gateway process (all its threads: tokio workers, the
# audit writer), measured with callgrind. Unlike req/s or CPU time this does not move when other
# processes share the cores, so a change can be judged on a busy machine.
#
# For each scenario: the gateway (release build) runs under callgrind, a warm-up (TLS sessions,
# pools, the token cache) is not counted (`callgrind_control --zero` after it), then wrk sends
# requests for MEASURE seconds on CONNECTIONS keep-alive connections and the counters are dumped.
# Ir per request = the dump's total Ir / the requests wrk completed in that window (the few
# requests in flight at the two edges are noise below 0.5 %).
#
# usage: benches/profile.sh [MEASURE_SECONDS=10] [CONNECTIONS=4] [SCENARIO...]
#   scenarios: apikey (order detail, API key), jwt (the same route, cached ES256 token),
#              jwt-rs256-nocache (an RS256 token verified on every request)
# The per-function breakdown is kept in target/profiles/ (callgrind.out.SCENARIO, read with
# `callgrind_annotate --inclusive=yes FILE | head -60`).
set -euo pipefail
cd "$(dirname "$0")/.."
MEASURE=${1:-10}
CONNECTIONS=${2:-4}
shift $(( $# >= 2 ? 2 : $# ))
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(apikey jwt)
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin ordergate --example bench_kit
KIT=target/release/examples/bench_kit
BIN=target/release/ordergate
OUT=target/profiles
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Under callgrind start-up takes seconds: wait up to 60 s (bounded).
wait_port() { for _ in $(seq 1200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

UP=$(free_port)
"$KIT" upstream --port "$UP" --page-size 20 & PIDS+=($!)
wait_port "$UP"

printf '%-20s %10s %14s %12s\n' scenario requests "Ir total" "Ir/request"
for scenario in "${SCENARIOS[@]}"; do
  dir="$WORK/$scenario"; mkdir -p "$dir"
  GW=$(free_port); ADMIN=$(free_port)
  extra=()
  case "$scenario" in
    jwt-rs256-nocache) extra=(--alg RS256 --token-cache off) ;;
  esac
  "$KIT" setup --dir "$dir" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$ADMIN" "${extra[@]}"
  case "$scenario" in
    apikey) header="X-Api-Key: $(cat "$dir/api_key")" ;;
    jwt|jwt-rs256-nocache) header="Authorization: Bearer $(cat "$dir/erp_token")" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  url="https://127.0.0.1:$GW/v1/orders/O20250101000001"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$BIN" serve -c "$dir/policy.toml" 2>"$dir/stderr" & PIDS+=($!)
  VG=$!
  wait_port "$GW"
  wrk -t1 -c"$CONNECTIONS" -d3s -H "$header" "$url" >/dev/null 2>&1 || true
  callgrind_control --zero "$VG" >/dev/null 2>&1
  requests=$(wrk -t1 -c"$CONNECTIONS" -d"${MEASURE}s" --timeout 10s -H "$header" "$url" | awk '/requests in/ {print $1}')
  callgrind_control --dump="measured" "$VG" >/dev/null 2>&1
  kill "$VG"; wait "$VG" 2>/dev/null || true
  dump=$(ls "$dir"/callgrind.out.* | head -1)
  cp "$dump" "$OUT/callgrind.out.$scenario"
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  printf '%-20s %10d %14d %12.0f\n' "$scenario" "$requests" "$total" "$(awk -v t="$total" -v n="$requests" 'BEGIN {print t / n}')"
done
