//! The webhook body: parsed without copying, then validated field by field.
//!
//! The two steps answer differently, so they are two functions. `parse` lets serde_json check
//! the syntax of the whole body and keeps each known field as its raw JSON text (`RawValue`);
//! anything it rejects is a 400. `validate` then types each field from that text and names the
//! field that fails (422), which serde's own type errors do not do reliably. Strings borrow from
//! the body unless they contain escapes, and `metadata` stays the verbatim text the client sent,
//! because it goes into a `jsonb` column as is. serde_json accepts some JSON that `jsonb` cannot
//! hold (a `\u0000` escape, unpaired surrogate escapes), so `jsonb::scan_metadata` finds those
//! before the database would fail the whole batch.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::currency::{self, Currency};
use crate::jsonb;
use crate::limits::{
    AMOUNT_CENTS_MAX, EVENT_TYPE_LEN_MAX, JSON_DEPTH_MAX, METADATA_EXPONENT_MAX,
    METADATA_KEY_LEN_MAX, METADATA_KEYS_MAX, METADATA_SIZE_MAX, OBJECT_ID_LEN_MAX,
    TOP_LEVEL_KEYS_MAX,
};

/// A body that is a JSON object, with each known field as raw JSON text borrowed from the body.
///
/// Only `parse` builds one, so holding a `Webhook` means the whole body was valid JSON.
#[derive(Debug)]
pub struct Webhook<'a> {
    event_type: Option<&'a RawValue>,
    object_id: Option<&'a RawValue>,
    amount_cents: Option<&'a RawValue>,
    currency: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
}

/// Why a body is not a JSON object we can read; answered 400.
#[derive(Debug)]
pub enum SyntaxError {
    /// The body is not UTF-8; bytes before `valid_up_to` are.
    NotUtf8 { valid_up_to: usize },
    /// The body starts with a UTF-8 byte order mark, which JSON does not allow.
    ByteOrderMark,
    /// A container at byte `offset` is nested deeper than `limits::JSON_DEPTH_MAX`.
    TooDeep { offset: usize },
    /// serde_json's message: not JSON, not an object, trailing bytes, or a duplicate key or too
    /// many top-level keys (both reported from our map visitor).
    Json(serde_json::Error),
}

/// A webhook whose every field passed the contract; `transform` accepts only this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// A lowercase dotted name such as `payment.succeeded`.
    pub event_type: Cow<'a, str>,
    /// The provider's id of the object, ASCII graphic characters only.
    pub object_id: Cow<'a, str>,
    /// In the currency's minor units, 0..=`limits::AMOUNT_CENTS_MAX`.
    pub amount_cents: i64,
    /// An active ISO 4217 code with minor units.
    pub currency: Currency,
    /// The metadata object exactly as sent, or `{}` when absent or null.
    pub metadata: &'a str,
}

/// A field that broke the contract; answered 422 with this as the message.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Error {
    /// The JSON name of the field, as the client wrote it.
    pub field: &'static str,
    /// What was wrong with it.
    pub rule: Rule,
}

/// The rule a field broke; the variants carry the limit so the message can name it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Rule {
    /// The field is absent.
    Missing,
    /// The field is JSON `null`.
    Null,
    /// The field has another JSON type; `expected` reads "a string", "an integer", ...
    WrongType { expected: &'static str },
    /// Fewer bytes than `min`.
    TooShort { min: usize },
    /// More bytes than `max`.
    TooLong { max: usize },
    /// `event_type` is not a lowercase dotted name.
    Pattern,
    /// `object_id` has a byte outside ASCII 0x21..=0x7E.
    NotGraphic,
    /// An integer outside `min..=max`.
    OutOfRange { min: i64, max: i64 },
    /// Not an active ISO 4217 code.
    UnknownCurrency,
    /// An ISO 4217 code without minor units, upper-cased.
    NoMinorUnits { code: [u8; 3] },
    /// A `\ud800`..`\udfff` escape without its partner; neither Rust nor PostgreSQL text can
    /// hold one.
    LoneSurrogate,
    /// The raw text is longer than `max` bytes.
    TooLarge { max: usize },
    /// More than `max` top-level keys, duplicates included.
    TooManyKeys { max: usize },
    /// A top-level key longer than `max` bytes as sent.
    KeyTooLong { max: usize },
    /// A `\u0000` escape, which PostgreSQL text cannot hold.
    NulEscape,
    /// A number whose written exponent is beyond `-max..=max`.
    ExponentTooLarge { max: i64 },
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::NotUtf8 { valid_up_to } => {
                write!(f, "body is not valid utf-8 at byte {valid_up_to}")
            }
            SyntaxError::ByteOrderMark => f.write_str("body starts with a utf-8 byte order mark"),
            SyntaxError::TooDeep { offset } => {
                write!(
                    f,
                    "body nested deeper than {JSON_DEPTH_MAX} at byte {offset}"
                )
            }
            SyntaxError::Json(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for SyntaxError {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match self.rule {
            Rule::Missing => write!(f, "{field} is missing"),
            Rule::Null => write!(f, "{field} is null"),
            Rule::WrongType { expected } => write!(f, "{field} must be {expected}"),
            Rule::TooShort { min: 1 } => write!(f, "{field} is empty"),
            Rule::TooShort { min } => write!(f, "{field} shorter than {min} bytes"),
            Rule::TooLong { max } => write!(f, "{field} longer than {max} bytes"),
            Rule::Pattern => write!(
                f,
                "{field} must be lowercase words joined by dots, like payment.succeeded"
            ),
            Rule::NotGraphic => write!(f, "{field} must be ascii characters 0x21 to 0x7e"),
            Rule::OutOfRange { min, max } => write!(f, "{field} must be between {min} and {max}"),
            Rule::UnknownCurrency => write!(f, "{field} is not an active iso 4217 code"),
            Rule::NoMinorUnits { code } => {
                let code = std::str::from_utf8(&code).unwrap_or("???");
                write!(f, "{field} {code} has no minor units")
            }
            Rule::LoneSurrogate => write!(f, "{field} has an unpaired utf-16 surrogate escape"),
            Rule::TooLarge { max } => write!(f, "{field} larger than {max} bytes"),
            Rule::TooManyKeys { max } => write!(f, "{field} has more than {max} keys"),
            Rule::KeyTooLong { max } => write!(f, "{field} key longer than {max} bytes"),
            Rule::NulEscape => write!(f, "{field} has a \\u0000 escape"),
            Rule::ExponentTooLarge { max } => {
                write!(f, "{field} has a number exponent beyond -{max}..={max}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<jsonb::Problem> for Rule {
    #[cold]
    fn from(problem: jsonb::Problem) -> Rule {
        match problem {
            jsonb::Problem::TooManyKeys => Rule::TooManyKeys {
                max: METADATA_KEYS_MAX,
            },
            jsonb::Problem::KeyTooLong => Rule::KeyTooLong {
                max: METADATA_KEY_LEN_MAX,
            },
            jsonb::Problem::NulEscape => Rule::NulEscape,
            jsonb::Problem::LoneSurrogate => Rule::LoneSurrogate,
            jsonb::Problem::ExponentTooLarge => Rule::ExponentTooLarge {
                max: METADATA_EXPONENT_MAX,
            },
        }
    }
}

/// Reads a body into a `Webhook`, checking only syntax: UTF-8, one JSON object and nothing
/// after it, no duplicate top-level key, at most `limits::TOP_LEVEL_KEYS_MAX` top-level keys and
/// nesting at most `limits::JSON_DEPTH_MAX` deep.
pub fn parse(body: &[u8]) -> Result<Webhook<'_>, SyntaxError> {
    parse_body(body)
}

/// Reads a body into `T` under the whole-body rules every provider's body shares: UTF-8, no
/// byte order mark, nesting at most `limits::JSON_DEPTH_MAX` deep, one value and nothing after
/// it. `T`'s own `Deserialize` checks its keys (`Webhook` here, `stripe_event::StripeEvent`).
///
/// Never inlined, so the deserializer's locals (the key list alone is 1.5 KiB) are on the stack
/// only while it runs, not beside the signature check's in the caller's frame.
#[inline(never)]
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, SyntaxError> {
    let text = std::str::from_utf8(body).map_err(|error| SyntaxError::NotUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        return Err(SyntaxError::ByteOrderMark);
    }
    // serde_json counts depth only for values it builds; `RawValue` and `IgnoredAny` skip
    // nested values without counting, so its limit never bites on our fields.
    if let Some(offset) = jsonb::too_deep(body) {
        return Err(SyntaxError::TooDeep { offset });
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(&mut deserializer).map_err(SyntaxError::Json)?;
    deserializer.end().map_err(SyntaxError::Json)?;
    Ok(value)
}

/// Types every field of `webhook`, in the order event_type, object_id, amount_cents, currency,
/// metadata, and reports the first that breaks the contract.
pub fn validate<'a>(webhook: &Webhook<'a>) -> Result<Event<'a>, Error> {
    Ok(Event {
        event_type: required("event_type", webhook.event_type, event_type)?,
        object_id: required("object_id", webhook.object_id, object_id)?,
        amount_cents: required("amount_cents", webhook.amount_cents, amount_cents)?,
        currency: required("currency", webhook.currency, currency)?,
        metadata: optional_metadata(webhook.metadata)?,
    })
}

impl<'a> Webhook<'a> {
    /// The same fields found in another provider's body (`stripe_event`), whose `parse` applied
    /// the same whole-body rules; `validate` then answers exactly as for a webhook.
    pub(crate) fn from_fields(fields: [Option<&'a RawValue>; 5]) -> Webhook<'a> {
        let [event_type, object_id, amount_cents, currency, metadata] = fields;
        Webhook {
            event_type,
            object_id,
            amount_cents,
            currency,
            metadata,
        }
    }
}

impl<'de> Deserialize<'de> for Webhook<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WebhookVisitor)
    }
}

/// A top-level key; it borrows from the body unless it has escapes, so `"a"` and `"\u0061"`
/// compare equal after decoding.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

struct WebhookVisitor;

impl<'de> Visitor<'de> for WebhookVisitor {
    type Value = Webhook<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Webhook<'de>, A::Error> {
        let mut webhook = Webhook {
            event_type: None,
            object_id: None,
            amount_cents: None,
            currency: None,
            metadata: None,
        };
        let mut seen = Seen::new();
        while let Some(Key(key)) = map.next_key()? {
            let slot = match &*key {
                "event_type" => Some(&mut webhook.event_type),
                "object_id" => Some(&mut webhook.object_id),
                "amount_cents" => Some(&mut webhook.amount_cents),
                "currency" => Some(&mut webhook.currency),
                "metadata" => Some(&mut webhook.metadata),
                _ => None,
            };
            seen.insert(key).map_err(de::Error::custom)?;
            match slot {
                // The value is kept as text even when it is `null` or of the wrong type, so
                // `validate` can name the field.
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(webhook)
    }
}

/// Top-level keys read so far, known and unknown, to reject duplicates.
///
/// A fixed array keeps this off the heap; the contract's fields plus a provider's extras fit in
/// `TOP_LEVEL_KEYS_MAX` with room to spare, and a linear search over so few is cheap.
struct Seen<'de> {
    keys: [Cow<'de, str>; TOP_LEVEL_KEYS_MAX],
    len: usize,
}

enum KeyError<'de> {
    Duplicate(Cow<'de, str>),
    TooMany,
}

/// Characters of a duplicate key echoed in the message, so a huge key makes no huge answer.
const KEY_ECHO_CHARS_MAX: usize = 64;

impl<'de> Seen<'de> {
    fn new() -> Self {
        Seen {
            keys: [const { Cow::Borrowed("") }; TOP_LEVEL_KEYS_MAX],
            len: 0,
        }
    }

    fn insert(&mut self, key: Cow<'de, str>) -> Result<(), KeyError<'de>> {
        let seen = self.keys.get(..self.len).unwrap_or_default();
        if seen.contains(&key) {
            return Err(KeyError::Duplicate(key));
        }
        let Some(slot) = self.keys.get_mut(self.len) else {
            return Err(KeyError::TooMany);
        };
        *slot = key;
        self.len += 1;
        Ok(())
    }
}

impl fmt::Display for KeyError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Duplicate(key) => {
                f.write_str("duplicate key `")?;
                for c in key.chars().take(KEY_ECHO_CHARS_MAX) {
                    write!(f, "{}", c.escape_debug())?;
                }
                if key.chars().nth(KEY_ECHO_CHARS_MAX).is_some() {
                    f.write_str("...")?;
                }
                f.write_str("`")
            }
            KeyError::TooMany => write!(f, "more than {TOP_LEVEL_KEYS_MAX} top-level keys"),
        }
    }
}

/// Applies `typer` to a field that must be present and not null, naming the field on failure.
pub(crate) fn required<'a, T>(
    field: &'static str,
    raw: Option<&'a RawValue>,
    typer: fn(&'a str) -> Result<T, Rule>,
) -> Result<T, Error> {
    let result = match raw.map(RawValue::get) {
        None => Err(Rule::Missing),
        Some("null") => Err(Rule::Null),
        Some(text) => typer(text),
    };
    result.map_err(|rule| Error { field, rule })
}

fn optional_metadata(raw: Option<&RawValue>) -> Result<&str, Error> {
    match raw.map(RawValue::get) {
        // The column is `NOT NULL`-friendly and readers need not tell absent from empty.
        None | Some("null") => Ok("{}"),
        Some(text) => metadata(text).map_err(|rule| Error {
            field: "metadata",
            rule,
        }),
    }
}

fn event_type(text: &str) -> Result<Cow<'_, str>, Rule> {
    let value = string(text)?;
    length(&value, EVENT_TYPE_LEN_MAX)?;
    if !is_dotted_name(value.as_bytes()) {
        return Err(Rule::Pattern);
    }
    Ok(value)
}

fn object_id(text: &str) -> Result<Cow<'_, str>, Rule> {
    let value = string(text)?;
    length(&value, OBJECT_ID_LEN_MAX)?;
    if !value.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(Rule::NotGraphic);
    }
    Ok(value)
}

/// Digits in `AMOUNT_CENTS_MAX`; a longer token is out of range without parsing it.
const AMOUNT_CENTS_DIGITS_MAX: usize = AMOUNT_CENTS_MAX.ilog10() as usize + 1;

/// Reads the number token itself: serde would accept `1e3` or `1.0` as an integer in some
/// paths and give no field name, and huge integers must read "out of range", not a parse error.
fn amount_cents(text: &str) -> Result<i64, Rule> {
    let out_of_range = Rule::OutOfRange {
        min: 0,
        max: AMOUNT_CENTS_MAX,
    };
    let integer = Rule::WrongType {
        expected: "an integer",
    };
    let Some(first) = text.bytes().next() else {
        return Err(integer);
    };
    if !(first == b'-' || first.is_ascii_digit()) || text.contains(['.', 'e', 'E']) {
        return Err(integer);
    }
    // The text is a JSON integer now (serde_json checked the grammar), so a sign means negative.
    if first == b'-' || text.len() > AMOUNT_CENTS_DIGITS_MAX {
        return Err(out_of_range);
    }
    match text.parse::<i64>() {
        Ok(cents) if cents <= AMOUNT_CENTS_MAX => Ok(cents),
        _ => Err(out_of_range),
    }
}

fn currency(text: &str) -> Result<Currency, Rule> {
    let code = string(text)?;
    currency::find(&code).map_err(|error| match error {
        currency::Error::Unknown => Rule::UnknownCurrency,
        currency::Error::NoMinorUnits => Rule::NoMinorUnits {
            code: upper_code(&code),
        },
    })
}

fn metadata(text: &str) -> Result<&str, Rule> {
    if !text.starts_with('{') {
        return Err(Rule::WrongType {
            expected: "an object",
        });
    }
    // Checked before the scan so the scan never walks more than the limit.
    if text.len() > METADATA_SIZE_MAX {
        return Err(Rule::TooLarge {
            max: METADATA_SIZE_MAX,
        });
    }
    jsonb::scan_metadata(text.as_bytes(), METADATA_KEYS_MAX, METADATA_KEY_LEN_MAX)?;
    Ok(text)
}

/// The contents of a JSON string token: borrowed when it has no escapes, decoded otherwise.
pub(crate) fn string(text: &str) -> Result<Cow<'_, str>, Rule> {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return Err(Rule::WrongType {
            expected: "a string",
        });
    };
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    // serde_json has checked every escape while parsing; decoding can fail only on a surrogate
    // escape without its partner, which a Rust string cannot hold.
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|_| Rule::LoneSurrogate)
}

fn length(value: &str, max: usize) -> Result<(), Rule> {
    if value.is_empty() {
        Err(Rule::TooShort { min: 1 })
    } else if value.len() > max {
        Err(Rule::TooLong { max })
    } else {
        Ok(())
    }
}

/// Matches `[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+`.
fn is_dotted_name(name: &[u8]) -> bool {
    let mut segments = 0;
    for segment in name.split(|&byte| byte == b'.') {
        let Some((first, rest)) = segment.split_first() else {
            return false;
        };
        let is_tail =
            |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_';
        if !first.is_ascii_lowercase() || !rest.iter().all(is_tail) {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

/// `find` only says `NoMinorUnits` for three ASCII letters, so the fallback is never shown.
fn upper_code(code: &str) -> [u8; 3] {
    <[u8; 3]>::try_from(code.as_bytes())
        .map(|letters| letters.map(|letter| letter.to_ascii_uppercase()))
        .unwrap_or(*b"???")
}

#[cfg(test)]
mod tests {
    //! The tables are `#[rustfmt::skip]` so that each case stays on one line.

    use super::*;

    const EXAMPLE: [(&str, &str); 5] = [
        ("event_type", r#""payment.succeeded""#),
        ("object_id", r#""pi_3MtwBw""#),
        ("amount_cents", "2000"),
        ("currency", r#""usd""#),
        ("metadata", r#"{"order_id":"6735"}"#),
    ];

    const PATTERN: &str =
        "422 event_type must be lowercase words joined by dots, like payment.succeeded";
    const GRAPHIC: &str = "422 object_id must be ascii characters 0x21 to 0x7e";
    const INTEGER: &str = "422 amount_cents must be an integer";
    const RANGE: &str = "422 amount_cents must be between 0 and 1000000000000000";
    const UNKNOWN: &str = "422 currency is not an active iso 4217 code";
    const NUL: &str = "422 metadata has a \\u0000 escape";
    const SURROGATE: &str = "422 metadata has an unpaired utf-16 surrogate escape";
    const EXPONENT: &str = "422 metadata has a number exponent beyond -1000..=1000";

    /// The example body with `field` set to the raw JSON `value`, or removed when `value` is
    /// empty; a field not in the example is appended.
    fn with(field: &str, value: &str) -> String {
        let mut members: Vec<String> = EXAMPLE
            .iter()
            .filter(|(name, _)| *name != field)
            .map(|(name, raw)| format!("\"{name}\":{raw}"))
            .collect();
        if !value.is_empty() {
            let position = EXAMPLE.iter().position(|(name, _)| *name == field);
            let member = format!("\"{field}\":{value}");
            members.insert(position.unwrap_or(members.len()), member);
        }
        format!("{{{}}}", members.join(","))
    }

    fn without(field: &str) -> String {
        with(field, "")
    }

    /// The example body with an unknown field `x` appended (at byte 130, column 131).
    fn extra(value: &str) -> String {
        with("x", value)
    }

    fn meta(value: &str) -> String {
        with("metadata", value)
    }

    fn quoted(text: &str) -> String {
        format!("\"{text}\"")
    }

    /// `[[...]]` nested `depth` deep.
    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// A metadata object with `count` keys `k00`, `k01`, ...
    fn keys(count: usize) -> String {
        let members: Vec<String> = (0..count).map(|n| format!("\"k{n:02}\":{n}")).collect();
        format!("{{{}}}", members.join(","))
    }

    /// A metadata object with the single key `raw`, written as is between the quotes.
    fn key(raw: &str) -> String {
        format!(r#"{{"{raw}":1}}"#)
    }

    /// A metadata object of exactly `size` bytes: one key whose string value pads it out.
    fn sized(size: usize) -> String {
        let padding = size - r#"{"k":""}"#.len();
        format!(r#"{{"k":"{}"}}"#, "x".repeat(padding))
    }

    /// The outcome of parsing and validating `body`, as one line: `400 <message>`,
    /// `422 <message>`, or `ok` followed by each field that differs from the example, owned
    /// strings marked with `~` and long values shown by length.
    fn outcome(body: &[u8]) -> String {
        let webhook = match parse(body) {
            Ok(webhook) => webhook,
            Err(error) => return format!("400 {error}"),
        };
        match validate(&webhook) {
            Ok(event) => render(body, &event),
            Err(error) => format!("422 {error}"),
        }
    }

    /// Also asserts zero-copy: everything not owned points into `body`.
    fn render(body: &[u8], event: &Event<'_>) -> String {
        let borrowed = |text: &str| body.as_ptr_range().contains(&text.as_ptr());
        let copied = event.metadata != "{}" && !borrowed(event.metadata);
        assert!(!copied, "metadata was copied");
        let mut line = String::from("ok");
        let mut differ = |field: &str, value: &str, owned: bool, example: &str| {
            if value == example && !owned {
                return;
            }
            let mark = if owned { "~" } else { "" };
            if value.len() > 32 {
                line += &format!(" {field}={mark}<{} bytes>", value.len());
            } else {
                line += &format!(" {field}={mark}{value}");
            }
        };
        for (field, value, example) in [
            ("event_type", &event.event_type, "payment.succeeded"),
            ("object_id", &event.object_id, "pi_3MtwBw"),
        ] {
            let owned = matches!(value, Cow::Owned(_));
            assert!(owned || borrowed(value), "{field} borrowed from elsewhere");
            differ(field, value, owned, example);
        }
        let amount_cents = event.amount_cents.to_string();
        differ("amount_cents", &amount_cents, false, "2000");
        let currency = format!("{}/{}", event.currency.code(), event.currency.minor_units());
        differ("currency", &currency, false, "USD/2");
        differ("metadata", event.metadata, false, r#"{"order_id":"6735"}"#);
        line
    }

    #[track_caller]
    fn check(body: impl AsRef<[u8]>, expected: &str) {
        let body = body.as_ref();
        let actual = outcome(body);
        assert_eq!(actual, expected, "body {:?}", String::from_utf8_lossy(body));
    }

    #[test]
    #[rustfmt::skip]
    fn example() {
        check(br#"{"event_type":"payment.succeeded","object_id":"pi_3MtwBw","amount_cents":2000,"currency":"usd","metadata":{"order_id":"6735"}}"#, "ok");
        check(without("x"), "ok");
        check(" \n{ \"event_type\" : \"a.b\" , \"object_id\":\"o\",\"amount_cents\":0,\"currency\":\"JPY\" }\r\n\t", "ok event_type=a.b object_id=o amount_cents=0 currency=JPY/0 metadata={}");
    }

    #[test]
    #[rustfmt::skip]
    fn syntax() {
        check("", "400 EOF while parsing a value at line 1 column 0");
        check(" ", "400 EOF while parsing a value at line 1 column 1");
        check("{", "400 EOF while parsing an object at line 1 column 1");
        check("[]", "400 invalid type: sequence, expected a json object at line 1 column 0");
        check("null", "400 invalid type: null, expected a json object at line 1 column 4");
        check("1", "400 invalid type: integer `1`, expected a json object at line 1 column 1");
        check(r#""{}""#, "400 invalid type: string \"{}\", expected a json object at line 1 column 4");
        check("{}", "422 event_type is missing");
        check("{}{}", "400 trailing characters at line 1 column 3");
        check(without("x") + "x", "400 trailing characters at line 1 column 127");
        check(without("x") + " \r\n\t", "ok");
        check(extra("1,"), "400 trailing comma at line 1 column 133");
        check(extra("'a'"), "400 expected value at line 1 column 131");
        check(extra("NaN"), "400 expected value at line 1 column 131");
        check(extra("01"), "400 invalid number at line 1 column 132");
        check(extra("\"a\u{1}\""), "400 control character (\\u0000-\\u001F) found while parsing a string at line 1 column 132");
        check(extra(r#""\x""#), "400 invalid escape at line 1 column 133");
        check(extra(r#""\u12G4""#), "400 invalid escape at line 1 column 137");
        check(extra("1 /* c */"), "400 expected `,` or `}` at line 1 column 133");
        check(extra(r#"{"deep":[1e400,"\u0000","\ud800",-0.0]}"#), "ok");
        check(extra(r#"1,"\ud800":1"#), "400 unexpected end of hex escape at line 1 column 140");
    }

    #[test]
    #[rustfmt::skip]
    fn encoding() {
        let mut invalid = extra(r#""ab""#).into_bytes();
        let at = invalid.len() - 3;
        invalid[at] = 0xFF;
        check(&invalid, "400 body is not valid utf-8 at byte 132");
        check(b"\xC3", "400 body is not valid utf-8 at byte 0");
        check(b"{\"x\":\"\xED\xA0\x80\"}", "400 body is not valid utf-8 at byte 6");
        check(b"\xEF\xBB\xBF{}", "400 body starts with a utf-8 byte order mark");
        check(extra("\"\u{feff}\""), "ok");
        check(extra("\"caf\u{e9} \u{1F600}\""), "ok");
    }

    #[test]
    #[rustfmt::skip]
    fn top_level_keys() {
        check(extra(r#""1","currency":"usd""#), "400 duplicate key `currency` at line 1 column 144");
        check(extra(r#""1","\u0063urrency":"usd""#), "400 duplicate key `currency` at line 1 column 149");
        check(meta(r#"null,"metadata":null"#), "400 duplicate key `metadata` at line 1 column 121");
        check(extra(r#"1,"x":1"#), "400 duplicate key `x` at line 1 column 135");
        check(extra(r#"1,"\u0078":1"#), "400 duplicate key `x` at line 1 column 140");
        check(with("a\\nb", r#"1,"a\nb":1"#), "400 duplicate key `a\\nb` at line 1 column 141");
        check(with("X", r#"1,"x":1"#), "ok");
        let long = "k".repeat(KEY_ECHO_CHARS_MAX + 1);
        let echo = "k".repeat(KEY_ECHO_CHARS_MAX);
        check(with(&long, &format!("1,\"{long}\":1")), &format!("400 duplicate key `{echo}...` at line 1 column 263"));
        // Under, at and over the cap: the 5 known keys plus `count` unknown ones.
        let extras = |count: usize| {
            let rest: String = (1..count).map(|n| format!(",\"x{n}\":0")).collect();
            with("x0", &format!("0{rest}"))
        };
        let room = TOP_LEVEL_KEYS_MAX - EXAMPLE.len();
        check(extras(room - 1), "ok");
        check(extras(room), "ok");
        check(extras(room + 1), "400 more than 64 top-level keys at line 1 column 593");
    }

    #[test]
    #[rustfmt::skip]
    fn nesting() {
        // The top-level object is depth 1, so an extra field holds at most 127 more.
        check(extra(&nested(JSON_DEPTH_MAX - 2)), "ok");
        check(extra(&nested(JSON_DEPTH_MAX - 1)), "ok");
        check(extra(&nested(JSON_DEPTH_MAX)), "400 body nested deeper than 128 at byte 257");
        check(extra(&format!("[\"{}\"]", "[".repeat(200))), "ok");
        check(extra(&format!("[\"\\\"{}\"]", "[".repeat(200))), "ok");
        check(with("event_type", &nested(JSON_DEPTH_MAX - 1)), "422 event_type must be a string");
        check(with("event_type", &nested(JSON_DEPTH_MAX)), "400 body nested deeper than 128 at byte 141");
        // Metadata sits at depth 2.
        let metadata = |depth: usize| format!("{{\"a\":{}}}", nested(depth));
        check(meta(&metadata(JSON_DEPTH_MAX - 3)), "ok metadata=<256 bytes>");
        check(meta(&metadata(JSON_DEPTH_MAX - 2)), "ok metadata=<258 bytes>");
        check(meta(&metadata(JSON_DEPTH_MAX - 1)), "400 body nested deeper than 128 at byte 237");
        check(nested(JSON_DEPTH_MAX + 1), "400 body nested deeper than 128 at byte 128");
        check(nested(JSON_DEPTH_MAX), "400 invalid type: sequence, expected a json object at line 1 column 0");
    }

    /// Pins why `parse` counts depth itself: serde_json stops at 127 levels for values it
    /// builds, and does not count at all inside a `RawValue` or an `IgnoredAny`.
    #[test]
    fn serde_json_depth_limit() {
        let value = |depth: usize| serde_json::from_str::<serde_json::Value>(&nested(depth));
        assert!(value(127).is_ok());
        assert_eq!(
            value(128).unwrap_err().to_string(),
            "recursion limit exceeded at line 1 column 128"
        );
        assert!(serde_json::from_str::<&RawValue>(&nested(1000)).is_ok());
        assert!(serde_json::from_str::<IgnoredAny>(&nested(1000)).is_ok());
    }

    #[test]
    #[rustfmt::skip]
    fn event_type_rule() {
        let name = |len: usize| quoted(&format!("a.{}", "b".repeat(len - 2)));
        check(without("event_type"), "422 event_type is missing");
        check(with("event_type", "null"), "422 event_type is null");
        check(with("event_type", "1"), "422 event_type must be a string");
        check(with("event_type", "true"), "422 event_type must be a string");
        check(with("event_type", r#"["a.b"]"#), "422 event_type must be a string");
        check(with("event_type", r#"{"a":"b"}"#), "422 event_type must be a string");
        check(with("event_type", r#""""#), "422 event_type is empty");
        check(with("event_type", &name(63)), "ok event_type=<63 bytes>");
        check(with("event_type", &name(64)), "ok event_type=<64 bytes>");
        check(with("event_type", &name(65)), "422 event_type longer than 64 bytes");
        check(with("event_type", &quoted(&"a".repeat(65))), "422 event_type longer than 64 bytes");
        check(with("event_type", r#""a.b""#), "ok event_type=a.b");
        check(with("event_type", r#""payment.intent.succeeded""#), "ok event_type=payment.intent.succeeded");
        check(with("event_type", r#""pay_ment.s_9""#), "ok event_type=pay_ment.s_9");
        check(with("event_type", r#""a_.b0""#), "ok event_type=a_.b0");
        check(with("event_type", r#""payment\u002esucceeded""#), "ok event_type=~payment.succeeded");
        check(with("event_type", r#""payment""#), PATTERN);
        check(with("event_type", r#""a""#), PATTERN);
        check(with("event_type", r#""Payment.succeeded""#), PATTERN);
        check(with("event_type", r#""payment.Succeeded""#), PATTERN);
        check(with("event_type", r#""payment..succeeded""#), PATTERN);
        check(with("event_type", r#"".payment""#), PATTERN);
        check(with("event_type", r#""payment.""#), PATTERN);
        check(with("event_type", r#"".""#), PATTERN);
        check(with("event_type", r#""1payment.x""#), PATTERN);
        check(with("event_type", r#""payment.1x""#), PATTERN);
        check(with("event_type", r#""_a.b""#), PATTERN);
        check(with("event_type", r#""a-b.c""#), PATTERN);
        check(with("event_type", r#""a.b ""#), PATTERN);
        check(with("event_type", r#""a.caf\u00e9""#), PATTERN);
        check(with("event_type", "\"a.caf\u{e9}\""), PATTERN);
        check(with("event_type", r#""a.b\ud800""#), "422 event_type has an unpaired utf-16 surrogate escape");
    }

    #[test]
    #[rustfmt::skip]
    fn object_id_rule() {
        let id = |len: usize| quoted(&"o".repeat(len));
        check(without("object_id"), "422 object_id is missing");
        check(with("object_id", "null"), "422 object_id is null");
        check(with("object_id", "42"), "422 object_id must be a string");
        check(with("object_id", r#"["pi"]"#), "422 object_id must be a string");
        check(with("object_id", r#""""#), "422 object_id is empty");
        check(with("object_id", r#""!""#), "ok object_id=!");
        check(with("object_id", r#""~""#), "ok object_id=~");
        check(with("object_id", &id(254)), "ok object_id=<254 bytes>");
        check(with("object_id", &id(255)), "ok object_id=<255 bytes>");
        check(with("object_id", &id(256)), "422 object_id longer than 255 bytes");
        check(with("object_id", r#""pi_/1""#), "ok object_id=pi_/1");
        check(with("object_id", r#""pi_\/1""#), "ok object_id=~pi_/1");
        check(with("object_id", r#""pi_\"1""#), "ok object_id=~pi_\"1");
        check(with("object_id", r#""pi_\\1""#), "ok object_id=~pi_\\1");
        check(with("object_id", r#""pi 1""#), GRAPHIC);
        check(with("object_id", r#""pi\t1""#), GRAPHIC);
        check(with("object_id", r#""pi\u007f""#), GRAPHIC);
        check(with("object_id", "\"pi_\u{e9}\""), GRAPHIC);
        check(with("object_id", r#""pi_\ud83d\ude00""#), GRAPHIC);
        check(with("object_id", r#""pi_\udc00""#), "422 object_id has an unpaired utf-16 surrogate escape");
    }

    #[test]
    #[rustfmt::skip]
    fn amount_cents_rule() {
        check(without("amount_cents"), "422 amount_cents is missing");
        check(with("amount_cents", "null"), "422 amount_cents is null");
        check(with("amount_cents", "0"), "ok amount_cents=0");
        check(with("amount_cents", "1"), "ok amount_cents=1");
        check(with("amount_cents", "999999999999999"), "ok amount_cents=999999999999999");
        check(with("amount_cents", "1000000000000000"), "ok amount_cents=1000000000000000");
        check(with("amount_cents", "1000000000000001"), RANGE);
        check(with("amount_cents", "9999999999999999"), RANGE);
        check(with("amount_cents", "10000000000000000"), RANGE);
        check(with("amount_cents", "9223372036854775808"), RANGE);
        check(with("amount_cents", "99999999999999999999999"), RANGE);
        check(with("amount_cents", "-1"), RANGE);
        check(with("amount_cents", "-0"), RANGE);
        check(with("amount_cents", "1.5"), INTEGER);
        check(with("amount_cents", "1.0"), INTEGER);
        check(with("amount_cents", "-1.5"), INTEGER);
        check(with("amount_cents", "1e3"), INTEGER);
        check(with("amount_cents", "1E3"), INTEGER);
        check(with("amount_cents", "1e400"), INTEGER);
        check(with("amount_cents", r#""100""#), INTEGER);
        check(with("amount_cents", "true"), INTEGER);
        check(with("amount_cents", "[1]"), INTEGER);
        check(with("amount_cents", r#"{"v":1}"#), INTEGER);
        check(with("amount_cents", "+1"), "400 expected value at line 1 column 74");
        check(with("amount_cents", "01"), "400 invalid number at line 1 column 75");
    }

    #[test]
    #[rustfmt::skip]
    fn currency_rule() {
        check(without("currency"), "422 currency is missing");
        check(with("currency", "null"), "422 currency is null");
        check(with("currency", "840"), "422 currency must be a string");
        check(with("currency", r#"["usd"]"#), "422 currency must be a string");
        check(with("currency", r#""USD""#), "ok");
        check(with("currency", r#""Usd""#), "ok");
        check(with("currency", r#""\u0055SD""#), "ok");
        check(with("currency", r#""JPY""#), "ok currency=JPY/0");
        check(with("currency", r#""bhd""#), "ok currency=BHD/3");
        check(with("currency", r#""CLF""#), "ok currency=CLF/4");
        check(with("currency", r#""XAU""#), "422 currency XAU has no minor units");
        check(with("currency", r#""xau""#), "422 currency XAU has no minor units");
        check(with("currency", r#""XXX""#), "422 currency XXX has no minor units");
        check(with("currency", r#""""#), UNKNOWN);
        check(with("currency", r#""US""#), UNKNOWN);
        check(with("currency", r#""USDD""#), UNKNOWN);
        check(with("currency", r#""ZZZ""#), UNKNOWN);
        check(with("currency", r#""HRK""#), UNKNOWN);
        check(with("currency", r#"" USD""#), UNKNOWN);
        check(with("currency", r#""US\ud800""#), "422 currency has an unpaired utf-16 surrogate escape");
    }

    #[test]
    #[rustfmt::skip]
    fn metadata_type() {
        check(without("metadata"), "ok metadata={}");
        check(meta("null"), "ok metadata={}");
        check(meta("{}"), "ok metadata={}");
        check(meta("{ }"), "ok metadata={ }");
        check(meta(r#"{"a" : [1, {"b": null}] }"#), r#"ok metadata={"a" : [1, {"b": null}] }"#);
        check(meta(r#""{}""#), "422 metadata must be an object");
        check(meta("[]"), "422 metadata must be an object");
        check(meta("1"), "422 metadata must be an object");
        check(meta("false"), "422 metadata must be an object");
    }

    #[test]
    #[rustfmt::skip]
    fn metadata_limits() {
        check(meta(&keys(METADATA_KEYS_MAX - 1)), "ok metadata=<432 bytes>");
        check(meta(&keys(METADATA_KEYS_MAX)), "ok metadata=<441 bytes>");
        check(meta(&keys(METADATA_KEYS_MAX + 1)), "422 metadata has more than 50 keys");
        check(meta(&format!("{{{}}}", [r#""k":1"#; METADATA_KEYS_MAX + 1].join(","))), "422 metadata has more than 50 keys");
        check(meta(&format!(r#"{{"a":{},"b":[{}]}}"#, keys(60), keys(60))), "ok metadata=<1075 bytes>");
        check(meta(&key(&"k".repeat(METADATA_KEY_LEN_MAX - 1))), "ok metadata=<45 bytes>");
        check(meta(&key(&"k".repeat(METADATA_KEY_LEN_MAX))), "ok metadata=<46 bytes>");
        check(meta(&key(&"k".repeat(METADATA_KEY_LEN_MAX + 1))), "422 metadata key longer than 40 bytes");
        check(meta(&key("")), "ok metadata={\"\":1}");
        check(meta(&key(&r"\u0061".repeat(6))), "ok metadata=<42 bytes>");
        check(meta(&key(&r"\u0061".repeat(7))), "422 metadata key longer than 40 bytes");
        check(meta(&format!(r#"{{"a":"{}"}}"#, "v".repeat(100))), "ok metadata=<108 bytes>");
        check(meta(&format!(r#"{{"a":{}}}"#, key(&"k".repeat(100)))), "ok metadata=<112 bytes>");
        check(meta(&sized(METADATA_SIZE_MAX - 1)), "ok metadata=<8191 bytes>");
        check(meta(&sized(METADATA_SIZE_MAX)), "ok metadata=<8192 bytes>");
        check(meta(&sized(METADATA_SIZE_MAX + 1)), "422 metadata larger than 8192 bytes");
        check(meta(&format!("{{{}}}", " ".repeat(METADATA_SIZE_MAX - 1))), "422 metadata larger than 8192 bytes");
    }

    #[test]
    #[rustfmt::skip]
    fn metadata_jsonb() {
        check(meta(r#"{"a":"\u0000"}"#), NUL);
        check(meta(r#"{"\u0000":1}"#), NUL);
        check(meta(r#"{"a":[{"b":"x\u0000y"}]}"#), NUL);
        check(meta(r#"{"a":"\\\u0000"}"#), NUL);
        check(meta(r#"{"a":"\u0001\u00000"}"#), NUL);
        check(meta(r#"{"a":"\\u0000"}"#), r#"ok metadata={"a":"\\u0000"}"#);
        check(meta(r#"{"a":"\\\\u0000"}"#), r#"ok metadata={"a":"\\\\u0000"}"#);
        check(meta(r#"{"a":"\u0001"}"#), r#"ok metadata={"a":"\u0001"}"#);
        check(meta(r#"{"a":"\ud83d\ude00"}"#), r#"ok metadata={"a":"\ud83d\ude00"}"#);
        check(meta(r#"{"a":"\uD83D\uDE00"}"#), r#"ok metadata={"a":"\uD83D\uDE00"}"#);
        check(meta(r#"{"a":"\udbff\udfff"}"#), r#"ok metadata={"a":"\udbff\udfff"}"#);
        check(meta(r#"{"a":"\ud7ff\ue000"}"#), r#"ok metadata={"a":"\ud7ff\ue000"}"#);
        check(meta(r#"{"a":"\\ud800"}"#), r#"ok metadata={"a":"\\ud800"}"#);
        check(meta(r#"{"a":"\ud800"}"#), SURROGATE);
        check(meta(r#"{"a":"\udbff"}"#), SURROGATE);
        check(meta(r#"{"a":"\udc00"}"#), SURROGATE);
        check(meta(r#"{"a":"\udfff\ud800"}"#), SURROGATE);
        check(meta(r#"{"a":"\ud800\u0041"}"#), SURROGATE);
        check(meta(r#"{"a":"\ud800\ud800\udc00"}"#), SURROGATE);
        check(meta(r#"{"a":"\ud800x\udc00"}"#), SURROGATE);
        check(meta(r#"{"a":"\ud800\\udc00"}"#), SURROGATE);
        check(meta(r#"{"\ud800":1}"#), SURROGATE);
    }

    #[test]
    #[rustfmt::skip]
    fn metadata_exponents() {
        check(meta(r#"{"a":1e999}"#), r#"ok metadata={"a":1e999}"#);
        check(meta(r#"{"a":1e1000}"#), r#"ok metadata={"a":1e1000}"#);
        check(meta(r#"{"a":1e1001}"#), EXPONENT);
        check(meta(r#"{"a":1E+1000}"#), r#"ok metadata={"a":1E+1000}"#);
        check(meta(r#"{"a":1E+1001}"#), EXPONENT);
        check(meta(r#"{"a":1e-1000}"#), r#"ok metadata={"a":1e-1000}"#);
        check(meta(r#"{"a":1E-1001}"#), EXPONENT);
        check(meta(r#"{"a":-1.5e-1001}"#), EXPONENT);
        check(meta(r#"{"a":1e0001000}"#), r#"ok metadata={"a":1e0001000}"#);
        check(meta(r#"{"a":1e0001001}"#), EXPONENT);
        check(meta(r#"{"a":1e99999999999999999999999}"#), EXPONENT);
        check(meta(r#"{"a":[0,{"b":1e1001}]}"#), EXPONENT);
        check(meta(&format!(r#"{{"a":{}}}"#, "9".repeat(2000))), "ok metadata=<2006 bytes>");
        check(meta(r#"{"a":"1e9999","1e9999":true}"#), r#"ok metadata={"a":"1e9999","1e9999":true}"#);
        check(meta(r#"{"e":true,"f":false,"n":null}"#), r#"ok metadata={"e":true,"f":false,"n":null}"#);
    }

    #[test]
    #[rustfmt::skip]
    fn first_failing_field_is_reported() {
        check(r#"{"metadata":1,"currency":1,"amount_cents":"1","object_id":1,"event_type":1}"#, "422 event_type must be a string");
        check(r#"{"metadata":1,"currency":1,"amount_cents":"1","object_id":1,"event_type":"a.b"}"#, "422 object_id must be a string");
        check(r#"{"metadata":1,"currency":1,"amount_cents":"1","object_id":"o","event_type":"a.b"}"#, INTEGER);
        check(r#"{"metadata":1,"currency":1,"amount_cents":1,"object_id":"o","event_type":"a.b"}"#, "422 currency must be a string");
        check(r#"{"metadata":1,"currency":"eur","amount_cents":1,"object_id":"o","event_type":"a.b"}"#, "422 metadata must be an object");
    }

    #[test]
    fn error_carries_field_and_rule() {
        let body = with("currency", r#""xau""#);
        let webhook = parse(body.as_bytes()).unwrap();
        let expected = Error {
            field: "currency",
            rule: Rule::NoMinorUnits { code: *b"XAU" },
        };
        assert_eq!(validate(&webhook), Err(expected));
    }
}
