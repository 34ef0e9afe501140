#!/usr/bin/env bash
# usage: start-failoverd.sh PORT ZONE_FILE "BACKENDS" BACKEND_PORT
# Starts failoverd in the foreground on 127.0.0.1:PORT serving ZONE_FILE (origin from its
# $ORIGIN/SOA) plus, when BACKENDS is non-empty, the dynamic failover name www.fo.<origin>
# answering the healthy addresses of BACKENDS. The contract of ../shared/bench/peers/failoverd.sh.
# The record's pool is TCP-checked on BACKEND_PORT like the peers' (gdnsd tcp_connect, PowerDNS
# ifportup). Env: FAILOVERD_BIN (default target/release/failoverd), WORKERS (UDP threads, default
# 1 like the peers' configs), FO_TTL (default 1), HC_INTERVAL (s), HC_UP / HC_DOWN (rise / fall),
# all default 1 (the harness's knobs, when exported);
# FAILOVERD_CONFIG_ONLY=1: write the config, print its path and exit instead of starting
#   (bench/run.sh times the bare binary's start-up with it);
# FAILOVERD_LOG_DIR: log to a new file there instead of stdout/stderr (its path goes to stderr);
# UDP_IO: [server] udp_io: batched, portable or xdp; unset: xdp when run as root and no
#   other XDP program holds lo (the script then sets net.ipv4.conf.lo.route_localnet and
#   accept_local to 1, which XDP replies on lo need, and says so on stderr), else batched;
# RRL_RATE: turn response rate limiting on with this rate (and RRL_SLIP, default 2); unset: off;
# FAILOVERD_DNSSEC=nsec3|nsec: sign the zone (a CSK made once in /tmp/failoverd-bench-PORT/keys;
#   FAILOVERD_DNSSEC_ALGORITHM=ed25519 (default) or ecdsa-p256); bench/start-failoverd-signed.sh sets it.
# The config goes to /tmp/failoverd-bench-PORT/ (one directory per port, rewritten each start).
set -euo pipefail
PORT=${1:?port}; ZONE=${2:?zone file}; BACKENDS=${3:-}; BACKEND_PORT=${4:-8081}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN=${FAILOVERD_BIN:-$ROOT/target/release/failoverd}
[ -x "$BIN" ] || { echo "no $BIN: run 'cargo build --release' first" >&2; exit 1; }
ZONE=$(readlink -f "$ZONE")
W=/tmp/failoverd-bench-$PORT; mkdir -p "$W"
if [ -z "${UDP_IO:-}" ]; then
  UDP_IO=batched
  if [ "$(id -u)" = 0 ] && ! ip -d link show lo 2>/dev/null | grep -q prog/xdp; then UDP_IO=xdp; fi
fi
if [ "$UDP_IO" = xdp ] && [ -z "${FAILOVERD_CONFIG_ONLY:-}" ]; then
  for key in route_localnet accept_local; do
    if [ "$(cat /proc/sys/net/ipv4/conf/lo/$key)" != 1 ]; then
      sysctl -q -w "net.ipv4.conf.lo.$key=1"
      echo "start-failoverd.sh: set net.ipv4.conf.lo.$key=1 for udp_io = \"xdp\" on lo" >&2
    fi
  done
fi
ORIGIN=$(awk 'toupper($1)=="$ORIGIN" {print $2; exit}' "$ZONE")
[ -n "$ORIGIN" ] || ORIGIN="$(basename "$ZONE" .zone)."
{
  echo "version = 1"
  echo "[server]"
  echo "listen = [\"127.0.0.1:$PORT\"]"
  echo "udp_workers = ${WORKERS:-1}"
  echo "udp_io = \"$UDP_IO\""
  echo "[zones]"
  echo "directory = \"$(dirname "$ZONE")\""
  echo "files = [\"$(basename "$ZONE")\"]"
  if [ -n "$BACKENDS" ]; then
    echo "[checks.fo-tcp]"
    echo "type = \"tcp\""
    echo "port = $BACKEND_PORT"
    echo "interval = \"${HC_INTERVAL:-1}s\""
    echo "rise = ${HC_UP:-1}"
    echo "fall = ${HC_DOWN:-1}"
    echo "[pools.fo]"
    echo "check = \"fo-tcp\""
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
  if [ -n "${RRL_RATE:-}" ]; then
    echo "[server.rrl]"
    echo "rate = $RRL_RATE"
    echo "slip = ${RRL_SLIP:-2}"
  fi
  if [ -n "${FAILOVERD_DNSSEC:-}" ]; then   # DNSSEC (issue 13)
    echo "[dnssec]"
    echo "key_directory = \"$W/keys\""
    echo "zones = [\"$ORIGIN\"]"
    echo "nsec = \"$FAILOVERD_DNSSEC\""
  fi
} > "$W/failoverd.toml"
if [ -n "${FAILOVERD_DNSSEC:-}" ] && ! ls "$W/keys/K$ORIGIN+"*.key >/dev/null 2>&1; then
  "$BIN" dnssec keygen "$ORIGIN" --directory "$W/keys" \
    --algorithm "${FAILOVERD_DNSSEC_ALGORITHM:-ed25519}" >&2
fi
if [ -n "${FAILOVERD_CONFIG_ONLY:-}" ]; then echo "$W/failoverd.toml"; exit 0; fi
export NO_COLOR=1   # plain log lines in /tmp/bench-failoverd-PORT.log
if [ -n "${FAILOVERD_LOG_DIR:-}" ]; then   # bench/run.sh: keep every start's log (the peer script truncates its own)
  F="$FAILOVERD_LOG_DIR/failoverd-$PORT-$(date +%Y%m%d-%H%M%S.%N).log"
  echo "failoverd log: $F" >&2
  exec "$BIN" serve --config "$W/failoverd.toml" >>"$F" 2>&1
fi
exec "$BIN" serve --config "$W/failoverd.toml"
