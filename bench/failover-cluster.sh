#!/usr/bin/env bash
# usage: failover-cluster.sh PORT ZONE_FILE "BACKENDS" BACKEND_PORT
# Like start-failoverd.sh (the ../shared/bench peer contract), but with the health plane
# of a real deployment: three vantage points — this server (v1) and two probe agents
# (v2, v3) — TCP-probing BACKEND_PORT, quorum FO_QUORUM of 3. The answer for
# www.fo.<origin> is every healthy backend (failover over one pool).
# Env: FO_INTERVAL (200ms) FO_FALL (2) FO_RISE (2) FO_HOLD (0s) FO_TTL (1) FO_QUORUM (2)
#      FO_DAMPING (on; "off" disables flap damping: the harness's back-to-back kills are
#                  outages seconds apart, which damping treats as flapping)
#      FO_PARTITION=v3  run agent v3 in a network namespace of its own that can reach the
#                       server but no backend (it sees everything down: a partition).
#      FAILOVERD_BIN (target/release/failoverd)
set -euo pipefail
PORT=${1:?port}; ZONE=${2:?zone file}; BACKENDS=${3:?backends}; BACKEND_PORT=${4:-8081}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN=${FAILOVERD_BIN:-$ROOT/target/release/failoverd}
[ -x "$BIN" ] || { echo "no $BIN: run 'cargo build --release' first" >&2; exit 1; }
ZONE=$(readlink -f "$ZONE")
W=$(mktemp -d /tmp/failoverd-cluster-XXXXXX)
ORIGIN=$(awk 'toupper($1)=="$ORIGIN" {print $2; exit}' "$ZONE")
[ -n "$ORIGIN" ] || ORIGIN="$(basename "$ZONE" .zone)."
ADMIN_PORT=$((PORT + 1000))
ADMIN_IP=127.0.0.1
NS=""
if [ "${FO_PARTITION:-}" = v3 ]; then
  # A namespace joined to the host by a veth pair: v3 reaches the admin API over it,
  # but 127.0.0.2/.3 inside the namespace are its own loopback, where nothing listens.
  NS=fo-part-$PORT; HOST_IF=fov$PORT; NS_IF=fon$PORT
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF"
  ip link set "$NS_IF" netns "$NS"
  ip addr add 10.213.0.1/30 dev "$HOST_IF"; ip link set "$HOST_IF" up
  ip netns exec "$NS" ip addr add 10.213.0.2/30 dev "$NS_IF"
  ip netns exec "$NS" ip link set "$NS_IF" up
  ip netns exec "$NS" ip link set lo up
  ADMIN_IP=10.213.0.1
fi
{
  echo "version = 1"
  echo "[server]"; echo "listen = [\"127.0.0.1:$PORT\"]"; echo "udp_workers = ${WORKERS:-1}"
  echo "[zones]"; echo "directory = \"$(dirname "$ZONE")\""; echo "files = [\"$(basename "$ZONE")\"]"
  echo "[regions.r1]"; echo "[regions.r2]"; echo "[regions.r3]"
  echo "[checks.backend]"; echo "type = \"tcp\""; echo "port = $BACKEND_PORT"
  echo "interval = \"${FO_INTERVAL:-200ms}\""; echo "timeout = \"150ms\""; echo "jitter = \"20ms\""
  echo "fall = ${FO_FALL:-2}"; echo "rise = ${FO_RISE:-2}"; echo "hold = \"${FO_HOLD:-0s}\""
  if [ "${FO_DAMPING:-on}" = off ]; then echo "damping = { enabled = false }"; fi
  echo "[pools.fo]"; echo "check = \"backend\""; echo "endpoints = ["
  for b in $BACKENDS; do echo "  { address = \"$b\" },"; done
  echo "]"
  echo "[[records]]"; echo "name = \"www.fo.$ORIGIN\""; echo "type = \"A\""
  echo "ttl = ${FO_TTL:-1}"; echo "policy = \"failover\""; echo "pools = [\"fo\"]"
  for v in 1 2 3; do
    echo "[vantages.v$v]"; echo "region = \"r$v\""; echo "secret = \"bench-secret-of-v$v-0123456789\""
  done
  echo "[health]"; echo "down_votes = ${FO_QUORUM:-2}"; echo "staleness = \"2s\""
  echo "push_interval = \"200ms\""; echo "servers = [\"http://$ADMIN_IP:$ADMIN_PORT\"]"
  echo "[admin]"; echo "listen = \"$ADMIN_IP:$ADMIN_PORT\""
} > "$W/failoverd.toml"
PIDS=()
cleanup() {
  trap - TERM INT EXIT
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$NS" ]; then ip link del "fov$PORT" 2>/dev/null || true; ip netns del "$NS" 2>/dev/null || true; fi
  exit 0
}
trap cleanup TERM INT EXIT
"$BIN" serve --config "$W/failoverd.toml" --vantage v1 > "$W/v1.log" 2>&1 &
PIDS+=($!)
for v in 2 3; do
  if [ "$v" = 3 ] && [ -n "$NS" ]; then
    ip netns exec "$NS" "$BIN" probe --config "$W/failoverd.toml" --vantage v3 --admin-listen 127.0.0.1:0 > "$W/v3.log" 2>&1 &
  else
    "$BIN" probe --config "$W/failoverd.toml" --vantage "v$v" --admin-listen 127.0.0.1:0 > "$W/v$v.log" 2>&1 &
  fi
  PIDS+=($!)
done
echo "failoverd cluster: logs and config in $W (admin http://$ADMIN_IP:$ADMIN_PORT)"
wait "${PIDS[0]}"
