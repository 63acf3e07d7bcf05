#!/usr/bin/env python3
"""Generate signed hooksink webhook requests for wrk (replay.lua) and oha.

Output file format (UTF-8 text, one request per line, so LuaJIT reads it fast):

    #hooksink-requests v1 mode=<unique|duplicate> prefix=<run prefix> count=<N> generated_at=<unix s>
    <webhook-id> TAB <webhook-timestamp> TAB <webhook-signature> TAB <body>
    ...

The body is compact JSON from json.dumps, which escapes every control character, so a body
never holds a raw TAB or newline and the last field is simply "the rest of the line".

With --scheme stripe (unique mode only) each line is a Stripe event for POST /stripe
instead: <event id> TAB <t> TAB <Stripe-Signature value> TAB <body>, and the header line ends
with "scheme=stripe".  The ids are "evt_<prefix>_<n>", also inside each body (Stripe's dedupe
key); bodies are 2-20 KB events from stripe_bodies.py, 15 % of them `customer.*` events that
hooksink answers `ignored`.  The signature is t=<ts>,v1=hex(HMAC-SHA256(secret as is,
"{t}.{body}")), the key being the whsec_ string itself, as Stripe signs.

Modes:
  unique     N requests, every webhook-id distinct ("msg_<prefix>_<n>"); the prefix is new
             for every run (time + randomness) so re-runs against the same table never collide.
             This measures the real insert path.
  duplicate  ONE request with a fixed body and a fixed id.  Replayed over and over it
             measures ONLY the duplicate path (the first copy inserts, every other copy is
             answered "duplicate").  The header line says mode=duplicate so every consumer
             can label its numbers.

Signing follows Standard Webhooks: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where
key is the base64-decoded part of the secret after "whsec_".  Timestamps are the current
time: hooksink rejects anything more than 300 s away, so generate right before the run.

Stdlib only.  `gen.py --self-test` checks the signer against the Standard Webhooks test
vector and checks a sample of bodies against hooksink's input rules.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import sys
import time

import stripe_bodies

FORMAT_TAG = "#hooksink-requests v1"
BODY_MIN, BODY_MAX = 170, 410  # bytes, as the issue asks

# Event types a payment provider sends; all match [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+.
EVENT_TYPES = [
    ("payment.succeeded", "pi"),
    ("payment.failed", "pi"),
    ("payment_intent.created", "pi"),
    ("charge.refunded", "ch"),
    ("charge.dispute.created", "dp"),
    ("invoice.paid", "in"),
    ("invoice.payment_failed", "in"),
    ("customer.subscription.updated", "sub"),
    ("payout.paid", "po"),
    ("refund.created", "re"),
    ("checkout.session.completed", "cs"),
]
# ISO 4217 codes in mixed case: 2 minor units (usd, EUR, Gbp, chf, Cad),
# 0 minor units (JPY, krw), 3 minor units (BHD, kwd).
CURRENCIES = ["usd", "usd", "usd", "EUR", "EUR", "Gbp", "chf", "Cad", "JPY", "krw", "BHD", "kwd"]
# Non-ASCII text that ends up in jsonb: Latin accents, CJK, Greek, Cyrillic, emoji.
TEXTS = [
    "Zürich", "São Paulo", "Łódź", "東京都渋谷区", "Ελληνικά", "Москва", "café ☕",
    "naïve résumé", "🎉 promo", "Straße 5", "Ñandú", "서울", "plain ascii note", "O'Brien & Co",
]
META_KEYS = [
    "order_id", "customer_ref", "cart_id", "channel", "campaign", "store", "city", "note",
    "sku", "items", "shipping", "tags", "attempt", "gift", "locale", "seller",
]
ALNUM = string.ascii_letters + string.digits


def secret_key(secret: str) -> bytes:
    """Decode `whsec_<base64>` (the prefix is optional) to the raw HMAC key."""
    b64 = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    return base64.b64decode(b64)


def sign(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.digest(key, b"%s.%d.%s" % (msg_id.encode(), ts, body), hashlib.sha256)
    return "v1," + base64.b64encode(mac).decode()


def stripe_sign(secret: bytes, ts: int, body: bytes) -> str:
    """The Stripe-Signature value: the secret string as is is the key (not base64-decoded)."""
    return "t=%d,v1=%s" % (ts, hmac.digest(secret, b"%d.%s" % (ts, body), hashlib.sha256).hex())


def rand_token(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(ALNUM, k=n))


def meta_value(rng: random.Random, key: str):
    """A metadata value: strings (some non-ASCII), numbers, booleans, nested objects, arrays."""
    r = rng.random()
    if r < 0.35:
        return rng.choice(TEXTS)
    if r < 0.50:
        return str(rng.randint(1000, 99_999_999))
    if r < 0.60:
        return rng.randint(0, 10_000)
    if r < 0.65:
        return rng.random() < 0.5
    if r < 0.85:  # nested object
        return {"sku": "SKU-" + rand_token(rng, 6), "qty": rng.randint(1, 9),
                "label": rng.choice(TEXTS)}
    return [rng.choice(TEXTS), rng.randint(1, 99)]  # array


def make_body(rng: random.Random) -> bytes:
    """One realistic body of BODY_MIN..=BODY_MAX bytes (retries until it fits)."""
    while True:
        event_type, obj_prefix = rng.choice(EVENT_TYPES)
        currency = rng.choice(CURRENCIES)
        # Mostly everyday amounts, a few zero and a few very large ones (still <= 10^15).
        r = rng.random()
        if r < 0.03:
            amount = 0
        elif r < 0.06:
            amount = rng.randint(10**12, 10**15)
        else:
            amount = rng.randint(50, 500_000)
        n_keys = rng.randint(1, 10)
        keys = rng.sample(META_KEYS, n_keys)
        metadata = {k: meta_value(rng, k) for k in keys}
        body = {
            "event_type": event_type,
            "object_id": f"{obj_prefix}_{rand_token(rng, rng.randint(14, 24))}",
            "amount_cents": amount,
            "currency": currency,
            "metadata": metadata,
        }
        # About one body in four carries top-level fields hooksink does not know (and must
        # ignore), like a provider adding fields in a new API version.
        if rng.random() < 0.25:
            body["livemode"] = rng.random() < 0.5
        if rng.random() < 0.15:
            body["api_version"] = "2024-06-20"
        if rng.random() < 0.10:
            body["request"] = {"id": "req_" + rand_token(rng, 14), "idempotency_key": None}
        # Field order varies too: a receiver must not depend on it.
        items = list(body.items())
        if rng.random() < 0.3:
            rng.shuffle(items)
        raw = json.dumps(dict(items), ensure_ascii=False, separators=(",", ":")).encode()
        if BODY_MIN <= len(raw) <= BODY_MAX:
            return raw


def run_prefix() -> str:
    """Unique per run: base-36 time in ms plus 4 random characters, e.g. 'lt1a2b3c4d5e_Xy9Q'."""
    ms = int(time.time() * 1000)
    digits = string.digits + string.ascii_lowercase
    out = ""
    while ms:
        ms, d = divmod(ms, 36)
        out = digits[d] + out
    return "lt" + out + "_" + "".join(random.SystemRandom().choices(ALNUM, k=4))


FIXED_DUP_BODY = (
    '{"event_type":"payment.succeeded","object_id":"pi_3MtwBwLkdIwHu7ix28a3tqPa",'
    '"amount_cents":2000,"currency":"usd","metadata":{"order_id":"6735","city":"Zürich"}}'
).encode()


def generate(out, key: bytes, count: int, prefix: str, mode: str, seed: int | None,
             distinct: int = 20_000, scheme: str = "standard") -> int:
    rng = random.Random(seed)
    now = int(time.time())
    if scheme == "stripe":
        return generate_stripe(out, key, count, prefix, rng, now, distinct)
    if mode == "duplicate":
        count = 1
    # Building a random body costs ~100 us in Python, signing ~3 us.  To generate a few
    # hundred thousand requests in seconds, build `distinct` bodies and let the requests pick
    # from that pool at random: every id (and so every row) is still unique, and the server
    # cannot tell (it does not deduplicate on body content).
    pool = [make_body(rng) for _ in range(min(count, distinct))] if mode == "unique" else []
    out.write(f"{FORMAT_TAG} mode={mode} prefix={prefix} count={count} generated_at={now}\n"
              .encode())
    def requests():
        for n in range(count):
            if mode == "duplicate":
                msg_id, body = f"msg_{prefix}_dup", FIXED_DUP_BODY
            else:
                msg_id, body = f"msg_{prefix}_{n}", pool[rng.randrange(len(pool))]
            yield msg_id.encode(), sign(key, msg_id, now, body), body
    write_requests(out, now, requests())
    return count


def write_requests(out, now: int, requests) -> None:
    """Writes (id, signature, body) triples as the file's lines, 4096 per write."""
    lines = []
    for request_id, signature, body in requests:
        lines.append(b"%s\t%d\t%s\t%s\n" % (request_id, now, signature.encode(), body))
        if len(lines) >= 4096:
            out.writelines(lines)
            lines.clear()
    out.writelines(lines)


def generate_stripe(out, secret: bytes, count: int, prefix: str, rng: random.Random, now: int,
                    distinct: int) -> int:
    """Unique Stripe events: a pool of `distinct` bodies (each ~1.6 ms to build), every request
    one of them with its own event id put in and signed."""
    pool = [stripe_bodies.make_body(rng)[0] for _ in range(min(count, distinct))]
    placeholder = stripe_bodies.ID_PLACEHOLDER.encode()
    out.write(f"{FORMAT_TAG} mode=unique prefix={prefix} count={count} generated_at={now} "
              "scheme=stripe\n".encode())
    def requests():
        for n in range(count):
            event_id = b"evt_%s_%d" % (prefix.encode(), n)
            body = pool[rng.randrange(len(pool))].replace(placeholder, event_id, 1)
            yield event_id, stripe_sign(secret, now, body), body
    write_requests(out, now, requests())
    return count


# ---------------------------------------------------------------------------------------------
# Self-test: signer against the Standard Webhooks vector, bodies against hooksink's rules.

EVENT_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")


def check_body(raw: bytes) -> list[str]:
    errs = []
    if not BODY_MIN <= len(raw) <= BODY_MAX:
        errs.append(f"size {len(raw)}")
    b = json.loads(raw)
    et = b["event_type"]
    if not (EVENT_TYPE_RE.match(et) and len(et) <= 64):
        errs.append(f"event_type {et!r}")
    oid = b["object_id"]
    if not (0 < len(oid) <= 255 and all(33 <= ord(c) <= 126 for c in oid)):
        errs.append(f"object_id {oid!r}")
    amt = b["amount_cents"]
    if not (isinstance(amt, int) and not isinstance(amt, bool) and 0 <= amt <= 10**15):
        errs.append(f"amount_cents {amt!r}")
    if b["currency"].upper() not in {"USD", "EUR", "GBP", "CHF", "CAD", "JPY", "KRW", "BHD",
                                     "KWD"}:
        errs.append(f"currency {b['currency']!r}")
    md = b["metadata"]
    md_raw = json.dumps(md, ensure_ascii=False, separators=(",", ":")).encode()
    if not (isinstance(md, dict) and 1 <= len(md) <= 10 and len(md_raw) <= 8192
            and all(len(k.encode()) <= 40 for k in md)):
        errs.append("metadata")
    if b"\t" in raw or b"\n" in raw:
        errs.append("raw tab/newline")
    return errs


def self_test() -> int:
    failures = 0
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    print(f"signer vs Standard Webhooks vector: {'ok' if got == want else 'FAIL ' + got}")
    failures += got != want

    rng = random.Random(1)
    sizes, currencies, types = [], set(), set()
    non_ascii = nested = unknown = 0
    for _ in range(20_000):
        raw = make_body(rng)
        errs = check_body(raw)
        if errs:
            print("bad body:", errs, raw.decode())
            failures += 1
        b = json.loads(raw)
        sizes.append(len(raw))
        currencies.add(b["currency"])
        types.add(b["event_type"])
        non_ascii += any(ch > 127 for ch in raw)
        nested += any(isinstance(v, (dict, list)) for v in b["metadata"].values())
        unknown += bool(set(b) - {"event_type", "object_id", "amount_cents", "currency",
                                  "metadata"})
    print(f"20000 bodies: size {min(sizes)}..{max(sizes)} B (mean {sum(sizes)/len(sizes):.0f}),"
          f" {len(types)} event types, currencies {sorted(currencies)},"
          f" non-ASCII {non_ascii}, nested metadata {nested}, unknown fields {unknown}")
    for cond, what in [(len(types) >= 5, "event types"), (len(currencies) >= 7, "currencies"),
                       (non_ascii > 1000, "non-ASCII"), (nested > 1000, "nested"),
                       (unknown > 1000, "unknown fields")]:
        if not cond:
            print("too few:", what)
            failures += 1

    # A generated file: unique ids, signatures verify, fields split on TAB as replay.lua does.
    import io
    buf = io.BytesIO()
    p1 = run_prefix()
    generate(buf, key, 5000, p1, "unique", 7)
    lines = buf.getvalue().split(b"\n")
    header, rows = lines[0].decode(), [ln for ln in lines[1:] if ln]
    ids = set()
    for ln in rows:
        msg_id, ts, sig, body = ln.split(b"\t", 3)
        ids.add(msg_id)
        if sign(key, msg_id.decode(), int(ts), body) != sig.decode():
            failures += 1
        if abs(int(ts) - time.time()) > 5:
            failures += 1
    ok = header.startswith(FORMAT_TAG + " mode=unique") and len(ids) == len(rows) == 5000
    print(f"file: header ok, 5000 unique ids, signatures verify: {'ok' if ok else 'FAIL'}")
    failures += not ok
    # The Stripe scheme: the signer against hooksink's own unit-test value, and the bodies.
    got = stripe_sign(b"whsec_hooksink_test_secret_1", 1700000000,
                      b'{\n  "id": "evt_1",\n  "object": "event"\n}')
    want = "t=1700000000,v1=dbf2ac9b0c80f4b2e00c0d4559732e768fd9628ec4d07c9112155221ec49668f"
    print(f"stripe signer vs hooksink's value: {'ok' if got == want else 'FAIL ' + got}")
    failures += got != want
    failures += stripe_bodies.self_test()
    buf = io.BytesIO()
    generate(buf, b"whsec_x", 300, "st", "unique", 5, 50, "stripe")
    lines = buf.getvalue().split(b"\n")
    rows = [ln.split(b"\t", 3) for ln in lines[1:] if ln]
    ok = (lines[0].decode().endswith(" scheme=stripe") and len(rows) == 300
          and len({r[0] for r in rows}) == 300
          and all(json.loads(r[3])["id"] == r[0].decode()
                  and stripe_sign(b"whsec_x", int(r[1]), r[3]) == r[2].decode() for r in rows))
    print(f"stripe file: 300 unique evt_ ids in their bodies, signatures verify: "
          f"{'ok' if ok else 'FAIL'}")
    failures += not ok
    p2 = run_prefix()
    print(f"run prefixes differ ({p1} vs {p2}): {'ok' if p1 != p2 else 'FAIL'}")
    failures += p1 == p2
    print(f"{'1 passed, 0 failed' if not failures else f'0 passed, {failures} failed'}")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000, help="requests (unique mode)")
    ap.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"),
                    help="whsec_<base64> (default: $WEBHOOK_SECRET)")
    ap.add_argument("--out", help="output file ('-' for stdout)")
    ap.add_argument("--prefix", help="run prefix in every id (default: new per run)")
    ap.add_argument("--mode", choices=["unique", "duplicate"], default="unique")
    ap.add_argument("--seed", type=int, help="body RNG seed (ids stay unique via the prefix)")
    ap.add_argument("--distinct-bodies", type=int, default=20_000,
                    help="size of the pool of distinct bodies the requests draw from")
    ap.add_argument("--body-out", help="duplicate mode: also write the exact body here (oha -D)")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--scheme", choices=["standard", "stripe"], default="standard",
                    help="stripe: Stripe events for POST /stripe, signed with --stripe-secret")
    ap.add_argument("--stripe-secret", default=os.environ.get("STRIPE_WEBHOOK_SECRET"),
                    help="whsec_... (default: $STRIPE_WEBHOOK_SECRET)")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    stripe = a.scheme == "stripe"
    if stripe and (a.mode != "unique" or not a.stripe_secret or not a.out):
        ap.error("--scheme stripe needs --mode unique, --stripe-secret and --out")
    if not stripe and (not a.secret or not a.out):
        ap.error("--secret (or WEBHOOK_SECRET) and --out are required")
    if stripe:
        key = a.stripe_secret.encode()
        a.distinct_bodies = min(a.distinct_bodies, 2000)
    else:
        key = secret_key(a.secret)
    prefix = a.prefix or run_prefix()
    t0 = time.time()
    if a.out == "-":
        n = generate(sys.stdout.buffer, key, a.count, prefix, a.mode, a.seed,
                     a.distinct_bodies, a.scheme)
    else:
        with open(a.out, "wb") as f:
            n = generate(f, key, a.count, prefix, a.mode, a.seed, a.distinct_bodies, a.scheme)
    if a.mode == "duplicate" and a.body_out:
        with open(a.body_out, "wb") as f:
            f.write(FIXED_DUP_BODY)
    print(f"gen.py: {n} {a.mode} {a.scheme} request(s), prefix {prefix}, {time.time() - t0:.1f} s"
          + (" -- DUPLICATE PATH ONLY" if a.mode == "duplicate" else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
