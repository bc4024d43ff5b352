#!/usr/bin/env bash
# End-to-end load harness: ordergate beside the peers, in one run, on this machine, loopback only.
# Every row sends the same request where it can,
#   GET /v1/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20
# which the fixed-answer order service answers with the same 2,424-byte JSON page (4 orders);
# every TLS row uses TLS 1.3 with TLS_AES_128_GCM_SHA256 (the gateway is told so with
# `[server.tls] cipher_suites`, nginx with `ssl_conf_command`, HAProxy with
# `ssl-default-bind-ciphersuites`); wrk keeps its connections alive (HTTP/1.1).
#
#   direct              wrk -> the order service (plain HTTP): the baseline
#   nginx-tls           nginx as a TLS proxy that checks nothing (one worker)          [if installed]
#   haproxy-tls         HAProxy as a TLS proxy that checks nothing (one thread)        [if installed]
#   haproxy-jwt-rs256   HAProxy as a gateway with its built-ins, RS256 verified per request
#   haproxy-jwt-es256   the same, ES256                       (benches/peers/haproxy-gateway.cfg)
#   rust-floor          ordergate's stack with nothing in it: rustls + hyper server and pooled
#                       client + tokio (multi-thread) + mimalloc, forwarding unchecked
#   rust-floor-percore  the same on a single-thread runtime per core (SO_REUSEPORT listeners,
#                       one upstream pool each): what thread-per-core would save
#   gw-apikey           ordergate, API key: every stage on (route, typed query + date range,
#                       authn, authz, two buckets, breaker, rebuilt request, response hygiene,
#                       a hash-chained audit record written before the response completes)
#   gw-jwt-es256        the same with an ES256 token (verified once, then from the token cache)
#   gw-jwt-rs256        the same with an RS256 token (cached)
#   gw-jwt-es256-nocache  token cache off (`cache_size = 0`): ES256 verified on every request
#   gw-jwt-rs256-nocache  the same, RS256
#   gw-mask             ES256 (cached), the search through a view: payment denied, 4 masks per order
#   gw-apikey-w1        gw-apikey with `[server] workers = 1`
#   gw-apikey-shared    gw-apikey with `[server] threading = "shared"` (one work-stealing runtime,
#                       one upstream pool: the layout before per-core threading)
#   gw-apikey-nocommit  gw-apikey with `on_error = "continue"` (nothing waits for its record):
#                       what commit before completion costs
#   gw-redis            gw-apikey with both buckets in a local redis-server             [if installed]
#   gw-volume           gw-apikey with the volume guard on ([abuse.volume] distinct, alert)
#   gw-apikey-shadow    gw-apikey served with `--shadow` (the same policy as the candidate):
#                       the difference is what the shadow decisions cost
#   gw-signed           order detail by a partner key that signs (ed25519, RFC 9421), pre-signed
#                       requests (bench_kit signed + benches/peers/header_sets.lua)
#   gw-unsigned         the same request by an unsigned key, on the same gateway
#   gw-nocanary         order detail, 1000 ERP principals cycled; gw-canary0 / gw-canary5: the same
#                       route with a canary at 0 % / 5 % (same order service behind a second name)
#
# It prints req/s, p50, p99, the front door's CPU per request (user+sys of that process over
# the measured window / requests it completed), and the ratios: CPU and p99 against the cheaper
# plain TLS proxy of the run, CPU against HAProxy-as-gateway with the same algorithm. Every wrk
# run is bounded by its duration; every wait is bounded in count.
#
# usage: benches/load.sh [--quick] [DURATION_SECONDS=10] [CONNECTIONS=50]
#   --quick: 3 s per row (a whole run in about two minutes, builds aside); for a table to
#            publish use the default 10 s on a quiet machine, three runs, the median.
#   THREADS=1 (wrk threads), HAP_THREADS=1 (HAProxy threads), NGINX_WORKERS=1 can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
DURATION=${1:-10}
[ "$QUICK" = 1 ] && DURATION=${1:-3}
CONNECTIONS=${2:-50}
THREADS=${THREADS:-1}
HAP_THREADS=${HAP_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
export WRK_THREADS="$THREADS"   # benches/peers/header_sets.lua splits its lines between the threads
SUITE=TLS_AES_128_GCM_SHA256
QUERY="start_date=2025-01-01&end_date=2025-06-30&page_size=20"
ISSUER="https://idp.bench/"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin ordergate --example bench_kit
BIN=target/release/ordergate
PEERS=benches/peers
# shellcheck source=benches/common.sh
. benches/common.sh

UP=$(free_port)
"$KIT" upstream --port "$UP" 2>"$WORK/upstream.stderr" & PIDS+=($!); UP_PID=$!
wait_port "$UP"

# One setup for the peers: certificates, token keys, tokens.
mkdir -p "$WORK/peers"
"$KIT" setup --dir "$WORK/peers" --upstream "127.0.0.1:$UP" --port 1 --admin-port 2

GW_DIRS=()
# start_gateway DIR [bench_kit setup options...]: sets GW (port) and GW_PID.
start_gateway() {
  local dir=$1; shift
  mkdir -p "$dir"
  GW=$(free_port); local admin; admin=$(free_port)
  "$KIT" setup --dir "$dir" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$admin" --cipher-suites "$SUITE" "$@"
  # EXTRA_POLICY: text appended to the policy; SERVE_ARGS: more `serve` arguments (e.g. --shadow).
  if [ -n "${EXTRA_POLICY:-}" ]; then printf '%s' "$EXTRA_POLICY" >> "$dir/policy.toml"; fi
  # shellcheck disable=SC2086
  RUST_LOG=warn "$BIN" serve -c "$dir/policy.toml" ${SERVE_ARGS:-} 2>"$dir/stderr" & PIDS+=($!)
  GW_PID=$!
  GW_DIRS+=("$dir")
  wait_port "$GW"
}

RESULTS="$WORK/results"
: > "$RESULTS"
# run NAME PID URL [wrk args...]: PID is the process whose CPU is charged to the requests.
run() {
  local name=$1 pid=$2 url=$3; shift 3
  wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "$@" "$url" >/dev/null 2>&1 || true   # warm-up: pools, caches, TLS sessions
  local before; before=$(cpu_ticks "$pid")
  local out; out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")
  local after; after=$(cpu_ticks "$pid")
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p50; p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local cpu_us; cpu_us=$(awk -v t=$((after - before)) -v hz="$TICKS" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$name $rps $p50 $p99 $cpu_us ${non2xx:-0}" >> "$RESULTS"
  echo "  $name: $rps req/s" >&2
}

# Baseline: straight to the order service.
run direct "$UP_PID" "http://127.0.0.1:$UP/api/orders/search?$QUERY"

# nginx as a TLS proxy that checks nothing.
if command -v nginx >/dev/null; then
  NG=$(free_port)
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream orders { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG ssl;
    ssl_certificate $WORK/peers/server.crt;
    ssl_certificate_key $WORK/peers/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_conf_command Ciphersuites $SUITE;
    location / { proxy_pass http://orders; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!); NG_PID=$!
  wait_port "$NG"
  # The worker does the work; charge its CPU (bounded wait for it to appear).
  NG_WORKER=""
  for _ in $(seq 100); do NG_WORKER=$(pgrep -P "$NG_PID" | head -1 || true); [ -n "$NG_WORKER" ] && break; sleep 0.05; done
  run nginx-tls "$NG_WORKER" "https://127.0.0.1:$NG/v1/orders?$QUERY"
  stop "$NG_PID"
fi

# HAProxy: a plain TLS proxy, then a gateway verifying the token on every request.
if command -v haproxy >/dev/null; then
  export PEERS_DIR="$WORK/peers" UP_PORT="$UP" HAP_THREADS ISSUER
  HAP=$(free_port)
  HAP_PORT="$HAP" haproxy -f "$PEERS/haproxy-proxy.cfg" >"$WORK/haproxy-proxy.log" 2>&1 & PIDS+=($!); HP=$!
  wait_port "$HAP"
  run haproxy-tls "$HP" "https://127.0.0.1:$HAP/v1/orders?$QUERY"
  stop "$HP"

  HAP=$(free_port)
  HAP_PORT="$HAP" haproxy -f "$PEERS/haproxy-gateway.cfg" >"$WORK/haproxy-gateway.log" 2>"$WORK/haproxy-gateway.stderr" & PIDS+=($!); HP=$!
  wait_port "$HAP"
  run haproxy-jwt-rs256 "$HP" "https://127.0.0.1:$HAP/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/peers/erp_token_rs256")"
  run haproxy-jwt-es256 "$HP" "https://127.0.0.1:$HAP/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/peers/erp_token")"
  stop "$HP"
fi

# The floor of ordergate's own stack (bench_kit bare-proxy): the same rustls server, hyper's
# server and pooled client, tokio and mimalloc, forwarding every request unchecked. rust-floor:
# one multi-thread runtime, as the gateway; rust-floor-percore: a single-thread runtime per core,
# each with its own SO_REUSEPORT listener and upstream pool.
for mode in "" per-core; do
  BP=$(free_port)
  "$KIT" bare-proxy --dir "$WORK/peers" --upstream "127.0.0.1:$UP" --port "$BP" ${mode:+--$mode} & PIDS+=($!); BPP=$!
  wait_port "$BP"
  run "rust-floor${mode:+-percore}" "$BPP" "https://127.0.0.1:$BP/v1/orders?$QUERY"
  stop "$BPP"
done

# ordergate, token cache on (the default).
start_gateway "$WORK/gw"
KEY=$(cat "$WORK/gw/api_key")
run gw-apikey "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $KEY"
run gw-jwt-es256 "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/gw/erp_token")"
run gw-jwt-rs256 "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/gw/erp_token_rs256")"
run gw-mask "$GW_PID" "https://127.0.0.1:$GW/v1/masked/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/gw/erp_token")"
stop "$GW_PID"

# Token cache off: every request verifies its token.
start_gateway "$WORK/gw-nocache" --token-cache off
run gw-jwt-es256-nocache "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/gw-nocache/erp_token")"
run gw-jwt-rs256-nocache "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "Authorization: Bearer $(cat "$WORK/gw-nocache/erp_token_rs256")"
stop "$GW_PID"

# One worker thread.
start_gateway "$WORK/gw-w1" --workers 1
run gw-apikey-w1 "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-w1/api_key")"
stop "$GW_PID"

# The former threading: one work-stealing runtime, one upstream pool.
start_gateway "$WORK/gw-shared" --threading shared
run gw-apikey-shared "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-shared/api_key")"
stop "$GW_PID"

# Nothing waits for its record.
start_gateway "$WORK/gw-nocommit" --on-error continue
run gw-apikey-nocommit "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-nocommit/api_key")"
stop "$GW_PID"

if command -v redis-server >/dev/null; then
  RP=$(free_port)
  redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
  wait_port "$RP"
  start_gateway "$WORK/gw-redis" --redis "redis://127.0.0.1:$RP/0"
  run gw-redis "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-redis/api_key")"
  stop "$GW_PID"
fi

# The volume guard on (one principal, one value: the common case): gw-volume against gw-apikey.
EXTRA_POLICY=$'\n[abuse.volume]\ndistinct = { param = "start_date", max = 100000, window = "1h" }\naction = "alert"\n' \
  start_gateway "$WORK/gw-volume"
run gw-volume "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-volume/api_key")"
stop "$GW_PID"

# Shadow mode: the candidate (the same policy) decides every request too (CONTRACT §9).
mkdir -p "$WORK/gw-shadow"
SERVE_ARGS="--shadow $WORK/gw-shadow/policy.toml" start_gateway "$WORK/gw-shadow"
run gw-apikey-shadow "$GW_PID" "https://127.0.0.1:$GW/v1/orders?$QUERY" -H "X-Api-Key: $(cat "$WORK/gw-shadow/api_key")"
stop "$GW_PID"

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
SIGNED_COUNT=${SIGNED_COUNT:-$(( (DURATION + 1) * 25000 ))}
# One credential may hold at most a quarter of the local nonce store (65,536): stay under it.
[ "$SIGNED_COUNT" -le 60000 ] || SIGNED_COUNT=60000
GW=$(free_port); ADMIN=$(free_port)
mkdir -p "$WORK/gwp"
"$KIT" setup --dir "$WORK/gwp" --upstream "127.0.0.1:$UP" --port "$GW" --admin-port "$ADMIN" --cipher-suites "$SUITE" \
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
HEADER_SETS="$WORK/gwp/unsigned.txt" run gw-unsigned "$GW_PID" "$DETAIL_URL" -s "$SETS"
for side in nocanary canary0 canary5; do
  HEADER_SETS="$WORK/gwp/tokens.txt" run "gw-$side" "$GW_PID" \
    "https://127.0.0.1:$GW/v1/$side/orders/O20250101000001" -s "$SETS"
done
# Last on this gateway: should the signed lines run out, wrk's threads stop (header_sets.lua), and
# the few replays in flight, refused and counted against 127.0.0.1 by the abuse stage, can no
# longer touch another row.
HEADER_SETS="$WORK/gwp/signed.txt" HEADER_SETS_ONCE=1 run gw-signed "$GW_PID" "$DETAIL_URL" -s "$SETS"
kill "$GW_PID"

# Every record of every gateway run, and its chain.
AUDIT_RECORDS=0; AUDIT_OK=yes
for dir in "${GW_DIRS[@]}"; do
  n=$(cat "$dir"/audit/audit.jsonl* | wc -l)
  AUDIT_RECORDS=$((AUDIT_RECORDS + n))
  "$BIN" audit verify "$dir"/audit/audit.jsonl* >/dev/null || AUDIT_OK=NO
done

echo
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, keep-alive, loopback; TLS 1.3 $SUITE; the answer: $(grep -o '[0-9]* bytes' "$WORK/upstream.stderr")"
awk -v records="$AUDIT_RECORDS" -v ok="$AUDIT_OK" '
  function us(t) { # wrk latency text -> microseconds
    if (t ~ /us$/) return t + 0; if (t ~ /ms$/) return (t + 0) * 1000; if (t ~ /s$/) return (t + 0) * 1e6; return t + 0
  }
  { rows[NR] = $0; n = NR; split($0, f, " "); cpu[f[1]] = f[5]; p99[f[1]] = us(f[4]) }
  END {
    # The cheaper plain TLS proxy of this run.
    proxy = ""
    if ("nginx-tls" in cpu) proxy = "nginx-tls"
    if ("haproxy-tls" in cpu && (proxy == "" || cpu["haproxy-tls"] < cpu[proxy])) proxy = "haproxy-tls"
    printf "%-21s %8s %9s %9s %8s %8s %8s %9s %7s\n", "scenario", "req/s", "p50", "p99", "CPU", "CPU vs", "p99 vs", "CPU vs", "non-2xx"
    printf "%-21s %8s %9s %9s %8s %8s %8s %9s %7s\n", "", "", "", "", "us/req", "proxy", "proxy", "haproxy", ""
    printf "%-21s %8s %9s %9s %8s %8s %8s %9s %7s\n", "", "", "", "", "", "", "", "gateway", ""
    for (i = 1; i <= n; i++) {
      split(rows[i], f, " ")
      vp = (proxy != "" && f[1] != "direct") ? sprintf("%.2fx", f[5] / cpu[proxy]) : "-"
      vl = (proxy != "" && f[1] != "direct") ? sprintf("%.2fx", us(f[4]) / p99[proxy]) : "-"
      peer = ""
      if (f[1] ~ /es256/ || f[1] == "gw-mask") peer = "haproxy-jwt-es256"
      if (f[1] ~ /rs256/) peer = "haproxy-jwt-rs256"
      if (f[1] ~ /^gw-apikey|^gw-redis/) peer = "haproxy-jwt-rs256"
      vg = (peer in cpu && f[1] !~ /^haproxy/) ? sprintf("%.2fx", f[5] / cpu[peer]) : "-"
      printf "%-21s %8.0f %9s %9s %8s %8s %8s %9s %7s\n", f[1], f[2], f[3], f[4], f[5], vp, vl, vg, f[6]
    }
    if (proxy != "") printf "proxy = %s, the cheaper plain TLS proxy of this run; haproxy gateway = the same algorithm (API key rows: RS256, the cheaper)\n", proxy
    printf "audit: %d records written during the gateway runs, chain verified: %s\n", records, ok
  }' "$RESULTS"
