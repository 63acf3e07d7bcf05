#!/usr/bin/env python3
"""Connection-memory probes for loadtest/bench (stdlib only, one JSON line on stdout).

  conns.py idle  ADDR PID N [N ...]     N idle keep-alive connections, one after the other
  conns.py idle-webhook ADDR PID SECRET N [N ...]
                                        the same, each connection having served a webhook
  conns.py burst ADDR PID N SENT TOTAL  N connections each send SENT of a TOTAL-byte body, stall

idle: opens N connections, sends `GET /healthz` on each and reads its answer (so every one
is a served keep-alive connection), waits PARK_WAIT_S (a connection quiet for a second gives
up its coroutine: IDLE_PARK_AFTER in src/limits.rs) and until RSS stops falling, reads
hooksink's memory, closes them all and waits until hooksink's RSS settles.  Per connection =
(RSS with N open - RSS before) / N: what a quiet keep-alive connection costs for as long as
it stays open.  `parked` is hooksink_parked_connections at that moment.

idle-webhook: as idle, but each connection sends one signed POST /webhook (the same event,
signed with the whsec_ SECRET: the first is accepted, the rest are duplicates, all through a
writer) -- the cost of a provider's keep-alive connection, which has been down the whole
request path once.

burst: opens N connections, sends a signed-looking POST /webhook head announcing TOTAL body
bytes and then SENT of them, stalls (hooksink answers 503 to those past its request-byte
budget), reads memory while they are open, closes them all, and reads memory 2 s later.

Memory is read from /proc/PID/status (VmRSS) and /proc/PID/smaps_rollup (Anonymous, Pss).
Every phase has a time bound; the whole run never takes more than about a minute per step.
"""
import json
import os
import random
import resource
import selectors
import socket
import sys
import time

CONNECT_WINDOW = 256      # connections being set up at once (keeps the accept backlog short)
PHASE_TIMEOUT_S = 30.0    # bound for opening / sending in one step
PARK_WAIT_S = 2.5         # IDLE_PARK_AFTER (1 s) + the deadline sweep + the hand-over


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Anonymous", "Pss"):
                out[key.lower() + "_kib"] = int(rest.split()[0])
    return out


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_connections(addr, n, request, wait_answer, deadline):
    """Opens n connections and sends `request` on each; with wait_answer, reads one answer
    head on each.  Returns (open sockets, failures)."""
    sel = selectors.DefaultSelector()
    done, failed, started = [], 0, 0
    pending = {}  # socket -> [bytes still to send, bytes received]

    def finish(sock, ok):
        nonlocal failed
        sel.unregister(sock)
        del pending[sock]
        if ok:
            done.append(sock)
        else:
            failed += 1
            sock.close()

    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and len(pending) < CONNECT_WINDOW:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            started += 1
            err = sock.connect_ex(addr)
            if err not in (0, 115):  # EINPROGRESS
                failed += 1
                sock.close()
                continue
            pending[sock] = [memoryview(request), b""]
            sel.register(sock, selectors.EVENT_WRITE)
        for key, events in sel.select(timeout=0.2):
            sock = key.fileobj
            state = pending[sock]
            try:
                if events & selectors.EVENT_WRITE:
                    sent = sock.send(state[0])
                    state[0] = state[0][sent:]
                    if not state[0]:
                        if wait_answer:
                            sel.modify(sock, selectors.EVENT_READ)
                        else:
                            finish(sock, True)
                elif events & selectors.EVENT_READ:
                    data = sock.recv(4096)
                    if not data:
                        finish(sock, False)
                        continue
                    state[1] += data
                    if b"\r\n\r\n" in state[1]:
                        finish(sock, state[1].startswith(b"HTTP/1.1 200"))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                finish(sock, False)
    for sock in list(pending):
        failed += 1
        sel.unregister(sock)
        sock.close()
    sel.close()
    return done, failed + (n - started)


def settle(pid, seconds):
    """Waits up to `seconds` for RSS to stop falling (freed connections leave hooksink)."""
    deadline = time.monotonic() + seconds
    last = memory(pid)["rss_kib"]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = memory(pid)["rss_kib"]
        if now >= last:
            break
        last = now


HEALTH_CHECK = b"GET /healthz HTTP/1.1\r\nhost: bench\r\n\r\n"


def metric(addr, name):
    """One gauge from hooksink's GET /metrics, on a connection of its own; None if absent."""
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def signed_webhook(secret):
    """One signed POST /webhook request, as gen.py signs them."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen
    now = int(time.time())
    msg_id = f"msg_idle_{now}_{os.getpid()}"
    body = gen.make_body(random.Random(1))
    signature = gen.sign(gen.secret_key(secret), msg_id, now, body)
    head = (f"POST /webhook HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nwebhook-id: {msg_id}\r\n"
            f"webhook-timestamp: {now}\r\nwebhook-signature: {signature}\r\n\r\n")
    return head.encode() + body


def idle(addr, pid, counts, request=HEALTH_CHECK):
    results = []
    for n in counts:
        limit = raise_nofile(n)
        settle(pid, 5)
        before = memory(pid)
        socks, failed = open_connections(addr, n, request, True,
                                         time.monotonic() + PHASE_TIMEOUT_S)
        time.sleep(PARK_WAIT_S)
        settle(pid, 5)
        during = memory(pid)
        parked = metric(addr, "hooksink_parked_connections")
        opened = len(socks)
        for s in socks:
            s.close()
        settle(pid, 10)
        after = memory(pid)
        results.append({
            "connections": n, "open": opened, "failed": failed, "client_nofile": limit,
            "parked": parked,
            "rss_before_kib": before["rss_kib"], "rss_open_kib": during["rss_kib"],
            "anon_open_kib": during["anonymous_kib"], "rss_after_close_kib": after["rss_kib"],
            "rss_per_conn_kib": round((during["rss_kib"] - before["rss_kib"]) / opened, 2)
            if opened else None,
            "anon_per_conn_kib": round(
                (during["anonymous_kib"] - before["anonymous_kib"]) / opened, 2)
            if opened else None,
        })
    return {"idle_connections": results}


def burst(addr, pid, n, sent, total):
    raise_nofile(n)
    before = memory(pid)
    now = int(time.time())
    body = b"{" + b" " * (sent - 1)
    socks, failed_connect = [], 0
    # One head per connection (distinct ids); all are sent, then the partial bodies.
    sel = selectors.DefaultSelector()
    started = 0
    remaining = {}
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while (started < n or remaining) and time.monotonic() < deadline:
        while started < n and len(remaining) < CONNECT_WINDOW * 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            head = (f"POST /webhook HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                    f"content-length: {total}\r\nwebhook-id: msg_burst_{started}\r\n"
                    f"webhook-timestamp: {now}\r\nwebhook-signature: v1,"
                    f"{'A' * 43}=\r\n\r\n").encode()
            started += 1
            if sock.connect_ex(addr) not in (0, 115):
                failed_connect += 1
                sock.close()
                continue
            remaining[sock] = memoryview(head + body)
            sel.register(sock, selectors.EVENT_WRITE)
        for key, _ in sel.select(timeout=0.2):
            sock = key.fileobj
            try:
                k = sock.send(remaining[sock])
                remaining[sock] = remaining[sock][k:]
                if remaining[sock]:
                    continue
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                pass  # answered 503 and closed: counted below via the open sockets
            sel.unregister(sock)
            del remaining[sock]
            socks.append(sock)
    incomplete = len(remaining)
    for sock in list(remaining):
        sel.unregister(sock)
        socks.append(sock)
    sel.close()
    send_s = round(time.monotonic() - (deadline - PHASE_TIMEOUT_S), 2)
    time.sleep(1)
    during = memory(pid)
    # Answers the server sent (503 past the request-byte budget) are waiting in our sockets.
    answered_503 = 0
    for sock in socks:
        try:
            if sock.recv(64, socket.MSG_DONTWAIT).startswith(b"HTTP/1.1 503"):
                answered_503 += 1
        except OSError:
            pass
    for sock in socks:
        sock.close()
    time.sleep(2)
    after = memory(pid)
    return {"burst": {
        "connections": n, "body_sent_bytes": sent, "content_length": total,
        "connect_failed": failed_connect, "send_incomplete": incomplete, "send_s": send_s,
        "answered_503": answered_503,
        "rss_before_kib": before["rss_kib"], "rss_during_kib": during["rss_kib"],
        "anon_during_kib": during["anonymous_kib"], "rss_2s_after_kib": after["rss_kib"],
        "anon_2s_after_kib": after["anonymous_kib"],
    }}


def main(argv):
    if len(argv) < 4 or argv[0] not in ("idle", "idle-webhook", "burst"):
        sys.exit(__doc__)
    host, _, port = argv[1].rpartition(":")
    addr, pid = (host, int(port)), int(argv[2])
    if argv[0] == "idle":
        out = idle(addr, pid, [int(x) for x in argv[3:]])
    elif argv[0] == "idle-webhook":
        if len(argv) < 5:
            sys.exit(__doc__)
        request = signed_webhook(argv[3])
        out = {"idle_webhook_connections":
               idle(addr, pid, [int(x) for x in argv[4:]], request)["idle_connections"]}
    else:
        if len(argv) != 6:
            sys.exit(__doc__)
        out = burst(addr, pid, int(argv[3]), int(argv[4]), int(argv[5]))
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1:])
