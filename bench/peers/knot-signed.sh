#!/usr/bin/env bash
# usage: knot-signed.sh PORT -> starts knotd on 127.0.0.1:PORT serving the bench zone signed
# by Knot itself (dnssec-signing: on; Ed25519, NSEC3 with 0 iterations and no salt, as
# failoverd signs), prints its PID once the signed zone is served. Same shape as
# ../shared/bench/peers/knot.sh (www.fo.bench.test static: Knot has no health checks).
set -euo pipefail
SHARED=${SHARED:-/work/shared/bench}
source "$SHARED/peers/common.sh"
PORT=${1:?port}; W=/tmp/bench-knot-signed-$PORT
need_pkg knotd knot knot-dnsutils
rm -rf "$W"; mkdir -p "$W/db"
cp "$ZONE_SRC" "$W/bench.test.zone"
for b in $BACKENDS; do echo "www.fo $FO_TTL IN A $b" >> "$W/bench.test.zone"; done
cat > "$W/knot.conf" <<CONF
server:
    rundir: "$W"
    listen: 127.0.0.1@$PORT
    udp-workers: ${WORKERS:-1}
    tcp-workers: 1
    background-workers: 1
log:
  - target: $W/knot.log
    any: info
database:
    storage: "$W/db"
policy:
  - id: bench
    algorithm: ed25519
    nsec3: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
template:
  - id: default
    storage: "$W"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test
    file: bench.test.zone
    dnssec-signing: on
    dnssec-policy: bench
CONF
setsid "${PIN[@]}" knotd -c "$W/knot.conf" > "$W/stdout.log" 2>&1 &
PID=$!
wait_ready "$PORT" || { echo "knot failed to start, see $W" >&2; cat "$W/knot.log" >&2; kill -- -$PID; exit 1; }
for i in $(seq 1 300); do
  dig +dnssec +short -p "$PORT" @127.0.0.1 h1.bench.test A | grep -q '^A ' && break
  sleep 0.1
done
echo $PID
