#!/usr/bin/env bash
# usage: bench/dnssec-cpu.sh [SECS=6]   (env ROUNDS=2, SHARED=/work/shared/bench, DNSPERF_OPTS)
# Server CPU µs per response on the mixed query set with DO=1 on every query (dnsperf -e -D),
# interleaved rounds in one run of: failoverd serving the zone unsigned, failoverd serving it
# signed (NSEC3, Ed25519: bench/start-failoverd-signed.sh), and Knot signing it itself
# (dnssec-signing: on, same algorithm and NSEC3 parameters: bench/peers/knot-signed.sh).
# Same method as ../shared/bench/cpu-per-query.sh (utime+stime of the server's process group
# over responses; server pinned to core 0, dnsperf to core 1). Build first: cargo build --release.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED=${SHARED:-/work/shared/bench}
SECS=${1:-6}; ROUNDS=${ROUNDS:-2}
cd "$SHARED"; source peers/common.sh
export DNSPERF_OPTS=${DNSPERF_OPTS:-"-c 4 -T 1 -q 200 -e -D"}
ticks() { local s=0 p; for p in $(pgrep -g "$1"); do s=$((s + $(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}' || echo 0))); done; echo $s; }
HZ=$(getconf CLK_TCK)
start() {
  case $1 in
    failoverd-unsigned) FAILOVERD_START=$ROOT/bench/start-failoverd.sh ./peers/failoverd.sh "$2" ;;
    failoverd-signed) FAILOVERD_START=$ROOT/bench/start-failoverd-signed.sh ./peers/failoverd.sh "$2" ;;
    knot-signed) SHARED=$SHARED "$ROOT/bench/peers/knot-signed.sh" "$2" ;;
  esac
}
echo "DNSPERF_OPTS=$DNSPERF_OPTS SECS=$SECS ROUNDS=$ROUNDS"
echo "| round | server | responses/s | server CPU % of 1 core | server CPU µs per response | avg response bytes |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do for s in failoverd-unsigned failoverd-signed knot-signed; do
  PORT=5391
  P=$(start $s $PORT); ./run-qps.sh "$PORT" 1 >/dev/null
  t0=$(ticks "$P"); OUT=$(./run-qps.sh "$PORT" "$SECS"); t1=$(ticks "$P")
  stop_group "$P"
  echo "$OUT" | awk -v r=$r -v s=$s -v dt=$((t1 - t0)) -v hz=$HZ -v secs=$SECS '
    /Queries completed:/ {c=$3} /Queries per second:/ {q=$4} /Average packet size:/ {sz=$7}
    END {printf "| %d | %s | %.0f | %.0f | %.2f | %s |\n", r, s, q, 100*dt/hz/secs, (dt/hz)*1e6/c, sz}'
done; done
