#!/usr/bin/env bash
# usage: bench/failover.sh [REPS=5]          (env: SHARED_BENCH, BENCH_WORK)
# Failover time, kill → the DNS answer drops the backend, and restart → it is back, by
# ../shared/bench/failover.sh (poll every 100 ms, t0 taken before the kill), for gdnsd
# and PowerDNS at their fastest settings and failoverd with three vantage points
# (quorum 2, fall 2, rise 2, interval 200 ms, hold 0), all in one run. Prints medians.
#
# Two variants of the same method, both with t0 before the kill:
#   harness  — ../shared/bench/failover.sh as is. Its stop_group waits for the killed
#              backend's whole process group to disappear before polling starts; the
#              group keeps a zombie `timeout` for about a second, so every server's
#              "down" time includes ~1–1.8 s of the harness waiting.
#   prompt   — the same script with polling started right after the kill signal (the
#              group wait moved after detection): the time the answer takes to change.
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
sed 's/stop_group "$BE3"; d=$(poll 0 "$tk")/kill -TERM -- "-$BE3" 2>\/dev\/null; d=$(poll 0 "$tk"); stop_group "$BE3"/' \
  failover.sh > failover-prompt.sh
grep -q 'kill -TERM -- "-$BE3"' failover-prompt.sh || { echo "could not derive failover-prompt.sh" >&2; exit 1; }
chmod +x failover-prompt.sh
for variant in harness prompt; do
  script=./failover.sh; [ "$variant" = prompt ] && script=./failover-prompt.sh
  for peer in gdnsd pdns failoverd; do
    echo "## variant $variant"
    if [ "$peer" = failoverd ]; then
      FAILOVERD_START="$ROOT/bench/failover-cluster.sh" "$script" failoverd "$REPS"
    else
      "$script" "$peer" "$REPS"
    fi
  done
done 2>&1 | tee "$OUT"
echo
echo "| variant | server | down: median (min–max) s | up: median (min–max) s |"
echo "|---|---|---|---|"
awk '
  /^## variant / {variant=$3}
  /^# / {peer=variant " | " $2; sub(/:$/, "", peer)}
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
