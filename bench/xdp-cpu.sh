#!/usr/bin/env bash
# usage: bench/xdp-cpu.sh [SECS=6]   (env ROUNDS=3; needs root)
# CPU per response, as ../shared/bench/cpu-per-query.sh measures it (utime+stime of the server's
# process group over responses received, dnsperf on the harness's mixed set), for four servers
# interleaved per round: Knot on sockets (the harness's peer), Knot with its own XDP mode on lo,
# failoverd with udp_io = "batched" and failoverd with udp_io = "xdp". Every XDP run needs
# net.ipv4.conf.lo.route_localnet and accept_local = 1 (start-failoverd.sh sets them); Knot
# leaves its XDP program on lo when it stops, so this script removes it after each Knot run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS=${1:-6}; ROUNDS=${ROUNDS:-3}
[ "$(id -u)" = 0 ] || { echo "xdp-cpu.sh needs root (XDP)" >&2; exit 1; }
cd "$ROOT/../shared/bench"; source peers/common.sh
export FAILOVERD_START="$ROOT/bench/start-failoverd.sh"

knot_xdp() { # PORT -> knotd with XDP on lo; prints its PID
  local port=$1 w=/tmp/bench-knot-xdp-$1 pid
  need_pkg knotd knot knot-dnsutils
  rm -rf "$w"; mkdir -p "$w/db"
  cp "$ZONE_SRC" "$w/bench.test.zone"
  for b in $BACKENDS; do echo "www.fo $FO_TTL IN A $b" >> "$w/bench.test.zone"; done
  cat > "$w/knot.conf" <<CONF
server:
    rundir: "$w"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
xdp:
    listen: lo@$port
    udp: on
log:
  - target: $w/knot.log
    any: info
database:
    storage: "$w/db"
template:
  - id: default
    storage: "$w"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test
    file: bench.test.zone
CONF
  setsid "${PIN[@]}" knotd -c "$w/knot.conf" > "$w/stdout.log" 2>&1 &
  pid=$!
  wait_ready "$port" || { echo "knot (XDP) failed to start, see $w" >&2; kill -- -$pid; exit 1; }
  echo $pid
}

ticks() { local s=0 p; for p in $(pgrep -g "$1"); do s=$((s + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $s; }
HZ=$(getconf CLK_TCK)
one() { # LABEL PORT START-COMMAND...
  local label=$1 port=$2 pid t0 t1 out; shift 2
  pid=$("$@" "$port"); ./run-qps.sh "$port" 1 >/dev/null
  t0=$(ticks "$pid"); out=$(./run-qps.sh "$port" "$SECS"); t1=$(ticks "$pid")
  stop_group "$pid"
  echo "$out" | awk -v r="$r" -v s="$label" -v dt=$((t1 - t0)) -v hz="$HZ" '
    /Queries completed:/ {c=$3} /Queries per second:/ {q=$4} /Average Latency/ {l=$4*1000}
    END {printf "| %d | %s | %.0f | %.3f | %.2f |\n", r, s, q, l, (dt/hz)*1e6/c}'
}

echo "| round | server | responses/s | avg latency ms | server CPU µs per response |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  one knot 5301 ./peers/knot.sh
  one knot-xdp 5311 knot_xdp; ip link set dev lo xdpgeneric off 2>/dev/null || true
  UDP_IO=batched one failoverd-batched 5305 ./peers/failoverd.sh
  UDP_IO=xdp one failoverd-xdp 5305 ./peers/failoverd.sh
done
