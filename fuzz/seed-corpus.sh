#!/usr/bin/env bash
# Seeds fuzz/seeds/answer with real queries: a UDP listener records the datagrams that
# dig and kdig send for a spread of names, types and options (EDNS, ECS, cookies, DO,
# NSID, opcodes), plus the TCP-framed payloads of a few dig +tcp queries.
set -euo pipefail
cd "$(dirname "$0")"
OUT=seeds/answer; mkdir -p "$OUT"
PORTFILE=$(mktemp)
python3 - "$OUT" "$PORTFILE" <<'PY' &
import socket, sys, hashlib, os
out, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(portfile, "w").write(str(s.getsockname()[1]))
s.settimeout(5)
while True:
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        break
    open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
LISTENER=$!
for _ in $(seq 50); do [ -s "$PORTFILE" ] && break; sleep 0.1; done
PORT=$(cat "$PORTFILE")
q() { dig +time=1 +tries=1 -p "$PORT" @127.0.0.1 "$@" >/dev/null 2>&1 || true; }
for name in www.example.test WwW.ExAmPlE.tEsT nothing.example.test alias1.example.test x.wild.example.test \
            host.sub.example.test app.example.test geo.example.test b.ent.example.test example.org big.example.test .; do
  for t in A AAAA MX TXT NS SOA CNAME ANY DS SRV; do q "$name" "$t"; done
  q +noedns "$name"; q +norec "$name"; q +dnssec "$name"; q +nsid "$name"; q +cookie "$name"
  q +bufsize=512 "$name"; q +edns=1 "$name"; q +subnet=10.1.2.0/24 "$name"; q +subnet=2001:db8:e::/56 "$name"
  q +subnet=0.0.0.0/0 "$name"; q +header-only "$name"; q +opcode=notify "$name"; q +opcode=update "$name"
  q -c CH "$name" TXT; q +padding=64 "$name"
done
if command -v kdig >/dev/null; then
  for t in A AAAA ANY; do kdig +time=1 +retry=0 -p "$PORT" @127.0.0.1 +nsid +subnet=10.2.0.0/16 geo.example.test "$t" >/dev/null 2>&1 || true; done
fi
wait "$LISTENER" || true
rm -f "$PORTFILE"
echo "$(ls "$OUT" | wc -l) seed queries in $OUT"
