//! Property tests for the parser-facing code: random and mutated request heads and bodies
//! never panic and always end in one of the contract's answers, and whatever passes
//! validation satisfies the contract's rules (checked again independently here).
//!
//! CI runs a short pass; run longer with
//! `HOOKSINK_FUZZ_ITERATIONS=2000000 cargo test --lib fuzz -- --nocapture`.
//! `HOOKSINK_FUZZ_SEED` replays a run.

use crate::answer::Rejection;
use crate::http;
use crate::{payload, stripe_event, transform};

const ITERATIONS_DEFAULT: u64 = 20_000;

/// Fragments that tend to reach edge cases when spliced in.
const TOKENS: &[&[u8]] = &[
    b"\\u0000",
    b"\\ud800",
    b"\\udc00",
    b"\\\\",
    b"\\\"",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"1e1001",
    b"-0",
    b"1.5",
    b"99999999999999999999",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\r\n",
    b"\r\n\r\n",
    b"content-length: 5\r\n",
    b"transfer-encoding: chunked\r\n",
    b"\"metadata\":",
    b"\"currency\":\"jpy\"",
    b"\"amount_cents\":",
    b"\"event_type\":\"a.b\"",
];

const SEED_BODY: &[u8] = br#"{"event_type":"payment.succeeded","object_id":"pi_3MtwBw","amount_cents":2000,"currency":"usd","metadata":{"order_id":"6735","nested":[1,{"a":null}],"text":"caf\u00e9 \/"},"extra":[true]}"#;
const SEED_STRIPE: &[u8] = br#"{"id":"evt_1","object":"event","created":1680064028,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000,"amount_total":null,"currency":"usd","metadata":{"order_id":"6735"},"charges":{"data":[{"amount":1}]}},"previous_attributes":{}},"type":"payment_intent.succeeded"}"#;
const SEED_HEAD: &[u8] = b"POST /webhook?x=1 HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 2\r\nwebhook-id: msg_1\r\nstripe-signature: t=1,v1=ab\r\nsvix-id: m\r\nexpect: 100-continue\r\nconnection: keep-alive\r\n\r\n{}";

/// xorshift64*: tiny, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn settings() -> (u64, u64) {
    let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let seed = read("HOOKSINK_FUZZ_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15);
    (
        seed,
        read("HOOKSINK_FUZZ_ITERATIONS").unwrap_or(ITERATIONS_DEFAULT),
    )
}

/// Applies 1..=4 random edits to `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let at = at.min(out.len() - 1);
                out[at] = rng.next() as u8;
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            4 => out.truncate(at),
            _ => out.insert(at.min(out.len()), rng.next() as u8),
        }
    }
    out
}

#[test]
fn request_heads_never_panic_and_spans_stay_in_bounds() {
    let (seed, iterations) = settings();
    let mut rng = Rng(seed);
    for _ in 0..iterations {
        let input = mutate(&mut rng, SEED_HEAD);
        match http::parse_head(&input) {
            Ok(Some(head)) => {
                assert!(head.len <= input.len());
                let spans = [Some(head.path.clone()), head.content_type.clone()];
                for span in spans.into_iter().flatten() {
                    assert!(span.end <= head.len, "{span:?} outside the head");
                }
                for name in crate::signature::HEADER_NAMES {
                    // A value inside the head reads the same from the head's bytes alone.
                    let within = head.header(&input[..head.len], name);
                    assert_eq!(head.header(&input, name), within, "{name} outside the head");
                }
            }
            Ok(None) => assert!(input.len() < crate::limits::HEAD_SIZE_MAX),
            Err(rejection) => assert!(
                matches!(
                    rejection,
                    Rejection::BadRequest(_)
                        | Rejection::HeadTooLarge(_)
                        | Rejection::ExpectationFailed
                ),
                "{rejection:?}"
            ),
        }
    }
}

#[test]
fn bodies_always_get_a_contract_answer_and_valid_ones_obey_the_rules() {
    let (seed, iterations) = settings();
    let mut rng = Rng(seed);
    let mut valid = 0;
    for _ in 0..iterations {
        let input = mutate(&mut rng, SEED_BODY);
        let Ok(webhook) = payload::parse(&input) else {
            continue;
        };
        let Ok(event) = payload::validate(&webhook) else {
            continue;
        };
        valid += 1;
        let row = transform::transform("msg_1", 1_700_000_000, &event);
        check_row(&row);
    }
    // The mutations are mild enough that a fair share still passes; if none did, the
    // invariants above were never exercised.
    assert!(
        valid > iterations / 50,
        "only {valid} valid of {iterations}"
    );
}

#[test]
fn stripe_bodies_always_get_a_contract_answer_and_stored_ones_obey_the_rules() {
    let (seed, iterations) = settings();
    let mut rng = Rng(seed ^ 0x5354_5249_5045);
    let (mut stored, mut ignored) = (0, 0);
    for _ in 0..iterations {
        let input = mutate(&mut rng, SEED_STRIPE);
        let Ok(event) = stripe_event::parse(&input) else {
            continue;
        };
        match stripe_event::validate(&event) {
            Ok(stripe_event::Outcome::Store { id, created, event }) => {
                stored += 1;
                assert!(
                    id.bytes().all(|b| b.is_ascii_graphic()) && !id.is_empty(),
                    "{id}"
                );
                assert!(created >= 0);
                check_row(&transform::transform(&id, created, &event));
            }
            Ok(stripe_event::Outcome::Ignored { id }) => {
                ignored += 1;
                assert!(
                    id.bytes().all(|b| b.is_ascii_graphic()) && !id.is_empty(),
                    "{id}"
                );
            }
            Err(_) => {}
        }
    }
    assert!(
        stored > iterations / 50 && ignored > 0,
        "{stored} stored and {ignored} ignored of {iterations}"
    );
}

/// The contract's rules, written independently of `payload`.
fn check_row(row: &transform::Row<'_>) {
    let event_type = row.event_type.as_bytes();
    assert!((1..=64).contains(&event_type.len()), "{}", row.event_type);
    assert!(
        event_type
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'.')
    );
    assert_eq!(format!("{}.{}", row.category, row.action), row.event_type);
    assert!(!row.category.is_empty() && !row.action.is_empty());
    assert!((1..=255).contains(&row.object_id.len()));
    assert!(row.object_id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert!((0..=1_000_000_000_000_000).contains(&row.amount_cents));
    assert!(row.currency.len() == 3 && row.currency.bytes().all(|b| b.is_ascii_uppercase()));
    assert!(row.metadata.len() <= 8 * 1024);
    let metadata: serde_json::Value = serde_json::from_str(row.metadata).unwrap_or_default();
    assert!(metadata.is_object(), "{}", row.metadata);
    assert!(!has_nul(&metadata), "{}", row.metadata);
    let amount = row.amount.as_str();
    let digits: String = amount.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(
        digits.trim_start_matches('0'),
        row.amount_cents.to_string().trim_start_matches('0')
    );
}

/// Whether any string or key holds U+0000, which `jsonb` rejects.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Bytes that steer the depth scan: quotes, escapes and backslash runs, brackets, the bytes
/// its bracket test also stops at (`Y _ y` DEL), multi-byte and invalid UTF-8, padding.
const DEPTH_FRAGMENTS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\\\",
    b"\\\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b"Y",
    b"_",
    b"y",
    b"\x7f",
    b"\xc3\xa9",
    b"\xe6\x9d\xb1",
    b"\xf0\x9f\x8e\x89",
    b"\xff",
    b"\x00",
    b"a",
    b"1234567",
    b" ",
    b":",
    b",",
];

/// Random bytes from `DEPTH_FRAGMENTS`, opened `depth` levels deep first, so the limit is
/// within reach of the brackets that follow.
fn depth_input(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..depth {
        out.push(if rng.below(2) == 0 { b'[' } else { b'{' });
        if rng.below(32) == 0 {
            out.extend_from_slice(DEPTH_FRAGMENTS[rng.below(DEPTH_FRAGMENTS.len())]);
        }
    }
    for _ in 0..rng.below(120) {
        out.extend_from_slice(DEPTH_FRAGMENTS[rng.below(DEPTH_FRAGMENTS.len())]);
    }
    out
}

#[test]
fn depth_scan_matches_the_bytewise_reference() {
    use crate::jsonb::{too_deep, too_deep_bytewise};
    use crate::limits::JSON_DEPTH_MAX;
    let (seed, iterations) = settings();
    let mut rng = Rng(seed ^ 0x0044_4550_5448);
    let mut deep = 0;
    for _ in 0..iterations {
        let input = match rng.below(4) {
            0 => mutate(&mut rng, SEED_BODY),
            1 => mutate(&mut rng, SEED_STRIPE),
            2 => {
                let depth = rng.below(12);
                depth_input(&mut rng, depth)
            }
            _ => {
                let depth = JSON_DEPTH_MAX + rng.below(4);
                let input = depth_input(&mut rng, depth);
                mutate(&mut rng, &input)
            }
        };
        let expected = too_deep_bytewise(&input);
        deep += usize::from(expected.is_some());
        assert_eq!(
            too_deep(&input),
            expected,
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
    // Both answers occur often enough that neither path goes untested.
    assert!(
        deep > iterations as usize / 20 && deep < iterations as usize / 4,
        "{deep} too deep of {iterations}"
    );
}
