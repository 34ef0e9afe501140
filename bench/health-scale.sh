#!/usr/bin/env bash
# usage: bench/health-scale.sh [ENDPOINTS=10000] [AGENTS=5] [SECS=30]
# Health-plane scale: ENDPOINTS endpoints TCP-probed every second by AGENTS probe
# agents (each its own vantage point) that report to one failoverd server, which is no
# vantage point itself (it only decides). Ten of the endpoints flap (up 4 s, down 4 s)
# so decisions keep being made. Everything runs inside a network namespace of its own
# (root needed), against examples/tcp_sink.rs; the server is pinned to core 0, the
# agents and the sink to core 1. After a warm-up, over SECS seconds it reads:
#   server CPU (% of one core, utime+stime from /proc), RSS, report bytes/s received,
#   reports/s, and the decision latency (an accepted report that changes a verdict →
#   the new answers published) p50/p99 from the server's own metrics.
# Env: FAILOVERD_BIN (target/release/failoverd), SINK_BIN, WARMUP (20), INTERVAL (1s,
#      the probe interval: on two cores 5 agents cannot send 50,000 TCP probes a second,
#      so at 10,000 endpoints use INTERVAL=5s to keep the agents current).
set -euo pipefail
ENDPOINTS=${1:-10000}; AGENTS=${2:-5}; SECS=${3:-30}; WARMUP=${WARMUP:-20}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$ROOT" && cargo build --release --quiet --bin failoverd --example tcp_sink)
BIN=${FAILOVERD_BIN:-$ROOT/target/release/failoverd}
SINK=${SINK_BIN:-$ROOT/target/release/examples/tcp_sink}
[ "$(id -u)" = 0 ] || { echo "needs root (ip netns)" >&2; exit 1; }
NS=fo-scale-$$
W=$(mktemp -d /tmp/failoverd-scale-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
# (Processes are started with ip netns exec directly, not through in_ns, so that $! is
# their own pid: ip and taskset exec what they run.)

python3 - "$W" "$ENDPOINTS" "$AGENTS" "${INTERVAL:-1s}" <<'PY'
import sys
w, n, agents, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
per_pool = 10
flappers = 10
zone = ["$ORIGIN scale.test.", "$TTL 300",
        "@ IN SOA ns1 hostmaster 1 3600 600 86400 30", "@ IN NS ns1", "ns1 IN A 127.0.0.1"]
open(f"{w}/scale.test.zone", "w").write("\n".join(zone) + "\n")
c = ["version = 1", "[server]", 'listen = ["127.0.0.1:5399"]', "udp_workers = 1",
     "[zones]", f'directory = "{w}"', 'files = ["scale.test.zone"]']
for r in range(agents):
    c += [f"[regions.r{r}]"]
c += ["[checks.steady]", 'type = "tcp"', "port = 9000", f'interval = "{interval}"', 'timeout = "500ms"',
      "[checks.flappy]", 'type = "tcp"', "port = 9001", 'interval = "1s"', 'timeout = "500ms"',
      "[checks.flappy.damping]", "enabled = false"]
steady = n - flappers
pools = []
for p in range((steady + per_pool - 1) // per_pool):
    eps = []
    for i in range(p * per_pool, min((p + 1) * per_pool, steady)):
        eps.append(f'{{ address = "127.1.{i // 250}.{i % 250 + 1}" }}')
    pools.append((f"p{p}", "steady", eps))
pools.append(("flap", "flappy", [f'{{ address = "127.2.0.{i + 1}" }}' for i in range(flappers)]))
for name, check, eps in pools:
    c += [f"[pools.{name}]", f'check = "{check}"', "endpoints = [" + ", ".join(eps) + "]"]
for name, _, _ in pools:
    c += ["[[records]]", f'name = "{name}.scale.test"', 'type = "A"', "ttl = 30",
          'policy = "multivalue"', f'pools = ["{name}"]']
for a in range(agents):
    c += [f"[vantages.v{a + 1}]", f'region = "r{a}"', f'secret = "scale-bench-secret-of-v{a + 1}-0123"']
c += ["[health]", 'servers = ["http://127.0.0.1:9353"]', 'push_interval = "500ms"', 'staleness = "10s"',
      "[admin]", 'listen = "127.0.0.1:9353"']
open(f"{w}/failoverd.toml", "w").write("\n".join(c) + "\n")
print(f"{len(pools) - 1} steady pools of {per_pool}, {flappers} flapping endpoints, {len(pools)} records", file=sys.stderr)
PY

FLAPS=()
for i in $(seq 1 10); do FLAPS+=(--flap "127.2.0.$i:9001"); done
TOTAL=$((WARMUP + SECS + 30))
ip netns exec "$NS" taskset -c 1 "$SINK" --listen 0.0.0.0:9000 "${FLAPS[@]}" --period-ms 4000 --seconds "$TOTAL" 2> "$W/sink.log" &
PIDS+=($!)
ip netns exec "$NS" taskset -c 0 "$BIN" serve --config "$W/failoverd.toml" > "$W/server.log" 2>&1 &
SERVER=$!; PIDS+=($SERVER)
for a in $(seq 1 "$AGENTS"); do
  ip netns exec "$NS" taskset -c 1 "$BIN" probe --config "$W/failoverd.toml" --vantage "v$a" > "$W/agent-v$a.log" 2>&1 &
  PIDS+=($!)
done
metrics() { in_ns curl -s --max-time 5 http://127.0.0.1:9353/metrics || true; }
metric() { metrics | awk -v k="$1" 'index($0, k) == 1 {print $NF; exit}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
for _ in $(seq 1 600); do metric failoverd_ready | grep -q 1 && break; sleep 0.1; done
sleep "$WARMUP"
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks); b0=$(metric failoverd_report_bytes_total); r0=$(metric 'failoverd_reports_received_total{result="accepted"}')
s0=$(date +%s.%N)
sleep "$SECS"
t1=$(cpu_ticks); b1=$(metric failoverd_report_bytes_total); r1=$(metric 'failoverd_reports_received_total{result="accepted"}')
s1=$(date +%s.%N)
elapsed=$(echo "$s1 - $s0" | bc -l)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
p50=$(metric 'failoverd_decision_latency_recent_seconds{quantile="0.5"}')
p99=$(metric 'failoverd_decision_latency_recent_seconds{quantile="0.99"}')
count=$(metric failoverd_decision_latency_recent_seconds_count)
probes_ok=$(grep -c . "$W/sink.log" || true)
printf '| endpoints | agents | interval | server CPU %% of a core | RSS MiB | report KiB/s | reports/s | decisions | decision p50 ms | p99 ms |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
printf '| %d | %d | %s | %.2f | %.1f | %.1f | %.1f | %s | %.2f | %.2f |\n' \
  "$ENDPOINTS" "$AGENTS" "${INTERVAL:-1s}" \
  "$(echo "($t1 - $t0) * 100 / $hz / $elapsed" | bc -l)" \
  "$(echo "$rss / 1024" | bc -l)" \
  "$(echo "($b1 - $b0) / 1024 / $elapsed" | bc -l)" \
  "$(echo "($r1 - $r0) / $elapsed" | bc -l)" \
  "$count" "$(echo "${p50:-0} * 1000" | bc -l)" "$(echo "${p99:-0} * 1000" | bc -l)"
tail -n 2 "$W/sink.log" | sed 's/^/# /'
echo "# logs and config in $W ($probes_ok sink lines)"
