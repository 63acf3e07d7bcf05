//! Standard Webhooks signatures: parse the shared secrets once, then verify each request.
//!
//! A sender signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 and sends
//! `v1,<base64>` entries in `webhook-signature`. Verification runs on the raw header and body
//! bytes before anything parses them, so an unsigned request costs one HMAC per secret and no
//! allocation. Several secrets may be configured at once so that a secret can be rotated without
//! downtime. The module is pure: the caller passes the clock in as `now_secs`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::limits::{EVENT_ID_LEN_MAX, SECRETS_COUNT_MAX, SIGNATURES_COUNT_MAX};

/// The decoded signing keys from `WEBHOOK_SECRET`: at least one, at most `SECRETS_COUNT_MAX`.
///
/// Keys are held as keyed HMAC states, so a request never re-derives them, and `Debug` shows
/// only how many there are.
#[derive(Clone)]
pub struct Secrets {
    /// The key `sign` uses; kept apart so that "at least one" holds by construction.
    first: HmacSha256,
    rest: Vec<HmacSha256>,
}

/// Why `WEBHOOK_SECRET` was refused; positions are 1-based and no variant carries key material.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretError {
    /// Nothing but separators.
    Empty,
    /// The entry does not start with `whsec_`.
    MissingPrefix { position: usize },
    /// The text after `whsec_` is not standard padded base64.
    BadBase64 { position: usize },
    /// `whsec_` with nothing after it.
    EmptyKey { position: usize },
    /// More than `SECRETS_COUNT_MAX` entries.
    TooMany { max: usize },
}

/// What the signature headers carried, all raw header value bytes (None = header absent).
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    /// `webhook-id`.
    pub id: Option<&'a [u8]>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a [u8]>,
    /// `webhook-signature`.
    pub signature: Option<&'a [u8]>,
}

/// Why a request's signature was refused; every variant maps to HTTP 401.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Error {
    /// No `webhook-id` header.
    MissingId,
    /// No `webhook-timestamp` header.
    MissingTimestamp,
    /// No `webhook-signature` header.
    MissingSignature,
    /// `webhook-id` is empty, longer than `EVENT_ID_LEN_MAX`, or not ASCII graphic.
    BadId,
    /// `webhook-timestamp` is not decimal digits fitting an `i64`.
    BadTimestamp,
    /// The timestamp is more than `tolerance_secs` before now.
    Stale { tolerance_secs: i64 },
    /// The timestamp is more than `tolerance_secs` after now.
    Future { tolerance_secs: i64 },
    /// No `v1` entry matched any secret.
    NoValidSignature,
}

/// A request whose signature checked out.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Verified<'a> {
    /// The `webhook-id`, known to be 1..=`EVENT_ID_LEN_MAX` ASCII graphic characters.
    pub id: &'a str,
    /// The `webhook-timestamp`, known to be within the tolerance of now.
    pub timestamp: i64,
}

impl Secrets {
    /// Parses `whsec_<base64>` entries separated by commas and/or whitespace.
    pub fn parse(text: &str) -> Result<Secrets, SecretError> {
        let mut keys = Vec::with_capacity(SECRETS_COUNT_MAX);
        let entries = text.split(is_separator).filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            if index == SECRETS_COUNT_MAX {
                return Err(SecretError::TooMany {
                    max: SECRETS_COUNT_MAX,
                });
            }
            keys.push(parse_key(entry, index + 1)?);
        }
        let mut keys = keys.into_iter();
        let first = keys.next().ok_or(SecretError::Empty)?;
        Ok(Secrets {
            first,
            rest: keys.collect(),
        })
    }

    /// How many secrets are configured; always at least one.
    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Always false, because `parse` refuses an empty list.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn keys(&self) -> impl Iterator<Item = &HmacSha256> {
        std::iter::once(&self.first).chain(&self.rest)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach a log line, not even as HMAC state.
        f.debug_struct("Secrets")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Empty => f.write_str("WEBHOOK_SECRET holds no secret"),
            SecretError::MissingPrefix { position } => {
                write!(
                    f,
                    "WEBHOOK_SECRET entry {position} does not start with whsec_"
                )
            }
            SecretError::BadBase64 { position } => {
                write!(
                    f,
                    "WEBHOOK_SECRET entry {position} is not standard base64 after whsec_"
                )
            }
            SecretError::EmptyKey { position } => {
                write!(
                    f,
                    "WEBHOOK_SECRET entry {position} has an empty key after whsec_"
                )
            }
            SecretError::TooMany { max } => {
                write!(f, "WEBHOOK_SECRET holds more than {max} secrets")
            }
        }
    }
}

impl std::error::Error for SecretError {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingId => f.write_str("webhook-id header missing"),
            Error::MissingTimestamp => f.write_str("webhook-timestamp header missing"),
            Error::MissingSignature => f.write_str("webhook-signature header missing"),
            Error::BadId => write!(
                f,
                "webhook-id must be 1..={EVENT_ID_LEN_MAX} ascii graphic characters"
            ),
            Error::BadTimestamp => f.write_str("webhook-timestamp must be unix seconds in digits"),
            Error::Stale { tolerance_secs } => {
                write!(
                    f,
                    "webhook-timestamp more than {tolerance_secs} s in the past"
                )
            }
            Error::Future { tolerance_secs } => {
                write!(
                    f,
                    "webhook-timestamp more than {tolerance_secs} s in the future"
                )
            }
            Error::NoValidSignature => f.write_str("no valid v1 signature"),
        }
    }
}

impl std::error::Error for Error {}

/// On success returns the verified id (as &str) and timestamp.
///
/// Checks run cheapest first (id, timestamp and its window, signature presence) so that a
/// malformed or replayed request is refused before any HMAC work.
pub fn verify<'a>(
    secrets: &Secrets,
    headers: &Headers<'a>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<Verified<'a>, Error> {
    debug_assert!(tolerance_secs >= 0, "tolerance comes from validated config");
    let id_raw = headers.id.ok_or(Error::MissingId)?;
    let id = parse_id(id_raw).ok_or(Error::BadId)?;
    let ts_raw = headers.timestamp.ok_or(Error::MissingTimestamp)?;
    let timestamp = parse_timestamp(ts_raw).ok_or(Error::BadTimestamp)?;
    // Saturating: both values come from outside, and i64::MAX - i64::MIN must not wrap.
    if now_secs.saturating_sub(timestamp) > tolerance_secs {
        return Err(Error::Stale { tolerance_secs });
    }
    if timestamp.saturating_sub(now_secs) > tolerance_secs {
        return Err(Error::Future { tolerance_secs });
    }
    let signature = headers.signature.ok_or(Error::MissingSignature)?;
    for key in secrets.keys() {
        // The raw timestamp bytes are what was signed, so "0123" must not be re-rendered "123".
        let mac = signed_content(key, id_raw, ts_raw, body);
        // `verify_slice` compares in constant time; which entry matched is not secret.
        if v1_tags(signature).any(|tag| mac.clone().verify_slice(&tag).is_ok()) {
            return Ok(Verified { id, timestamp });
        }
    }
    Err(Error::NoValidSignature)
}

/// `v1,<base64>` for the first secret; used by `hooksink sign` and by tests/load generators.
///
/// A negative `timestamp` is signed as written, but `verify` refuses it.
pub fn sign(secrets: &Secrets, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = signed_content(&secrets.first, id.as_bytes(), ts.as_bytes(), body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes in an HMAC-SHA256 tag; a `v1` entry decoding to any other length cannot match.
const TAG_SIZE: usize = 32;

fn is_separator(c: char) -> bool {
    // Whitespace rather than only ' ', so a trailing newline from a secrets file is harmless.
    c == ',' || c.is_ascii_whitespace()
}

fn parse_key(entry: &str, position: usize) -> Result<HmacSha256, SecretError> {
    let encoded = entry
        .strip_prefix("whsec_")
        .ok_or(SecretError::MissingPrefix { position })?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::BadBase64 { position })?;
    if key.is_empty() {
        return Err(SecretError::EmptyKey { position });
    }
    // HMAC accepts keys of any length, so this error cannot happen for a non-empty key.
    HmacSha256::new_from_slice(&key).map_err(|_| SecretError::EmptyKey { position })
}

/// The MAC over `{id}.{ts}.{body}`, fed in pieces so that nothing is copied or allocated.
fn signed_content(key: &HmacSha256, id: &[u8], ts: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(id);
    mac.update(b".");
    mac.update(ts);
    mac.update(b".");
    mac.update(body);
    mac
}

fn parse_id(raw: &[u8]) -> Option<&str> {
    let graphic = raw.iter().all(u8::is_ascii_graphic);
    if raw.is_empty() || raw.len() > EVENT_ID_LEN_MAX || !graphic {
        return None;
    }
    std::str::from_utf8(raw).ok()
}

/// Decimal ASCII only: no sign, no spaces, no fraction, and nothing that overflows `i64`.
fn parse_timestamp(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0_i64, |value, &byte| {
        let digit = byte.checked_sub(b'0').filter(|digit| *digit <= 9)?;
        value.checked_mul(10)?.checked_add(i64::from(digit))
    })
}

/// The decoded tags of the `v1` entries among the first `SIGNATURES_COUNT_MAX` entries.
fn v1_tags(header: &[u8]) -> impl Iterator<Item = [u8; TAG_SIZE]> + '_ {
    header
        .split(|&byte| byte == b' ')
        .filter(|entry| !entry.is_empty())
        .take(SIGNATURES_COUNT_MAX)
        .filter_map(v1_tag)
}

/// Entries of other versions, without a comma, or not decoding to exactly `TAG_SIZE` bytes are
/// skipped rather than refused, as Standard Webhooks asks.
fn v1_tag(entry: &[u8]) -> Option<[u8; TAG_SIZE]> {
    let mut parts = entry.splitn(2, |&byte| byte == b',');
    let version = parts.next()?;
    let encoded = parts.next()?;
    if version != b"v1" {
        return None;
    }
    let mut tag = [0_u8; TAG_SIZE];
    // Too long a candidate fails with "output slice too small", so nothing is written past it.
    match STANDARD.decode_slice(encoded, &mut tag) {
        Ok(TAG_SIZE) => Some(tag),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard Webhooks test vector 1.
    const A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const NOW: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG_A: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// Standard Webhooks test vector 2.
    const B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID_B: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS_B: &str = "1649367553";
    const NOW_B: i64 = 1_649_367_553;
    const BODY_B: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG_B: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    /// Another valid secret, for rotation and count cases.
    const C: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAA";
    const TOLERANCE: i64 = crate::limits::TIMESTAMP_SKEW_SECS_DEFAULT;

    fn h<'a>(id: &'a str, ts: &'a str, signature: &'a str) -> Headers<'a> {
        Headers {
            id: Some(id.as_bytes()),
            timestamp: Some(ts.as_bytes()),
            signature: Some(signature.as_bytes()),
        }
    }

    /// Verifies with the secrets in `secrets`. In the signature header, `{a}` and `{c}` stand for
    /// the base64 tag that secret A or C gives this case's own id, timestamp and body.
    #[track_caller]
    fn check(
        secrets: &str,
        headers: Headers<'_>,
        body: &[u8],
        now: i64,
        expected: Result<(), Error>,
    ) {
        let tag = |secret: &str| {
            let key = Secrets::parse(secret).unwrap().first;
            let id = headers.id.unwrap_or_default();
            let ts = headers.timestamp.unwrap_or_default();
            STANDARD.encode(signed_content(&key, id, ts, body).finalize().into_bytes())
        };
        let signature = headers.signature.map(|raw| {
            let text = std::str::from_utf8(raw).unwrap();
            text.replace("{a}", &tag(A)).replace("{c}", &tag(C))
        });
        let headers = Headers {
            signature: signature.as_deref().map(str::as_bytes),
            ..headers
        };
        let secrets = Secrets::parse(secrets).unwrap();
        let actual = verify(&secrets, &headers, body, now, TOLERANCE);
        let expected = expected.map(|()| Verified {
            id: std::str::from_utf8(headers.id.unwrap()).unwrap(),
            timestamp: parse_timestamp(headers.timestamp.unwrap()).unwrap(),
        });
        assert_eq!(actual, expected);
    }

    #[track_caller]
    fn check_secrets(text: &str, expected: Result<usize, SecretError>) {
        assert_eq!(Secrets::parse(text).map(|secrets| secrets.len()), expected);
    }

    #[test]
    fn standard_webhooks_vectors() {
        check(A, h(ID, TS, SIG_A), BODY, NOW, Ok(()));
        check(B, h(ID_B, TS_B, SIG_B), BODY_B, NOW_B, Ok(()));
        assert_eq!(sign(&Secrets::parse(A).unwrap(), ID, NOW, BODY), SIG_A);
        assert_eq!(
            sign(&Secrets::parse(B).unwrap(), ID_B, NOW_B, BODY_B),
            SIG_B
        );
        assert_eq!(
            sign(
                &Secrets::parse(&format!("{B} {A}")).unwrap(),
                ID_B,
                NOW_B,
                BODY_B
            ),
            SIG_B
        );
    }

    #[test]
    #[rustfmt::skip]
    fn signature_lists() {
        let invalid = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        check(A, h(ID, TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(ID, TS, &format!("{SIG_A} {invalid} {invalid}")), BODY, NOW, Ok(()));
        check(A, h(ID, TS, &format!("{invalid} {SIG_A} {invalid}")), BODY, NOW, Ok(()));
        check(A, h(ID, TS, &format!("{invalid} {invalid} {SIG_A}")), BODY, NOW, Ok(()));
        check(A, h(ID, TS, &format!("{invalid}   {SIG_A}")), BODY, NOW, Ok(()));
        check(A, h(ID, TS, "v1a,{a} v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(ID, TS, "v2,{a} v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(ID, TS, "{a} v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(ID, TS, "v1a,{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v2,{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "V1,{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1, {a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,{a}A"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,{a},"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, invalid), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE="), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, &format!("v1,{}", "A".repeat(44))), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, &format!("v1,{}", "A".repeat(4000))), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, ","), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, ""), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "   "), BODY, NOW, Err(Error::NoValidSignature));
    }

    #[test]
    #[rustfmt::skip]
    fn signature_count_limit() {
        let max = SIGNATURES_COUNT_MAX;
        check(A, h(ID, TS, &format!("{}v1,{{a}}", "v1,x ".repeat(max - 1))), BODY, NOW, Ok(()));
        check(A, h(ID, TS, &format!("{}v1,{{a}}", "v1,x ".repeat(max))), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, &format!("{}v1,{{a}}", "v2,x ".repeat(max))), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, &format!("{}v1,{{a}}", "x ".repeat(max))), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, &format!("{}v1,{{a}}", " ".repeat(4 * max))), BODY, NOW, Ok(()));
    }

    #[test]
    #[rustfmt::skip]
    fn tampering() {
        check(A, h(ID, TS, SIG_A), br#"{"test": 2432232315}"#, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, SIG_A), br#"{"test": 2432232314} "#, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, SIG_A), b"", NOW, Err(Error::NoValidSignature));
        check(A, h("msg_p5jXN8AQM9LWM0D4loKWxJeK", TS, SIG_A), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h("msg_p5jXN8AQM9LWM0D4loKWxJek_", TS, SIG_A), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, "1614265331", SIG_A), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, "01614265330", SIG_A), BODY, NOW, Err(Error::NoValidSignature));
        check(B, h(ID, TS, SIG_A), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,{a}"), b"", NOW, Ok(()));
        check(A, h(ID, TS, "v1,{a}"), b"\x00\xff binary \r\n", NOW, Ok(()));
        check(A, h(ID, "01614265330", "v1,{a}"), BODY, NOW, Ok(()));
    }

    #[test]
    #[rustfmt::skip]
    fn timestamp_window() {
        check(A, h(ID, TS, SIG_A), BODY, NOW + TOLERANCE - 1, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW + TOLERANCE, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW + TOLERANCE + 1, Err(Error::Stale { tolerance_secs: TOLERANCE }));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE + 1, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE - 1, Err(Error::Future { tolerance_secs: TOLERANCE }));
        check(A, h(ID, "0", SIG_A), BODY, i64::MAX, Err(Error::Stale { tolerance_secs: TOLERANCE }));
        check(A, h(ID, "9223372036854775807", SIG_A), BODY, i64::MIN, Err(Error::Future { tolerance_secs: TOLERANCE }));
        check(A, h(ID, "9223372036854775807", SIG_A), BODY, NOW, Err(Error::Future { tolerance_secs: TOLERANCE }));
        let secrets = Secrets::parse(A).unwrap();
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW, 0), Ok(Verified { id: ID, timestamp: NOW }));
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW + 1, 0), Err(Error::Stale { tolerance_secs: 0 }));
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW - 1, 0), Err(Error::Future { tolerance_secs: 0 }));
    }

    #[test]
    #[rustfmt::skip]
    fn bad_timestamps() {
        check(A, h(ID, "", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "abc", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "-1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "+1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "1614265330.0", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "1614265330 ", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, " 1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "1.6e9", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "0x6037", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "１614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "9223372036854775808", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
        check(A, h(ID, "99999999999999999999", SIG_A), BODY, NOW, Err(Error::BadTimestamp));
    }

    #[test]
    #[rustfmt::skip]
    fn ids() {
        let max = EVENT_ID_LEN_MAX;
        check(A, h(&"a".repeat(max - 1), TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(&"a".repeat(max), TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(&"a".repeat(max + 1), TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("!", TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h("~", TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h("", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("msg 1", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h(" msg_1", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("msg_1\t", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("msg_\x7f", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("msg_\0", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, h("msg_é", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId));
        check(A, Headers { id: Some(b"msg_\xff"), ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::BadId));
    }

    #[test]
    #[rustfmt::skip]
    fn missing_headers_and_check_order() {
        check(A, Headers { id: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::MissingId));
        check(A, Headers { timestamp: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::MissingTimestamp));
        check(A, Headers { signature: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::MissingSignature));
        check(A, Headers { id: None, timestamp: None, signature: None }, BODY, NOW, Err(Error::MissingId));
        check(A, Headers { id: None, ..h(ID, "x", "x") }, BODY, NOW, Err(Error::MissingId));
        check(A, Headers { timestamp: None, ..h("", TS, "x") }, BODY, NOW, Err(Error::BadId));
        check(A, Headers { signature: None, ..h(ID, "x", "x") }, BODY, NOW, Err(Error::BadTimestamp));
        check(A, Headers { signature: None, ..h(ID, "0", "x") }, BODY, NOW, Err(Error::Stale { tolerance_secs: TOLERANCE }));
        check(A, Headers { signature: None, ..h(ID, "9999999999", "x") }, BODY, NOW, Err(Error::Future { tolerance_secs: TOLERANCE }));
    }

    #[test]
    #[rustfmt::skip]
    fn rotation() {
        check(&format!("{A} {C}"), h(ID, TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(&format!("{A} {C}"), h(ID, TS, "v1,{c}"), BODY, NOW, Ok(()));
        check(&format!("{C},{A}"), h(ID, TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(&format!("{C},{A}"), h(ID, TS, "v1,{c}"), BODY, NOW, Ok(()));
        check(&format!("{C} {A}"), h(ID, TS, "v1,{c} v1,{a}"), BODY, NOW, Ok(()));
        check(C, h(ID, TS, "v1,{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(A, h(ID, TS, "v1,{c}"), BODY, NOW, Err(Error::NoValidSignature));
        check(&format!("{B} {C}"), h(ID, TS, "v1,{a}"), BODY, NOW, Err(Error::NoValidSignature));
        check(&format!("{}{A}", format!("{C} ").repeat(SECRETS_COUNT_MAX - 1)), h(ID, TS, "v1,{a}"), BODY, NOW, Ok(()));
    }

    #[test]
    #[rustfmt::skip]
    fn secrets_lists() {
        let max = SECRETS_COUNT_MAX;
        check_secrets(A, Ok(1));
        check_secrets(&format!("{A} {B}"), Ok(2));
        check_secrets(&format!("{A},{B}"), Ok(2));
        check_secrets(&format!("{A}, {B} ,{C}"), Ok(3));
        check_secrets(&format!(" ,{A},, {B} , "), Ok(2));
        check_secrets(&format!("{A}\n{B}\n"), Ok(2));
        check_secrets(&format!("{A}\t{B}\r\n"), Ok(2));
        check_secrets(&format!("{A} {A}"), Ok(2));
        check_secrets(&format!("{A} ").repeat(max), Ok(max));
        check_secrets(&format!("{A} ").repeat(max + 1), Err(SecretError::TooMany { max }));
        check_secrets(&format!("{A},").repeat(100), Err(SecretError::TooMany { max }));
        check_secrets("", Err(SecretError::Empty));
        check_secrets(" , \n,", Err(SecretError::Empty));
        check_secrets("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Err(SecretError::MissingPrefix { position: 1 }));
        check_secrets(&format!("{A} WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretError::MissingPrefix { position: 2 }));
        check_secrets(&format!("{A},{B},whsec"), Err(SecretError::MissingPrefix { position: 3 }));
        check_secrets("whsec_!!!!", Err(SecretError::BadBase64 { position: 1 }));
        check_secrets(&format!("{A} whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"), Err(SecretError::BadBase64 { position: 2 }));
        check_secrets("whsec_AAA", Err(SecretError::BadBase64 { position: 1 }));
        check_secrets("whsec_AA-_", Err(SecretError::BadBase64 { position: 1 }));
        check_secrets("whsec_AA==", Ok(1));
        check_secrets("whsec_", Err(SecretError::EmptyKey { position: 1 }));
        check_secrets(&format!("{A} , whsec_"), Err(SecretError::EmptyKey { position: 2 }));
    }

    #[test]
    #[rustfmt::skip]
    fn messages() {
        let cases: [(&dyn fmt::Display, &str); 13] = [
            (&Error::MissingId, "webhook-id header missing"),
            (&Error::MissingTimestamp, "webhook-timestamp header missing"),
            (&Error::MissingSignature, "webhook-signature header missing"),
            (&Error::BadId, "webhook-id must be 1..=255 ascii graphic characters"),
            (&Error::BadTimestamp, "webhook-timestamp must be unix seconds in digits"),
            (&Error::Stale { tolerance_secs: 300 }, "webhook-timestamp more than 300 s in the past"),
            (&Error::Future { tolerance_secs: 300 }, "webhook-timestamp more than 300 s in the future"),
            (&Error::NoValidSignature, "no valid v1 signature"),
            (&SecretError::Empty, "WEBHOOK_SECRET holds no secret"),
            (&SecretError::MissingPrefix { position: 2 }, "WEBHOOK_SECRET entry 2 does not start with whsec_"),
            (&SecretError::BadBase64 { position: 1 }, "WEBHOOK_SECRET entry 1 is not standard base64 after whsec_"),
            (&SecretError::EmptyKey { position: 3 }, "WEBHOOK_SECRET entry 3 has an empty key after whsec_"),
            (&SecretError::TooMany { max: 8 }, "WEBHOOK_SECRET holds more than 8 secrets"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn secrets_never_printed() {
        let secrets = Secrets::parse(&format!("{A} {B}")).unwrap();
        assert_eq!(format!("{secrets:?}"), "Secrets { len: 2, .. }");
        let error = Secrets::parse("sekrit_MfKQ9r8G whsec_MfKQ9r8G!").unwrap_err();
        assert!(!format!("{error} {error:?}").contains("MfKQ9r8G"));
        assert!(!secrets.is_empty());
    }
}
