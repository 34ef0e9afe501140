#!/usr/bin/env bash
# usage: bench/partition-soak.sh [SECS=300]
# False failovers while one of three vantage points is partitioned: failoverd with three
# vantage points (v3 in a network namespace where no backend is reachable, so it reports
# everything down), two healthy TCP backends, and dig polling www.fo.bench.test every
# 100 ms for SECS seconds. Every poll whose answer is not both backends is a false
# failover. Needs root (ip netns).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS=${1:-300}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
W=${BENCH_WORK:-/tmp/failoverd-peerbench}
PORT=5399
rm -rf "$W"; cp -r "$SHARED" "$W"; chmod -R u+w "$W"
(cd "$ROOT" && cargo build --release --quiet)
cd "$W"; source peers/common.sh
BE=(); for b in 127.0.0.2 127.0.0.3; do setsid timeout $((SECS + 120)) python3 backend.py "$b" 8081 $((SECS + 120)) >/dev/null 2>&1 & BE+=($!); done
SRV=""
trap 'for p in "${BE[@]}"; do stop_group $p; done; [ -n "$SRV" ] && stop_group $SRV' EXIT
setsid env FO_PARTITION=v3 "$ROOT/bench/failover-cluster.sh" "$PORT" "$ZONE_SRC" "127.0.0.2 127.0.0.3" 8081 > /tmp/failoverd-partition.log 2>&1 &
SRV=$!
wait_ready "$PORT" || { echo "failoverd did not start"; cat /tmp/failoverd-partition.log; exit 1; }
ans() { dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 www.fo.bench.test A 2>/dev/null | sort | tr '\n' ' '; }
WANT="127.0.0.2 127.0.0.3 "
for i in $(seq 1 100); do [ "$(ans)" = "$WANT" ] && break; sleep 0.1; done
ADMIN=$(sed -n 's/.*admin \(http[^)]*\)).*/\1/p' /tmp/failoverd-partition.log | head -1)
for i in $(seq 1 100); do
  curl -s "$ADMIN/status" | grep -q '"name":"v3","fresh":true,"partitioned":true' && break; sleep 0.1
done
echo "v3 partitioned: $(curl -s "$ADMIN/metrics" | grep 'failoverd_vantage_partitioned{vantage="v3"}')"
polls=0; wrong=0; end=$(( $(date +%s) + SECS ))
while [ "$(date +%s)" -lt "$end" ]; do
  a=$(ans); polls=$((polls + 1))
  if [ "$a" != "$WANT" ]; then wrong=$((wrong + 1)); echo "$(date +%T.%N) false answer: '$a'"; fi
  sleep 0.1
done
echo "partition soak: ${SECS}s, $polls polls, $wrong answers missing a healthy backend (false failovers)"
curl -s "$ADMIN/metrics" | grep -E 'failoverd_vantage_(partitioned|fresh)|failoverd_endpoint_changes_total|failoverd_reports_received_total\{result="accepted"'
