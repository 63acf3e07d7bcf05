//! Signature schemes: each verifies a request on its raw header and body bytes before anything
//! parses the body, so an unsigned request costs a few MACs and no allocation.
//!
//! A scheme is one file here. It names the headers it reads (`HEADER_NAMES`), parses its keys
//! once at start-up, and verifies through a header lookup, so the HTTP layer only collects the
//! headers that `Scheme::header_names` lists and never knows what they mean. All schemes share
//! one `Error`, which the HTTP layer answers 401 `invalid_signature`. Everything here is pure
//! (the caller passes the clock in as `now_secs`) but key generation, which reads the kernel's
//! random source through `fill_random`.

pub mod standard;
pub mod stripe;

use std::fmt;

use crate::limits::EVENT_ID_LEN_MAX;

pub use standard::{SecretError, Secrets, sign};

/// Every header any scheme reads, lowercase, scheme by scheme: what `http::Head` collects.
pub const HEADER_NAMES: [&str; HEADER_NAMES_COUNT] = all_header_names();

/// The signature schemes hooksink verifies; each route uses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Standard Webhooks (`webhook-*` or Svix-branded `svix-*` headers), on `/webhook`.
    Standard,
    /// Stripe's `Stripe-Signature`, on `/stripe`.
    Stripe,
}

/// How many headers the schemes read together.
#[allow(clippy::indexing_slicing)] // Const evaluation: a bad index fails the build.
const HEADER_NAMES_COUNT: usize = {
    let mut count = 0;
    let mut index = 0;
    while index < Scheme::ALL.len() {
        count += Scheme::ALL[index].header_names().len();
        index += 1;
    }
    count
};

/// `Scheme::header_names` of every scheme, flattened at compile time.
// Indexing runs only in const evaluation: an out-of-bounds index fails the build, not a request.
#[allow(clippy::indexing_slicing)]
const fn all_header_names() -> [&'static str; HEADER_NAMES_COUNT] {
    let mut names = [""; HEADER_NAMES_COUNT];
    let mut filled = 0;
    let mut scheme = 0;
    while scheme < Scheme::ALL.len() {
        let own = Scheme::ALL[scheme].header_names();
        let mut index = 0;
        while index < own.len() {
            names[filled] = own[index];
            filled += 1;
            index += 1;
        }
        scheme += 1;
    }
    names
}

/// A request whose signature checked out, with the delivery's id and the sender's timestamp.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Verified<'a> {
    /// The delivery id, 1..=`EVENT_ID_LEN_MAX` ASCII graphic characters: the dedupe key.
    pub id: &'a str,
    /// The signed timestamp, known to be within the tolerance of now.
    pub timestamp: i64,
}

/// Why a request's signature was refused; every variant maps to HTTP 401.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Error {
    /// A header the scheme needs is absent.
    Missing { header: &'static str },
    /// Some `webhook-*` headers and some `svix-*` headers, but no complete `webhook-*` set.
    MixedFamilies,
    /// The id header is empty, longer than `EVENT_ID_LEN_MAX`, or not ASCII graphic.
    BadId { header: &'static str },
    /// The timestamp is not decimal digits fitting an `i64`.
    BadTimestamp { field: &'static str },
    /// The timestamp is more than `tolerance_secs` before now.
    Stale {
        field: &'static str,
        tolerance_secs: i64,
    },
    /// The timestamp is more than `tolerance_secs` after now.
    Future {
        field: &'static str,
        tolerance_secs: i64,
    },
    /// The signature header breaks the scheme's grammar or a limit; `problem` says how.
    Malformed {
        header: &'static str,
        problem: &'static str,
    },
    /// The signature header is longer than `max` bytes.
    TooLong { header: &'static str, max: usize },
    /// The signature header has more than `max` entries.
    TooManyEntries { header: &'static str, max: usize },
    /// No signature entry matched any configured key.
    NoValidSignature,
}

impl Scheme {
    /// Every scheme, for code that must consider each one (the HTTP layer's header filter).
    pub const ALL: [Scheme; 2] = [Scheme::Standard, Scheme::Stripe];

    /// The request headers this scheme reads, lowercase.
    pub const fn header_names(self) -> &'static [&'static str] {
        match self {
            Scheme::Standard => &standard::HEADER_NAMES,
            Scheme::Stripe => &stripe::HEADER_NAMES,
        }
    }

    /// The stable name stored with each row (`source` column) and used in metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Standard => "webhook",
            Scheme::Stripe => "stripe",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Missing { header } => write!(f, "{header} header missing"),
            Error::MixedFamilies => {
                f.write_str("webhook-* and svix-* signature headers mixed; send one complete set")
            }
            Error::BadId { header } => write!(
                f,
                "{header} must be 1..={EVENT_ID_LEN_MAX} ascii graphic characters"
            ),
            Error::BadTimestamp { field } => write!(f, "{field} must be unix seconds in digits"),
            Error::Stale {
                field,
                tolerance_secs,
            } => write!(f, "{field} more than {tolerance_secs} s in the past"),
            Error::Future {
                field,
                tolerance_secs,
            } => write!(f, "{field} more than {tolerance_secs} s in the future"),
            Error::Malformed { header, problem } => write!(f, "{header} {problem}"),
            Error::TooLong { header, max } => write!(f, "{header} longer than {max} bytes"),
            Error::TooManyEntries { header, max } => {
                write!(f, "{header} has more than {max} entries")
            }
            Error::NoValidSignature => f.write_str("no signature matched a configured key"),
        }
    }
}

impl std::error::Error for Error {}

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

/// Refuses a timestamp outside `now_secs ± tolerance_secs`, naming `field` in the error.
fn check_window(
    field: &'static str,
    timestamp: i64,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), Error> {
    debug_assert!(tolerance_secs >= 0, "tolerance comes from validated config");
    // Saturating: both values come from outside, and i64::MAX - i64::MIN must not wrap.
    if now_secs.saturating_sub(timestamp) > tolerance_secs {
        return Err(Error::Stale {
            field,
            tolerance_secs,
        });
    }
    if timestamp.saturating_sub(now_secs) > tolerance_secs {
        return Err(Error::Future {
            field,
            tolerance_secs,
        });
    }
    Ok(())
}

/// 1..=`EVENT_ID_LEN_MAX` ASCII graphic bytes, the rule for every delivery and event id.
fn parse_id(raw: &[u8]) -> Option<&str> {
    let graphic = raw.iter().all(u8::is_ascii_graphic);
    if raw.is_empty() || raw.len() > EVENT_ID_LEN_MAX || !graphic {
        return None;
    }
    std::str::from_utf8(raw).ok()
}

/// Fills `buffer` from the kernel's CSPRNG (`getrandom(2)`), retrying on interruption: the
/// one source of key material (`whsec_` secrets in `secret`, `whsk_` keys here).
pub(crate) fn fill_random(buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while let Some(rest) = buffer.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes for the whole call.
        let count = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(count) {
            Ok(count) => filled += count,
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_lowercase_and_distinct() {
        let mut all: Vec<&str> = Scheme::ALL
            .iter()
            .flat_map(|scheme| scheme.header_names().iter().copied())
            .collect();
        assert_eq!(all, HEADER_NAMES);
        assert!(all.iter().all(|name| *name == name.to_ascii_lowercase()));
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
        assert_eq!(Scheme::Standard.name(), "webhook");
        assert_eq!(Scheme::Stripe.name(), "stripe");
    }

    #[test]
    #[rustfmt::skip]
    fn windows_and_ids() {
        assert_eq!(check_window("t", 100, 100, 0), Ok(()));
        assert_eq!(check_window("t", 0, i64::MAX, 300), Err(Error::Stale { field: "t", tolerance_secs: 300 }));
        assert_eq!(check_window("t", i64::MAX, i64::MIN, 300), Err(Error::Future { field: "t", tolerance_secs: 300 }));
        assert_eq!(parse_id(b"evt_1"), Some("evt_1"));
        assert!(parse_id("a".repeat(EVENT_ID_LEN_MAX).as_bytes()).is_some());
        assert_eq!(parse_id("a".repeat(EVENT_ID_LEN_MAX + 1).as_bytes()), None);
        assert_eq!(parse_id(b""), None);
        assert_eq!(parse_id(b"evt 1"), None);
        assert_eq!(parse_id("evt_é".as_bytes()), None);
    }

    #[test]
    #[rustfmt::skip]
    fn messages() {
        let cases = [
            (Error::Missing { header: "svix-id" }, "svix-id header missing"),
            (Error::MixedFamilies, "webhook-* and svix-* signature headers mixed; send one complete set"),
            (Error::BadId { header: "webhook-id" }, "webhook-id must be 1..=255 ascii graphic characters"),
            (Error::BadTimestamp { field: "webhook-timestamp" }, "webhook-timestamp must be unix seconds in digits"),
            (Error::Stale { field: "webhook-timestamp", tolerance_secs: 300 }, "webhook-timestamp more than 300 s in the past"),
            (Error::Future { field: "stripe-signature t", tolerance_secs: 300 }, "stripe-signature t more than 300 s in the future"),
            (Error::Malformed { header: "stripe-signature", problem: "has no t" }, "stripe-signature has no t"),
            (Error::TooLong { header: "stripe-signature", max: 2048 }, "stripe-signature longer than 2048 bytes"),
            (Error::TooManyEntries { header: "stripe-signature", max: 16 }, "stripe-signature has more than 16 entries"),
            (Error::NoValidSignature, "no signature matched a configured key"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
