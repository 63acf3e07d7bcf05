//! Stripe signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`.
//!
//! Stripe signs the bytes `{t}.{body}` with HMAC-SHA256 keyed with the endpoint secret string
//! as is (`whsec_...`, not base64-decoded, unlike Standard Webhooks). During a secret roll it
//! sends one `v1` per live secret, so every `v1` is tried against every configured secret.
//! `v0` (test-mode legacy) and unknown keys are ignored. Unlike Stripe's own libraries, `t` must
//! be within the tolerance in both directions, as for Standard Webhooks. Stripe signs no id:
//! the event id comes from the signed body (`stripe_event`).
//!
//! Grammar accepted: at most `STRIPE_SIGNATURE_LEN_MAX` bytes of at most
//! `STRIPE_SIGNATURE_ENTRIES_MAX` comma-separated `key=value` entries, spaces and tabs around an
//! entry ignored; exactly one `t` of decimal digits; at least one `v1`, each exactly 64 hex
//! digits (either case). Anything else is refused, never guessed at.

use std::fmt::{self, Write as _};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Error, check_window, parse_timestamp};
use crate::limits::{
    STRIPE_SECRETS_COUNT_MAX, STRIPE_SIGNATURE_ENTRIES_MAX, STRIPE_SIGNATURE_LEN_MAX,
};

/// The one header this scheme reads.
pub const HEADER: &str = "stripe-signature";

/// Every header this scheme reads.
pub const HEADER_NAMES: [&str; 1] = [HEADER];

/// The endpoint secrets from `STRIPE_WEBHOOK_SECRET`: 1..=`STRIPE_SECRETS_COUNT_MAX`.
#[derive(Clone)]
pub struct Secrets {
    /// The key `sign` uses; kept apart so that "at least one" holds by construction.
    first: HmacSha256,
    rest: Vec<HmacSha256>,
}

/// Why `STRIPE_WEBHOOK_SECRET` was refused; positions are 1-based, no key material shown.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretError {
    /// Nothing but separators.
    Empty,
    /// The entry does not start with `whsec_`.
    MissingPrefix { position: usize },
    /// `whsec_` with nothing after it.
    EmptyKey { position: usize },
    /// More than `STRIPE_SECRETS_COUNT_MAX` entries.
    TooMany { max: usize },
}

impl Secrets {
    /// Parses `whsec_...` entries separated by commas and/or whitespace.
    pub fn parse(text: &str) -> Result<Secrets, SecretError> {
        let mut keys = Vec::with_capacity(STRIPE_SECRETS_COUNT_MAX);
        let entries = text.split(is_separator).filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let position = index + 1;
            if index == STRIPE_SECRETS_COUNT_MAX {
                return Err(SecretError::TooMany {
                    max: STRIPE_SECRETS_COUNT_MAX,
                });
            }
            match entry.strip_prefix("whsec_") {
                None => return Err(SecretError::MissingPrefix { position }),
                Some("") => return Err(SecretError::EmptyKey { position }),
                // The whole string, prefix included, is the key.
                Some(_) => keys.push(
                    HmacSha256::new_from_slice(entry.as_bytes())
                        .map_err(|_| SecretError::EmptyKey { position })?,
                ),
            }
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
        let entry = "STRIPE_WEBHOOK_SECRET entry";
        match self {
            SecretError::Empty => f.write_str("STRIPE_WEBHOOK_SECRET holds no secret"),
            SecretError::MissingPrefix { position } => {
                write!(f, "{entry} {position} does not start with whsec_")
            }
            SecretError::EmptyKey { position } => {
                write!(f, "{entry} {position} has an empty key after whsec_")
            }
            SecretError::TooMany { max } => {
                write!(f, "STRIPE_WEBHOOK_SECRET holds more than {max} secrets")
            }
        }
    }
}

impl std::error::Error for SecretError {}

/// Checks the `Stripe-Signature` header found through `lookup` against `body`; on success
/// returns the signed `t`.
///
/// The header is parsed whole and the window checked before any HMAC work.
pub fn verify<'a>(
    secrets: &Secrets,
    lookup: impl Fn(&str) -> Option<&'a [u8]>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, Error> {
    let raw = lookup(HEADER).ok_or(Error::Missing { header: HEADER })?;
    let header = parse_header(raw)?;
    check_window(TIMESTAMP_FIELD, header.timestamp, now_secs, tolerance_secs)?;
    let tags = header.tags.get(..header.tags_len).unwrap_or_default();
    for key in secrets.keys() {
        let mut mac = key.clone();
        mac.update(header.timestamp_raw);
        mac.update(b".");
        mac.update(body);
        // `verify_slice` compares in constant time; which entry matched is not secret.
        if tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok()) {
            return Ok(header.timestamp);
        }
    }
    Err(Error::NoValidSignature)
}

/// `t=<timestamp>,v1=<hex>` for the first secret: the header value `hooksink sign` prints.
pub fn sign(secrets: &Secrets, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mut mac = secrets.first.clone();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut header = format!("t={ts},v1=");
    for byte in tag {
        // Writing into a `String` cannot fail.
        let _ = write!(header, "{byte:02x}");
    }
    header
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes in an HMAC-SHA256 tag.
const TAG_SIZE: usize = 32;
/// How errors name the timestamp.
const TIMESTAMP_FIELD: &str = "stripe-signature t";

/// A header that follows the grammar; tags live in a fixed array, so parsing never allocates.
struct Header<'a> {
    timestamp_raw: &'a [u8],
    timestamp: i64,
    tags: [[u8; TAG_SIZE]; STRIPE_SIGNATURE_ENTRIES_MAX],
    tags_len: usize,
}

fn is_separator(c: char) -> bool {
    c == ',' || c.is_ascii_whitespace()
}

fn malformed(problem: &'static str) -> Error {
    Error::Malformed {
        header: HEADER,
        problem,
    }
}

fn parse_header(raw: &[u8]) -> Result<Header<'_>, Error> {
    if raw.len() > STRIPE_SIGNATURE_LEN_MAX {
        return Err(Error::TooLong {
            header: HEADER,
            max: STRIPE_SIGNATURE_LEN_MAX,
        });
    }
    let mut timestamp = None;
    let mut tags = [[0_u8; TAG_SIZE]; STRIPE_SIGNATURE_ENTRIES_MAX];
    let mut tags_len = 0;
    for (index, entry) in raw.split(|&byte| byte == b',').enumerate() {
        if index == STRIPE_SIGNATURE_ENTRIES_MAX {
            return Err(Error::TooManyEntries {
                header: HEADER,
                max: STRIPE_SIGNATURE_ENTRIES_MAX,
            });
        }
        let entry = entry.trim_ascii();
        let Some(equals) = entry.iter().position(|&byte| byte == b'=') else {
            return Err(malformed("has an entry that is not key=value"));
        };
        let (key, value) = entry.split_at(equals);
        let value = value.get(1..).unwrap_or_default();
        match key {
            b"t" if timestamp.is_some() => return Err(malformed("has more than one t")),
            b"t" => {
                let parsed = parse_timestamp(value).ok_or(Error::BadTimestamp {
                    field: TIMESTAMP_FIELD,
                })?;
                timestamp = Some((value, parsed));
            }
            b"v1" => {
                let tag = decode_hex(value).ok_or(malformed("v1 is not 64 hex digits"))?;
                // At most one entry per index, so `tags_len` stays within the array.
                if let Some(slot) = tags.get_mut(tags_len) {
                    *slot = tag;
                    tags_len += 1;
                }
            }
            // `v0` and schemes Stripe may add later are not ours to judge.
            _ => {}
        }
    }
    let (timestamp_raw, timestamp) = timestamp.ok_or(malformed("has no t"))?;
    if tags_len == 0 {
        return Err(malformed("has no v1 signature"));
    }
    Ok(Header {
        timestamp_raw,
        timestamp,
        tags,
        tags_len,
    })
}

fn decode_hex(text: &[u8]) -> Option<[u8; TAG_SIZE]> {
    if text.len() != 2 * TAG_SIZE {
        return None;
    }
    let mut tag = [0_u8; TAG_SIZE];
    for (byte, pair) in tag.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |index: usize| {
            let value = char::from(*pair.get(index)?).to_digit(16)?;
            u8::try_from(value).ok()
        };
        *byte = digit(0)? << 4 | digit(1)?;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    //! `SIG` and `SIG_NEW` were checked with Stripe's own library (see the commit message).

    use super::*;
    use crate::limits::TIMESTAMP_SKEW_SECS_DEFAULT as TOLERANCE;

    const SECRET: &str = "whsec_hooksink_test_secret_1";
    const NEW: &str = "whsec_hooksink_test_secret_2";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = b"{\n  \"id\": \"evt_1\",\n  \"object\": \"event\"\n}";
    const SIG: &str = "dbf2ac9b0c80f4b2e00c0d4559732e768fd9628ec4d07c9112155221ec49668f";
    const SIG_NEW: &str = "c2aafb7c277acfc9e2bd5b602c62ccdb2507b5a4ef4c03a0fcfa4c1b4c7b5a59";
    const OTHER: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn malformed(problem: &'static str) -> Result<i64, Error> {
        Err(super::malformed(problem))
    }

    /// Verifies `header` (None = absent) at `now` with the secrets in `secrets`.
    #[track_caller]
    fn check(secrets: &str, header: Option<&str>, now: i64, expected: Result<i64, Error>) {
        let secrets = Secrets::parse(secrets).unwrap();
        let lookup = |name: &str| header.filter(|_| name == HEADER).map(str::as_bytes);
        assert_eq!(verify(&secrets, lookup, BODY, now, TOLERANCE), expected);
    }

    #[test]
    fn signs_as_stripe_does() {
        let secrets = Secrets::parse(SECRET).unwrap();
        assert_eq!(sign(&secrets, T, BODY), format!("t={T},v1={SIG}"));
        let secrets = Secrets::parse(&format!("{NEW} {SECRET}")).unwrap();
        assert_eq!(sign(&secrets, T, BODY), format!("t={T},v1={SIG_NEW}"));
    }

    #[test]
    #[rustfmt::skip]
    fn entries() {
        let ok = Ok(T);
        check(SECRET, Some(&format!("t={T},v1={SIG}")), T, ok);
        check(SECRET, Some(&format!("v1={SIG},t={T}")), T, ok);
        check(SECRET, Some(&format!("t={T},v1={OTHER},v1={SIG}")), T, ok);
        check(SECRET, Some(&format!("t={T},v1={SIG},v1={OTHER},v0={OTHER}")), T, ok);
        check(SECRET, Some(&format!("t={T},v0={SIG},v1={SIG},scheme2=x")), T, ok);
        check(SECRET, Some(&format!("t={T},v1={}", SIG.to_uppercase())), T, ok);
        check(SECRET, Some(&format!(" t={T} ,\tv1={SIG} ")), T, ok);
        check(SECRET, Some(&format!("t={T},v1={SIG},v1={SIG}")), T, ok);
        check(SECRET, Some(&format!("t={T},v1={OTHER}")), T, Err(Error::NoValidSignature));
        check(SECRET, Some(&format!("t={T},v0={SIG}")), T, malformed("has no v1 signature"));
        check(SECRET, Some(&format!("t={T}")), T, malformed("has no v1 signature"));
        check(SECRET, Some(&format!("t={T},V1={SIG}")), T, malformed("has no v1 signature"));
        check(SECRET, Some(&format!("v1={SIG}")), T, malformed("has no t"));
        check(SECRET, Some(""), T, malformed("has an entry that is not key=value"));
        check(SECRET, Some(&format!("t={T},v1={SIG},")), T, malformed("has an entry that is not key=value"));
        check(SECRET, Some(&format!("t={T},,v1={SIG}")), T, malformed("has an entry that is not key=value"));
        check(SECRET, Some(&format!("t={T};v1={SIG}")), T, Err(Error::BadTimestamp { field: TIMESTAMP_FIELD }));
        check(SECRET, Some(&format!("t={T},t={T},v1={SIG}")), T, malformed("has more than one t"));
        check(SECRET, Some(&format!("t={T},v1={SIG},t={}", T + 1)), T, malformed("has more than one t"));
        check(SECRET, Some(&format!("t={T},v1 ={SIG}")), T, malformed("has no v1 signature"));
        check(SECRET, Some(&format!("t={T},v1= {SIG}")), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, Some(&format!("t={T},v1={}", &SIG[..63])), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, Some(&format!("t={T},v1={SIG}0")), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, Some(&format!("t={T},v1={}g", &SIG[..63])), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, Some(&format!("t={T},v1=")), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, Some(&format!("t={T},v1={OTHER},v1=zz")), T, malformed("v1 is not 64 hex digits"));
        check(SECRET, None, T, Err(Error::Missing { header: HEADER }));
    }

    #[test]
    #[rustfmt::skip]
    fn timestamps() {
        let bad = Err(Error::BadTimestamp { field: TIMESTAMP_FIELD });
        let with = |t: &str| format!("t={t},v1={SIG}");
        check(SECRET, Some(&with("")), T, bad);
        check(SECRET, Some(&with("-1700000000")), T, bad);
        check(SECRET, Some(&with("+1700000000")), T, bad);
        check(SECRET, Some(&with("1700000000.0")), T, bad);
        check(SECRET, Some(&with(" 1700000000")), T, bad);
        check(SECRET, Some(&with("1.7e9")), T, bad);
        check(SECRET, Some(&with("9223372036854775808")), T, bad);
        check(SECRET, Some(&with(&"9".repeat(1000))), T, bad);
        check(SECRET, Some(&with("9223372036854775807")), T, Err(Error::Future { field: TIMESTAMP_FIELD, tolerance_secs: TOLERANCE }));
        // Leading zeros are signed as sent, so the tag for "1700000000" does not match.
        check(SECRET, Some(&with("01700000000")), T, Err(Error::NoValidSignature));
        check(SECRET, Some(&with("1700000000")), T + TOLERANCE, Ok(T));
        check(SECRET, Some(&with("1700000000")), T + TOLERANCE + 1, Err(Error::Stale { field: TIMESTAMP_FIELD, tolerance_secs: TOLERANCE }));
        check(SECRET, Some(&with("1700000000")), T - TOLERANCE, Ok(T));
        check(SECRET, Some(&with("1700000000")), T - TOLERANCE - 1, Err(Error::Future { field: TIMESTAMP_FIELD, tolerance_secs: TOLERANCE }));
        check(SECRET, Some(&with("0")), i64::MAX, Err(Error::Stale { field: TIMESTAMP_FIELD, tolerance_secs: TOLERANCE }));
        // The window is checked before any HMAC, so a stale t with a bad tag says stale.
        check(SECRET, Some(&format!("t=0,v1={OTHER}")), T, Err(Error::Stale { field: TIMESTAMP_FIELD, tolerance_secs: TOLERANCE }));
    }

    #[test]
    #[rustfmt::skip]
    fn limits() {
        let len = STRIPE_SIGNATURE_LEN_MAX;
        let entries = STRIPE_SIGNATURE_ENTRIES_MAX;
        let base = format!("t={T},v1={SIG}");
        let padded = |total: usize| format!("{base},x={}", "a".repeat(total - base.len() - 3));
        check(SECRET, Some(&padded(len)), T, Ok(T));
        check(SECRET, Some(&padded(len + 1)), T, Err(Error::TooLong { header: HEADER, max: len }));
        check(SECRET, Some(&format!("{base}{}", ",v0=x".repeat(entries - 2))), T, Ok(T));
        check(SECRET, Some(&format!("{base}{}", ",v0=x".repeat(entries - 1))), T, Err(Error::TooManyEntries { header: HEADER, max: entries }));
        check(SECRET, Some(&format!("t={T}{}", format!(",v1={OTHER}").repeat(entries - 2) + &format!(",v1={SIG}"))), T, Ok(T));
        check(SECRET, Some(&format!("t={T}{}", format!(",v1={OTHER}").repeat(entries - 1) + &format!(",v1={SIG}"))), T, Err(Error::TooManyEntries { header: HEADER, max: entries }));
    }

    #[test]
    #[rustfmt::skip]
    fn rolling_secrets() {
        let both = format!("t={T},v1={SIG_NEW},v1={SIG}");
        check(&format!("{SECRET} {NEW}"), Some(&format!("t={T},v1={SIG}")), T, Ok(T));
        check(&format!("{SECRET},{NEW}"), Some(&format!("t={T},v1={SIG_NEW}")), T, Ok(T));
        check(NEW, Some(&both), T, Ok(T));
        check(SECRET, Some(&both), T, Ok(T));
        check(NEW, Some(&format!("t={T},v1={SIG}")), T, Err(Error::NoValidSignature));
        check(&format!("{}{SECRET}", format!("{NEW} ").repeat(STRIPE_SECRETS_COUNT_MAX - 1)), Some(&format!("t={T},v1={SIG}")), T, Ok(T));
        // The secret is the whole string: the base64 reading of Standard Webhooks must not match.
        check("whsec_aG9va3Npbms=", Some(&format!("t={T},v1={SIG}")), T, Err(Error::NoValidSignature));
    }

    #[test]
    #[rustfmt::skip]
    fn secret_lists() {
        let max = STRIPE_SECRETS_COUNT_MAX;
        let count = |text: &str| Secrets::parse(text).map(|secrets| secrets.len());
        assert_eq!(count(SECRET), Ok(1));
        assert_eq!(count(&format!(" {SECRET},{NEW}\n")), Ok(2));
        assert_eq!(count(&format!("{SECRET} ").repeat(max)), Ok(max));
        assert_eq!(count(&format!("{SECRET} ").repeat(max + 1)), Err(SecretError::TooMany { max }));
        assert_eq!(count(" ,\n"), Err(SecretError::Empty));
        assert_eq!(count("sk_test_1"), Err(SecretError::MissingPrefix { position: 1 }));
        assert_eq!(count(&format!("{SECRET} whsec_")), Err(SecretError::EmptyKey { position: 2 }));
        let secrets = Secrets::parse(SECRET).unwrap();
        assert_eq!(format!("{secrets:?}"), "Secrets { len: 1, .. }");
        assert!(!secrets.is_empty());
        let cases = [
            (SecretError::Empty, "STRIPE_WEBHOOK_SECRET holds no secret"),
            (SecretError::MissingPrefix { position: 2 }, "STRIPE_WEBHOOK_SECRET entry 2 does not start with whsec_"),
            (SecretError::EmptyKey { position: 1 }, "STRIPE_WEBHOOK_SECRET entry 1 has an empty key after whsec_"),
            (SecretError::TooMany { max: 8 }, "STRIPE_WEBHOOK_SECRET holds more than 8 secrets"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
