"""Stripe event bodies for gen.py --scheme stripe (stdlib only).

Real Stripe events are 2-20 KB: hooksink reads six fields of `data.object` and skips the rest
unparsed, so what a Stripe mix costs depends on how much there is to skip.  Each body here is
an event shaped as Stripe's API reference shows it (payment intents with their embedded
charges as API versions before 2022-11-15 send them, charges with refunds, invoices with line
items, checkout sessions), with the many fields hooksink ignores, grown by the object's own
repeated parts (charges, refunds, invoice lines, custom fields) to a size drawn log-uniformly
from 2 KiB to 20 KiB.  About IGNORED_SHARE of the events are `customer.*` events, whose
object has no amount: hooksink answers them 200 `ignored` and stores nothing.

Bodies are compact JSON (one line each in gen.py's file; Stripe itself pretty-prints, which
only adds whitespace to skip).  The event id is the placeholder ID_PLACEHOLDER, replaced per
request by gen.py, so one body can serve many requests with distinct ids.
"""

from __future__ import annotations

import json
import math
import random
import string

SIZE_MIN, SIZE_MAX = 2048, 20480  # bytes
IGNORED_SHARE = 0.15
ID_PLACEHOLDER = "evt_ID_PLACEHOLDER"
API_VERSIONS = ["2020-08-27", "2022-08-01", "2022-11-15", "2023-10-16", "2024-06-20"]
# Stored event types by object kind, and the ignored ones (no amount on the object).
STORED = {
    "payment_intent": ["payment_intent.succeeded", "payment_intent.created",
                       "payment_intent.payment_failed", "payment_intent.amount_capturable_updated"],
    "charge": ["charge.succeeded", "charge.refunded", "charge.captured", "charge.updated"],
    "invoice": ["invoice.paid", "invoice.payment_succeeded", "invoice.finalized",
                "invoice.payment_failed"],
    "checkout.session": ["checkout.session.completed", "checkout.session.async_payment_succeeded"],
}
IGNORED = ["customer.created", "customer.updated", "customer.subscription.updated"]
CURRENCIES = ["usd", "usd", "usd", "eur", "eur", "gbp", "chf", "cad", "jpy", "aud", "sek"]
CITIES = [("Zürich", "CH", "8001"), ("São Paulo", "BR", "01310-100"), ("Łódź", "PL", "90-001"),
          ("San Francisco", "US", "94111"), ("München", "DE", "80331"), ("Lyon", "FR", "69001"),
          ("東京都", "JP", "150-0002"), ("Toronto", "CA", "M5H 2N2")]
NAMES = ["Jenny Rosen", "Zoë Müller", "José Álvarez", "Anna Kowalska", "田中 太郎", "O'Brien & Co"]
ALNUM = string.ascii_letters + string.digits


def token(rng: random.Random, prefix: str, n: int = 24) -> str:
    return prefix + "".join(rng.choices(ALNUM, k=n))


def address(rng: random.Random) -> dict:
    city, country, postal = rng.choice(CITIES)
    return {"city": city, "country": country, "line1": f"{rng.randint(1, 999)} Market Street",
            "line2": rng.choice([None, f"Apt {rng.randint(1, 99)}"]), "postal_code": postal,
            "state": rng.choice([None, "CA", "NY"])}


def metadata(rng: random.Random) -> dict:
    keys = rng.sample(["order_id", "cart_id", "customer_ref", "channel", "campaign", "store",
                       "locale", "seller", "note"], rng.randint(0, 6))
    return {k: (str(rng.randint(1000, 99_999_999)) if rng.random() < 0.6
                else rng.choice(["web", "ios", "Zürich", "spring 🎉", "東京"])) for k in keys}


def card(rng: random.Random) -> dict:
    return {
        "brand": rng.choice(["visa", "mastercard", "amex"]),
        "checks": {"address_line1_check": "pass", "address_postal_code_check": "pass",
                   "cvc_check": "pass"},
        "country": rng.choice(["US", "DE", "CH", "JP"]), "exp_month": rng.randint(1, 12),
        "exp_year": rng.randint(2026, 2032), "fingerprint": token(rng, "", 16),
        "funding": "credit", "installments": None, "last4": f"{rng.randint(0, 9999):04d}",
        "mandate": None, "network": "visa", "network_token": {"used": False},
        "three_d_secure": None, "wallet": None,
    }


def charge(rng: random.Random, amount: int, currency: str, created: int) -> dict:
    ch = token(rng, "ch_3")
    return {
        "id": ch, "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": 0, "application": None, "application_fee": None,
        "application_fee_amount": None, "balance_transaction": token(rng, "txn_3"),
        "billing_details": {"address": address(rng), "email": "jenny.rosen@example.com",
                            "name": rng.choice(NAMES), "phone": None},
        "calculated_statement_descriptor": "HOOKSINK SHOP", "captured": True,
        "created": created, "currency": currency, "customer": token(rng, "cus_", 14),
        "description": None, "destination": None, "dispute": None, "disputed": False,
        "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
        "fraud_details": {}, "invoice": None, "livemode": False, "metadata": metadata(rng),
        "on_behalf_of": None, "order": None,
        "outcome": {"network_status": "approved_by_network", "reason": None,
                    "risk_level": "normal", "risk_score": rng.randint(0, 99),
                    "seller_message": "Payment complete.", "type": "authorized"},
        "paid": True, "payment_intent": token(rng, "pi_3"), "payment_method": token(rng, "pm_1"),
        "payment_method_details": {"card": card(rng), "type": "card"},
        "receipt_email": None, "receipt_number": None,
        "receipt_url": "https://pay.stripe.com/receipts/payment/" + token(rng, "", 96),
        "refunded": False, "refunds": {"object": "list", "data": [], "has_more": False,
                                       "total_count": 0, "url": f"/v1/charges/{ch}/refunds"},
        "review": None, "shipping": None, "source": None, "source_transfer": None,
        "statement_descriptor": None, "statement_descriptor_suffix": None,
        "status": "succeeded", "transfer_data": None, "transfer_group": None,
    }


def refund(rng: random.Random, currency: str, created: int) -> dict:
    return {"id": token(rng, "re_3"), "object": "refund", "amount": rng.randint(100, 5000),
            "balance_transaction": token(rng, "txn_3"), "charge": token(rng, "ch_3"),
            "created": created, "currency": currency, "metadata": metadata(rng),
            "payment_intent": token(rng, "pi_3"), "reason": rng.choice([None, "duplicate"]),
            "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None}


def invoice_line(rng: random.Random, currency: str, created: int) -> dict:
    amount = rng.randint(100, 50_000)
    price = token(rng, "price_1")
    return {
        "id": token(rng, "il_1"), "object": "line_item", "amount": amount,
        "amount_excluding_tax": amount, "currency": currency,
        "description": f"1 × Pro plan (at {amount / 100:.2f} / month)", "discount_amounts": [],
        "discountable": True, "discounts": [], "livemode": False, "metadata": {},
        "period": {"end": created + 2_592_000, "start": created},
        "plan": {"id": price, "object": "plan", "active": True, "amount": amount,
                 "billing_scheme": "per_unit", "created": created - 86_400,
                 "currency": currency, "interval": "month", "interval_count": 1,
                 "livemode": False, "metadata": {}, "nickname": None,
                 "product": token(rng, "prod_", 14), "usage_type": "licensed"},
        "price": {"id": price, "object": "price", "active": True, "billing_scheme": "per_unit",
                  "created": created - 86_400, "currency": currency, "livemode": False,
                  "lookup_key": None, "metadata": {}, "product": token(rng, "prod_", 14),
                  "recurring": {"interval": "month", "interval_count": 1,
                                "usage_type": "licensed"},
                  "tax_behavior": "unspecified", "type": "recurring", "unit_amount": amount,
                  "unit_amount_decimal": str(amount)},
        "proration": False, "quantity": 1, "subscription": token(rng, "sub_1"),
        "tax_amounts": [], "tax_rates": [], "type": "subscription",
    }


def custom_field(rng: random.Random, n: int) -> dict:
    return {"key": f"field_{n}", "label": {"custom": rng.choice(NAMES), "type": "custom"},
            "optional": True, "text": {"maximum_length": None, "minimum_length": None,
                                       "value": rng.choice(CITIES)[0]}, "type": "text"}


def amount_currency(rng: random.Random) -> tuple[int, str]:
    currency = rng.choice(CURRENCIES)
    return rng.randint(50, 500_000), currency


def payment_intent(rng, created):
    amount, currency = amount_currency(rng)
    pi = token(rng, "pi_3")
    obj = {
        "id": pi, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": amount, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": {"enabled": True},
        "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
        "charges": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                    "url": f"/v1/charges?payment_intent={pi}"},
        "client_secret": pi + "_secret_" + token(rng, "", 25), "confirmation_method": "automatic",
        "created": created, "currency": currency, "customer": token(rng, "cus_", 14),
        "description": None, "invoice": None, "last_payment_error": None,
        "latest_charge": token(rng, "ch_3"), "livemode": False, "metadata": metadata(rng),
        "next_action": None, "on_behalf_of": None, "payment_method": token(rng, "pm_1"),
        "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                            "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "processing": None, "receipt_email": None,
        "review": None, "setup_future_usage": None,
        "shipping": {"address": address(rng), "carrier": None, "name": rng.choice(NAMES),
                     "phone": None, "tracking_number": None},
        "source": None, "statement_descriptor": None, "statement_descriptor_suffix": None,
        "status": "succeeded", "transfer_data": None, "transfer_group": None,
    }
    grow = lambda: obj["charges"]["data"].append(charge(rng, amount, currency, created))
    return obj, grow


def charge_object(rng, created):
    amount, currency = amount_currency(rng)
    obj = charge(rng, amount, currency, created)
    grow = lambda: obj["refunds"]["data"].append(refund(rng, currency, created))
    return obj, grow


def invoice(rng, created):
    _, currency = amount_currency(rng)
    obj = {
        "id": token(rng, "in_1"), "object": "invoice", "account_country": "US",
        "account_name": "Hooksink Shop", "account_tax_ids": None, "amount_due": 0,
        "amount_paid": 0, "amount_remaining": 0, "amount_shipping": 0, "application": None,
        "attempt_count": 1, "attempted": True, "auto_advance": False,
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": "subscription_cycle", "charge": token(rng, "ch_3"),
        "collection_method": "charge_automatically", "created": created, "currency": currency,
        "custom_fields": None, "customer": token(rng, "cus_", 14),
        "customer_address": address(rng), "customer_email": "jenny.rosen@example.com",
        "customer_name": rng.choice(NAMES), "customer_phone": None, "customer_shipping": None,
        "customer_tax_exempt": "none", "customer_tax_ids": [], "default_payment_method": None,
        "default_source": None, "default_tax_rates": [], "description": None,
        "discount": None, "discounts": [], "due_date": None, "ending_balance": 0,
        "footer": None, "hosted_invoice_url": "https://invoice.stripe.com/i/" + token(rng, "", 80),
        "invoice_pdf": "https://pay.stripe.com/invoice/" + token(rng, "", 80) + "/pdf",
        "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                  "url": "/v1/invoices/in_1/lines"},
        "livemode": False, "metadata": metadata(rng), "next_payment_attempt": None,
        "number": f"HS-{rng.randint(1000, 9999)}-{rng.randint(1, 999):04d}",
        "on_behalf_of": None, "paid": True, "paid_out_of_band": False,
        "payment_intent": token(rng, "pi_3"),
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": created, "period_start": created - 2_592_000,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "quote": None, "receipt_number": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "paid",
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None,
                               "paid_at": created, "voided_at": None},
        "subscription": token(rng, "sub_1"), "subtotal": 0, "subtotal_excluding_tax": 0,
        "tax": None, "test_clock": None, "total": 0, "total_discount_amounts": [],
        "total_excluding_tax": 0, "total_tax_amounts": [], "transfer_data": None,
        "webhooks_delivered_at": created,
    }

    def grow():
        line = invoice_line(rng, currency, created)
        obj["lines"]["data"].append(line)
        obj["lines"]["total_count"] += 1
        for key in ["amount_due", "amount_paid", "subtotal", "subtotal_excluding_tax", "total",
                    "total_excluding_tax"]:
            obj[key] += line["amount"]
    grow()
    return obj, grow


def checkout_session(rng, created):
    amount, currency = amount_currency(rng)
    obj = {
        "id": token(rng, "cs_test_a1", 50), "object": "checkout.session",
        "after_expiration": None, "allow_promotion_codes": None, "amount_subtotal": amount,
        "amount_total": amount, "automatic_tax": {"enabled": False, "status": None},
        "billing_address_collection": None, "cancel_url": "https://example.com/cancel",
        "client_reference_id": None, "consent": None, "consent_collection": None,
        "created": created, "currency": currency, "custom_fields": [],
        "custom_text": {"shipping_address": None, "submit": None},
        "customer": token(rng, "cus_", 14), "customer_creation": "if_required",
        "customer_details": {"address": address(rng), "email": "jenny.rosen@example.com",
                             "name": rng.choice(NAMES), "phone": None, "tax_exempt": "none",
                             "tax_ids": []},
        "customer_email": None, "expires_at": created + 86_400,
        "invoice": None, "invoice_creation": {"enabled": False, "invoice_data": {
            "account_tax_ids": None, "custom_fields": None, "description": None,
            "footer": None, "metadata": {}, "rendering_options": None}},
        "livemode": False, "locale": None, "metadata": metadata(rng), "mode": "payment",
        "payment_intent": token(rng, "pi_3"), "payment_link": None,
        "payment_method_collection": "always", "payment_method_options": {},
        "payment_method_types": ["card"], "payment_status": "paid",
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "shipping_details": None, "shipping_options": [], "status": "complete",
        "submit_type": None, "subscription": None,
        "success_url": "https://example.com/success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "url": None,
    }
    grow = lambda: obj["custom_fields"].append(custom_field(rng, len(obj["custom_fields"])))
    return obj, grow


def customer(rng, created):
    """A `customer.*` object: no amount, so hooksink answers `ignored`."""
    obj = {
        "id": token(rng, "cus_", 14), "object": "customer", "address": address(rng),
        "balance": 0, "created": created, "currency": rng.choice([None, "usd"]),
        "default_source": None, "delinquent": False, "description": None, "discount": None,
        "email": "jenny.rosen@example.com", "invoice_prefix": token(rng, "", 8).upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                             "footer": None, "rendering_options": None},
        "livemode": False, "metadata": metadata(rng), "name": rng.choice(NAMES),
        "next_invoice_sequence": 1, "phone": None, "preferred_locales": [],
        "shipping": None, "tax_exempt": "none", "test_clock": None,
        "sources": {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"},
    }
    grow = lambda: obj["sources"]["data"].append(
        {"id": token(rng, "card_1"), "object": "card", "address_city": rng.choice(CITIES)[0],
         **card(rng)})
    return obj, grow


BUILDERS = {"payment_intent": payment_intent, "charge": charge_object, "invoice": invoice,
            "checkout.session": checkout_session}


def make_body(rng: random.Random) -> tuple[bytes, bool]:
    """One event of SIZE_MIN..=SIZE_MAX bytes, and whether hooksink stores it."""
    while True:
        target = math.exp(rng.uniform(math.log(SIZE_MIN), math.log(SIZE_MAX)))
        created = 1_700_000_000 + rng.randint(0, 50_000_000)
        if rng.random() < IGNORED_SHARE:
            kind, stored = rng.choice(IGNORED), False
            obj, grow = customer(rng, created)
        else:
            name = rng.choice(list(BUILDERS))
            kind, stored = rng.choice(STORED[name]), True
            obj, grow = BUILDERS[name](rng, created)
        event = {
            "id": ID_PLACEHOLDER, "object": "event", "api_version": rng.choice(API_VERSIONS),
            "created": created, "data": {"object": obj},
            "livemode": False, "pending_webhooks": rng.randint(1, 3),
            "request": {"id": token(rng, "req_", 14), "idempotency_key": token(rng, "", 32)},
            "type": kind,
        }
        if kind.endswith(".updated"):
            event["data"]["previous_attributes"] = {"metadata": {}}
        raw = encode(event)
        while len(raw) < target:
            grow()
            raw = encode(event)
        if SIZE_MIN <= len(raw) <= SIZE_MAX:
            return raw, stored


def encode(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def self_test() -> int:
    """Sizes, shapes and the ignored share of 2 000 bodies; returns the failure count."""
    rng = random.Random(3)
    failures = 0
    sizes, kinds, stored_n = [], set(), 0
    for _ in range(2000):
        raw, stored = make_body(rng)
        event = json.loads(raw)
        obj = event["data"]["object"]
        amount = next((obj[k] for k in ["amount", "amount_total", "amount_paid"]
                       if obj.get(k) is not None), None)
        if stored != (amount is not None and obj.get("currency") is not None):
            failures += 1
        if not SIZE_MIN <= len(raw) <= SIZE_MAX or b"\t" in raw or b"\n" in raw:
            failures += 1
        if raw.count(ID_PLACEHOLDER.encode()) != 1:
            failures += 1
        sizes.append(len(raw))
        kinds.add(event["type"])
        stored_n += stored
    share = 1 - stored_n / len(sizes)
    print(f"2000 stripe bodies: size {min(sizes)}..{max(sizes)} B (mean "
          f"{sum(sizes) / len(sizes):.0f}), {len(kinds)} event types, ignored {share:.1%}")
    failures += not (len(kinds) >= 12 and 0.10 < share < 0.20)
    return failures
