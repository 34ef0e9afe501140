#!/usr/bin/env bash
# usage: start-failoverd.sh PORT ZONE_FILE "BACKENDS" BACKEND_PORT
# Starts failoverd in the foreground on 127.0.0.1:PORT serving ZONE_FILE (origin from its
# $ORIGIN/SOA) plus, when BACKENDS is non-empty, the dynamic failover name www.fo.<origin>
# answering the healthy addresses of BACKENDS. The contract of ../shared/bench/peers/failoverd.sh.
# Env: FAILOVERD_BIN (default target/release/failoverd), WORKERS (UDP threads, default 1 like
# the peers' configs), FO_TTL (default 1).
set -euo pipefail
PORT=${1:?port}; ZONE=${2:?zone file}; BACKENDS=${3:-}; BACKEND_PORT=${4:-8081}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN=${FAILOVERD_BIN:-$ROOT/target/release/failoverd}
[ -x "$BIN" ] || { echo "no $BIN: run 'cargo build --release' first" >&2; exit 1; }
ZONE=$(readlink -f "$ZONE")
W=$(mktemp -d /tmp/failoverd-bench-XXXXXX)
ORIGIN=$(awk 'toupper($1)=="$ORIGIN" {print $2; exit}' "$ZONE")
[ -n "$ORIGIN" ] || ORIGIN="$(basename "$ZONE" .zone)."
{
  echo "version = 1"
  echo "[server]"
  echo "listen = [\"127.0.0.1:$PORT\"]"
  echo "udp_workers = ${WORKERS:-1}"
  echo "[zones]"
  echo "directory = \"$(dirname "$ZONE")\""
  echo "files = [\"$(basename "$ZONE")\"]"
  if [ -n "$BACKENDS" ]; then
    echo "[pools.fo]"
    echo "endpoints = ["
    for b in $BACKENDS; do echo "  { address = \"$b\" },"; done
    echo "]"
    echo "[[records]]"
    echo "name = \"www.fo.$ORIGIN\""
    echo "type = \"A\""
    echo "ttl = ${FO_TTL:-1}"
    echo "policy = \"failover\""
    echo "pools = [\"fo\"]"
  fi
} > "$W/failoverd.toml"
exec "$BIN" serve --config "$W/failoverd.toml"
