//! Hostile JSON against the real binary: bodies that are not JSON, nest too deep, or break jsonb
//! are refused with the exact error, the deepest accepted bodies are stored, and the server lives on.

use serde_json::{Value, json};

use crate::attack::{BODY_LIMIT, answer_then_close, assert_error, server_alive, start};
use crate::support::{
    EXAMPLE, Server, closing, db, fresh_database, get, jsonb_text, now, row, signed_request,
    unique_id,
};

/// The contract's nesting limit; the top-level object is depth 1.
const DEPTH_LIMIT: usize = 128;

/// `levels` arrays nested in each other: `[[...]]`.
fn arrays(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// `levels` objects nested in each other: `{"a":{"a":{}}}`.
fn objects(levels: usize) -> String {
    let open = "{\"a\":".repeat(levels - 1);
    format!("{open}{{}}{}", "}".repeat(levels - 1))
}

/// A metadata object nested `depth` deep counting the body's object (1) and its own (2), made
/// of arrays or objects below its own.
fn metadata(depth: usize, of_arrays: bool) -> String {
    if of_arrays {
        format!("{{\"a\":{}}}", arrays(depth - 2))
    } else {
        objects(depth - 1)
    }
}

/// The example body with `metadata(depth, of_arrays)`.
fn deep_metadata(depth: usize, of_arrays: bool) -> String {
    with_metadata(&metadata(depth, of_arrays))
}

/// The example body with an ignored field nested `depth` deep in all.
fn deep_ignored(depth: usize, of_arrays: bool) -> String {
    let value = if of_arrays {
        arrays(depth - 1)
    } else {
        objects(depth - 1)
    };
    with_ignored(&value)
}

/// The example body with `metadata` replaced by the raw JSON `metadata`.
fn with_metadata(metadata: &str) -> String {
    EXAMPLE.replace(r#"{"order_id":"6735"}"#, metadata)
}

/// The example body with one more, ignored, field `x` holding the raw JSON `value`.
fn with_ignored(value: &str) -> String {
    format!("{},\"x\":{value}}}", EXAMPLE.strip_suffix('}').unwrap())
}

/// The answer a hostile body must get.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Accepted,
    /// 400 `invalid_json`.
    NotJson,
    /// 400 `invalid_json` for nesting deeper than 128.
    TooDeep,
    /// 422 `validation_failed` naming this field.
    Breaks(&'static str),
}

#[test]
fn hostile_json_bodies_are_refused_and_the_server_lives_on() {
    use Outcome::{Accepted, Breaks, NotJson, TooDeep};
    // Room for a 100000-digit number; every other case fits the default 64 KiB.
    let server = start(&[("MAX_BODY_BYTES", "131072")]);
    let prefixed = |prefix: &[u8]| [prefix, &EXAMPLE.as_bytes()[1..]].concat();
    let digits = "7".repeat(100_000);
    let duplicate = EXAMPLE.replace("\"usd\"", "\"usd\",\"currency\":\"eur\"");
    let big_string = format!("\"{}\"", "s".repeat(60_000));
    assert!(with_ignored(&big_string).len() < BODY_LIMIT);
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "invalid UTF-8 in an ignored field",
            prefixed(b"{\"n\":\"\xff\xfe\","),
            NotJson,
        ),
        (
            "a byte order mark",
            [b"\xef\xbb\xbf", EXAMPLE.as_bytes()].concat(),
            NotJson,
        ),
        (
            "a raw NUL in a string",
            prefixed(b"{\"n\":\"a\x00b\","),
            NotJson,
        ),
        (
            "\\u0000 in metadata",
            with_metadata(r#"{"a":"\u0000"}"#).into(),
            Breaks("metadata"),
        ),
        (
            "exponent 1001 in metadata",
            with_metadata(r#"{"a":1e1001}"#).into(),
            Breaks("metadata"),
        ),
        (
            "metadata arrays 129 deep",
            deep_metadata(DEPTH_LIMIT + 1, true).into(),
            TooDeep,
        ),
        (
            "metadata objects 129 deep",
            deep_metadata(DEPTH_LIMIT + 1, false).into(),
            TooDeep,
        ),
        (
            "ignored arrays 129 deep",
            deep_ignored(DEPTH_LIMIT + 1, true).into(),
            TooDeep,
        ),
        (
            "ignored objects 129 deep",
            deep_ignored(DEPTH_LIMIT + 1, false).into(),
            TooDeep,
        ),
        (
            "100000 open brackets",
            with_ignored(&"[".repeat(100_000)).into(),
            TooDeep,
        ),
        (
            "a 60 KB ignored string",
            with_ignored(&big_string).into(),
            Accepted,
        ),
        (
            "amount_cents 1e400",
            EXAMPLE.replace("2000", "1e400").into(),
            Breaks("amount_cents"),
        ),
        (
            "amount_cents 100000 digits",
            EXAMPLE.replace("2000", &digits).into(),
            Breaks("amount_cents"),
        ),
        ("trailing garbage", format!("{EXAMPLE}}}x").into(), NotJson),
        ("a duplicate top-level key", duplicate.into(), NotJson),
    ];
    for (case, body, outcome) in &cases {
        let id = unique_id("hostile");
        let answer = answer_then_close(&server, &closing(&signed_request(&id, now(), body)));
        match outcome {
            Accepted => {
                let expected = json!({"status": "accepted", "id": id});
                assert_eq!((answer.status, answer.json()), (200, expected), "{case}");
            }
            NotJson | TooDeep => {
                assert_error(&answer, 400, "invalid_json", "close");
                assert_eq!(answer.json()["field"], Value::Null, "{case}");
                let message = answer.json()["message"].as_str().unwrap().to_owned();
                let deep = message.starts_with("body nested deeper than 128");
                assert_eq!(deep, matches!(outcome, TooDeep), "{case}: {message}");
            }
            Breaks(field) => {
                assert_error(&answer, 422, "validation_failed", "close");
                assert_eq!(answer.json()["field"], *field, "{case}");
            }
        }
    }
    // serde_json may refuse a number it cannot hold even in an ignored field; both are fine,
    // but the server must answer and live on.
    let huge = signed_request(&unique_id("digits"), now(), with_ignored(&digits));
    let answer = answer_then_close(&server, &closing(&huge));
    assert!(matches!(answer.status, 200 | 400), "{answer:?}");
    assert!(server_alive(&server));
    assert_eq!(get(server.addr(), "/healthz").status, 200);
}

/// The deepest bodies the contract accepts, of arrays and of objects, in metadata and in an
/// ignored field: stored, and the coroutine's stack survives them (an overflow kills the
/// process).
#[test]
fn deepest_accepted_nesting_is_stored() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let mut client = db(&url);
    let example_metadata = r#"{"order_id":"6735"}"#;
    for of_arrays in [true, false] {
        let cases = [
            (
                deep_metadata(DEPTH_LIMIT, of_arrays),
                metadata(DEPTH_LIMIT, of_arrays),
            ),
            (
                deep_ignored(DEPTH_LIMIT, of_arrays),
                example_metadata.to_owned(),
            ),
        ];
        for (body, metadata) in &cases {
            let id = unique_id("deep");
            let answer = answer_then_close(&server, &closing(&signed_request(&id, now(), body)));
            assert_eq!(
                (answer.status, answer.json()),
                (200, json!({"status": "accepted", "id": id})),
                "{body}"
            );
            let stored = row(&mut client, &id).unwrap();
            assert_eq!(stored.metadata, jsonb_text(&mut client, metadata));
        }
    }
    assert!(server_alive(&server));
    assert_eq!(get(server.addr(), "/healthz").status, 200);
}
