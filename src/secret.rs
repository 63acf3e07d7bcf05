//! Webhook secrets an operator makes (`hooksink secret`) and the published ones nobody should
//! run with.
//!
//! A secret from a test vector or an API reference lets anyone who read that page sign
//! webhooks the server accepts, so start-up warns when one is configured.

use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::signature::standard::{self, Keys};
use crate::signature::{self, Secrets};

/// Random bytes in a generated key: the HMAC-SHA256 block of security, 256 bits.
const KEY_SIZE: usize = 32;

/// Secrets printed in public documents, with where they are printed.
pub const PUBLISHED: &[(&str, &str)] = &[
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "the Standard Webhooks specification's test vector",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "the Svix API reference's example endpoint secret",
    ),
    (
        "whsec_UkVQTEFDRS1NRS1USElTLUlTLU5PVC1BLVNFQ1JFVCE=",
        "hooksink's deploy/hooksink.env.example placeholder",
    ),
];

/// A fresh `whsec_<base64>` secret from the operating system's random source.
pub fn generate() -> io::Result<String> {
    let mut key = [0u8; KEY_SIZE];
    signature::fill_random(&mut key)?;
    Ok(format!("whsec_{}", STANDARD.encode(key)))
}

/// Where each published secret among `keys` was published; empty when none is.
pub fn published_in(keys: &Keys) -> Vec<&'static str> {
    // Keys are held as HMAC state, so compare by behaviour: a probe signed with the published
    // secret verifies against `secrets` exactly when that key is among them.
    let (id, timestamp, body) = ("msg_probe", 0, b"{}");
    PUBLISHED
        .iter()
        .filter(|(text, _)| {
            let Ok(published) = Secrets::parse(text) else {
                return false;
            };
            let tag = signature::sign(&published, id, timestamp, body);
            let sent: [(&str, &[u8]); 3] = [
                (standard::WEBHOOK.id, id.as_bytes()),
                (standard::WEBHOOK.timestamp, b"0"),
                (standard::WEBHOOK.signature, tag.as_bytes()),
            ];
            let lookup = |name: &str| sent.iter().find(|(key, _)| *key == name).map(|kv| kv.1);
            standard::headers(lookup)
                .and_then(|delivery| standard::verify_delivery(keys, &delivery, body, timestamp, 0))
                .is_ok()
        })
        .map(|(_, source)| *source)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: &[&str]) {
        let keys = Keys::parse(text).unwrap();
        assert_eq!(published_in(&keys), expected);
    }

    #[test]
    fn published_secrets_are_found_wherever_they_sit_in_the_list() {
        let (vector, svix, example) = (PUBLISHED[0], PUBLISHED[1], PUBLISHED[2]);
        check(vector.0, &[vector.1]);
        check(svix.0, &[svix.1]);
        check(example.0, &[example.1]);
        check(&format!("whsec_AAAA {}", vector.0), &[vector.1]);
        check(&format!("{},{}", svix.0, vector.0), &[vector.1, svix.1]);
        check("whsec_AAAA", &[]);
        let env_example = include_str!("../deploy/hooksink.env.example");
        assert!(env_example.contains(&format!("WEBHOOK_SECRET={}\n", example.0)));
        check(&generate().unwrap(), &[]);
    }

    #[test]
    fn generated_secrets_parse_and_differ() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.len(), "whsec_".len() + 44);
        let key = STANDARD
            .decode(first.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), KEY_SIZE);
        Secrets::parse(&first).unwrap();
    }
}
