#!/usr/bin/env bash
# Scale-out and memory (issue 15 item 4), loopback only, every run bounded by its duration.
#
#   one   one gateway, both rate-limit buckets in a local redis-server, wrk -c CONNECTIONS
#   pair  two gateways of the same policy on the same redis-server (shared buckets), one wrk
#         per instance with CONNECTIONS/2 each, at the same time: req/s of the pair against one
#   memory  VmRSS growth per idle keep-alive TLS connection and per active principal
#         (benches/memory.py), on the first instance
#
# The request is load.sh's (GET /v1/orders?... with an API key, every stage on, audit with hash
# chain and commit before completion). That the pair's limits are exact, shared through Redis, is
# what tests/redis.rs proves with two real instances; this script measures throughput only.
# On a machine with fewer cores than the pair plus wrk need, the pair cannot scale: the script
# prints the cores so the reading is honest.
#
# usage: benches/scale.sh [DURATION_SECONDS=10] [CONNECTIONS=50]   IDLE=2000 PRINCIPALS=10000 (at most the token cache, 10,000)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-50}
IDLE=${IDLE:-2000}
PRINCIPALS=${PRINCIPALS:-10000}
QUERY="start_date=2025-01-01&end_date=2025-06-30&page_size=20"
SUITE=TLS_AES_128_GCM_SHA256
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true   # IDLE connections, on both ends

cargo build --release --quiet --bin ordergate --example bench_kit
BIN=target/release/ordergate
# shellcheck source=benches/common.sh
. benches/common.sh

UP=$(free_port)
"$KIT" upstream --port "$UP" 2>/dev/null & PIDS+=($!)
wait_port "$UP"
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
wait_port "$RP"

# Instance A from bench_kit; instance B: the same policy, keys and certificates, its own ports
# and its own audit log (the path is relative to the policy's directory).
A=$(free_port); A_ADMIN=$(free_port)
mkdir -p "$WORK/a"
"$KIT" setup --dir "$WORK/a" --upstream "127.0.0.1:$UP" --port "$A" --admin-port "$A_ADMIN" \
  --cipher-suites "$SUITE" --redis "redis://127.0.0.1:$RP/0" --principals "$PRINCIPALS"
# IDLE connections come from one loopback address: lift the per-IP cap (default 64) for them.
sed -i "s/^admin_listen = .*/&\nmax_connections_per_ip = $((IDLE + 200))/" "$WORK/a/policy.toml"
cp -r "$WORK/a" "$WORK/b"
rm -rf "$WORK/b/audit"
B=$(free_port); B_ADMIN=$(free_port)
sed -i "s/^listen = .*/listen = \"127.0.0.1:$B\"/; s/^admin_listen = .*/admin_listen = \"127.0.0.1:$B_ADMIN\"/" "$WORK/b/policy.toml"
RUST_LOG=warn "$BIN" serve -c "$WORK/a/policy.toml" 2>"$WORK/a.stderr" & PIDS+=($!); A_PID=$!
RUST_LOG=warn "$BIN" serve -c "$WORK/b/policy.toml" 2>"$WORK/b.stderr" & PIDS+=($!); B_PID=$!
wait_port "$A"; wait_port "$B"
KEY=$(cat "$WORK/a/api_key")

# wrk_rps PORT CONNECTIONS SECONDS -> "req/s requests"
wrk_rps() {
  wrk -t1 -c"$2" -d"$3s" -H "X-Api-Key: $KEY" "https://127.0.0.1:$1/v1/orders?$QUERY" |
    awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {print r, n}'
}
for port in "$A" "$B"; do wrk_rps "$port" "$CONNECTIONS" 1 >/dev/null; done   # warm-up

a0=$(cpu_ticks "$A_PID")
read -r one_rps one_n < <(wrk_rps "$A" "$CONNECTIONS" "$DURATION")
a1=$(cpu_ticks "$A_PID")
one_cpu=$(awk -v t=$((a1 - a0)) -v hz="$TICKS" -v n="$one_n" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')

half=$((CONNECTIONS / 2))
a0=$(cpu_ticks "$A_PID"); b0=$(cpu_ticks "$B_PID")
wrk_rps "$A" "$half" "$DURATION" > "$WORK/pair-a" &
WA=$!
wrk_rps "$B" "$half" "$DURATION" > "$WORK/pair-b" &
WB=$!
wait "$WA" "$WB"
a1=$(cpu_ticks "$A_PID"); b1=$(cpu_ticks "$B_PID")
read -r pa_rps pa_n < "$WORK/pair-a"
read -r pb_rps pb_n < "$WORK/pair-b"
pair_cpu=$(awk -v t=$((a1 - a0 + b1 - b0)) -v hz="$TICKS" -v n=$((pa_n + pb_n)) 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')

python3 benches/memory.py "$A_PID" "$A" "$WORK/a/ca.pem" "$KEY" "$WORK/a/tokens.txt" "$IDLE" > "$WORK/memory"
idle_bytes=$(awk '/idle_connection_bytes/ {print $2}' "$WORK/memory")
principal_bytes=$(awk '/active_principal_bytes/ {print $2}' "$WORK/memory")
principal_failed=$(awk '/principal_requests_failed/ {print $2}' "$WORK/memory")
for dir in a b; do "$BIN" audit verify "$WORK/$dir"/audit/audit.jsonl* >/dev/null; done

echo
echo "machine: $(nproc) cores; wrk -t1, ${DURATION}s, keep-alive, loopback, TLS 1.3 $SUITE; buckets in one redis-server"
printf "%-28s %10s %10s %12s\n" "setup" "req/s" "vs one" "CPU us/req"
printf "%-28s %10.0f %10s %12s\n" "one instance (-c$CONNECTIONS)" "$one_rps" "1.00x" "$one_cpu"
awk -v a="$pa_rps" -v b="$pb_rps" -v one="$one_rps" -v cpu="$pair_cpu" -v c="$half" \
  'BEGIN {printf "%-28s %10.0f %9.2fx %12s\n", "pair (2 x -c" c ")", a + b, (a + b) / one, cpu}'
echo "memory: ${idle_bytes} bytes per idle keep-alive TLS connection ($IDLE held), ${principal_bytes} bytes per active principal ($PRINCIPALS principals, one request each; $principal_failed not 200)"
echo "audit: both instances' chains verified"
