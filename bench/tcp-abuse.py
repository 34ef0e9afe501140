#!/usr/bin/env python3
"""usage: tcp-abuse.py HOST PORT [N=200] [WAIT_S=30]

Opens N abusive DNS-over-TCP connections to HOST:PORT, a quarter of each kind:
idle (nothing sent), a length prefix and nothing, half a message, and a complete
query (answered) followed by silence; then waits WAIT_S seconds (bounded) and prints
how many the server still holds open, per kind, as one line:
  RESULT opened=<n> open_after=<n> idle=<n> prefix=<n> half=<n> answered=<n> wait_s=<s>
A connection counts as closed once a non-blocking peek sees end of file or a reset.
Loopback only."""
import errno
import socket
import struct
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
wait_s = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
assert host.startswith("127."), "loopback only"

# mail.bench.test? Any name works: the answer is irrelevant, only the framing.
qname = b"".join(bytes([len(l)]) + l for l in b"bench.test".split(b".")) + b"\x00"
query = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0) + qname + struct.pack(">HH", 6, 1)
framed = struct.pack(">H", len(query)) + query
kinds = ["idle", "prefix", "half", "answered"]
conns = []
for i in range(n):
    kind = kinds[i % 4]
    s = socket.create_connection((host, port), timeout=5)
    if kind == "prefix":
        s.sendall(framed[:2])
    elif kind == "half":
        s.sendall(framed[: len(framed) // 2])
    elif kind == "answered":
        s.sendall(framed)
    s.setblocking(False)
    conns.append((kind, s))


def is_open(s):
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return False
    except BlockingIOError:
        return True
    except OSError as e:
        return e.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN)


start = time.monotonic()
while time.monotonic() - start < wait_s:
    time.sleep(min(1.0, max(0.0, wait_s - (time.monotonic() - start))))
left = {k: 0 for k in kinds}
for kind, s in conns:
    if is_open(s):
        left[kind] += 1
    s.close()
print("RESULT opened=%d open_after=%d %s wait_s=%.0f" % (
    n, sum(left.values()), " ".join("%s=%d" % (k, left[k]) for k in kinds), wait_s))
