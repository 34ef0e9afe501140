#!/usr/bin/env python3
"""Time a DNS server from process start to its first answer, without script overhead.

usage: startup-time.py PORT REPS ZONE_ORIGIN LOGFILE -- CMD [ARGS...]

Each repetition: fork+exec CMD in a new session (its own process group), then send a SOA query
for ZONE_ORIGIN to 127.0.0.1:PORT every 0.5 ms until an answer (to any of them) with NOERROR and
at least one answer record arrives. Prints one tab-separated line per repetition:
    rep  ms_to_first_answer  rss_kib_at_first_answer
then stops the process group (SIGTERM, SIGKILL after 5 s). Bounded: at most MAX_WAIT s
(env, default 120) per repetition. The poller pins itself to CLIENT_CPU (env, default 1).
"""
import os, signal, socket, struct, subprocess, sys, time

def query(origin: str, qid: int) -> bytes:
    q = b"".join(bytes([len(l)]) + l.encode() for l in origin.strip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 6, 1)

def rss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

def main() -> int:
    if "--" not in sys.argv or sys.argv.index("--") != 5:
        print(__doc__, file=sys.stderr)
        return 2
    port, reps, origin, logfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cmd = sys.argv[6:]
    max_wait = float(os.environ.get("MAX_WAIT", "120"))
    cpu = os.environ.get("CLIENT_CPU", "1")
    if cpu:
        try:
            os.sched_setaffinity(0, {int(cpu)})
        except OSError:
            pass
    for rep in range(1, reps + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        s.settimeout(0.0005)
        log = open(logfile, "ab")
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            qid, elapsed, rss = 0, None, 0
            while time.perf_counter() - t0 < max_wait:
                if p.poll() is not None:
                    print(f"server exited with {p.returncode} before answering (log: {logfile})",
                          file=sys.stderr)
                    return 1
                qid = (qid + 1) & 0xFFFF
                try:
                    s.send(query(origin, qid))
                except ConnectionRefusedError:      # ICMP unreachable from an earlier send
                    pass
                # read until this query's timeout; any answer counts (every query is the same
                # SOA question on this socket, a late answer to an earlier one is as good)
                deadline = time.perf_counter() + 0.0005
                while elapsed is None and time.perf_counter() < deadline:
                    try:
                        data = s.recv(4096)
                    except (socket.timeout, BlockingIOError):
                        break
                    except ConnectionRefusedError:  # not listening yet
                        time.sleep(0.0005)
                        break
                    if len(data) >= 12:
                        flags, _, ancount = struct.unpack(">HHH", data[2:8])
                        if flags & 0x8000 and flags & 0xF == 0 and ancount > 0:
                            elapsed = (time.perf_counter() - t0) * 1000
                            rss = rss_kib(p.pid)
                if elapsed is not None:
                    break
            if elapsed is None:
                print(f"no answer within {max_wait} s (log: {logfile})", file=sys.stderr)
                return 1
            print(f"{rep}\t{elapsed:.1f}\t{rss}", flush=True)
        finally:
            stop(p)
            log.close()
            s.close()
    return 0

if __name__ == "__main__":
    sys.exit(main())
