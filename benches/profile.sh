#!/usr/bin/env bash
# Instruction counts per request of the gateway process (all its threads: tokio workers, the
# audit writer), measured with callgrind. Unlike req/s or CPU time this does not move when other
# processes share the cores, so a change can be judged on a busy machine.
#
# For each scenario: the gateway (release build) runs under callgrind, a warm-up (TLS sessions,
# pools, the token cache) is not counted (`callgrind_control --zero` after it), then wrk sends
# requests for MEASURE seconds on CONNECTIONS keep-alive connections and the counters are dumped.
# Ir per request = (the dump's total Ir - the Ir of as long a window with no load - aws-lc's
# one-off per-thread entropy seeding, if it fell in the window) / the requests wrk completed in
# that window (the few requests in flight at the two edges are noise below 0.5 %).
#
# With --native the gateway runs without valgrind and `perf stat` counts, over the same window,
# what callgrind cannot see: syscalls (all, futex, write/writev, reads), context switches and
# task-clock (CPU time: contention inflates it somewhat, the counts hardly move).
#
# usage: benches/profile.sh [--native] [MEASURE_SECONDS=10] [CONNECTIONS=4] [SCENARIO...]
#   scenarios (all on the load.sh request, GET /v1/orders?start_date=…&end_date=…&page_size=20):
#     apikey             API key, every stage on, commit before completion
#     apikey-nocommit    the same with on_error = "continue" (nothing waits for its record)
#     apikey-shared      the same as apikey under [server] threading = "shared"
#     jwt                a cached ES256 token
#     jwt-rs256-nocache  an RS256 token verified on every request
#     floor              bench_kit bare-proxy --per-core: the stack with nothing in it (the
#                        rust-floor-percore row of load.sh), to hold the gateway's counts against
# The per-function breakdown is kept in target/profiles/ (callgrind.out.SCENARIO, read with
# `callgrind_annotate --inclusive=yes FILE | head -60`).
set -euo pipefail
cd "$(dirname "$0")/.."
NATIVE=0
if [ "${1:-}" = "--native" ]; then NATIVE=1; shift; fi
MEASURE=${1:-10}
CONNECTIONS=${2:-4}
shift $(( $# >= 2 ? 2 : $# ))
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(apikey jwt)
[ "$NATIVE" = 1 ] || command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

[ -n "${ORDERGATE_BIN:-}" ] || cargo build --release --quiet --bin ordergate --example bench_kit
BIN=${ORDERGATE_BIN:-target/release/ordergate}   # ORDERGATE_BIN: another build, to compare
OUT=target/profiles
mkdir -p "$OUT"
# shellcheck source=benches/common.sh
. benches/common.sh
# Under callgrind start-up takes seconds: wait up to 60 s (bounded).

UP=$(free_port)
"$KIT" upstream --port "$UP" --page-size 20 & PIDS+=($!)
wait_port "$UP" 1200

EVENTS=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
if [ "$NATIVE" = 1 ]; then
  printf '%-20s %9s %9s %8s %9s %8s %8s %8s %8s %8s\n' scenario requests "CPU us" "ctxsw" syscalls futex write writev read recvfrom
else
  printf '%-20s %10s %14s %12s %14s\n' scenario requests "Ir (-idle)" "Ir/request" "Ir once (out)"
fi
for scenario in "${SCENARIOS[@]}"; do
  dir="$WORK/$scenario"; mkdir -p "$dir"
  GW=$(free_port); ADMIN=$(free_port)
  extra=()
  case "$scenario" in
    jwt-rs256-nocache) extra=(--token-cache off) ;;
    apikey-nocommit) extra=(--on-error continue) ;;
    apikey-shared) extra=(--threading shared) ;;
  esac
  "$KIT" setup --dir "$dir" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$ADMIN" "${extra[@]}"
  case "$scenario" in
    apikey|apikey-nocommit|apikey-shared) header="X-Api-Key: $(cat "$dir/api_key")" ;;
    jwt) header="Authorization: Bearer $(cat "$dir/erp_token")" ;;
    jwt-rs256-nocache) header="Authorization: Bearer $(cat "$dir/erp_token_rs256")" ;;
    floor) header="X-Floor: 1" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  url="https://127.0.0.1:$GW/v1/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20"
  serve=("$BIN" serve -c "$dir/policy.toml")
  [ "$scenario" = floor ] && serve=("$KIT" bare-proxy --dir "$dir" --upstream "127.0.0.1:$UP" --port "$GW" --per-core)
  if [ "$NATIVE" = 1 ]; then
    RUST_LOG=warn "${serve[@]}" 2>"$dir/stderr" & PIDS+=($!)
    GWP=$!
    wait_port "$GW" 1200
    wrk -t1 -c"$CONNECTIONS" -d2s -H "$header" "$url" >/dev/null 2>&1 || true
    perf stat -x, -e "$EVENTS" -o "$dir/perf" -p "$GWP" -- sleep "$MEASURE" &
    PERF=$!
    requests=$(wrk -t1 -c"$CONNECTIONS" -d"${MEASURE}s" -H "$header" "$url" | awk '/requests in/ {print $1}')
    wait "$PERF" || true
    kill "$GWP"; wait "$GWP" 2>/dev/null || true
    awk -F, -v n="$requests" -v name="$scenario" '
      $3 == "task-clock" { v["cpu"] = $1 * 1000 / n }
      $3 == "context-switches" { v["cs"] = $1 / n }
      $3 == "raw_syscalls:sys_enter" { v["sys"] = $1 / n }
      $3 ~ /sys_enter_futex/ { v["futex"] = $1 / n }
      $3 ~ /sys_enter_write$/ { v["write"] = $1 / n }
      $3 ~ /sys_enter_writev/ { v["writev"] = $1 / n }
      $3 ~ /sys_enter_read$/ { v["read"] = $1 / n }
      $3 ~ /sys_enter_recvfrom/ { v["recvfrom"] = $1 / n }
      END { printf "%-20s %9d %9.1f %8.2f %9.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", name, n, v["cpu"], v["cs"], v["sys"], v["futex"], v["write"], v["writev"], v["read"], v["recvfrom"] }
    ' "$dir/perf"
    continue
  fi
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "${serve[@]}" 2>"$dir/stderr" & PIDS+=($!)
  VG=$!
  wait_port "$GW" 1200
  wrk -t1 -c"$CONNECTIONS" -d3s -H "$header" "$url" >/dev/null 2>&1 || true
  callgrind_control --zero "$VG" >/dev/null 2>&1
  requests=$(wrk -t1 -c"$CONNECTIONS" -d"${MEASURE}s" --timeout 10s -H "$header" "$url" | awk '/requests in/ {print $1}')
  callgrind_control --dump="measured" "$VG" >/dev/null 2>&1
  # The same time with no load: timers and housekeeping, charged per second rather than per
  # request (under callgrind a second holds few requests), taken out of the measured window.
  sleep "$MEASURE"
  callgrind_control --dump="idle" "$VG" >/dev/null 2>&1
  kill "$VG"; wait "$VG" 2>/dev/null || true
  dump=$(ls "$dir"/callgrind.out.* | sort | head -1)
  idle_dump=$(ls "$dir"/callgrind.out.* | sort | sed -n 2p)
  cp "$dump" "$OUT/callgrind.out.$scenario"
  idle=$(callgrind_annotate "$idle_dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk -v idle="${idle:-0}" '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1 - idle; exit}')
  # aws-lc seeds each thread's random generator from jitter entropy on its first use (~350 M Ir
  # under callgrind, once per thread): a start-up cost that lands in the window when a thread
  # first draws a random number there. Taken out, and shown.
  once=$(callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | awk '/tree_jitter_initialize / && !/</ {gsub(",", "", $1); print $1; exit}')
  once=${once:-0}
  printf '%-20s %10d %14d %12.0f %14d\n' "$scenario" "$requests" "$total" "$(awk -v t="$total" -v o="$once" -v n="$requests" 'BEGIN {print (t - o) / n}')" "$once"
done
