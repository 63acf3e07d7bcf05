//! The row written to PostgreSQL for one validated event.
//!
//! Only `Event` is accepted, so every field here already meets the contract. The row borrows
//! everything it can from the event and derives the rest without allocating: `category` and
//! `action` are slices of `event_type`, and `amount` is the exact decimal text of
//! `amount_cents / 10^minor_units` in an inline buffer, which PostgreSQL reads into `numeric`
//! without any floating point on the way.

use std::fmt;

use crate::currency::{Currency, MINOR_UNITS_MAX};
use crate::payload::Event;

/// One row of `webhook_events`, in the table's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    /// The `webhook-id` header, checked by the caller.
    pub event_id: &'a str,
    /// The full dotted name, such as `payment.intent.succeeded`.
    pub event_type: &'a str,
    /// `event_type` before its first dot: `payment`.
    pub category: &'a str,
    /// `event_type` after its first dot: `intent.succeeded`.
    pub action: &'a str,
    /// The provider's object id.
    pub object_id: &'a str,
    /// The amount in minor units, for the `bigint` column.
    pub amount_cents: i64,
    /// The upper-case ISO 4217 code, for the `char(3)` column.
    pub currency: &'a str,
    /// The amount in major units, for the `numeric(20,4)` column.
    pub amount: Amount,
    /// The metadata object as sent, for the `jsonb` column.
    pub metadata: &'a str,
    /// The provider's timestamp in seconds since the Unix epoch, from the signed headers.
    pub provider_ts: i64,
}

/// `amount_cents / 10^minor_units` as exact decimal text, no allocation: `[u8; N]` inline buffer.
///
/// 2000 USD is `20.00`, 2000 JPY is `2000`, 1234 BHD is `1.234`, 5 USD is `0.05`.
#[derive(Clone, Copy)]
pub struct Amount {
    buffer: [u8; AMOUNT_LEN_MAX],
    start: usize,
}

impl Amount {
    /// Formats `amount_cents` with as many decimals as `currency` has minor units.
    pub fn new(amount_cents: i64, currency: Currency) -> Amount {
        let decimals = usize::from(currency.minor_units().min(MINOR_UNITS_MAX));
        let mut amount = Amount {
            buffer: [b'0'; AMOUNT_LEN_MAX],
            start: AMOUNT_LEN_MAX,
        };
        let mut magnitude = amount_cents.unsigned_abs();
        let mut digits = 0;
        // Right to left, and at least one digit before the point, so 5 cents reads `0.05`.
        loop {
            if digits == decimals && decimals > 0 {
                amount.push(b'.');
            }
            amount.push(b'0' + (magnitude % 10) as u8);
            magnitude /= 10;
            digits += 1;
            if magnitude == 0 && digits > decimals {
                break;
            }
        }
        if amount_cents < 0 {
            amount.push(b'-');
        }
        amount
    }

    /// The decimal text, such as `20.00`.
    pub fn as_str(&self) -> &str {
        let text = self.buffer.get(self.start..).unwrap_or_default();
        std::str::from_utf8(text).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        debug_assert!(self.start > 0, "AMOUNT_LEN_MAX is too small");
        self.start = self.start.saturating_sub(1);
        if let Some(slot) = self.buffer.get_mut(self.start) {
            *slot = byte;
        }
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Amount) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Amount {}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the row for `event`, received with `event_id` and signed at `provider_ts`.
pub fn transform<'a>(event_id: &'a str, provider_ts: i64, event: &'a Event<'a>) -> Row<'a> {
    let event_type: &str = &event.event_type;
    // A validated event_type has a dot; the fallback keeps a hand-built `Event` from panicking.
    let (category, action) = event_type.split_once('.').unwrap_or((event_type, ""));
    Row {
        event_id,
        event_type,
        category,
        action,
        object_id: &event.object_id,
        amount_cents: event.amount_cents,
        currency: event.currency.code(),
        amount: Amount::new(event.amount_cents, event.currency),
        metadata: event.metadata,
        provider_ts,
    }
}

/// A sign, the 20 digits of `u64::MAX` and a point. With at most `MINOR_UNITS_MAX` (4)
/// decimals, the leading `0.` of a small amount never needs more.
const AMOUNT_LEN_MAX: usize = 1 + 20 + 1;

const _: () = assert!((MINOR_UNITS_MAX as usize) < 20);

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::currency;
    use crate::limits::AMOUNT_CENTS_MAX;

    #[track_caller]
    fn check(amount_cents: i64, code: &str, expected: &str) {
        let currency = currency::find(code).unwrap();
        let amount = Amount::new(amount_cents, currency);
        assert_eq!(amount.as_str(), expected, "{amount_cents} {code}");
    }

    #[test]
    fn amount() {
        check(2000, "USD", "20.00");
        check(2000, "JPY", "2000");
        check(1234, "BHD", "1.234");
        check(12345, "CLF", "1.2345");
        check(5, "USD", "0.05");
        check(50, "USD", "0.50");
        check(99, "USD", "0.99");
        check(100, "USD", "1.00");
        check(101, "USD", "1.01");
        check(0, "USD", "0.00");
        check(0, "JPY", "0");
        check(0, "BHD", "0.000");
        check(0, "CLF", "0.0000");
        check(1, "CLF", "0.0001");
        check(9999, "CLF", "0.9999");
        check(10000, "CLF", "1.0000");
        check(1, "JPY", "1");
        check(10, "JPY", "10");
        check(AMOUNT_CENTS_MAX - 1, "USD", "9999999999999.99");
        check(AMOUNT_CENTS_MAX, "USD", "10000000000000.00");
        check(AMOUNT_CENTS_MAX, "JPY", "1000000000000000");
        check(AMOUNT_CENTS_MAX, "BHD", "1000000000000.000");
        check(AMOUNT_CENTS_MAX, "CLF", "100000000000.0000");
        // Outside the contract, but `Event` fields are public: format, never panic.
        check(-5, "USD", "-0.05");
        check(-2000, "JPY", "-2000");
        check(i64::MAX, "USD", "92233720368547758.07");
        check(i64::MIN, "CLF", "-922337203685477.5808");
        check(i64::MIN, "JPY", "-9223372036854775808");
    }

    #[test]
    fn row() {
        let event = Event {
            event_type: Cow::Borrowed("payment.intent.succeeded"),
            object_id: Cow::Owned("pi_/1".to_owned()),
            amount_cents: 2000,
            currency: currency::find("usd").unwrap(),
            metadata: r#"{"order_id":"6735"}"#,
        };
        let row = transform("msg_1", 1_700_000_000, &event);
        assert_eq!(
            row,
            Row {
                event_id: "msg_1",
                event_type: "payment.intent.succeeded",
                category: "payment",
                action: "intent.succeeded",
                object_id: "pi_/1",
                amount_cents: 2000,
                currency: "USD",
                amount: Amount::new(2000, currency::find("USD").unwrap()),
                metadata: r#"{"order_id":"6735"}"#,
                provider_ts: 1_700_000_000,
            }
        );
        assert_eq!(row.amount.as_str(), "20.00");
        let undotted = Event {
            event_type: Cow::Borrowed("ping"),
            ..event.clone()
        };
        let row = transform("msg_2", 0, &undotted);
        assert_eq!((row.category, row.action), ("ping", ""));
    }
}
