#!/usr/bin/env bash
# usage: bench/failover.sh [REPS=5]          (env: SHARED_BENCH, BENCH_WORK)
# Failover time, kill → the DNS answer drops the backend, and restart → it is back, by
# ../shared/bench/failover.sh (poll every 100 ms, t0 taken before the kill), for gdnsd
# and PowerDNS at their fastest settings and failoverd with three vantage points
# (quorum 2, fall 2, rise 2, interval 200 ms, hold 0), all in one run. Prints medians.
# The shared harness SIGKILLs the backend and polls at once, so one method serves all.
# Env: PEERS (default "gdnsd pdns failoverd"), and failover-cluster.sh's FO_* knobs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REPS=${1:-5}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
W=${BENCH_WORK:-/tmp/failoverd-peerbench}
rm -rf "$W"; cp -r "$SHARED" "$W"; chmod -R u+w "$W"
(cd "$ROOT" && cargo build --release --quiet)
mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/failover-$(date +%Y%m%d-%H%M%S).txt"
cd "$W"
for peer in ${PEERS:-gdnsd pdns failoverd}; do
  if [ "$peer" = failoverd ]; then
    FAILOVERD_START="$ROOT/bench/failover-cluster.sh" ./failover.sh failoverd "$REPS"
  else
    ./failover.sh "$peer" "$REPS"
  fi
done 2>&1 | tee "$OUT"
echo
echo "| server | down: median (min–max) s | up: median (min–max) s |"
echo "|---|---|---|"
awk '
  /^# / {peer=$2; sub(/:$/, "", peer)}
  /^rep / {
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^down_detect_s=/) {split($i, a, "="); d[peer] = d[peer] " " a[2]}
      if ($i ~ /^up_detect_s=/) {split($i, a, "="); u[peer] = u[peer] " " a[2]}
    }
  }
  function stats(list,   n, v, i, j, t, med) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) {t = v[i]; v[i] = v[j]; v[j] = t}
    med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    return sprintf("%.2f (%.2f–%.2f)", med, v[1], v[n])
  }
  END { for (p in d) printf "| %s | %s | %s |\n", p, stats(d[p]), stats(u[p]) }
' "$OUT"
echo "raw: $OUT"
