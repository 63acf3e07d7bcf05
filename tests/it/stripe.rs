//! `POST /stripe` and the signature schemes of `/webhook`, against the real binary: Stripe
//! events stored column by column (or answered `ignored`), every signature failure, the
//! endpoints switched on by their secrets, Svix-branded headers, `v1a` signatures, and the
//! `source` migration upgrading a table in place.

use serde_json::{Value, json};

use crate::cli::hooksink;
use crate::support::{
    EXAMPLE, Response, Server, StoredRow, UNSET, closing, db, fresh_database, get, jsonb_text, now,
    post_webhook, private_cluster, private_database, request, row, row_count, send_one, send_raw_n,
    set_header, set_request_line, signature, signed_request, source, stripe_request,
    stripe_signature, unique_id,
};
use hooksink::signature::standard::PrivateKey;

/// The endpoint secret the Stripe tests sign with.
const STRIPE_SECRET: &str = "whsec_hooksink_it_stripe_1";
/// The secret a roll adds.
const STRIPE_NEXT: &str = "whsec_hooksink_it_stripe_2";
/// The published `v1a` key pair (Svix README) and message id (Standard Webhooks spec).
const WHSK: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const WHPK: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
const V1A_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

struct Fixture {
    server: Server,
    client: postgres::Client,
}

/// A server with both endpoints on (the test secret and `STRIPE_SECRET`), plus `extra_env`.
fn fixture(extra_env: &[(&str, &str)]) -> Fixture {
    let url = fresh_database();
    let mut env = vec![("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)];
    env.extend_from_slice(extra_env);
    let server = Server::start(&url, &env);
    let client = db(&url);
    Fixture { server, client }
}

/// A Stripe event of `kind` around `object`, shaped as Stripe sends it (compact).
fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": object, "previous_attributes": {"status": "open"}},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    })
    .to_string()
}

/// POSTs `body` to /stripe signed now with `secret`, on a connection of its own.
fn post_stripe(addr: std::net::SocketAddr, body: &str, secret: &str) -> Response {
    send_one(addr, &closing(&stripe_request(body, secret, now())))
}

#[track_caller]
fn assert_answer(response: &Response, status: u16, body: Value) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    assert_eq!(response.json(), body, "{response:?}");
}

/// A 401 with exactly `message`.
#[track_caller]
fn assert_invalid_signature(response: &Response, message: &str) {
    let body = json!({"error": "invalid_signature", "message": message});
    assert_answer(response, 401, body);
}

/// One stored Stripe event type: its body's object and the columns it must give.
struct Case {
    kind: &'static str,
    object: Value,
    /// category, action, object_id, amount_cents, currency, amount.
    columns: [&'static str; 6],
}

fn stored_cases() -> Vec<Case> {
    vec![
        Case {
            kind: "payment_intent.succeeded",
            object: json!({"id": "pi_1", "object": "payment_intent", "amount": 2000, "amount_received": 2000, "currency": "usd", "metadata": {"order_id": "6735"}, "status": "succeeded"}),
            columns: [
                "payment_intent",
                "succeeded",
                "pi_1",
                "2000",
                "USD",
                "20.0000",
            ],
        },
        Case {
            kind: "charge.succeeded",
            object: json!({"id": "ch_1", "object": "charge", "amount": 1099, "amount_captured": 1099, "amount_refunded": 0, "currency": "eur", "metadata": {}, "outcome": {"type": "authorized"}, "refunds": {"data": []}}),
            columns: ["charge", "succeeded", "ch_1", "1099", "EUR", "10.9900"],
        },
        Case {
            kind: "charge.refunded",
            object: json!({"id": "ch_2", "object": "charge", "amount": 1099, "amount_refunded": 1099, "currency": "eur", "metadata": {"reason": "dup"}}),
            columns: ["charge", "refunded", "ch_2", "1099", "EUR", "10.9900"],
        },
        Case {
            kind: "refund.created",
            object: json!({"id": "re_1", "object": "refund", "amount": 500, "charge": "ch_2", "currency": "gbp", "metadata": {}, "status": "succeeded"}),
            columns: ["refund", "created", "re_1", "500", "GBP", "5.0000"],
        },
        Case {
            kind: "charge.dispute.created",
            object: json!({"id": "dp_1", "object": "dispute", "amount": 1234, "charge": "ch_1", "currency": "kwd", "evidence": {"receipt": null}, "metadata": {}, "reason": "fraudulent"}),
            columns: ["charge", "dispute.created", "dp_1", "1234", "KWD", "1.2340"],
        },
        Case {
            kind: "checkout.session.completed",
            object: json!({"id": "cs_test_1", "object": "checkout.session", "amount_subtotal": 2198, "amount_total": 2198, "currency": "usd", "customer_details": {"email": "a@b.c"}, "metadata": {"cart": "42"}}),
            columns: [
                "checkout",
                "session.completed",
                "cs_test_1",
                "2198",
                "USD",
                "21.9800",
            ],
        },
        Case {
            kind: "invoice.paid",
            object: json!({"id": "in_1", "object": "invoice", "amount_due": 1500, "amount_paid": 1500, "amount_remaining": 0, "currency": "jpy", "lines": {"data": [{"amount": 1500}]}}),
            columns: ["invoice", "paid", "in_1", "1500", "JPY", "1500.0000"],
        },
    ]
}

#[test]
fn each_stored_event_type_round_trips_into_its_columns() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    for (n, case) in stored_cases().into_iter().enumerate() {
        let id = unique_id("evt_stored");
        let created = 1_680_064_028 + i64::try_from(n).unwrap();
        let metadata = case
            .object
            .get("metadata")
            .map_or("{}".to_owned(), Value::to_string);
        let answer = post_stripe(
            addr,
            &event(&id, case.kind, created, case.object),
            STRIPE_SECRET,
        );
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
        let [category, action, object_id, amount_cents, currency, amount] = case.columns;
        let expected = StoredRow {
            event_id: id.clone(),
            event_type: case.kind.to_owned(),
            category: category.to_owned(),
            action: action.to_owned(),
            object_id: object_id.to_owned(),
            amount_cents: amount_cents.to_owned(),
            currency: currency.to_owned(),
            amount: amount.to_owned(),
            metadata: jsonb_text(&mut f.client, &metadata),
            provider_ts: created,
        };
        assert_eq!(row(&mut f.client, &id), Some(expected), "{}", case.kind);
        assert_eq!(source(&mut f.client, &id).as_deref(), Some("stripe"));
    }
}

#[test]
fn pretty_printed_event_is_stored() {
    let mut f = fixture(&[]);
    let id = unique_id("evt_pretty");
    let object = json!({"id": "pi_pretty", "object": "payment_intent", "amount": 5, "currency": "bhd", "metadata": {"a": [1, 2]}});
    let compact: Value =
        serde_json::from_str(&event(&id, "payment_intent.created", 7, object)).unwrap();
    let pretty = format!("{}\n", serde_json::to_string_pretty(&compact).unwrap());
    assert!(pretty.contains("\n  \"data\": {\n"), "{pretty}");
    let answer = post_stripe(f.server.addr(), &pretty, STRIPE_SECRET);
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    let stored = row(&mut f.client, &id).unwrap();
    assert_eq!(
        (
            stored.object_id.as_str(),
            stored.amount.as_str(),
            stored.currency.as_str()
        ),
        ("pi_pretty", "0.0050", "BHD")
    );
    assert_eq!(
        stored.metadata,
        jsonb_text(&mut f.client, r#"{"a": [1, 2]}"#)
    );
    assert_eq!(stored.provider_ts, 7);
}

#[test]
fn event_without_an_amount_is_ignored_counted_and_not_stored() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("evt_customer");
    let object = json!({"id": "cus_1", "object": "customer", "balance": 0, "currency": null, "email": "a@b.c", "metadata": {}});
    let answer = post_stripe(
        addr,
        &event(&id, "customer.created", 1, object),
        STRIPE_SECRET,
    );
    assert_answer(&answer, 200, json!({"status": "ignored", "id": id}));
    assert_eq!(row_count(&mut f.client, &id), 0);
    let metrics = get(addr, "/metrics").body;
    assert!(
        metrics.contains("\nhooksink_requests_total{outcome=\"ignored\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nhooksink_requests_total{outcome=\"accepted\"} 0\n"),
        "{metrics}"
    );
}

#[test]
fn redelivered_event_is_a_duplicate_and_stored_once() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("evt_again");
    let first = json!({"id": "pi_1", "amount": 100, "currency": "usd"});
    let second = json!({"id": "pi_changed", "amount": 999, "currency": "eur"});
    let answer = post_stripe(
        addr,
        &event(&id, "payment_intent.succeeded", 1, first),
        STRIPE_SECRET,
    );
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    // Stripe signs a retry anew; the event id decides, and the first row stays.
    let answer = post_stripe(
        addr,
        &event(&id, "payment_intent.succeeded", 2, second),
        STRIPE_SECRET,
    );
    assert_answer(&answer, 200, json!({"status": "duplicate", "id": id}));
    assert_eq!(row_count(&mut f.client, &id), 1);
    let stored = row(&mut f.client, &id).unwrap();
    assert_eq!((stored.object_id.as_str(), stored.provider_ts), ("pi_1", 1));
}

#[test]
fn rolling_secrets_accept_either_secret() {
    let both = format!("{STRIPE_SECRET}, {STRIPE_NEXT}");
    let mut f = fixture(&[("STRIPE_WEBHOOK_SECRET", &both)]);
    let addr = f.server.addr();
    let body = |id: &str| {
        event(
            id,
            "charge.succeeded",
            1,
            json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
        )
    };
    for secret in [STRIPE_SECRET, STRIPE_NEXT] {
        let id = unique_id("evt_roll");
        let answer = post_stripe(addr, &body(&id), secret);
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    }
    // During a roll Stripe sends one v1 per live secret; an unknown one next to a known passes.
    let id = unique_id("evt_roll_both");
    let t = now();
    let old = stripe_signature("whsec_retired", t, body(&id).as_bytes());
    let new = stripe_signature(STRIPE_NEXT, t, body(&id).as_bytes());
    let header = format!("{old},{}", new.split_once(',').unwrap().1);
    let signed = set_header(
        &stripe_request(body(&id), STRIPE_NEXT, t),
        "stripe-signature",
        Some(&header),
    );
    let answer = send_one(addr, &closing(&signed));
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    let id = unique_id("evt_roll_retired");
    let answer = post_stripe(addr, &body(&id), "whsec_retired");
    assert_invalid_signature(&answer, "no signature matched a configured key");
    assert_eq!(row_count(&mut f.client, &id), 0);
}

#[test]
fn both_endpoints_serve_at_once_on_one_connection() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let (webhook_id, stripe_id) = (unique_id("msg_both"), unique_id("evt_both"));
    let stripe_body = event(
        &stripe_id,
        "invoice.paid",
        1,
        json!({"id": "in_1", "amount_paid": 7, "currency": "usd"}),
    );
    let mut pipelined = signed_request(&webhook_id, now(), EXAMPLE);
    pipelined.extend(closing(&stripe_request(&stripe_body, STRIPE_SECRET, now())));
    let answers = send_raw_n(addr, &pipelined, 2);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_answer(
        &answers[0],
        200,
        json!({"status": "accepted", "id": webhook_id}),
    );
    assert_answer(
        &answers[1],
        200,
        json!({"status": "accepted", "id": stripe_id}),
    );
    assert_eq!(
        source(&mut f.client, &webhook_id).as_deref(),
        Some("webhook")
    );
    assert_eq!(source(&mut f.client, &stripe_id).as_deref(), Some("stripe"));
}

#[test]
fn every_signature_failure_answers_401_and_stores_nothing() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("evt_unsigned");
    let body = event(
        &id,
        "charge.succeeded",
        1,
        json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
    );
    let signed = stripe_request(&body, STRIPE_SECRET, now());
    let tag = "0".repeat(64);
    let with = |value: Option<&str>| closing(&set_header(&signed, "stripe-signature", value));
    let cases: [(Vec<u8>, &str); 8] = [
        (with(None), "stripe-signature header missing"),
        (
            with(Some(&format!("t={},v1={}", now(), "zz".repeat(32)))),
            "stripe-signature v1 is not 64 hex digits",
        ),
        (
            with(Some(&format!("v1={tag}"))),
            "stripe-signature has no t",
        ),
        (
            with(Some(&format!("t={},v0={tag}", now()))),
            "stripe-signature has no v1 signature",
        ),
        (
            with(Some(&format!("t=soon,v1={tag}"))),
            "stripe-signature t must be unix seconds in digits",
        ),
        (
            closing(&stripe_request(&body, STRIPE_SECRET, now() - 400)),
            "stripe-signature t more than 300 s in the past",
        ),
        (
            closing(&stripe_request(&body, STRIPE_SECRET, now() + 400)),
            "stripe-signature t more than 300 s in the future",
        ),
        (
            closing(&stripe_request(&body, STRIPE_NEXT, now())),
            "no signature matched a configured key",
        ),
    ];
    for (bytes, message) in cases {
        assert_invalid_signature(&send_one(addr, &bytes), message);
    }
    // A Standard Webhooks delivery sent to /stripe is not signed the Stripe way.
    let standard = set_request_line(&signed_request(&id, now(), &body), "POST /stripe HTTP/1.1");
    assert_invalid_signature(
        &send_one(addr, &closing(&standard)),
        "stripe-signature header missing",
    );
    // The body is signed as sent: one changed byte and the tag no longer matches.
    let text = String::from_utf8(closing(&signed)).unwrap();
    let tampered = text.replace("\"amount\":1,", "\"amount\":2,");
    assert_ne!(tampered, text);
    assert_invalid_signature(
        &send_one(addr, tampered.as_bytes()),
        "no signature matched a configured key",
    );
    assert_eq!(row_count(&mut f.client, &id), 0);
}

#[test]
fn stripe_field_rules_answer_422_with_the_stripe_path() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let intent = |id: &str, object: Value| event(id, "payment_intent.succeeded", 1, object);
    let cases: [(Value, &str, &str); 4] = [
        (
            json!({"id": "pi_1", "amount": 1, "currency": "xyz"}),
            "data.object.currency",
            "data.object.currency is not an active iso 4217 code",
        ),
        (
            json!({"id": "pi_1", "amount": -1, "currency": "usd"}),
            "data.object.amount",
            "data.object.amount must be between 0 and 1000000000000000",
        ),
        (
            json!({"id": "pi_1", "amount_total": 20.5, "currency": "usd"}),
            "data.object.amount_total",
            "data.object.amount_total must be an integer",
        ),
        (
            json!({"id": "pi 1", "amount": 1, "currency": "usd"}),
            "data.object.id",
            "data.object.id must be ascii characters 0x21 to 0x7e",
        ),
    ];
    for (object, field, message) in cases {
        let id = unique_id("evt_rule");
        let answer = post_stripe(addr, &intent(&id, object), STRIPE_SECRET);
        let body = json!({"error": "validation_failed", "field": field, "message": message});
        assert_answer(&answer, 422, body);
        assert_eq!(row_count(&mut f.client, &id), 0);
    }
    let id = unique_id("evt_rule");
    let untyped = intent(&id, json!({"id": "pi_1", "amount": 1, "currency": "usd"}))
        .replace("payment_intent.succeeded", "PaymentIntent");
    let answer = post_stripe(addr, &untyped, STRIPE_SECRET);
    let message = "type must be lowercase words joined by dots, like payment.succeeded";
    assert_answer(
        &answer,
        422,
        json!({"error": "validation_failed", "field": "type", "message": message}),
    );
    let no_created = intent(&id, json!({})).replace("\"created\":1,", "");
    let answer = post_stripe(addr, &no_created, STRIPE_SECRET);
    assert_answer(
        &answer,
        422,
        json!({"error": "validation_failed", "field": "created", "message": "created is missing"}),
    );
    let answer = post_stripe(addr, r#"{"id":"evt_1","id":"evt_2"}"#, STRIPE_SECRET);
    let message = "duplicate key `id` at line 1 column 27";
    assert_answer(
        &answer,
        400,
        json!({"error": "invalid_json", "message": message}),
    );
}

#[test]
fn stripe_size_and_media_type_answer_as_on_webhook() {
    let f = fixture(&[]);
    let addr = f.server.addr();
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(65_536));
    let answer = send_one(addr, &stripe_request(&big, STRIPE_SECRET, now()));
    assert_answer(&answer, 413, json!({"error": "payload_too_large"}));
    let id = unique_id("evt_media");
    let body = event(
        &id,
        "charge.succeeded",
        1,
        json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
    );
    let plain = set_header(
        &stripe_request(&body, STRIPE_SECRET, now()),
        "content-type",
        Some("text/plain"),
    );
    assert_answer(
        &send_one(addr, &closing(&plain)),
        415,
        json!({"error": "unsupported_media_type"}),
    );
    let get_stripe = closing(&request("GET", "/stripe", &[], b""));
    let answer = send_one(addr, &get_stripe);
    assert_answer(&answer, 405, json!({"error": "method_not_allowed"}));
    assert_eq!(answer.header("allow"), Some("POST"));
}

#[test]
fn database_down_answers_503_on_stripe() {
    let mut cluster = private_cluster();
    cluster.create_database("hooksink").unwrap();
    let url = cluster.url("hooksink");
    let server = Server::start(&url, &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)]);
    assert_eq!(get(server.addr(), "/readyz").status, 200);
    cluster.stop().unwrap();
    let id = unique_id("evt_down");
    let body = event(
        &id,
        "charge.succeeded",
        1,
        json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
    );
    let answer = post_stripe(server.addr(), &body, STRIPE_SECRET);
    assert_answer(&answer, 503, json!({"error": "unavailable"}));
    assert_eq!(answer.header("retry-after"), Some("5"), "{answer:?}");
    cluster.restart().unwrap();
    assert_eq!(row_count(&mut db(&url), &id), 0);
}

#[test]
fn an_endpoint_without_its_secret_answers_404() {
    let url = fresh_database();
    let webhook_only = Server::start(&url, &[]);
    let id = unique_id("evt_off");
    let body = event(
        &id,
        "charge.succeeded",
        1,
        json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
    );
    let answer = post_stripe(webhook_only.addr(), &body, STRIPE_SECRET);
    assert_answer(&answer, 404, json!({"error": "not_found"}));
    drop(webhook_only);
    let stripe_only = Server::start(
        &url,
        &[
            ("WEBHOOK_SECRET", UNSET),
            ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
        ],
    );
    let answer = post_webhook(stripe_only.addr(), &unique_id("msg_off"), EXAMPLE);
    assert_answer(&answer, 404, json!({"error": "not_found"}));
    let answer = post_stripe(stripe_only.addr(), &body, STRIPE_SECRET);
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    assert!(
        stripe_only
            .log_text()
            .contains("webhook_keys=0 stripe_secrets=1"),
        "{}",
        stripe_only.log_text()
    );
}

#[test]
fn neither_secret_or_a_bad_stripe_secret_refuses_to_start() {
    let base = [
        ("DATABASE_URL", "postgres://127.0.0.1:1/none"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ];
    let cases = [
        (
            None,
            "hooksink: neither WEBHOOK_SECRET (for /webhook) nor STRIPE_WEBHOOK_SECRET (for /stripe) is set; set one or both\n",
        ),
        (
            Some("sk_test_123"),
            "hooksink: STRIPE_WEBHOOK_SECRET entry 1 does not start with whsec_\n",
        ),
        (
            Some(""),
            "hooksink: STRIPE_WEBHOOK_SECRET holds no secret\n",
        ),
    ];
    for (stripe, expected) in cases {
        let mut env = base.to_vec();
        env.extend(stripe.map(|value| ("STRIPE_WEBHOOK_SECRET", value)));
        let output = hooksink(&[], &env);
        assert_eq!(output.status.code(), Some(1), "{stripe:?}");
        assert_eq!(String::from_utf8(output.stderr).unwrap(), expected);
    }
}

/// A POST of `EXAMPLE` to /webhook with `headers` besides the content type.
fn webhook_with(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    closing(&request("POST", "/webhook", &all, EXAMPLE.as_bytes()))
}

#[test]
fn svix_headers_are_accepted_and_a_mix_is_refused() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("msg_svix");
    let ts = now().to_string();
    let sig = signature(&id, now(), EXAMPLE.as_bytes());
    let svix = webhook_with(&[
        ("svix-id", &id),
        ("svix-timestamp", &ts),
        ("svix-signature", &sig),
    ]);
    assert_answer(
        &send_one(addr, &svix),
        200,
        json!({"status": "accepted", "id": id}),
    );
    assert_eq!(source(&mut f.client, &id).as_deref(), Some("webhook"));
    let mixed_id = unique_id("msg_mixed");
    let sig = signature(&mixed_id, now(), EXAMPLE.as_bytes());
    let mixed = webhook_with(&[
        ("webhook-id", &mixed_id),
        ("svix-timestamp", &ts),
        ("svix-signature", &sig),
    ]);
    let message = "webhook-* and svix-* signature headers mixed; send one complete set";
    assert_invalid_signature(&send_one(addr, &mixed), message);
    assert_eq!(row_count(&mut f.client, &mixed_id), 0);
}

#[test]
fn v1a_signature_is_accepted_with_a_whpk_key() {
    let mut f = fixture(&[("WEBHOOK_SECRET", WHPK)]);
    let addr = f.server.addr();
    let key = PrivateKey::parse(WHSK).unwrap_or_else(|error| panic!("{error}"));
    let t = now();
    let ts = t.to_string();
    let v1a = key.sign(V1A_ID, t, EXAMPLE.as_bytes());
    assert!(v1a.starts_with("v1a,"), "{v1a}");
    let signed = webhook_with(&[
        ("webhook-id", V1A_ID),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &v1a),
    ]);
    assert_answer(
        &send_one(addr, &signed),
        200,
        json!({"status": "accepted", "id": V1A_ID}),
    );
    assert_eq!(source(&mut f.client, V1A_ID).as_deref(), Some("webhook"));
    // Only a public key is configured, so a v1 HMAC signature matches nothing.
    let id = unique_id("msg_v1");
    let v1 = signature(&id, t, EXAMPLE.as_bytes());
    let signed = webhook_with(&[
        ("webhook-id", &id),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &v1),
    ]);
    assert_invalid_signature(
        &send_one(addr, &signed),
        "no signature matched a configured key",
    );
    // The spec's own header for its vector is signed at 1614265330, far outside the window.
    let published = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    let old = closing(&request(
        "POST",
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("webhook-id", V1A_ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", published),
        ],
        br#"{"test": 2432232314}"#,
    ));
    assert_invalid_signature(
        &send_one(addr, &old),
        "webhook-timestamp more than 300 s in the past",
    );
}

#[test]
fn the_source_migration_upgrades_a_0001_table_in_place() {
    let (_cluster, url) = private_database();
    let mut client = db(&url);
    // The database as hooksink left it before 0002: the first migration applied, rows in it.
    client
        .batch_execute(&format!(
            "CREATE TABLE hooksink_migrations (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now());
             {}
             INSERT INTO hooksink_migrations (version, name) VALUES (1, '0001_webhook_events.sql');
             INSERT INTO webhook_events (event_id, event_type, category, action, object_id, \
             amount_cents, currency, amount, metadata, provider_ts) VALUES
             ('msg_old_1', 'payment.succeeded', 'payment', 'succeeded', 'pi_1', 2000, 'USD', 20, '{{}}', now()),
             ('msg_old_2', 'payment.failed', 'payment', 'failed', 'pi_2', 5, 'JPY', 5, '{{}}', now());",
            include_str!("../../sql/0001_webhook_events.sql")
        ))
        .unwrap();
    let server = Server::start(&url, &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)]);
    for id in ["msg_old_1", "msg_old_2"] {
        assert_eq!(source(&mut client, id).as_deref(), Some("webhook"), "{id}");
    }
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM hooksink_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
    let column = client
        .query_one(
            "SELECT is_nullable, column_default FROM information_schema.columns \
             WHERE table_name = 'webhook_events' AND column_name = 'source'",
            &[],
        )
        .unwrap();
    let (nullable, default): (String, Option<String>) = (column.get(0), column.get(1));
    assert_eq!((nullable.as_str(), default), ("NO", None));
    let insert = |source: &str| {
        format!(
            "INSERT INTO webhook_events (event_id, event_type, category, action, object_id, \
             amount_cents, currency, amount, metadata, provider_ts, source) VALUES \
             ('x', 'a.b', 'a', 'b', 'o', 1, 'USD', 0.01, '{{}}', now(), {source})"
        )
    };
    for bad in ["'other'", "NULL"] {
        let error = client.batch_execute(&insert(bad)).unwrap_err();
        let code = error.code().map(|code| code.code().to_owned());
        let expected = if bad == "NULL" { "23502" } else { "23514" };
        assert_eq!(code.as_deref(), Some(expected), "{bad}: {error}");
    }
    // New rows say where they came from.
    let id = unique_id("evt_upgraded");
    let body = event(
        &id,
        "charge.succeeded",
        1,
        json!({"id": "ch_1", "amount": 1, "currency": "usd"}),
    );
    let answer = post_stripe(server.addr(), &body, STRIPE_SECRET);
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    assert_eq!(source(&mut client, &id).as_deref(), Some("stripe"));
    assert_eq!(post_webhook(server.addr(), "msg_new", EXAMPLE).status, 200);
    assert_eq!(source(&mut client, "msg_new").as_deref(), Some("webhook"));
}
