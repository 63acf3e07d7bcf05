//! Standard Webhooks: `v1` (HMAC-SHA256) and `v1a` (ed25519) signatures, under the
//! `webhook-*` or the Svix-branded `svix-*` header names.
//!
//! A sender signs `{id}.{timestamp}.{body}` and sends space-separated `v1,<base64>` and/or
//! `v1a,<base64>` entries. `WEBHOOK_SECRET` may mix `whsec_` symmetric secrets and `whpk_`
//! public keys, so a sender can rotate from one kind to the other without downtime; a `v1` entry
//! is checked against the secrets, a `v1a` entry against the public keys. Neither path copies
//! the body: HMAC and ed25519 both take the message in pieces.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::ed25519::signature::{MultipartSigner, MultipartVerifier};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Error, Verified, check_window, fill_random, parse_id, parse_timestamp};
use crate::limits::{SECRETS_COUNT_MAX, SIGNATURES_COUNT_MAX, V1A_SIGNATURES_COUNT_MAX};

/// The three header names of one family; a request must use one family throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The delivery id header.
    pub id: &'static str,
    /// The unix-seconds timestamp header.
    pub timestamp: &'static str,
    /// The signature list header.
    pub signature: &'static str,
}

/// The names the Standard Webhooks specification gives.
pub const WEBHOOK: Family = Family {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

/// The names Svix sends; same meaning and signature as `WEBHOOK`.
pub const SVIX: Family = Family {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// Every header this scheme reads.
pub const HEADER_NAMES: [&str; 6] = [
    WEBHOOK.id,
    WEBHOOK.timestamp,
    WEBHOOK.signature,
    SVIX.id,
    SVIX.timestamp,
    SVIX.signature,
];

/// The verification keys from `WEBHOOK_SECRET`: 1..=`SECRETS_COUNT_MAX` entries, each a
/// `whsec_` secret or a `whpk_` public key. `Debug` shows only how many there are.
#[derive(Clone)]
pub struct Keys {
    /// Held as keyed HMAC states, so a request never re-derives them.
    symmetric: Vec<HmacSha256>,
    public: Vec<VerifyingKey>,
}

/// Symmetric secrets only, at least one: what `sign` (`hooksink sign`, tests) needs.
#[derive(Clone)]
pub struct Secrets {
    /// The key `sign` uses; kept apart so that "at least one" holds by construction.
    first: HmacSha256,
    keys: Keys,
}

/// An ed25519 private key for `v1a` signing, from `whsk_<base64 of seed then public key>`.
pub struct PrivateKey(SigningKey);

/// Why a key list or key was refused; positions are 1-based and no variant carries key material.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretError {
    /// Nothing but separators.
    Empty,
    /// The entry does not start with `whsec_` (or `whpk_`, where public keys are allowed).
    MissingPrefix { position: usize },
    /// The text after the prefix is not standard padded base64.
    BadBase64 { position: usize },
    /// `whsec_` with nothing after it.
    EmptyKey { position: usize },
    /// More than `SECRETS_COUNT_MAX` entries.
    TooMany { max: usize },
    /// A `whpk_` key that is not 32 bytes, not a curve point, or of small order.
    BadPublicKey { position: usize },
    /// Not `whsk_` and 64 bytes of base64 whose second half is the first half's public key.
    BadPrivateKey,
}

/// One complete family of signature headers, as raw bytes; only `headers` builds one.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    family: Family,
    id: &'a [u8],
    timestamp: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// The family's id, timestamp and signature values, or the first one missing.
    fn complete(family: Family, values: [Option<&'a [u8]>; 3]) -> Result<Delivery<'a>, Error> {
        let [id, timestamp, signature] = values;
        let missing = |header| Error::Missing { header };
        Ok(Delivery {
            family,
            id: id.ok_or(missing(family.id))?,
            timestamp: timestamp.ok_or(missing(family.timestamp))?,
            signature: signature.ok_or(missing(family.signature))?,
        })
    }
}

impl Keys {
    /// Parses `whsec_<base64>` and `whpk_<base64>` entries separated by commas and/or whitespace.
    pub fn parse(text: &str) -> Result<Keys, SecretError> {
        parse_keys(text, true)
    }

    /// How many keys are configured, of both kinds; always at least one.
    pub fn len(&self) -> usize {
        self.symmetric.len() + self.public.len()
    }

    /// Always false, because `parse` refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The symmetric secrets of a list that may also hold public keys; None when it holds
    /// public keys only. `hooksink sign` signs `v1` with the first of them.
    pub fn secrets(&self) -> Option<Secrets> {
        let first = self.symmetric.first()?.clone();
        let keys = Keys {
            symmetric: self.symmetric.clone(),
            public: Vec::new(),
        };
        Some(Secrets { first, keys })
    }
}

impl Secrets {
    /// Parses `whsec_<base64>` entries separated by commas and/or whitespace.
    pub fn parse(text: &str) -> Result<Secrets, SecretError> {
        let keys = parse_keys(text, false)?;
        let first = keys.symmetric.first().ok_or(SecretError::Empty)?.clone();
        Ok(Secrets { first, keys })
    }

    /// How many secrets are configured; always at least one.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false, because `parse` refuses an empty list.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The secrets as verification keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

impl PrivateKey {
    /// Parses `whsk_<base64>` of 64 bytes: the 32-byte seed, then its 32-byte public key.
    pub fn parse(text: &str) -> Result<PrivateKey, SecretError> {
        let encoded = text.trim().strip_prefix("whsk_");
        let mut bytes = [0_u8; KEYPAIR_SIZE];
        let decoded = encoded.map(|encoded| STANDARD.decode_slice(encoded, &mut bytes));
        let key = match decoded {
            Some(Ok(KEYPAIR_SIZE)) => SigningKey::from_keypair_bytes(&bytes).ok(),
            _ => None,
        };
        bytes.fill(0);
        key.map(PrivateKey).ok_or(SecretError::BadPrivateKey)
    }

    /// A new key pair from the operating system's random number generator.
    pub fn generate() -> std::io::Result<PrivateKey> {
        let mut seed = [0_u8; ed25519_dalek::SECRET_KEY_LENGTH];
        fill_random(&mut seed)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(PrivateKey(key))
    }

    /// `v1a,<base64>` over `{id}.{timestamp}.{body}`, as a `webhook-signature` entry.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let parts = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
        // Infallible for an in-memory key; the fallible form exists for hardware signers.
        let signature = self.0.multipart_sign(&parts);
        format!("v1a,{}", STANDARD.encode(signature.to_bytes()))
    }

    /// `whpk_<base64>`, the entry a receiver puts in `WEBHOOK_SECRET`.
    pub fn public_key(&self) -> String {
        format!(
            "whpk_{}",
            STANDARD.encode(self.0.verifying_key().as_bytes())
        )
    }

    /// `whsk_<base64>`, the form `parse` reads.
    pub fn to_text(&self) -> String {
        format!("whsk_{}", STANDARD.encode(self.0.to_keypair_bytes()))
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach a log line, not even as HMAC state.
        f.debug_struct("Keys")
            .field("symmetric", &self.symmetric.len())
            .field("public", &self.public.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey { .. }")
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = "WEBHOOK_SECRET entry";
        match self {
            SecretError::Empty => f.write_str("WEBHOOK_SECRET holds no secret"),
            SecretError::MissingPrefix { position } => {
                write!(f, "{entry} {position} does not start with whsec_ or whpk_")
            }
            SecretError::BadBase64 { position } => {
                write!(
                    f,
                    "{entry} {position} is not standard base64 after its prefix"
                )
            }
            SecretError::EmptyKey { position } => {
                write!(f, "{entry} {position} has an empty key after whsec_")
            }
            SecretError::TooMany { max } => {
                write!(f, "WEBHOOK_SECRET holds more than {max} secrets")
            }
            SecretError::BadPublicKey { position } => write!(
                f,
                "{entry} {position} is not a 32-byte ed25519 public key after whpk_"
            ),
            SecretError::BadPrivateKey => f.write_str(
                "private key must be whsk_ and 64 bytes of standard base64 (seed, then public key)",
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// Picks the header family: the three `webhook-*` headers if any is present, else the three
/// `svix-*` ones; a partial set of one family next to the other is refused, never mixed.
pub fn headers<'a>(lookup: impl Fn(&str) -> Option<&'a [u8]>) -> Result<Delivery<'a>, Error> {
    let read = |family: Family| [family.id, family.timestamp, family.signature].map(&lookup);
    let present = |values: &[Option<&[u8]>; 3]| values.iter().flatten().count();
    let (webhook, svix) = (read(WEBHOOK), read(SVIX));
    match (present(&webhook), present(&svix)) {
        (3, _) | (_, 0) => Delivery::complete(WEBHOOK, webhook),
        (0, _) => Delivery::complete(SVIX, svix),
        _ => Err(Error::MixedFamilies),
    }
}

/// On success returns the verified id and timestamp.
///
/// Checks run cheapest first (id, timestamp and its window) so that a malformed or replayed
/// request is refused before any HMAC or curve work.
pub fn verify_delivery<'a>(
    keys: &Keys,
    delivery: &Delivery<'a>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<Verified<'a>, Error> {
    let family = delivery.family;
    let id = parse_id(delivery.id).ok_or(Error::BadId { header: family.id })?;
    let timestamp = parse_timestamp(delivery.timestamp).ok_or(Error::BadTimestamp {
        field: family.timestamp,
    })?;
    check_window(family.timestamp, timestamp, now_secs, tolerance_secs)?;
    // The raw timestamp bytes are what was signed, so "0123" must not be re-rendered "123".
    let parts = [delivery.id, b".", delivery.timestamp, b".", body];
    if symmetric_match(keys, &parts, delivery.signature) || public_match(keys, &parts, delivery) {
        return Ok(Verified { id, timestamp });
    }
    Err(Error::NoValidSignature)
}

/// `v1,<base64>` for the first secret; used by `hooksink sign` and by tests/load generators.
///
/// A negative `timestamp` is signed as written, but `verify_delivery` refuses it.
pub fn sign(secrets: &Secrets, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = signed_content(
        &secrets.first,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes in an HMAC-SHA256 tag; a `v1` entry decoding to any other length cannot match.
const TAG_SIZE: usize = 32;
/// Bytes in an ed25519 signature; a `v1a` entry decoding to any other length cannot match.
const ED25519_SIGNATURE_SIZE: usize = ed25519_dalek::SIGNATURE_LENGTH;
/// Bytes in a `whsk_` key: seed, then public key.
const KEYPAIR_SIZE: usize = ed25519_dalek::KEYPAIR_LENGTH;

fn is_separator(c: char) -> bool {
    // Whitespace rather than only ' ', so a trailing newline from a secrets file is harmless.
    c == ',' || c.is_ascii_whitespace()
}

fn parse_keys(text: &str, allow_public: bool) -> Result<Keys, SecretError> {
    let mut keys = Keys {
        symmetric: Vec::with_capacity(SECRETS_COUNT_MAX),
        public: Vec::new(),
    };
    let entries = text.split(is_separator).filter(|entry| !entry.is_empty());
    for (index, entry) in entries.enumerate() {
        let position = index + 1;
        if index == SECRETS_COUNT_MAX {
            return Err(SecretError::TooMany {
                max: SECRETS_COUNT_MAX,
            });
        }
        match entry.strip_prefix("whpk_") {
            Some(encoded) if allow_public => keys.public.push(parse_public(encoded, position)?),
            _ => keys.symmetric.push(parse_secret(entry, position)?),
        }
    }
    if keys.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(keys)
}

fn parse_secret(entry: &str, position: usize) -> Result<HmacSha256, SecretError> {
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

fn parse_public(encoded: &str, position: usize) -> Result<VerifyingKey, SecretError> {
    let mut bytes = [0_u8; ed25519_dalek::PUBLIC_KEY_LENGTH];
    match STANDARD.decode_slice(encoded, &mut bytes) {
        Ok(ed25519_dalek::PUBLIC_KEY_LENGTH) => {}
        Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            return Err(SecretError::BadPublicKey { position });
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => {
            return Err(SecretError::BadBase64 { position });
        }
    }
    // A small-order key would accept forged signatures on every message.
    match VerifyingKey::from_bytes(&bytes) {
        Ok(key) if !key.is_weak() => Ok(key),
        _ => Err(SecretError::BadPublicKey { position }),
    }
}

/// The MAC over the concatenated `parts`, fed in pieces so that nothing is copied or allocated.
fn signed_content(key: &HmacSha256, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac
}

fn symmetric_match(keys: &Keys, parts: &[&[u8]], header: &[u8]) -> bool {
    if !entries(header).any(|(version, _)| version == b"v1") {
        return false;
    }
    keys.symmetric.iter().any(|key| {
        let mac = signed_content(key, parts);
        // `verify_slice` compares in constant time; which entry matched is not secret.
        v1_tags(header).any(|tag| mac.clone().verify_slice(&tag).is_ok())
    })
}

/// Public-key checks are the costly ones (each hashes the whole message), so at most
/// `V1A_SIGNATURES_COUNT_MAX` entries are tried against each public key.
///
/// Never inlined: the curve arithmetic needs a 5 KiB frame, which would otherwise be part of
/// `verify_delivery`'s frame on every request (stack probes touch each page of it), also the
/// `v1`-only ones, and a touched coroutine stack page stays resident for the connection's life.
#[inline(never)]
fn public_match(keys: &Keys, parts: &[&[u8]], delivery: &Delivery<'_>) -> bool {
    if keys.public.is_empty() {
        return false;
    }
    v1a_signatures(delivery.signature)
        .take(V1A_SIGNATURES_COUNT_MAX)
        .any(|signature| {
            keys.public
                .iter()
                .any(|key| key.multipart_verify(parts, &signature).is_ok())
        })
}

/// `(version, encoded)` of each of the first `SIGNATURES_COUNT_MAX` space-separated entries;
/// entries without a comma are skipped rather than refused, as Standard Webhooks asks.
fn entries(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header
        .split(|&byte| byte == b' ')
        .filter(|entry| !entry.is_empty())
        .take(SIGNATURES_COUNT_MAX)
        .filter_map(|entry| {
            let mut parts = entry.splitn(2, |&byte| byte == b',');
            Some((parts.next()?, parts.next()?))
        })
}

/// The decoded tags of the `v1` entries; ones not decoding to exactly `TAG_SIZE` are skipped.
fn v1_tags(header: &[u8]) -> impl Iterator<Item = [u8; TAG_SIZE]> + '_ {
    entries(header)
        .filter(|(version, _)| *version == b"v1")
        .filter_map(|(_, encoded)| decode_exact::<TAG_SIZE>(encoded))
}

/// The decoded signatures of the `v1a` entries, skipped like `v1_tags`.
fn v1a_signatures(header: &[u8]) -> impl Iterator<Item = Signature> + '_ {
    entries(header)
        .filter(|(version, _)| *version == b"v1a")
        .filter_map(|(_, encoded)| decode_exact::<ED25519_SIGNATURE_SIZE>(encoded))
        .map(|bytes| Signature::from_bytes(&bytes))
}

fn decode_exact<const N: usize>(encoded: &[u8]) -> Option<[u8; N]> {
    let mut bytes = [0_u8; N];
    // Too long a candidate fails with "output slice too small", so nothing is written past it.
    match STANDARD.decode_slice(encoded, &mut bytes) {
        Ok(size) if size == N => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::EVENT_ID_LEN_MAX;

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

    /// What the `webhook-*` headers carried, as raw bytes (None = header absent).
    #[derive(Debug, Clone, Copy)]
    struct Headers<'a> {
        id: Option<&'a [u8]>,
        timestamp: Option<&'a [u8]>,
        signature: Option<&'a [u8]>,
    }

    /// `verify_delivery` on the three `webhook-*` values.
    fn verify<'a>(
        secrets: &Secrets,
        headers: &Headers<'a>,
        body: &[u8],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<Verified<'a>, Error> {
        let values = [headers.id, headers.timestamp, headers.signature];
        let delivery = Delivery::complete(WEBHOOK, values)?;
        verify_delivery(&secrets.keys, &delivery, body, now_secs, tolerance_secs)
    }

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
            STANDARD.encode(
                signed_content(&key, &[id, b".", ts, b".", body])
                    .finalize()
                    .into_bytes(),
            )
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
        check(A, h(ID, TS, SIG_A), BODY, NOW + TOLERANCE + 1, Err(Error::Stale { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE + 1, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE, Ok(()));
        check(A, h(ID, TS, SIG_A), BODY, NOW - TOLERANCE - 1, Err(Error::Future { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        check(A, h(ID, "0", SIG_A), BODY, i64::MAX, Err(Error::Stale { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        check(A, h(ID, "9223372036854775807", SIG_A), BODY, i64::MIN, Err(Error::Future { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        check(A, h(ID, "9223372036854775807", SIG_A), BODY, NOW, Err(Error::Future { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        let secrets = Secrets::parse(A).unwrap();
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW, 0), Ok(Verified { id: ID, timestamp: NOW }));
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW + 1, 0), Err(Error::Stale { field: "webhook-timestamp", tolerance_secs: 0 }));
        assert_eq!(verify(&secrets, &h(ID, TS, SIG_A), BODY, NOW - 1, 0), Err(Error::Future { field: "webhook-timestamp", tolerance_secs: 0 }));
    }

    #[test]
    #[rustfmt::skip]
    fn bad_timestamps() {
        check(A, h(ID, "", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "abc", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "-1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "+1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "1614265330.0", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "1614265330 ", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, " 1614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "1.6e9", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "0x6037", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "１614265330", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "9223372036854775808", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "99999999999999999999", SIG_A), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
    }

    #[test]
    #[rustfmt::skip]
    fn ids() {
        let max = EVENT_ID_LEN_MAX;
        check(A, h(&"a".repeat(max - 1), TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(&"a".repeat(max), TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h(&"a".repeat(max + 1), TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("!", TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h("~", TS, "v1,{a}"), BODY, NOW, Ok(()));
        check(A, h("", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("msg 1", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h(" msg_1", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("msg_1\t", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("msg_\x7f", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("msg_\0", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h("msg_é", TS, "v1,{a}"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, Headers { id: Some(b"msg_\xff"), ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
    }

    #[test]
    #[rustfmt::skip]
    fn missing_headers_and_check_order() {
        check(A, Headers { id: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::Missing { header: "webhook-id" }));
        check(A, Headers { timestamp: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::Missing { header: "webhook-timestamp" }));
        check(A, Headers { signature: None, ..h(ID, TS, SIG_A) }, BODY, NOW, Err(Error::Missing { header: "webhook-signature" }));
        check(A, Headers { id: None, timestamp: None, signature: None }, BODY, NOW, Err(Error::Missing { header: "webhook-id" }));
        check(A, Headers { id: None, ..h(ID, "x", "x") }, BODY, NOW, Err(Error::Missing { header: "webhook-id" }));
        // A missing header is reported before anything is judged; then id, timestamp, window.
        check(A, Headers { timestamp: None, ..h("", TS, "x") }, BODY, NOW, Err(Error::Missing { header: "webhook-timestamp" }));
        check(A, Headers { signature: None, ..h("", "x", "x") }, BODY, NOW, Err(Error::Missing { header: "webhook-signature" }));
        check(A, h("", "x", "x"), BODY, NOW, Err(Error::BadId { header: "webhook-id" }));
        check(A, h(ID, "x", "x"), BODY, NOW, Err(Error::BadTimestamp { field: "webhook-timestamp" }));
        check(A, h(ID, "0", "x"), BODY, NOW, Err(Error::Stale { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
        check(A, h(ID, "9999999999", "x"), BODY, NOW, Err(Error::Future { field: "webhook-timestamp", tolerance_secs: TOLERANCE }));
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
        let cases = [
            (SecretError::Empty, "WEBHOOK_SECRET holds no secret"),
            (SecretError::MissingPrefix { position: 2 }, "WEBHOOK_SECRET entry 2 does not start with whsec_ or whpk_"),
            (SecretError::BadBase64 { position: 1 }, "WEBHOOK_SECRET entry 1 is not standard base64 after its prefix"),
            (SecretError::EmptyKey { position: 3 }, "WEBHOOK_SECRET entry 3 has an empty key after whsec_"),
            (SecretError::TooMany { max: 8 }, "WEBHOOK_SECRET holds more than 8 secrets"),
            (SecretError::BadPublicKey { position: 2 }, "WEBHOOK_SECRET entry 2 is not a 32-byte ed25519 public key after whpk_"),
            (SecretError::BadPrivateKey, "private key must be whsk_ and 64 bytes of standard base64 (seed, then public key)"),
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

    /// The published `v1a` vector: key pair from the Svix README, header from the spec.
    const WHSK: &str = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    const WHPK: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    const SIG_V1A: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";

    /// Verifies through `headers` with the named headers set, as the HTTP layer will.
    #[track_caller]
    fn check_lookup(keys: &str, set: &[(&str, &str)], body: &[u8], expected: Result<&str, Error>) {
        let keys = Keys::parse(keys).unwrap();
        let lookup = |name: &str| {
            set.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_bytes())
        };
        let actual = headers(lookup)
            .and_then(|delivery| verify_delivery(&keys, &delivery, body, NOW, TOLERANCE));
        assert_eq!(actual.map(|verified| verified.id), expected);
    }

    #[track_caller]
    fn check_keys(text: &str, expected: Result<(usize, usize), SecretError>) {
        let parsed = Keys::parse(text).map(|keys| (keys.symmetric.len(), keys.public.len()));
        assert_eq!(parsed, expected);
    }

    #[test]
    fn v1a_vector() {
        let private = PrivateKey::parse(WHSK).unwrap();
        assert_eq!(private.public_key(), WHPK);
        assert_eq!(private.sign(ID, NOW, BODY), SIG_V1A);
        assert_eq!(private.to_text(), WHSK);
        let set = [
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG_V1A),
        ];
        check_lookup(WHPK, &set, BODY, Ok(ID));
    }

    #[test]
    #[rustfmt::skip]
    fn v1a_and_mixed_keys() {
        let forged = format!("v1a,{}", STANDARD.encode([7_u8; 64]));
        fn v1a(signature: &str) -> [(&str, &str); 3] {
            [("webhook-id", ID), ("webhook-timestamp", TS), ("webhook-signature", signature)]
        }
        check_lookup(&format!("{A} {WHPK}"), &v1a(SIG_V1A), BODY, Ok(ID));
        check_lookup(&format!("{WHPK},{A}"), &v1a(SIG_A), BODY, Ok(ID));
        check_lookup(&format!("{WHPK} {A}"), &v1a(&format!("{SIG_A} {SIG_V1A}")), BODY, Ok(ID));
        check_lookup(&format!("{WHPK} {A}"), &v1a(&format!("{forged} {SIG_V1A}")), BODY, Ok(ID));
        check_lookup(A, &v1a(SIG_V1A), BODY, Err(Error::NoValidSignature));
        check_lookup(WHPK, &v1a(SIG_A), BODY, Err(Error::NoValidSignature));
        check_lookup(WHPK, &v1a(&forged), BODY, Err(Error::NoValidSignature));
        check_lookup(WHPK, &v1a(SIG_V1A), br#"{"test": 2432232315}"#, Err(Error::NoValidSignature));
        check_lookup(WHPK, &v1a(&SIG_V1A.replacen("v1a", "v1", 1)), BODY, Err(Error::NoValidSignature));
        check_lookup(WHPK, &v1a(&SIG_V1A.replacen("==", "", 1)), BODY, Err(Error::NoValidSignature));
        // Only the first V1A_SIGNATURES_COUNT_MAX entries are tried against public keys.
        let max = V1A_SIGNATURES_COUNT_MAX;
        check_lookup(WHPK, &v1a(&format!("{}{SIG_V1A}", format!("{forged} ").repeat(max - 1))), BODY, Ok(ID));
        check_lookup(WHPK, &v1a(&format!("{}{SIG_V1A}", format!("{forged} ").repeat(max))), BODY, Err(Error::NoValidSignature));
        // A second public key that does not match changes nothing.
        let other = PrivateKey::parse(WHSK).unwrap();
        let mine = PrivateKey::generate().unwrap();
        assert_ne!(mine.public_key(), other.public_key());
        check_lookup(&format!("{} {WHPK}", mine.public_key()), &v1a(SIG_V1A), BODY, Ok(ID));
        check_lookup(&mine.public_key(), &v1a(SIG_V1A), BODY, Err(Error::NoValidSignature));
        check_lookup(&mine.public_key(), &v1a(&mine.sign(ID, NOW, BODY)), BODY, Ok(ID));
    }

    #[test]
    #[rustfmt::skip]
    fn header_families() {
        let web = [("webhook-id", ID), ("webhook-timestamp", TS), ("webhook-signature", SIG_A)];
        let svix = [("svix-id", ID), ("svix-timestamp", TS), ("svix-signature", SIG_A)];
        let both: Vec<_> = web.iter().chain(&svix).copied().collect();
        check_lookup(A, &web, BODY, Ok(ID));
        check_lookup(A, &svix, BODY, Ok(ID));
        check_lookup(A, &both, BODY, Ok(ID));
        // A complete webhook-* set wins even when svix-* says something else.
        let other = [web[0], web[1], web[2], ("svix-id", "msg_other"), ("svix-signature", "v1,x")];
        check_lookup(A, &other, BODY, Ok(ID));
        check_lookup(A, &[], BODY, Err(Error::Missing { header: "webhook-id" }));
        check_lookup(A, &web[1..], BODY, Err(Error::Missing { header: "webhook-id" }));
        check_lookup(A, &web[..2], BODY, Err(Error::Missing { header: "webhook-signature" }));
        check_lookup(A, &svix[1..], BODY, Err(Error::Missing { header: "svix-id" }));
        check_lookup(A, &[svix[0], svix[2]], BODY, Err(Error::Missing { header: "svix-timestamp" }));
        check_lookup(A, &svix[..2], BODY, Err(Error::Missing { header: "svix-signature" }));
        check_lookup(A, &[web[0], svix[1], svix[2]], BODY, Err(Error::MixedFamilies));
        check_lookup(A, &[svix[0], svix[1], svix[2], web[2]], BODY, Err(Error::MixedFamilies));
        check_lookup(A, &[web[0], web[1], svix[2]], BODY, Err(Error::MixedFamilies));
        check_lookup(A, &[("svix-id", ""), svix[1], svix[2]], BODY, Err(Error::BadId { header: "svix-id" }));
        check_lookup(A, &[svix[0], ("svix-timestamp", "x"), svix[2]], BODY, Err(Error::BadTimestamp { field: "svix-timestamp" }));
        check_lookup(A, &[svix[0], ("svix-timestamp", "0"), svix[2]], BODY, Err(Error::Stale { field: "svix-timestamp", tolerance_secs: TOLERANCE }));
        check_lookup(A, &[svix[0], svix[1], ("svix-signature", "v1,x")], BODY, Err(Error::NoValidSignature));
    }

    #[test]
    #[rustfmt::skip]
    fn key_lists() {
        let max = SECRETS_COUNT_MAX;
        check_keys(WHPK, Ok((0, 1)));
        check_keys(&format!("{A} {WHPK}"), Ok((1, 1)));
        check_keys(&format!("{WHPK},{A},{WHPK}"), Ok((1, 2)));
        check_keys(&format!("{WHPK} ").repeat(max), Ok((0, max)));
        check_keys(&format!("{A} {}", format!("{WHPK} ").repeat(max - 1)), Ok((1, max - 1)));
        check_keys(&format!("{A} {}", format!("{WHPK} ").repeat(max)), Err(SecretError::TooMany { max }));
        check_keys("", Err(SecretError::Empty));
        check_keys("whpk_", Err(SecretError::BadPublicKey { position: 1 }));
        check_keys(&format!("{A} whpk_!!!!"), Err(SecretError::BadBase64 { position: 2 }));
        check_keys("whpk_AAAA", Err(SecretError::BadPublicKey { position: 1 }));
        check_keys(&format!("{WHPK}AAAA"), Err(SecretError::BadPublicKey { position: 1 }));
        check_keys(&format!("whpk_{}", STANDARD.encode([0_u8; 33])), Err(SecretError::BadPublicKey { position: 1 }));
        check_keys(&format!("whpk_{}", STANDARD.encode([0_u8; 31])), Err(SecretError::BadPublicKey { position: 1 }));
        // The identity point has small order: it would accept forged signatures.
        let mut identity = [0_u8; 32];
        identity[0] = 1;
        check_keys(&format!("whpk_{}", STANDARD.encode(identity)), Err(SecretError::BadPublicKey { position: 1 }));
        check_keys(WHSK, Err(SecretError::MissingPrefix { position: 1 }));
        check_keys("WHPK_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=", Err(SecretError::MissingPrefix { position: 1 }));
        // The compatibility `Secrets` takes symmetric secrets only.
        check_secrets(WHPK, Err(SecretError::MissingPrefix { position: 1 }));
        check_secrets(&format!("{A} {WHPK}"), Err(SecretError::MissingPrefix { position: 2 }));
        // A mixed list yields its secrets, first secret first, for signing.
        let mixed = Keys::parse(&format!("{WHPK} {A} {B}")).unwrap().secrets().unwrap();
        assert_eq!(mixed.len(), 2);
        assert_eq!(sign(&mixed, ID, NOW, BODY), SIG_A);
        assert!(Keys::parse(WHPK).unwrap().secrets().is_none());
    }

    #[test]
    #[rustfmt::skip]
    fn private_keys() {
        let bad = Err(SecretError::BadPrivateKey);
        assert!(PrivateKey::parse(WHSK).is_ok());
        assert!(PrivateKey::parse(&format!(" {WHSK}\n")).is_ok());
        assert_eq!(PrivateKey::parse(WHPK).map(|_| ()), bad);
        assert_eq!(PrivateKey::parse("whsk_").map(|_| ()), bad);
        assert_eq!(PrivateKey::parse(&WHSK.replacen("whsk_", "whsec_", 1)).map(|_| ()), bad);
        assert_eq!(PrivateKey::parse(&format!("whsk_{}", STANDARD.encode([1_u8; 32]))).map(|_| ()), bad);
        assert_eq!(PrivateKey::parse(&format!("whsk_{}", STANDARD.encode([1_u8; 65]))).map(|_| ()), bad);
        // The second half must be the first half's public key.
        let mut pair = STANDARD.decode(WHSK.trim_start_matches("whsk_")).unwrap();
        pair[40] ^= 1;
        assert_eq!(PrivateKey::parse(&format!("whsk_{}", STANDARD.encode(&pair))).map(|_| ()), bad);
        let generated = PrivateKey::generate().unwrap();
        let again = PrivateKey::parse(&generated.to_text()).unwrap();
        assert_eq!(again.public_key(), generated.public_key());
        assert_eq!(format!("{generated:?}"), "PrivateKey { .. }");
        assert_eq!(format!("{:?}", Keys::parse(&format!("{A} {WHPK}")).unwrap()), "Keys { symmetric: 1, public: 1, .. }");
    }
}
