# Shell helpers shared by the load scripts (benches/load.sh, benches/scale.sh, benches/profile.sh).
# Source it after the build; every wait is bounded in count. It makes WORK (a scratch directory)
# and PIDS (what to kill at exit), removed and killed when the script ends, however it ends
# (KEEP_WORK=1 keeps the directory: logs, policies, audit files).

KIT=target/release/examples/bench_kit
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# free_port: an ephemeral loopback port nobody holds right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [TRIES=200]: until something accepts on it (TRIES x 50 ms), else exit 1.
wait_port() {
  for _ in $(seq "${2:-200}"); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; exit 1
}
# cpu_ticks PID: user + sys clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
# stop PID: ends a process of this run and waits for it (bounded: 5 s, then KILL).
stop() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
}
# rss_kib PID: the process's resident set, KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
