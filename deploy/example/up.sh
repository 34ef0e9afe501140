#!/usr/bin/env bash
# A real three-region failoverd cluster on one Linux machine, in network namespaces:
#   s1 (eu), s2 (us), s3 (ap): servers, each a vantage point (DNS :53, admin API on
#     its own address :9353, with an operate token)
#   a4 (eu): a probe agent;  be-eu, be-us, be-ap: one HTTP backend per region (:8080)
# all on a bridge, 10.53.0.0/24 (servers .11-.13, agent .14, backends .21-.23).
# usage (root): deploy/example/up.sh up | status | ctl ARGS… | break REGION |
#               restore REGION | down
# env: FAILOVERD_BIN (default target/release/failoverd, built if missing), RUN (/tmp/failoverd-example)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RUN=${RUN:-/tmp/failoverd-example}
BIN=${FAILOVERD_BIN:-$ROOT/target/release/failoverd}
NODES=(s1 s2 s3 a4 be-eu be-us be-ap)
declare -A ADDR=([s1]=10.53.0.11 [s2]=10.53.0.12 [s3]=10.53.0.13 [a4]=10.53.0.14
                 [be-eu]=10.53.0.21 [be-us]=10.53.0.22 [be-ap]=10.53.0.23)
ns() { echo "fo-ex-$1"; }
in_ns() { local node=$1; shift; ip netns exec "$(ns "$node")" "$@"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "needs root (ip netns)" >&2; exit 1; }; }

start_backend() {
  in_ns "be-$1" python3 -m http.server --bind "${ADDR[be-$1]}" 8080 --directory "$RUN/zones" \
    > "$RUN/log/be-$1.log" 2>&1 &
}

up() {
  need_root
  [ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --quiet --bin failoverd)
  mkdir -p "$RUN/secrets" "$RUN/log"
  cp "$HERE/failoverd.toml" "$RUN/"; cp -r "$HERE/zones" "$RUN/"
  # Secret files must be mode 0600 (failoverd refuses them otherwise).
  chmod 0700 "$RUN/secrets"
  for v in s1 s2 s3 a4 oncall.token; do
    [ -s "$RUN/secrets/$v" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/$v")
    chmod 0600 "$RUN/secrets/$v"
  done
  ip netns add "$(ns hub)"
  ip -n "$(ns hub)" link add br0 type bridge
  ip -n "$(ns hub)" link set br0 up
  for node in "${NODES[@]}"; do
    ip netns add "$(ns "$node")"
    ip link add "ex-$node" type veth peer name eth0 netns "$(ns "$node")"
    ip link set "ex-$node" netns "$(ns hub)"
    ip -n "$(ns hub)" link set "ex-$node" master br0 up
    ip -n "$(ns "$node")" addr add "${ADDR[$node]}/24" dev eth0
    ip -n "$(ns "$node")" link set eth0 up
    ip -n "$(ns "$node")" link set lo up
  done
  for region in eu us ap; do start_backend "$region"; done
  # `ip netns exec` becomes the program (no function, no subshell), so the pid files
  # name the servers themselves and `down` stops them.
  for s in s1 s2 s3; do
    ip netns exec "$(ns "$s")" "$BIN" serve --config "$RUN/failoverd.toml" --vantage "$s" \
      --admin-listen "${ADDR[$s]}:9353" > "$RUN/log/$s.log" 2>&1 &
    echo $! > "$RUN/$s.pid"
  done
  ip netns exec "$(ns a4)" "$BIN" probe --config "$RUN/failoverd.toml" --vantage a4 > "$RUN/log/a4.log" 2>&1 &
  echo $! > "$RUN/a4.pid"
  for s in s1 s2 s3; do
    for _ in $(seq 1 100); do
      in_ns "$s" curl -sf "http://${ADDR[$s]}:9353/readyz" >/dev/null 2>&1 && break; sleep 0.1
    done
    in_ns "$s" curl -sf "http://${ADDR[$s]}:9353/readyz" >/dev/null 2>&1 || {
      echo "up: $s is not ready after 10 s; its log ($RUN/log/$s.log):" >&2
      tail -n 20 "$RUN/log/$s.log" >&2
      exit 1
    }
  done
  echo "up: servers ${ADDR[s1]} ${ADDR[s2]} ${ADDR[s3]} (DNS :53, admin :9353; status page http://ADDR:9353/)"
  echo "admin token (operate): $RUN/secrets/oncall.token"
  echo "try: $0 status;  $0 ctl status;  $0 break eu;  $0 status;  $0 restore eu;  $0 down"
}

# failoverd ctl against every server, from s1's namespace, with the operate token.
ctl() {
  in_ns s1 "$BIN" ctl --config "$RUN/failoverd.toml" --token-file "$RUN/secrets/oncall.token" "$@"
}

status() {
  for s in s1 s2 s3; do
    printf '%s  www=%-12s app(eu client)=%-12s app(us client)=%-12s app(ap client)=%s\n' "$s" \
      "$(in_ns s1 dig +short +time=1 +tries=1 @"${ADDR[$s]}" www.gslb.example.com A | tr '\n' ' ')" \
      "$(in_ns s1 dig +short +time=1 +tries=1 +subnet=10.53.1.0/24 @"${ADDR[$s]}" app.gslb.example.com A | tr '\n' ' ')" \
      "$(in_ns s1 dig +short +time=1 +tries=1 +subnet=10.53.2.0/24 @"${ADDR[$s]}" app.gslb.example.com A | tr '\n' ' ')" \
      "$(in_ns s1 dig +short +time=1 +tries=1 +subnet=10.53.3.0/24 @"${ADDR[$s]}" app.gslb.example.com A | tr '\n' ' ')"
  done
}

break_region() {
  # By its command line: python3 may be a wrapper that forks (pyenv), so no pid file.
  pkill -f "http.server --bind ${ADDR[be-$1]} 8080" || true
  echo "broke $1 (its backend ${ADDR[be-$1]} stopped); watch: $0 status"
}

restore_region() {
  start_backend "$1"
  echo "restored $1"
}

down() {
  for f in "$RUN"/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done
  pkill -f "http.server --bind 10.53.0.2" || true
  for node in "${NODES[@]}" hub; do ip netns del "$(ns "$node")" 2>/dev/null || true; done
  echo "down"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  ctl) shift; ctl "$@" ;;
  break) break_region "${2:?region: eu, us or ap}" ;;
  restore) restore_region "${2:?region: eu, us or ap}" ;;
  down) down ;;
  *) echo "usage: $0 up | status | ctl ARGS... | break REGION | restore REGION | down" >&2; exit 2 ;;
esac
