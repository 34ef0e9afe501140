#!/usr/bin/env bash
# usage: bench/run.sh SUITE...      SUITE = cpu | nxdomain | compare | memory | soak | rrl | tcp | abuse | all
#
# One entry point for failoverd's peer benchmarks (see bench/README.md). Copies the read-only
# shared harness to a scratch directory, builds failoverd (release) once, snapshots the binary,
# then runs the named suites. Each suite prints markdown tables and leaves its raw output in
# bench/results/<timestamp>/. Every figure worth quoting is a ratio to a peer measured in the
# same interleaved run: the machine is shared and noisy, absolutes are not comparable.
#
# Env (defaults in brackets):
#   SHARED_BENCH [/work/shared/bench]   the peer harness (read-only, copied)
#   PEERBENCH    [/tmp/failoverd-bench-harness]  scratch copy (recreated each run, locked)
#   PORT_BASE    [5400]  the scratch copy's server ports are moved from 5300+i to PORT_BASE+i
#                (knot +1, gdnsd +3, failoverd +5; start-up loop +97/+98) so a concurrent user of
#                the shared harness on its own ports cannot answer for our servers. 5300 = as shipped
#   RESULTS      [bench/results]        where <timestamp>/ goes
#   FAILOVERD_BIN                       use this binary, no build
#   FAILOVERD_REV                       build this commit from a clean export (git archive) in
#                                       BENCH_SRC [/tmp/failoverd-bench-src] with CARGO_TARGET_DIR
#                                       BENCH_TARGET [/tmp/failoverd-bench-target], so in-flight
#                                       edits in the working tree are not measured
#   (neither)                           cargo build --release in the working tree
#   SECS     harness run length: cpu/nxdomain per server [6], compare saturation run [10]
#   ROUNDS   interleaved rounds: cpu [2], nxdomain [2], compare [3]
#   MEM_N [200000]  MEM_BIG_N [1000000] ("" or 0 skips the big zone)  STARTUP_REPS [5]
#   SOAK_SECS [300]  SOAK_EVERY [10] (RSS sample period, s)
#   rrl: failoverd with RRL off vs on (rate RRL_BENCH_RATE [1000000], so nothing is limited and the
#        lookup cost is what is measured), ROUNDS [3] interleaved, SECS [6]: server CPU µs per response
#   tcp: dnsperf -m tcp, Knot vs failoverd, ROUNDS [3] interleaved, SECS [6]: QPS and CPU µs per response
#   abuse: ABUSE_N [200] abusive TCP connections (idle / length prefix only / half a message /
#        answered then silent), how many each server still holds after ABUSE_WAIT [30] s
#   DNSPERF_OPTS     passed through to the harness (the cpu suite sets its own)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
PEERBENCH=${PEERBENCH:-/tmp/failoverd-bench-harness}
PORT_BASE=${PORT_BASE:-5400}
RESULTS=${RESULTS:-$HERE/results}
MEM_N=${MEM_N:-200000}; MEM_BIG_N=${MEM_BIG_N-1000000}; STARTUP_REPS=${STARTUP_REPS:-5}
MEM_SIZES="$MEM_N"; [ -n "$MEM_BIG_N" ] && [ "$MEM_BIG_N" != 0 ] && MEM_SIZES="$MEM_SIZES $MEM_BIG_N"
SOAK_SECS=${SOAK_SECS:-300}; SOAK_EVERY=${SOAK_EVERY:-10}
ALL_SUITES="cpu nxdomain compare memory soak"
[[ "$PORT_BASE" =~ ^[1-9][0-9]*00$ ]] && [ "$PORT_BASE" -ge 1100 ] && [ "$PORT_BASE" -le 65000 ] \
  || { echo "run.sh: PORT_BASE must be a multiple of 100 in 1100..65000" >&2; exit 2; }
declare -A PORTOF=([knot]=$((PORT_BASE + 1)) [gdnsd]=$((PORT_BASE + 3)) [failoverd]=$((PORT_BASE + 5)))
ST_PORT_KNOT=$((PORT_BASE + 97)); ST_PORT_FO=$((PORT_BASE + 98))   # start-up loop (servers started directly)
PORTS="${PORTOF[knot]} ${PORTOF[gdnsd]} ${PORTOF[failoverd]} $ST_PORT_KNOT $ST_PORT_FO"

usage() { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
[ $# -ge 1 ] || usage
SUITES=()
for a in "$@"; do
  case "$a" in
    all) SUITES+=($ALL_SUITES) ;;
    cpu|nxdomain|compare|memory|soak|rrl|tcp|abuse) SUITES+=("$a") ;;
    *) usage ;;
  esac
done

# ---------------------------------------------------------------- cleanup
# Every process this run starts inherits FAILOVERD_BENCH_RUN. On exit we stop the servers still
# listening on the benchmark ports whose environment carries this run's marker (nothing else).
export FAILOVERD_BENCH_RUN="$$.$(date +%s%N)"
port_pids() { ss -Hlnup 2>/dev/null | awk -v p=":$1" '$4 ~ p"$"' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
mine() { tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qx "FAILOVERD_BENCH_RUN=$FAILOVERD_BENCH_RUN"; }
stop_pid() {  # stop a server: its process group when it leads one (setsid), else the process
  local p=$1 pg i
  pg=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ') || return 0
  if [ "$pg" = "$p" ]; then kill -TERM -- "-$p" 2>/dev/null || true; else kill -TERM "$p" 2>/dev/null || true; fi
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  if [ "$pg" = "$p" ]; then kill -KILL -- "-$p" 2>/dev/null || true; else kill -KILL "$p" 2>/dev/null || true; fi
}
cleanup() {
  local port p
  [ -n "${LOCKED:-}" ] && [ "$(cat "$LOCK/pid" 2>/dev/null)" = $$ ] && rm -rf "$LOCK"
  for port in $PORTS; do
    for p in $(port_pids "$port"); do mine "$p" && { log "cleanup: stopping pid $p (port $port)"; stop_pid "$p"; }; done
  done
}
# on INT/TERM also stop what this script started and is still running (harness script,
# timeout, dnsperf...): its descendants, by pid. (bash runs the trap once the current
# foreground command returns; every such command is bounded by `timeout`.)
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
on_signal() {
  local p pids; pids=$(descendants $$)
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  exit 130
}
trap cleanup EXIT
trap on_signal INT TERM
# run a harness command bounded in time (the harness's own loops are bounded in count);
# --foreground keeps it in our process group so Ctrl-C reaches it
bounded() { local t=$1; shift; timeout --foreground -k 15 "$t" "$@"; }

# ---------------------------------------------------------------- setup
for port in $PORTS; do
  [ -z "$(port_pids "$port")" ] || die "port $port is busy ($(ss -Hlnup | grep ":$port ")): another benchmark running?"
done
command -v python3 >/dev/null || die "python3 needed"
TS=$(date +%Y%m%d-%H%M%S); OUT="$RESULTS/$TS"; mkdir -p "$OUT"
log "results in $OUT"

# the shared harness is read-only and writes zones/queries/results next to itself: copy it
# lock the scratch directory (a directory holding our pid; no fd for children to inherit)
LOCK="$PEERBENCH.lock"
if ! mkdir "$LOCK" 2>/dev/null; then
  op=$(cat "$LOCK/pid" 2>/dev/null || true)
  [ -n "$op" ] && kill -0 "$op" 2>/dev/null && die "another run.sh (pid $op) is using $PEERBENCH"
  rm -rf "$LOCK"; mkdir "$LOCK" || die "cannot lock $PEERBENCH"
fi
echo $$ > "$LOCK/pid"; LOCKED=1
if [ -e "$PEERBENCH" ] && [ ! -e "$PEERBENCH/.failoverd-peerbench" ] && [ -n "$(ls -A "$PEERBENCH")" ]; then
  die "$PEERBENCH exists and was not made by run.sh; set PEERBENCH to another directory"
fi
rm -rf "$PEERBENCH"; cp -r "$SHARED_BENCH" "$PEERBENCH"; chmod -R u+w "$PEERBENCH"; touch "$PEERBENCH/.failoverd-peerbench"
# move the servers' ports (the harness hard-codes 5300+i in each script's PORTOF)
PORT_BASE=$PORT_BASE perl -pi -e 's/\[(echo|knot|nsd|gdnsd|pdns|failoverd)\]=53(0\d)/"[$1]=".($ENV{PORT_BASE}+$2)/ge' "$PEERBENCH"/*.sh
for f in compare.sh cpu-per-query.sh memory.sh; do
  grep -q "\[failoverd\]=${PORTOF[failoverd]}" "$PEERBENCH/$f" || die "could not move the ports in $f"
done
mkdir -p "$PEERBENCH/bin" "$OUT/failoverd-logs"
(cd "$PEERBENCH" && mkdir -p zones queries && python3 gen-data.py >/dev/null)

# build once, then snapshot the binary: a concurrent rebuild in the tree must not swap it mid-run
if [ -n "${FAILOVERD_BIN:-}" ]; then
  SRC_BIN=$FAILOVERD_BIN; PROV="given binary $FAILOVERD_BIN"
elif [ -n "${FAILOVERD_REV:-}" ]; then
  REV=$(git -C "$ROOT" rev-parse --verify "$FAILOVERD_REV^{commit}") || die "no commit $FAILOVERD_REV"
  BSRC=${BENCH_SRC:-/tmp/failoverd-bench-src}; rm -rf "$BSRC"; mkdir -p "$BSRC"
  git -C "$ROOT" archive "$REV" | tar -x -C "$BSRC"
  log "building $REV (clean export in $BSRC)"
  (cd "$BSRC" && CARGO_TARGET_DIR=${BENCH_TARGET:-/tmp/failoverd-bench-target} cargo build --release --locked --bin failoverd) >&2
  SRC_BIN=${BENCH_TARGET:-/tmp/failoverd-bench-target}/release/failoverd; PROV="commit $REV (clean export)"
else
  log "cargo build --release in $ROOT"
  (cd "$ROOT" && cargo build --release --bin failoverd) >&2
  SRC_BIN=$ROOT/target/release/failoverd
  DIRTY=$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock | wc -l)
  PROV="working tree at $(git -C "$ROOT" rev-parse --short HEAD), $DIRTY uncommitted file(s) under src/ Cargo.*"
fi
[ -x "$SRC_BIN" ] || die "no binary $SRC_BIN"
cp "$SRC_BIN" "$PEERBENCH/bin/failoverd"
export FAILOVERD_BIN="$PEERBENCH/bin/failoverd"
export FAILOVERD_START="$HERE/start-failoverd.sh"
export FAILOVERD_LOG_DIR="$OUT/failoverd-logs"     # start-failoverd.sh: one log file per start
{
  echo "date: $(date -Is)"; echo "host: $(uname -srm), $(nproc) cores"
  echo "failoverd: $PROV, sha256 $(sha256sum "$FAILOVERD_BIN" | cut -c1-16)"
  echo "peers: knot $(knotd -V 2>/dev/null | awk '{print $NF}'), gdnsd $(gdnsd -V 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')"
  echo "suites: ${SUITES[*]}"; echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt" >&2
cd "$PEERBENCH"; source peers/common.sh

# ---------------------------------------------------------------- helpers
# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (!NR) {print "nan"; exit}; print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# rows "| round | server | rps | cpu% | µs |" of cpu-per-query.sh -> "round server rps cpu us"
# A run is valid only if the server we started did the work: one that could not bind (another
# process on the port answered in its place) shows ~0 % CPU. Such rows get µs = "invalid".
MIN_CPU=10
cpu_rows() { awk -F'|' -v min=$MIN_CPU '/^\| *[0-9]+ *\|/ {gsub(/ /,"",$3); us=$6+0; if ($5+0 < min || us <= 0) us="invalid";
  printf "%d\t%s\t%s\t%s\t%s\n", $2, $3, $4+0, $5+0, us}'; }
# awk helpers for tables over such rows: f(x) formats a µs figure, q(a,b) a ratio ("–" if either is missing/invalid)
AWK_FMT='function ok(x) {return x != "" && x != "invalid" && x+0 > 0}
  function f(x) {return ok(x) ? sprintf("%.2f", x) : (x == "" ? "–" : "invalid")}
  function q(a,b) {return (ok(a) && ok(b)) ? sprintf("%.2f", a/b) : "–"}'
# scan the failoverd logs written since the marker file for warnings/errors
log_check() {  # log_check SUITE MARKER
  local f n=0 c
  for f in $(find "$FAILOVERD_LOG_DIR" -type f -newer "$2" 2>/dev/null | sort); do
    c=$(grep -cE ' (WARN|ERROR) |panic' "$f" || true); n=$((n + c))
    [ "$c" -gt 0 ] && { echo "  $(basename "$f"): $c warning/error line(s), first: $(grep -m1 -E ' (WARN|ERROR) |panic' "$f" | cut -c1-200)"; }
  done
  echo "failoverd log check ($1): $n warning/error line(s) in $(find "$FAILOVERD_LOG_DIR" -type f -newer "$2" | wc -l) start(s)"
  c=$(find "$FAILOVERD_LOG_DIR" -type f -newer "$2" -exec grep -l 'cannot listen\|Address already in use' {} + 2>/dev/null | wc -l || true)
  [ "$c" -eq 0 ] || echo "**INVALID: $c failoverd start(s) could not bind their port; another process answered in their place**"
}
suite_start() { SUITE=$1; log "suite $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"; touch "$OUT/.start-$1"; sleep 0.01; }

# ---------------------------------------------------------------- suites
# median over rounds of failoverd µs ÷ PEER µs for one query set of cpu.tsv
ratio_median() {
  awk -F'\t' -v l="$1" -v p="$2" "$AWK_FMT"'
    $1==l {u[$2 FS $3]=$6} END {for (k in u) {split(k,a,FS); if (a[2]=="failoverd" && ok(u[k]) && ok(u[a[1] FS p])) printf "%.4f\n", u[k]/u[a[1] FS p]}}' "$OUT/cpu.tsv" \
    | median | awk '{printf ($1 == "nan") ? "–" : "%.2f", $1}'
}
suite_cpu() {
  local secs=${SECS:-6} rounds=${ROUNDS:-2} t label opts
  t=$(( rounds * 3 * (secs + 45) + 60 ))
  : > "$OUT/cpu.tsv"
  for label in mixed edns; do
    opts="-c 4 -T 1 -q 200"; [ $label = edns ] && opts="$opts -e"
    log "cpu-per-query.sh, $label queries (DNSPERF_OPTS=\"$opts\")"
    DNSPERF_OPTS="$opts" SERVERS="knot gdnsd failoverd" ROUNDS=$rounds bounded $t ./cpu-per-query.sh "$secs" \
      2> >(tee -a "$OUT/cpu-$label.stderr" >&2) | tee "$OUT/cpu-$label.md"
    cpu_rows < "$OUT/cpu-$label.md" | sed "s/^/$label\t/" >> "$OUT/cpu.tsv"
  done
  {
    echo; echo "### Server CPU µs per response, failoverd ÷ peers (same interleaved run, ${secs} s per server, $rounds rounds)"; echo
    echo "| query set | round | Knot µs | gdnsd µs | failoverd µs | failoverd ÷ Knot | failoverd ÷ gdnsd |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' "$AWK_FMT"'
      {u[$1 FS $2 FS $3]=$6; if (!seen[$1 FS $2]++) k[++n]=$1 FS $2}
      END {for (i=1;i<=n;i++) {split(k[i],a,FS); kn=u[k[i] FS "knot"]; gd=u[k[i] FS "gdnsd"]; fo=u[k[i] FS "failoverd"];
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", (a[1]=="edns"?"mixed + EDNS":"mixed"), a[2], f(kn), f(gd), f(fo), q(fo,kn), q(fo,gd)}}' "$OUT/cpu.tsv"
    for label in mixed edns; do
      echo "| $([ $label = edns ] && echo "mixed + EDNS" || echo mixed) | **median** | | | | **$(ratio_median $label knot)** | **$(ratio_median $label gdnsd)** |"
    done
    echo; log_check cpu "$OUT/.start-cpu"
  } | tee "$OUT/cpu-summary.md"
}

suite_nxdomain() {
  local secs=${SECS:-6} rounds=${ROUNDS:-2} t r q P
  grep -E '^nx[0-9]+\.bench\.test A$' queries/mixed.txt > queries/nx.txt
  grep -E '^h[0-9]+\.bench\.test A$' queries/mixed.txt > queries/hits.txt
  log "query files: $(wc -l < queries/nx.txt) NXDOMAIN, $(wc -l < queries/hits.txt) hits (from queries/mixed.txt)"
  # what the server actually answers to each file (dnsperf's response-code breakdown, 1 s each)
  for s in knot failoverd; do
    P=$(./peers/$s.sh "${PORTOF[$s]}")
    for q in hits nx; do
      echo "$s $q: $(QFILE=queries/$q.txt bounded 40 ./run-qps.sh "${PORTOF[$s]}" 1 | grep 'Response codes' | sed 's/.*codes: *//')"
    done
    stop_group "$P"
  done | tee "$OUT/nxdomain-rcodes.txt"
  t=$(( 2 * (secs + 45) + 30 ))
  : > "$OUT/nxdomain.tsv"
  for r in $(seq 1 "$rounds"); do
    for q in hits nx; do
      log "round $r/$rounds: $q"
      QFILE=queries/$q.txt SERVERS="knot failoverd" ROUNDS=1 bounded $t ./cpu-per-query.sh "$secs" \
        2> >(tee -a "$OUT/nxdomain.stderr" >&2) | tee -a "$OUT/nxdomain-raw.md" | cpu_rows | awk -v r=$r -v q=$q -F'\t' -v OFS='\t' '{$1=r; print q, $0}' >> "$OUT/nxdomain.tsv"
    done
  done
  {
    echo; echo "### NXDOMAIN vs hit cost: server CPU µs per response (${secs} s per run, $rounds interleaved rounds)"; echo
    echo "| round | Knot hit | Knot NXDOMAIN | Knot NX ÷ hit | failoverd hit | failoverd NXDOMAIN | **failoverd NX ÷ hit** | failoverd NX ÷ Knot NX |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' "$AWK_FMT"'
      function med(a, n,   i,j,t) {for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (a[j] < a[i]) {t=a[i]; a[i]=a[j]; a[j]=t}
        return n ? sprintf("%.2f", (n%2) ? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2) : "–"}
      {u[$1 FS $2 FS $3]=$6; if ($2>n) n=$2}
      END {for (r=1;r<=n;r++) {kh=u["hits" FS r FS "knot"]; kx=u["nx" FS r FS "knot"]; fh=u["hits" FS r FS "failoverd"]; fx=u["nx" FS r FS "failoverd"];
          printf "| %d | %s | %s | %s | %s | %s | **%s** | %s |\n", r, f(kh), f(kx), q(kx,kh), f(fh), f(fx), q(fx,fh), q(fx,kx)
          if (ok(kx) && ok(kh)) a1[++n1]=kx/kh; if (ok(fx) && ok(fh)) a2[++n2]=fx/fh; if (ok(fx) && ok(kx)) a3[++n3]=fx/kx}
        printf "| **median** | | | %s | | | **%s** | %s |\n", med(a1,n1), med(a2,n2), med(a3,n3)}' "$OUT/nxdomain.tsv"
    echo; echo "response codes (1 s dnsperf run per file):"; sed 's/^/    /' "$OUT/nxdomain-rcodes.txt"
    echo; log_check nxdomain "$OUT/.start-nxdomain"
  } | tee "$OUT/nxdomain-summary.md"
}

suite_compare() {
  local secs=${SECS:-10} rounds=${ROUNDS:-3} t tsv
  t=$(( rounds * 3 * (secs + 2 + ${FIXED_SECS:-5} + 45) + 60 ))
  SERVERS="knot gdnsd failoverd" ROUNDS=$rounds SECS=$secs bounded $t ./compare.sh \
    2> >(tee "$OUT/compare.stderr" >&2) | tee "$OUT/compare.md"
  tsv=$(sed -n 's/^raw: //p' "$OUT/compare.md"); cp "$tsv" "$OUT/compare.tsv"
  {
    echo; echo "### failoverd ÷ Knot, per round (QPS: higher is better, client-bound above ~100k; latency: lower is better)"; echo
    echo "| round | QPS ratio | latency @saturation ratio | latency @${FIXED_QPS:-20000} qps ratio | peak RSS ratio | failoverd lost (sat / fixed) | Knot lost (sat / fixed) |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' 'NR>1 {for (i=3;i<=10;i++) v[$1 FS $2 FS i]=$i; if ($1>n) n=$1}
      function q(a,b) {return b ? a/b : 0}
      END {for (r=1;r<=n;r++) {k=r FS "knot" FS; f=r FS "failoverd" FS;
        if (!(v[f 9] > 0 && v[k 9] > 0)) {printf "| %d | invalid: a server was gone when RSS was read (did not bind? port collision?) | | | | | |\n", r; continue}
        printf "| %d | %.2f | %.2f | %.2f | %.2f | %s / %s | %s / %s |\n", r, q(v[f 3],v[k 3]), q(v[f 4],v[k 4]), q(v[f 7],v[k 7]), q(v[f 10],v[k 10]), v[f 6], v[f 8], v[k 6], v[k 8]}}' "$OUT/compare.tsv"
    echo; log_check compare "$OUT/.start-compare"
  } | tee "$OUT/compare-summary.md"
}

# start-up: process start -> first answer, servers started directly (no script overhead), pinned
# to the server core, the poller on the client core; knot and failoverd interleaved per repetition
startup_times() {  # startup_times ZONE_FILE LABEL
  local zone=$1 label=$2 cfg kd i
  cfg=$(FAILOVERD_CONFIG_ONLY=1 "$FAILOVERD_START" "$ST_PORT_FO" "$zone" "" 8081)
  kd=/tmp/bench-knot-startup-$ST_PORT_KNOT; rm -rf "$kd"; mkdir -p "$kd/db"; cp "$zone" "$kd/bench.test.zone"
  cat > "$kd/knot.conf" <<CONF
server:
    rundir: "$kd"
    listen: 127.0.0.1@$ST_PORT_KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: $kd/knot.log
    any: info
database:
    storage: "$kd/db"
template:
  - id: default
    storage: "$kd"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test
    file: bench.test.zone
CONF
  for i in $(seq 1 "$STARTUP_REPS"); do
    { python3 "$HERE/startup-time.py" "$ST_PORT_KNOT" 1 bench.test "$kd/stdout.log" -- "${PIN[@]}" knotd -c "$kd/knot.conf" \
        || log "start-up: knot, $label zone, rep $i failed (see $kd/knot.log)"; } \
      | awk -v l="$label" -v i=$i -F'\t' -v OFS='\t' '{print l, i, "knot", $2, $3}'
    { NO_COLOR=1 python3 "$HERE/startup-time.py" "$ST_PORT_FO" 1 bench.test "$FAILOVERD_LOG_DIR/startup-$label.log" -- "${PIN[@]}" "$FAILOVERD_BIN" serve --config "$cfg" \
        || log "start-up: failoverd, $label zone, rep $i failed (see $FAILOVERD_LOG_DIR/startup-$label.log)"; } \
      | awk -v l="$label" -v i=$i -F'\t' -v OFS='\t' '{print l, i, "failoverd", $2, $3}'
  done
}

suite_memory() {
  local n
  : > "$OUT/memory.md"
  for n in $MEM_SIZES; do
    log "memory.sh $n (knot failoverd)"
    SERVERS="knot failoverd" bounded 900 ./memory.sh "$n" 2> >(tee -a "$OUT/memory.stderr" >&2) | tee -a "$OUT/memory.md"
  done
  log "start-up time loop: $STARTUP_REPS reps per zone, knot and failoverd interleaved"
  : > "$OUT/startup.tsv"
  startup_times "$PEERBENCH/zones/bench.test.zone" 10k >> "$OUT/startup.tsv"
  for n in $MEM_SIZES; do
    startup_times "/tmp/bench-zone-$n.zone" "$n" >> "$OUT/startup.tsv"
  done
  {
    echo; echo "### Memory: failoverd ÷ Knot (from memory.sh above)"; echo
    echo "| zone A records | RSS after load ratio | peak RSS ratio | load time ratio (harness, incl. script overhead) |"
    echo "|---|---|---|---|"
    awk -F'|' '/^\| (knot|failoverd) / {gsub(/ /,"",$2); v[$3+0 FS $2 FS "t"]=$4; v[$3+0 FS $2 FS "r"]=$5; v[$3+0 FS $2 FS "h"]=$6; if (!s[$3+0]++) o[++n]=$3+0}
      function q(a,b) {return b ? sprintf("%.2f", a/b) : "-"}
      END {for (i=1;i<=n;i++) {z=o[i]; printf "| %d | %s | %s | %s |\n", z, q(v[z FS "failoverd" FS "r"],v[z FS "knot" FS "r"]), q(v[z FS "failoverd" FS "h"],v[z FS "knot" FS "h"]), q(v[z FS "failoverd" FS "t"],v[z FS "knot" FS "t"])}}' "$OUT/memory.md"
    echo; echo "### Start-up: process start → first answer (SOA polled every 0.5 ms), median of $STARTUP_REPS"; echo
    echo "| zone | Knot ms | failoverd ms (min–max) | failoverd ÷ Knot | failoverd RSS at first answer MiB | Knot RSS MiB |"
    echo "|---|---|---|---|---|---|"
    for z in $(cut -f1 "$OUT/startup.tsv" | uniq); do
      kn=$(awk -F'\t' -v z="$z" '$1==z && $3=="knot" {print $4}' "$OUT/startup.tsv" | median)
      fo=$(awk -F'\t' -v z="$z" '$1==z && $3=="failoverd" {print $4}' "$OUT/startup.tsv" | median)
      mm=$(awk -F'\t' -v z="$z" '$1==z && $3=="failoverd" {print $4}' "$OUT/startup.tsv" | sort -g | awk 'NR==1 {a=$1} {b=$1} END {print a "–" b}')
      fr=$(awk -F'\t' -v z="$z" '$1==z && $3=="failoverd" {print $5}' "$OUT/startup.tsv" | median)
      kr=$(awk -F'\t' -v z="$z" '$1==z && $3=="knot" {print $5}' "$OUT/startup.tsv" | median)
      awk -v z="$z" -v kn="$kn" -v fo="$fo" -v mm="$mm" -v fr="$fr" -v kr="$kr" 'BEGIN {printf "| %s | %.1f | %.1f (%s) | %.2f | %.1f | %.1f |\n", z, kn, fo, mm, (kn?fo/kn:0), fr/1024, kr/1024}'
    done
    echo; log_check memory "$OUT/.start-memory"
  } | tee "$OUT/memory-summary.md"
}

suite_soak() {
  local port=${PORTOF[failoverd]} P L i t0 now n=0 rss hwm fds thr cpu0 cpu1
  P=$(./peers/failoverd.sh "$port")
  sample() { rss=$(group_rss_kb "$P"); hwm=$(group_hwm_kb "$P"); fds=$(ls /proc/$P/fd 2>/dev/null | wc -l); thr=$(ls /proc/$P/task 2>/dev/null | wc -l)
             printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$1" "$2" "$rss" "$hwm" "$fds" "$thr"; }
  echo -e "t_s\tphase\trss_kb\thwm_kb\tfds\tthreads" > "$OUT/soak.tsv"
  sample 0 idle >> "$OUT/soak.tsv"
  log "soak: failoverd alone, saturating dnsperf for $SOAK_SECS s, RSS every $SOAK_EVERY s"
  bounded $((SOAK_SECS + 60)) ./run-qps.sh "$port" "$SOAK_SECS" > "$OUT/soak-dnsperf.txt" 2>&1 & L=$!
  t0=$(date +%s)
  for i in $(seq 1 $(( SOAK_SECS / SOAK_EVERY + 6 ))); do       # bounded: the run plus a minute
    sleep "$SOAK_EVERY" & wait $! || true      # (wait, unlike sleep, lets a signal in at once)
    now=$(( $(date +%s) - t0 ))
    if kill -0 "$L" 2>/dev/null; then sample "$now" load >> "$OUT/soak.tsv"; tail -1 "$OUT/soak.tsv" >&2; else break; fi
  done
  wait "$L" || log "soak: run-qps.sh exited with $?"
  sample "$(( $(date +%s) - t0 ))" after >> "$OUT/soak.tsv"
  stop_group "$P"
  {
    echo; echo "### Soak: failoverd alone, ${SOAK_SECS} s saturating load, RSS sampled every ${SOAK_EVERY} s"; echo
    echo "| t s | phase | RSS MiB | VmHWM MiB | fds | threads |"; echo "|---|---|---|---|---|---|"
    awk -F'\t' 'NR>1 {printf "| %s | %s | %.1f | %.1f | %s | %s |\n", $1, $2, $3/1024, $4/1024, $5, $6}' "$OUT/soak.tsv"
    echo
    awk -F'\t' 'NR>1 && $2=="load" {n++; if (n==1) {first=$3; mn=$3; mx=$3}; if ($3<mn) mn=$3; if ($3>mx) mx=$3; last=$3}
      END {if (!n) {print "no samples under load"; exit};
        printf "under load (%d samples): min %.1f MiB, max %.1f MiB, first %.1f → last %.1f MiB (%+.1f MiB, %+.1f%%): %s\n", n, mn/1024, mx/1024, first/1024, last/1024, (last-first)/1024, 100*(last-first)/first,
          ((mx-mn) <= 1024 || (mx-mn) <= 0.02*mn) ? "flat" : "NOT FLAT"}' "$OUT/soak.tsv"
    echo "dnsperf: $(grep '^RESULT' "$OUT/soak-dnsperf.txt" || echo 'no RESULT line')"
    grep 'Response codes' "$OUT/soak-dnsperf.txt" | sed 's/^ */dnsperf /'
    echo; log_check soak "$OUT/.start-soak"
  } | tee "$OUT/soak-summary.md"
}

# one measured run in cpu-per-query.sh's row format: cpu_run ROUND LABEL PID PORT SECS [dnsperf args]
HZ=$(getconf CLK_TCK)
group_ticks() { local s=0 p; for p in $(pgrep -g "$1"); do s=$((s + $(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}' || echo 0))); done; echo $s; }
cpu_run() {
  local r=$1 label=$2 P=$3 port=$4 secs=$5 t0 t1 out; shift 5
  bounded 60 ./run-qps.sh "$port" 1 "$@" >/dev/null
  t0=$(group_ticks "$P"); out=$(bounded $((secs + 45)) ./run-qps.sh "$port" "$secs" "$@"); t1=$(group_ticks "$P")
  echo "$out" > "$OUT/$SUITE-$label-$r.txt"
  echo "$out" | awk -v r="$r" -v s="$label" -v dt=$((t1 - t0)) -v hz="$HZ" -v secs="$secs" '
    /Queries completed:/ {c=$3} /Queries per second:/ {q=$4}
    END {printf "| %d | %s | %.0f | %.0f | %.2f |\n", r, s, q, 100*dt/hz/secs, (c ? (dt/hz)*1e6/c : 0)}'
}
# summary table of rows "round label rps cpu us" in $1 comparing label $3 against $2
pair_table() {
  awk -F'\t' -v a="$2" -v b="$3" "$AWK_FMT"'
    function med(x, n,   i,j,t) {for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (x[j] < x[i]) {t=x[i]; x[i]=x[j]; x[j]=t}
      return n ? sprintf("%.2f", (n%2) ? x[(n+1)/2] : (x[n/2]+x[n/2+1])/2) : "–"}
    {u[$1 FS $2]=$5; rps[$1 FS $2]=$3; if ($1>n) n=$1}
    END {for (r=1;r<=n;r++) {ua=u[r FS a]; ub=u[r FS b];
        printf "| %d | %.0f | %s | %.0f | %s | **%s** |\n", r, rps[r FS a], f(ua), rps[r FS b], f(ub), q(ub,ua)
        if (ok(ua) && ok(ub)) x[++m]=ub/ua}
      printf "| **median** | | | | | **%s** |\n", med(x,m)}' "$1"
}

suite_rrl() {
  local secs=${SECS:-6} rounds=${ROUNDS:-3} r mode P port=${PORTOF[failoverd]}
  : > "$OUT/rrl.tsv"
  for r in $(seq 1 "$rounds"); do for mode in off on; do
    if [ $mode = on ]; then P=$(RRL_RATE=${RRL_BENCH_RATE:-1000000} ./peers/failoverd.sh "$port"); else P=$(./peers/failoverd.sh "$port"); fi
    cpu_run "$r" "rrl-$mode" "$P" "$port" "$secs" | tee -a "$OUT/rrl.md" | cpu_rows >> "$OUT/rrl.tsv"
    stop_group "$P"
  done; done
  {
    echo; echo "### RRL cost: failoverd server CPU µs per response, RRL off vs on (rate ${RRL_BENCH_RATE:-1000000}/s: nothing limited), ${secs} s per run, $rounds interleaved rounds"; echo
    echo "| round | off responses/s | off µs | on responses/s | on µs | on ÷ off |"; echo "|---|---|---|---|---|---|"
    pair_table "$OUT/rrl.tsv" rrl-off rrl-on
    echo; echo "truncated or lost responses with RRL on (should be 0):"
    grep -h 'Queries lost\|Response codes' "$OUT"/rrl-rrl-on-*.txt | sed 's/^ */    /'
    echo; log_check rrl "$OUT/.start-rrl"
  } | tee "$OUT/rrl-summary.md"
}

suite_tcp() {
  local secs=${SECS:-6} rounds=${ROUNDS:-3} r s P
  : > "$OUT/tcp.tsv"
  for r in $(seq 1 "$rounds"); do for s in knot failoverd; do
    P=$(./peers/$s.sh "${PORTOF[$s]}")
    cpu_run "$r" "$s" "$P" "${PORTOF[$s]}" "$secs" -m tcp | tee -a "$OUT/tcp.md" | cpu_rows >> "$OUT/tcp.tsv"
    stop_group "$P"
  done; done
  {
    echo; echo "### DNS over TCP (dnsperf -m tcp, ${DNSPERF_OPTS:--c 4 -T 1 -q 200}), ${secs} s per run, $rounds interleaved rounds"; echo
    echo "| round | Knot QPS | Knot µs/response | failoverd QPS | failoverd µs/response | failoverd ÷ Knot µs |"; echo "|---|---|---|---|---|---|"
    pair_table "$OUT/tcp.tsv" knot failoverd
    echo; grep -H 'Queries lost\|Response codes' "$OUT"/tcp-*-1.txt | sed "s|$OUT/||; s/^/    /"
    echo; log_check tcp "$OUT/.start-tcp"
  } | tee "$OUT/tcp-summary.md"
}

suite_abuse() {
  local n=${ABUSE_N:-200} wait=${ABUSE_WAIT:-30} s P
  : > "$OUT/abuse.txt"
  for s in knot failoverd; do
    P=$(./peers/$s.sh "${PORTOF[$s]}")
    echo "$s $(bounded $((wait + 60)) python3 "$HERE/tcp-abuse.py" 127.0.0.1 "${PORTOF[$s]}" "$n" "$wait" | grep RESULT)" | tee -a "$OUT/abuse.txt"
    stop_group "$P"
  done
  {
    echo; echo "### Abusive TCP connections still open after ${wait} s ($n opened; failoverd tcp_idle_timeout default 10 s, Knot defaults)"; echo
    echo "| server | opened | still open | idle | length prefix only | half a message | answered, then silent |"; echo "|---|---|---|---|---|---|---|"
    awk '{for (i=3;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, v["opened"], v["open_after"], v["idle"], v["prefix"], v["half"], v["answered"]}' "$OUT/abuse.txt"
    echo; log_check abuse "$OUT/.start-abuse"
  } | tee "$OUT/abuse-summary.md"
}

for s in "${SUITES[@]}"; do suite_start "$s"; "suite_$s"; done
{ cat "$OUT/env.txt"; echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"; for s in "${SUITES[@]}"; do cat "$OUT/$s-summary.md"; done; } > "$OUT/summary.md"
log "done: $OUT/summary.md"
