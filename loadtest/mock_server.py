#!/usr/bin/env python3
"""A stand-in for hooksink, used only to self-test the kit (gen.py + replay.lua) without the
real server or a database.  Not a benchmark target: it is single-threaded Python.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies), checks the Standard
Webhooks signature and the 300 s timestamp window like hooksink does, and remembers ids:

  POST /webhook  200 {"status":"accepted","id":...} on a new id,
                 200 {"status":"duplicate","id":...} on a known id,
                 400 / 401 on a bad request or signature
  GET /readyz    200
  GET /stats     200 {"accepted":N,"duplicate":N,"rejected":N}

    WEBHOOK_SECRET=whsec_... python3 mock_server.py 127.0.0.1 PORT
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time

SECRET = os.environ["WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
seen: set[bytes] = set()
stats = {"accepted": 0, "duplicate": 0, "rejected": 0}


def answer(status: int, obj: dict) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % (status, reason.encode(), len(body)) + body)


def handle(method: bytes, path: bytes, headers: dict, body: bytes) -> bytes:
    if method == b"GET" and path == b"/readyz":
        return answer(200, {"status": "ready"})
    if method == b"GET" and path == b"/stats":
        return answer(200, stats)
    if method != b"POST" or path != b"/webhook":
        return answer(404, {"error": "not found"})
    msg_id = headers.get(b"webhook-id", b"")
    ts = headers.get(b"webhook-timestamp", b"")
    sigs = headers.get(b"webhook-signature", b"").split()
    try:
        if abs(int(ts) - time.time()) > 300:
            raise ValueError("stale")
    except ValueError:
        stats["rejected"] += 1
        return answer(401, {"error": "timestamp"})
    mac = hmac.digest(KEY, msg_id + b"." + ts + b"." + body, hashlib.sha256)
    if b"v1," + base64.b64encode(mac) not in sigs:
        stats["rejected"] += 1
        return answer(401, {"error": "signature"})
    try:
        json.loads(body)
    except ValueError:
        stats["rejected"] += 1
        return answer(400, {"error": "json"})
    kind = "duplicate" if msg_id in seen else "accepted"
    seen.add(msg_id)
    stats[kind] += 1
    return answer(200, {"status": kind, "id": msg_id.decode()})


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            headers = {}
            for ln in lines[1:]:
                if b":" in ln:
                    k, v = ln.split(b":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            writer.write(handle(method, path, headers, body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    print(f"listening on {sys.argv[1]}:{sys.argv[2]}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
