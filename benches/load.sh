#!/usr/bin/env bash
# End-to-end load harness: one run measures, on this machine and loopback only,
#   direct        wrk -> the fast fixed-answer order service (plain HTTP): the baseline
#   nginx-tls     wrk -> nginx, a TLS proxy that checks nothing -> the order service (if nginx is installed)
#   gw-apikey     wrk -> ordergate (TLS, keep-alive), API key, order detail, no view
#   gw-jwt        the same route with an ES256 JWT (verified once, then cached)
#   gw-jwt-view   wrk -> ordergate, ES256 JWT (cached), owner binding, 5 validated params, 20-order page view
#   gw-jwt-mask   wrk -> ordergate, ES256 JWT, one order through a deny+mask view
#   gw-redis      gw-apikey with rate limits in a local redis-server (if installed)
#   gw-volume     gw-jwt-view with the volume guard on ([abuse.volume] distinct customer ids, alert)
#   *-shadow      gw-apikey and gw-jwt-view again, served with `--shadow` (the same policy as the
#                 candidate): the difference in CPU us/req is what the shadow decisions cost
#   gw-signed     order detail by a partner key that signs (ed25519, RFC 9421), pre-signed requests
#   gw-unsigned   the same request by an unsigned key, on the same gateway
#   gw-nocanary   order detail, 1000 ERP principals cycled; gw-canary0 / gw-canary5: the same
#                 route with a canary at 0 % / 5 % (same order service behind a second name)
# and prints requests/s, p50, p99, the proxy's CPU per request (user+sys of its process / requests)
# and each figure's ratio to the baseline. Every run is bounded by DURATION and stops by itself.
#
# usage: benches/load.sh [DURATION_SECONDS=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin ordergate --example bench_kit
KIT=target/release/examples/bench_kit
BIN=target/release/ordergate
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

UP=$(free_port)
"$KIT" upstream --port "$UP" --page-size 20 & PIDS+=($!); UP_PID=$!
wait_port "$UP"

start_gateway() { # dir port admin [redis]
  local dir=$1 port=$2 admin=$3
  mkdir -p "$dir"
  "$KIT" setup --dir "$dir" --upstream "127.0.0.1:$UP" --port "$port" --admin-port "$admin" ${4:+--redis "$4"}
  if [ -n "${EXTRA_POLICY:-}" ]; then printf '%s' "$EXTRA_POLICY" >> "$dir/policy.toml"; fi
  RUST_LOG=warn "$BIN" serve -c "$dir/policy.toml" 2>"$dir/stderr" & PIDS+=($!)
  GW_PID=$!
  wait_port "$port"
}

RESULTS="$WORK/results"
: > "$RESULTS"
# run NAME PID URL [wrk args...]: PID is the process whose CPU is charged to the requests.
run() {
  local name=$1 pid=$2 url=$3; shift 3
  wrk -t2 -c"$CONNECTIONS" -d1s "$@" "$url" >/dev/null 2>&1 || true   # warm-up: pools, caches, TLS sessions
  local before; before=$(cpu_ticks "$pid")
  local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")
  local after; after=$(cpu_ticks "$pid")
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p50; p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local cpu_us; cpu_us=$(awk -v t=$((after - before)) -v hz="$TICKS" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$name $rps $p50 $p99 $cpu_us ${non2xx:-0}" >> "$RESULTS"
}

# Baseline: straight to the order service.
run direct "$UP_PID" "http://127.0.0.1:$UP/api/orders/O20250101000001"

# A TLS proxy that checks nothing, if nginx is here.
if command -v nginx >/dev/null; then
  NG=$(free_port)
  mkdir -p "$WORK/nginx"
  "$KIT" setup --dir "$WORK/nginx" --upstream "127.0.0.1:$UP" --port 1 --admin-port 2
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream orders { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG ssl;
    ssl_certificate $WORK/nginx/server.crt;
    ssl_certificate_key $WORK/nginx/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://orders; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!); NG_PID=$!
  wait_port "$NG"
  # The worker does the work; charge its CPU.
  sleep 0.2
  NG_WORKER=$(pgrep -P "$NG_PID" | head -1)
  run nginx-tls "$NG_WORKER" "https://127.0.0.1:$NG/api/orders/O20250101000001"
  kill "$NG_PID"
fi

GW=$(free_port); ADMIN=$(free_port)
start_gateway "$WORK/gw" "$GW" "$ADMIN"
KEY=$(cat "$WORK/gw/api_key"); TOKEN=$(cat "$WORK/gw/token"); ERP_TOKEN=$(cat "$WORK/gw/erp_token")
run gw-apikey "$GW_PID" "https://127.0.0.1:$GW/v1/orders/O20250101000001" -H "X-Api-Key: $KEY"
run gw-jwt "$GW_PID" "https://127.0.0.1:$GW/v1/orders/O20250101000001" -H "Authorization: Bearer $ERP_TOKEN"
run gw-jwt-view "$GW_PID" "https://127.0.0.1:$GW/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20" -H "Authorization: Bearer $TOKEN"
run gw-jwt-mask "$GW_PID" "https://127.0.0.1:$GW/v1/masked/orders/O20250101000001" -H "Authorization: Bearer $TOKEN"
AUDIT_RECORDS=$(cat "$WORK"/gw/audit/audit.jsonl* | wc -l)
"$BIN" audit verify "$WORK"/gw/audit/audit.jsonl* >/dev/null && AUDIT_OK=yes || AUDIT_OK=NO
kill "$GW_PID"

# The view route again with the volume guard on: gw-volume against gw-jwt-view is its cost.
GW=$(free_port); ADMIN=$(free_port)
EXTRA_POLICY=$'\n[abuse.volume]\ndistinct = { param = "customer_id", max = 100000, window = "1h" }\naction = "alert"\n' \
  start_gateway "$WORK/gwv" "$GW" "$ADMIN"
TOKEN=$(cat "$WORK/gwv/token")
run gw-volume "$GW_PID" "https://127.0.0.1:$GW/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20" -H "Authorization: Bearer $TOKEN"

# The same gateway with a shadow policy deciding every request too (CONTRACT §9).
GW=$(free_port); ADMIN=$(free_port)
mkdir -p "$WORK/gws"
"$KIT" setup --dir "$WORK/gws" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$ADMIN"
RUST_LOG=warn "$BIN" serve -c "$WORK/gws/policy.toml" --shadow "$WORK/gws/policy.toml" 2>"$WORK/gws/stderr" & PIDS+=($!)
GW_PID=$!
wait_port "$GW"
KEY=$(cat "$WORK/gws/api_key"); TOKEN=$(cat "$WORK/gws/token")
run gw-apikey-shadow "$GW_PID" "https://127.0.0.1:$GW/v1/orders/O20250101000001" -H "X-Api-Key: $KEY"
run gw-jwt-view-shadow "$GW_PID" "https://127.0.0.1:$GW/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20" -H "Authorization: Bearer $TOKEN"
kill "$GW_PID"

if command -v redis-server >/dev/null; then
  RP=$(free_port)
  redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
  wait_port "$RP"
  GW=$(free_port); ADMIN=$(free_port)
  start_gateway "$WORK/gwr" "$GW" "$ADMIN" "redis://127.0.0.1:$RP/0"
  sleep 0.5
  KEY=$(cat "$WORK/gwr/api_key")
  run gw-redis "$GW_PID" "https://127.0.0.1:$GW/v1/orders/O20250101000001" -H "X-Api-Key: $KEY"
  kill "$GW_PID"
fi

# Issue 11: a signed ed25519 partner request (gw-signed) against the same request unsigned
# (gw-unsigned): one gateway, the order-detail route, the same answer, two API keys of role erp,
# one of which must sign. wrk cannot sign, so bench_kit signs SIGNED_COUNT requests up front
# (unique nonces, created = now, max_age long enough for the block) and
# benches/peers/header_sets.lua sends each line once. Keep SIGNED_COUNT >= the requests of the
# 1 s warm-up plus the run (else lines are reused: replays, 401, counted in non-2xx), and below
# the local nonce store's 262144 pairs (beyond it: 503).
# Issue 14: the same route with a canary at 0 % (gw-canary0) and at 5 % (gw-canary5) against
# none (gw-nocanary): three copies of order-detail, the canary a second named upstream at the
# same order service (the same answer), 1000 distinct ERP principals cycled, so 5 % is ~5 %.
SIGNED_COUNT=${SIGNED_COUNT:-$(( (DURATION + 1) * 15000 ))}
[ "$SIGNED_COUNT" -le 250000 ] || SIGNED_COUNT=250000
GW=$(free_port); ADMIN=$(free_port)
mkdir -p "$WORK/gwp"
"$KIT" setup --dir "$WORK/gwp" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$ADMIN" \
  --signer --max-age $(( DURATION * 2 + 120 )) --principals 1000
for side in nocanary canary0 canary5; do
  case $side in
    nocanary) canary="" ;;
    canary0) canary='canary = { upstream = "canary", percent = 0.0 }' ;;
    canary5) canary='canary = { upstream = "canary", percent = 5.0 }' ;;
  esac
  cat >> "$WORK/gwp/policy.toml" <<ROUTE

[[routes]]
id = "detail-$side"
method = "GET"
path = "/v1/$side/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "10000000/min", burst = 1000000 }
$canary
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
ROUTE
done
cat >> "$WORK/gwp/policy.toml" <<UPSTREAM

[upstreams.canary]
url = "http://127.0.0.1:$UP"
connect_timeout = "1s"
timeout = "5s"
pool_idle_per_host = 256
UPSTREAM
RUST_LOG=warn "$BIN" serve -c "$WORK/gwp/policy.toml" 2>"$WORK/gwp/stderr" & PIDS+=($!)
GW_PID=$!
wait_port "$GW"
DETAIL_URL="https://127.0.0.1:$GW/v1/orders/O20250101000001"
"$KIT" signed --dir "$WORK/gwp" --url "$DETAIL_URL" --count "$SIGNED_COUNT"
printf 'X-Api-Key: %s\n' "$(cat "$WORK/gwp/api_key")" > "$WORK/gwp/unsigned.txt"
SETS=benches/peers/header_sets.lua
HEADER_SETS="$WORK/gwp/signed.txt" HEADER_SETS_ONCE=1 run gw-signed "$GW_PID" "$DETAIL_URL" -s "$SETS"
HEADER_SETS="$WORK/gwp/unsigned.txt" run gw-unsigned "$GW_PID" "$DETAIL_URL" -s "$SETS"
for side in nocanary canary0 canary5; do
  HEADER_SETS="$WORK/gwp/tokens.txt" run "gw-$side" "$GW_PID" \
    "https://127.0.0.1:$GW/v1/$side/orders/O20250101000001" -s "$SETS"
done
kill "$GW_PID"

echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs); wrk -t2 -c$CONNECTIONS -d${DURATION}s, loopback"
awk -v records="$AUDIT_RECORDS" -v ok="$AUDIT_OK" '
  NR == 1 { base = $2 }
  { rows[NR] = $0; n = NR }
  END {
    printf "%-12s %12s %9s %9s %12s %10s %7s\n", "scenario", "req/s", "p50", "p99", "CPU us/req", "req/s vs", "non-2xx"
    printf "%-12s %12s %9s %9s %12s %10s %7s\n", "", "", "", "", "(that proc)", "direct", ""
    for (i = 1; i <= n; i++) {
      split(rows[i], f, " ")
      printf "%-12s %12.0f %9s %9s %12s %9.2fx %7s\n", f[1], f[2], f[3], f[4], f[5], f[2] / base, f[6]
    }
    printf "audit: %d records written during the gateway runs, chain verified: %s\n", records, ok
  }' "$RESULTS"
