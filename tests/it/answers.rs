//! Every row of the contract's answers table, against the real binary: the exact status, the
//! exact JSON body, `content-type: application/json`, and the row in the database (stored with
//! the transformed values, or absent).

use serde_json::{Value, json};

use crate::support::{
    EXAMPLE, Response, Server, StoredRow, closing, db, fresh_database, get, jsonb_text, now,
    post_webhook, post_webhook_at, private_cluster, request, row, send_one, send_raw, set_header,
    set_request_line, signature, signed_request, unique_id,
};

/// The contract's default body limit.
const BODY_LIMIT: usize = 65_536;

/// Expected column texts of a stored row, by column name.
type Columns = &'static [(&'static str, &'static str)];

/// Builds the raw request for a given event id.
type Build<'a> = Box<dyn Fn(&str) -> Vec<u8> + 'a>;

struct Fixture {
    server: Server,
    client: postgres::Client,
}

/// A server on a database of its own.
fn fixture(extra_env: &[(&str, &str)]) -> Fixture {
    let url = fresh_database();
    let server = Server::start(&url, extra_env);
    let client = db(&url);
    Fixture { server, client }
}

/// The example body with `field` set to the raw JSON `value`, or removed when `None`.
fn example_with(field: &str, value: Option<&str>) -> String {
    let mut fields: Vec<(String, String)> = [
        ("event_type", r#""payment.succeeded""#),
        ("object_id", r#""pi_3MtwBw""#),
        ("amount_cents", "2000"),
        ("currency", r#""usd""#),
        ("metadata", r#"{"order_id":"6735"}"#),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    match fields.iter().position(|(k, _)| k == field) {
        Some(i) => match value {
            Some(v) => fields[i].1 = v.to_owned(),
            None => {
                fields.remove(i);
            }
        },
        None => {
            if let Some(v) = value {
                fields.push((field.to_owned(), v.to_owned()));
            }
        }
    }
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// The example body padded with an ignored field to exactly `len` bytes.
fn padded_example(len: usize) -> String {
    let open = format!("{},\"pad\":\"", EXAMPLE.strip_suffix('}').unwrap());
    let pad = len - open.len() - 2;
    format!("{open}{}\"}}", "x".repeat(pad))
}

/// The example, signed now for `id`, with header `name` set to `value` (or removed).
fn signed_with(id: &str, name: &str, value: Option<&str>) -> Vec<u8> {
    set_header(&signed_request(id, now(), EXAMPLE), name, value)
}

/// The raw JSON text of a string of `n` copies of `c`.
fn json_string(c: char, n: usize) -> String {
    format!("\"{}\"", c.to_string().repeat(n))
}

/// A metadata object with `n` keys named `k0`, `k1`, ...
fn metadata_with_keys(n: usize) -> String {
    let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
    format!("{{{}}}", keys.join(","))
}

#[track_caller]
fn assert_json_content_type(response: &Response) {
    let content_type = response
        .header("content-type")
        .unwrap_or_else(|| panic!("no content-type: {response:?}"));
    let media_type = content_type.split(';').next().unwrap().trim();
    assert_eq!(media_type, "application/json", "{response:?}");
}

/// The exact status and the exact JSON body.
#[track_caller]
fn assert_answer(response: &Response, status: u16, body: Value) {
    assert_eq!(response.status, status, "{response:?}");
    assert_json_content_type(response);
    assert_eq!(response.json(), body, "{response:?}");
}

/// A rejection with a free-text `message`: the exact status, the exact keys, `error` = `code`,
/// `field` when given, and a non-empty message that names the field.
#[track_caller]
fn assert_rejection(response: &Response, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(response.status, status, "{response:?}");
    assert_json_content_type(response);
    let body = response.json();
    let object = body.as_object().unwrap_or_else(|| panic!("{body}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let expected_keys = if field.is_some() {
        vec!["error", "field", "message"]
    } else {
        vec!["error", "message"]
    };
    assert_eq!(keys, expected_keys, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "empty message: {body}");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
        assert!(
            message.contains(field),
            "message does not name {field}: {body}"
        );
    }
}

#[track_caller]
fn assert_no_row(fixture: &mut Fixture, id: &str) {
    let found = row(&mut fixture.client, id);
    assert!(found.is_none(), "{id} was stored: {found:?}");
}

/// The row the example body gives for `id` at `timestamp`, with `metadata` as PostgreSQL
/// prints the example's.
fn example_row(fixture: &mut Fixture, id: &str, timestamp: i64) -> StoredRow {
    StoredRow {
        event_id: id.to_owned(),
        event_type: "payment.succeeded".to_owned(),
        category: "payment".to_owned(),
        action: "succeeded".to_owned(),
        object_id: "pi_3MtwBw".to_owned(),
        amount_cents: "2000".to_owned(),
        currency: "USD".to_owned(),
        amount: "20.0000".to_owned(),
        metadata: jsonb_text(&mut fixture.client, r#"{"order_id":"6735"}"#),
        provider_ts: timestamp,
    }
}

#[test]
fn stored_answers_accepted_and_row_holds_transformed_values() {
    let mut f = fixture(&[]);
    let id = unique_id("stored");
    let timestamp = now() - 10;
    let answer = post_webhook_at(f.server.addr(), &id, timestamp, EXAMPLE);
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
    let expected = example_row(&mut f, &id, timestamp);
    assert_eq!(row(&mut f.client, &id), Some(expected));
}

#[test]
fn stored_values_follow_currency_event_type_and_metadata_rules() {
    let mut f = fixture(&[]);
    let metadata = r#"{ "b" : [1, 2.50, {"c": null}], "a": "\u00e9\/", "n": 1e3 }"#;
    // (field, raw JSON value, [(column, expected text)]); one event per case.
    let cases: &[(&str, &str, Columns)] = &[
        (
            "amount_cents",
            "0",
            &[("amount_cents", "0"), ("amount", "0.0000")],
        ),
        (
            "event_type",
            r#""charge.dispute.created""#,
            &[
                ("event_type", "charge.dispute.created"),
                ("category", "charge"),
                ("action", "dispute.created"),
            ],
        ),
        ("object_id", r#""pi_\/x\u0041""#, &[("object_id", "pi_/xA")]),
        ("metadata", "null", &[("metadata", "{}")]),
        (
            "unknown_field",
            r#"{"ignored": [1, 2]}"#,
            &[("object_id", "pi_3MtwBw")],
        ),
    ];
    for (field, value, columns) in cases {
        let id = unique_id("rule");
        let body = example_with(field, Some(value));
        let answer = post_webhook(f.server.addr(), &id, &body);
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
        let stored = row(&mut f.client, &id).unwrap_or_else(|| panic!("no row for {body}"));
        for (column, expected) in *columns {
            let actual = match *column {
                "currency" => &stored.currency,
                "amount" => &stored.amount,
                "amount_cents" => &stored.amount_cents,
                "event_type" => &stored.event_type,
                "category" => &stored.category,
                "action" => &stored.action,
                "object_id" => &stored.object_id,
                "metadata" => &stored.metadata,
                other => panic!("unknown column {other}"),
            };
            assert_eq!(actual, expected, "{column} for {body}");
        }
    }

    let table = [
        ("usd", "2000", "USD", "20.0000"),
        ("JPY", "2000", "JPY", "2000.0000"),
        ("bhd", "1234", "BHD", "1.2340"),
        ("clf", "12345", "CLF", "1.2345"),
    ];
    for (currency, cents, upper, amount) in table {
        let id = unique_id("minor");
        let body = example_with("currency", Some(&format!("\"{currency}\""))).replace(
            "\"amount_cents\":2000",
            &format!("\"amount_cents\":{cents}"),
        );
        let answer = post_webhook(f.server.addr(), &id, &body);
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
        let stored = row(&mut f.client, &id).unwrap();
        assert_eq!(
            (
                stored.currency.as_str(),
                stored.amount_cents.as_str(),
                stored.amount.as_str()
            ),
            (upper, cents, amount),
            "{body}"
        );
    }

    for value in [None, Some(metadata)] {
        let id = unique_id("metadata");
        let body = example_with("metadata", value);
        assert_eq!(
            post_webhook(f.server.addr(), &id, &body).status,
            200,
            "{body}"
        );
        let expected = jsonb_text(&mut f.client, value.unwrap_or("{}"));
        assert_eq!(
            row(&mut f.client, &id).unwrap().metadata,
            expected,
            "{body}"
        );
    }
}

#[test]
fn stored_values_at_the_limits() {
    let mut f = fixture(&[]);
    let long_id = "i".repeat(255);
    let event_type = format!("\"a.{}\"", "b".repeat(62));
    let key_40 = format!("{{\"{}\":1}}", "k".repeat(40));
    let metadata_50 = metadata_with_keys(50);
    let object_id = json_string('o', 255);
    let cases: Vec<(String, String)> = vec![
        (long_id.clone(), EXAMPLE.to_owned()),
        (
            unique_id("max"),
            example_with("event_type", Some(&event_type)),
        ),
        (
            unique_id("max"),
            example_with("object_id", Some(&object_id)),
        ),
        (
            unique_id("max"),
            example_with("metadata", Some(&metadata_50)),
        ),
        (unique_id("max"), example_with("metadata", Some(&key_40))),
        (
            unique_id("max"),
            example_with("amount_cents", Some("1000000000000000")).replace("usd", "JPY"),
        ),
    ];
    for (id, body) in &cases {
        let answer = post_webhook(f.server.addr(), id, body);
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
        assert!(row(&mut f.client, id).is_some(), "{body}");
    }
    let jpy = row(&mut f.client, &cases[5].0).unwrap();
    assert_eq!(jpy.amount, "1000000000000000.0000");
    let event = row(&mut f.client, &cases[1].0).unwrap();
    assert_eq!((event.category.as_str(), event.action.len()), ("a", 62));
    assert_eq!(
        row(&mut f.client, &cases[2].0).unwrap().object_id.len(),
        255
    );
}

#[test]
fn already_stored_answers_duplicate_and_keeps_the_first_row() {
    let mut f = fixture(&[]);
    let id = unique_id("dup");
    let timestamp = now();
    let first = post_webhook_at(f.server.addr(), &id, timestamp, EXAMPLE);
    assert_answer(&first, 200, json!({"status": "accepted", "id": id}));
    let changed = EXAMPLE.replace("pi_3MtwBw", "pi_other");
    for body in [EXAMPLE, changed.as_str()] {
        let again = post_webhook(f.server.addr(), &id, body);
        assert_answer(&again, 200, json!({"status": "duplicate", "id": id}));
    }
    let expected = example_row(&mut f, &id, timestamp);
    assert_eq!(row(&mut f.client, &id), Some(expected));
    let count: i64 = f
        .client
        .query_one("SELECT count(*) FROM webhook_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[test]
fn not_json_not_utf8_or_wrong_shape_answers_400() {
    let mut f = fixture(&[]);
    // Invalid UTF-8 inside a field the server otherwise ignores.
    let mut not_utf8 = b"{\"note\":\"\xff\xfe\",".to_vec();
    not_utf8.extend_from_slice(&EXAMPLE.as_bytes()[1..]);
    let deep = format!(
        "{},\"deep\":{}{}}}",
        EXAMPLE.strip_suffix('}').unwrap(),
        "[".repeat(200),
        "]".repeat(200)
    );
    let duplicate_key = EXAMPLE.replace(
        "\"currency\":\"usd\"",
        "\"currency\":\"usd\",\"currency\":\"eur\"",
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"not json".to_vec()),
        ("empty", b"".to_vec()),
        ("cut short", EXAMPLE.as_bytes()[..40].to_vec()),
        ("not UTF-8 in an ignored field", not_utf8),
        ("an array", b"[1,2,3]".to_vec()),
        ("a string", b"\"payment\"".to_vec()),
        ("null", b"null".to_vec()),
        ("trailing bytes", format!("{EXAMPLE} x").into_bytes()),
        ("a second object", format!("{EXAMPLE}{{}}").into_bytes()),
        ("a duplicate key", duplicate_key.into_bytes()),
        // serde_json skips ignored values without its depth limit, so this needs a check.
        ("nesting 200 deep in an ignored field", deep.into_bytes()),
    ];
    for (case, body) in &cases {
        let id = unique_id("bad_json");
        let answer = send_one(f.server.addr(), &closing(&signed_request(&id, now(), body)));
        assert_eq!(answer.status, 400, "{case}: {answer:?}");
        assert_rejection(&answer, 400, "invalid_json", None);
        assert_no_row(&mut f, &id);
    }
}

#[test]
fn signature_missing_bad_or_stale_answers_401() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let other_id = signature("sig_other", now(), EXAMPLE.as_bytes());
    let cases: Vec<(&str, Build)> = vec![
        (
            "no signature headers",
            Box::new(|_| {
                let json = [("content-type", "application/json")];
                request("POST", "/webhook", &json, EXAMPLE.as_bytes())
            }),
        ),
        (
            "no webhook-signature",
            Box::new(|id| signed_with(id, "webhook-signature", None)),
        ),
        (
            "no webhook-timestamp",
            Box::new(|id| signed_with(id, "webhook-timestamp", None)),
        ),
        (
            "no webhook-id",
            Box::new(|id| signed_with(id, "webhook-id", None)),
        ),
        (
            "another id's signature",
            Box::new(|id| signed_with(id, "webhook-signature", Some(&other_id))),
        ),
        (
            "one character changed",
            Box::new(|id| {
                let own = signature(id, now(), EXAMPLE.as_bytes());
                // A middle character: the last one may only carry padding bits.
                let flipped = if own.as_bytes()[10] == b'A' { "B" } else { "A" };
                let tampered = format!("{}{flipped}{}", &own[..10], &own[11..]);
                signed_with(id, "webhook-signature", Some(&tampered))
            }),
        ),
        (
            "body changed after signing",
            Box::new(|id| {
                let signed = String::from_utf8(signed_request(id, now(), EXAMPLE)).unwrap();
                signed.replace("pi_3MtwBw", "pi_3MtwBx").into_bytes()
            }),
        ),
        (
            "400 s old",
            Box::new(|id| signed_request(id, now() - 400, EXAMPLE)),
        ),
        (
            "400 s ahead",
            Box::new(|id| signed_request(id, now() + 400, EXAMPLE)),
        ),
        (
            "timestamp not a number",
            Box::new(|id| signed_with(id, "webhook-timestamp", Some("soon"))),
        ),
        (
            "only a v2 entry",
            Box::new(|id| {
                let v2 = signature(id, now(), EXAMPLE.as_bytes()).replacen("v1,", "v2,", 1);
                signed_with(id, "webhook-signature", Some(&v2))
            }),
        ),
        (
            "an entry without a comma",
            Box::new(|id| {
                let bare = signature(id, now(), EXAMPLE.as_bytes()).replacen("v1,", "", 1);
                signed_with(id, "webhook-signature", Some(&bare))
            }),
        ),
    ];
    for (case, build) in &cases {
        let id = unique_id("sig");
        let answer = send_one(addr, &closing(&build(&id)));
        assert_eq!(answer.status, 401, "{case}: {answer:?}");
        assert_rejection(&answer, 401, "invalid_signature", None);
        assert_no_row(&mut f, &id);
    }
    // The id itself must be 1..=255 ASCII graphic bytes; these are signed correctly.
    for id in [
        "i".repeat(256),
        "évt_1".to_owned(),
        "evt 1".to_owned(),
        String::new(),
    ] {
        let answer = send_one(addr, &closing(&signed_request(&id, now(), EXAMPLE)));
        assert_eq!(answer.status, 401, "id {id:?}: {answer:?}");
        assert_rejection(&answer, 401, "invalid_signature", None);
    }
    let count: i64 = f
        .client
        .query_one("SELECT count(*) FROM webhook_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[test]
fn signatures_within_the_rules_are_accepted() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let cases: Vec<(&str, Build)> = vec![
        (
            "290 s old",
            Box::new(|id| signed_request(id, now() - 290, EXAMPLE)),
        ),
        (
            "290 s ahead",
            Box::new(|id| signed_request(id, now() + 290, EXAMPLE)),
        ),
        (
            "one valid entry in a list",
            Box::new(|id| {
                let valid = signature(id, now(), EXAMPLE.as_bytes());
                let other = signature("someone_else", now(), EXAMPLE.as_bytes());
                let v2 = valid.replacen("v1,", "v2,", 1);
                signed_with(
                    id,
                    "webhook-signature",
                    Some(&format!("v1a {v2} {other} {valid}")),
                )
            }),
        ),
        (
            "header names in capitals",
            Box::new(|id| {
                String::from_utf8(signed_request(id, now(), EXAMPLE))
                    .unwrap()
                    .replace("webhook-id:", "Webhook-Id:")
                    .replace("webhook-timestamp:", "WEBHOOK-TIMESTAMP:")
                    .replace("webhook-signature:", "Webhook-Signature:")
                    .replace("content-type:", "Content-Type:")
                    .into_bytes()
            }),
        ),
        (
            "content-type with charset",
            Box::new(|id| signed_with(id, "content-type", Some("application/json; charset=utf-8"))),
        ),
        (
            "content-type in capitals",
            Box::new(|id| signed_with(id, "content-type", Some("Application/JSON"))),
        ),
    ];
    for (case, build) in &cases {
        let id = unique_id("ok_sig");
        let answer = send_one(addr, &closing(&build(&id)));
        assert_eq!(answer.status, 200, "{case}: {answer:?}");
        assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
        assert!(row(&mut f.client, &id).is_some(), "{case}");
    }
}

#[test]
fn unknown_path_answers_404() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("path");
    let signed = signed_request(&id, now(), EXAMPLE);
    let requests = [
        set_request_line(&signed, "POST /webhooks HTTP/1.1"),
        set_request_line(&signed, "POST /webhook/extra HTTP/1.1"),
        request("GET", "/", &[], b""),
        request("GET", "/nope", &[], b""),
    ];
    for bytes in &requests {
        let answer = send_one(addr, &closing(bytes));
        assert_answer(&answer, 404, json!({"error": "not_found"}));
    }
    assert_no_row(&mut f, &id);
}

#[test]
fn wrong_method_answers_405_with_allow_post() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let id = unique_id("method");
    let signed = signed_request(&id, now(), EXAMPLE);
    let requests = [
        request("GET", "/webhook", &[], b""),
        set_request_line(&signed, "PUT /webhook HTTP/1.1"),
        request("DELETE", "/webhook", &[], b""),
    ];
    for bytes in &requests {
        let answer = send_one(addr, &closing(bytes));
        assert_answer(&answer, 405, json!({"error": "method_not_allowed"}));
        assert_eq!(answer.header("allow"), Some("POST"), "{answer:?}");
    }
    assert_no_row(&mut f, &id);
}

#[test]
fn body_too_large_answers_413() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let at_limit = padded_example(BODY_LIMIT);
    let over_limit = padded_example(BODY_LIMIT + 1);
    assert_eq!(
        (at_limit.len(), over_limit.len()),
        (BODY_LIMIT, BODY_LIMIT + 1)
    );

    let id = unique_id("large");
    let answer = post_webhook(addr, &id, &over_limit);
    assert_answer(&answer, 413, json!({"error": "payload_too_large"}));
    assert_no_row(&mut f, &id);

    let id = unique_id("at_limit");
    let answer = post_webhook(addr, &id, &at_limit);
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
}

#[test]
fn body_limit_follows_max_body_bytes() {
    let mut f = fixture(&[("MAX_BODY_BYTES", "1024")]);
    let addr = f.server.addr();
    let id = unique_id("small_limit");
    let answer = post_webhook(addr, &id, &padded_example(1025));
    assert_answer(&answer, 413, json!({"error": "payload_too_large"}));
    assert_no_row(&mut f, &id);
    let id = unique_id("small_limit");
    let answer = post_webhook(addr, &id, &padded_example(1024));
    assert_answer(&answer, 200, json!({"status": "accepted", "id": id}));
}

#[test]
fn content_type_not_json_answers_415() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    for content_type in [
        Some("text/plain"),
        None,
        Some("application/xml"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let id = unique_id("media");
        let bytes = set_header(
            &signed_request(&id, now(), EXAMPLE),
            "content-type",
            content_type,
        );
        let answer = send_one(addr, &closing(&bytes));
        assert_answer(&answer, 415, json!({"error": "unsupported_media_type"}));
        assert_no_row(&mut f, &id);
    }
}

#[test]
fn field_breaking_a_rule_answers_422_naming_it() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let long_type = format!("\"a.{}\"", "b".repeat(63));
    let long_object = json_string('o', 256);
    let key_41 = format!("{{\"{}\":1}}", "k".repeat(41));
    let metadata_51 = metadata_with_keys(51);
    let metadata_big = format!("{{\"k\":{}}}", json_string('m', 8200));
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("event_type", None),
        ("event_type", Some("null")),
        ("event_type", Some(r#""""#)),
        ("event_type", Some(r#""Payment.succeeded""#)),
        ("event_type", Some(r#""payment""#)),
        ("event_type", Some(r#""payment..succeeded""#)),
        ("event_type", Some(&long_type)),
        ("event_type", Some("12")),
        ("object_id", None),
        ("object_id", Some(r#""""#)),
        ("object_id", Some(&long_object)),
        ("object_id", Some(r#""has space""#)),
        ("object_id", Some(r#""pi_é""#)),
        ("object_id", Some("7")),
        ("amount_cents", None),
        ("amount_cents", Some("null")),
        ("amount_cents", Some("1.5")),
        ("amount_cents", Some(r#""100""#)),
        ("amount_cents", Some("1e3")),
        ("amount_cents", Some("-1")),
        ("amount_cents", Some("1000000000000001")),
        ("currency", None),
        ("currency", Some(r#""ZZZ""#)),
        ("currency", Some(r#""US""#)),
        ("currency", Some(r#""usdd""#)),
        ("currency", Some(r#""XAU""#)),
        ("currency", Some(r#""XXX""#)),
        ("currency", Some("840")),
        ("metadata", Some("[]")),
        ("metadata", Some(r#""x""#)),
        ("metadata", Some(&metadata_51)),
        ("metadata", Some(&key_41)),
        ("metadata", Some(&metadata_big)),
        ("metadata", Some(r#"{"a":"\u0000"}"#)),
        ("metadata", Some(r#"{"a":"\ud800"}"#)),
    ];
    for (field, value) in &cases {
        let id = unique_id("rule");
        let body = example_with(field, *value);
        let answer = post_webhook(addr, &id, &body);
        assert_eq!(answer.status, 422, "{body}: {answer:?}");
        assert_rejection(&answer, 422, "validation_failed", Some(field));
        assert_no_row(&mut f, &id);
    }
}

#[test]
fn database_down_answers_503_with_retry_after() {
    let mut cluster = private_cluster();
    cluster.create_database("hooksink").unwrap();
    let url = cluster.url("hooksink");
    let server = Server::start(&url, &[]);
    let addr = server.addr();
    assert_eq!(get(addr, "/readyz").status, 200);

    cluster.stop().unwrap();
    let id = unique_id("down");
    let answer = post_webhook(addr, &id, EXAMPLE);
    assert_answer(&answer, 503, json!({"error": "unavailable"}));
    assert_eq!(answer.header("retry-after"), Some("5"), "{answer:?}");
    assert_eq!(get(addr, "/readyz").status, 503);
    assert_eq!(get(addr, "/healthz").status, 200);

    cluster.restart().unwrap();
    assert!(row(&mut db(&url), &id).is_none());
}

#[test]
fn health_readiness_and_metrics_answer() {
    let f = fixture(&[]);
    let addr = f.server.addr();
    assert_eq!(
        post_webhook(addr, &unique_id("metrics"), EXAMPLE).status,
        200
    );
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/readyz").status, 200);
    let metrics = get(addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("hooksink_requests_total"),
        "{}",
        metrics.body
    );
}

#[test]
fn checks_run_in_the_contract_order() {
    let mut f = fixture(&[]);
    let addr = f.server.addr();
    let unsigned = |path: &str, content_type: &str, body: &[u8]| {
        request("POST", path, &[("content-type", content_type)], body)
    };
    let big = padded_example(BODY_LIMIT + 1);
    // Path before method before size before content-type before signature before JSON
    // before field rules: each request breaks its rule and every later one.
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            unsigned("/nope", "text/plain", big.as_bytes()),
            404,
            "not_found",
        ),
        (
            set_request_line(
                &unsigned("/webhook", "text/plain", b"x"),
                "GET /webhook HTTP/1.1",
            ),
            405,
            "method_not_allowed",
        ),
        (
            unsigned("/webhook", "text/plain", big.as_bytes()),
            413,
            "payload_too_large",
        ),
        (
            unsigned("/webhook", "text/plain", b"not json"),
            415,
            "unsupported_media_type",
        ),
        (
            unsigned("/webhook", "application/json", b"not json"),
            401,
            "invalid_signature",
        ),
    ];
    for (bytes, status, code) in &cases {
        let answer = send_one(addr, &closing(bytes));
        assert_eq!(answer.status, *status, "{answer:?}");
        assert_eq!(answer.json()["error"], *code, "{answer:?}");
    }
    // Signed: broken JSON that also breaks a field rule is still 400.
    let id = unique_id("order");
    let body = example_with("currency", Some(r#""ZZZ""#)) + " trailing";
    let answer = send_one(addr, &closing(&signed_request(&id, now(), &body)));
    assert_rejection(&answer, 400, "invalid_json", None);
    assert_no_row(&mut f, &id);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut f = fixture(&[]);
    let first = unique_id("pipe");
    let second = unique_id("pipe");
    let mut bytes = signed_request(&first, now(), EXAMPLE);
    bytes.extend(request("GET", "/nope", &[], b""));
    bytes.extend(signed_request(&first, now(), EXAMPLE));
    bytes.extend(closing(&signed_request(&second, now(), EXAMPLE)));
    let answers = send_raw(f.server.addr(), &bytes);
    let summary: Vec<(u16, Value)> = answers.iter().map(|a| (a.status, a.json())).collect();
    assert_eq!(
        summary,
        vec![
            (200, json!({"status": "accepted", "id": first})),
            (404, json!({"error": "not_found"})),
            (200, json!({"status": "duplicate", "id": first})),
            (200, json!({"status": "accepted", "id": second})),
        ]
    );
    assert!(row(&mut f.client, &second).is_some());
}
