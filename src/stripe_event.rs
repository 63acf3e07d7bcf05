//! A Stripe event body: parsed without copying, then validated with `payload`'s rules.
//!
//! Stripe sends `{"id":"evt_...","type":"...","created":<unix>,"data":{"object":{...}},...}`,
//! compact or pretty-printed. `parse` applies the same whole-body rules as `payload::parse`
//! (UTF-8, no byte order mark, nesting at most `JSON_DEPTH_MAX`, one object and nothing after
//! it) and keeps only the named fields as raw JSON text; the rest of `data.object` and every
//! other key is skipped without being decoded (`IgnoredAny`). A known key given twice at its
//! level is refused (400), as `payload` does for top-level keys. `validate` then checks the
//! event's own fields (`id` by the `webhook-id` rule: 1..=`EVENT_ID_LEN_MAX` ASCII graphic
//! characters after JSON unescaping; `created` an integer in 0..=i64::MAX) and hands the
//! object's fields to `payload::validate`, so a 422 names the same rule, with the field named
//! by its Stripe path (`data.object.currency`). An object without an amount or a currency
//! (e.g. `customer.created`) is `Outcome::Ignored`, not an error: Stripe retries every 4xx.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::limits::EVENT_ID_LEN_MAX;
use crate::payload::{self, Rule, SyntaxError, Webhook};

/// A body that is a Stripe event, each named field as raw JSON text borrowed from the body.
///
/// Only `parse` builds one, so holding a `StripeEvent` means the whole body was valid JSON.
#[derive(Debug)]
pub struct StripeEvent<'a> {
    id: Option<&'a RawValue>,
    event_type: Option<&'a RawValue>,
    created: Option<&'a RawValue>,
    /// None when `data` or `data.object` is absent.
    object: Option<Object<'a>>,
}

/// What a verified, well-formed Stripe event asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// An event to store, keyed by `id`, with `created` as the provider's timestamp.
    Store {
        id: Cow<'a, str>,
        created: i64,
        event: payload::Event<'a>,
    },
    /// An event whose object has no amount or no currency; answered 200 `ignored`, not stored.
    Ignored { id: Cow<'a, str> },
}

/// Reads a body into a `StripeEvent`, checking only syntax, with `payload::parse`'s rules.
pub fn parse(body: &[u8]) -> Result<StripeEvent<'_>, SyntaxError> {
    payload::parse_body(body)
}

/// Checks `id`, `type`, `created` and `data.object`, in that order, then decides between
/// storing and ignoring; reports the first field that breaks the contract.
pub fn validate<'a>(event: &StripeEvent<'a>) -> Result<Outcome<'a>, payload::Error> {
    let id = payload::required("id", event.id, event_id)?;
    let created = payload::required("created", event.created, created)?;
    let Some(object) = &event.object else {
        return Err(payload::Error {
            field: "data.object",
            rule: Rule::Missing,
        });
    };
    let Some(amount) = object.amount() else {
        return Ok(Outcome::Ignored { id });
    };
    if is_absent(object.currency) {
        return Ok(Outcome::Ignored { id });
    }
    let webhook = Webhook::from_fields([
        event.event_type,
        object.id,
        Some(amount.1),
        object.currency,
        object.metadata,
    ]);
    let event = payload::validate(&webhook).map_err(|error| stripe_path(error, amount.0))?;
    Ok(Outcome::Store { id, created, event })
}

/// The named fields of `data.object`.
#[derive(Debug, Default)]
struct Object<'a> {
    id: Option<&'a RawValue>,
    amount: Option<&'a RawValue>,
    amount_total: Option<&'a RawValue>,
    amount_paid: Option<&'a RawValue>,
    currency: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
}

impl<'a> Object<'a> {
    /// The first of `amount`, `amount_total`, `amount_paid` that is present and not null, with
    /// its name; which one a Stripe object carries depends on its type (invoices have only
    /// `amount_paid`, checkout sessions `amount_total`).
    fn amount(&self) -> Option<(&'static str, &'a RawValue)> {
        [
            ("data.object.amount", self.amount),
            ("data.object.amount_total", self.amount_total),
            ("data.object.amount_paid", self.amount_paid),
        ]
        .into_iter()
        .find_map(|(name, raw)| Some((name, raw.filter(|raw| !is_absent(Some(raw)))?)))
    }
}

fn is_absent(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|raw| raw.get() == "null")
}

/// Renames `payload`'s field names to the Stripe paths they were read from.
fn stripe_path(error: payload::Error, amount_field: &'static str) -> payload::Error {
    let field = match error.field {
        "event_type" => "type",
        "object_id" => "data.object.id",
        "amount_cents" => amount_field,
        "currency" => "data.object.currency",
        "metadata" => "data.object.metadata",
        other => other,
    };
    payload::Error { field, ..error }
}

fn event_id(text: &str) -> Result<Cow<'_, str>, Rule> {
    let id = payload::string(text)?;
    if id.is_empty() {
        return Err(Rule::TooShort { min: 1 });
    }
    if id.len() > EVENT_ID_LEN_MAX {
        return Err(Rule::TooLong {
            max: EVENT_ID_LEN_MAX,
        });
    }
    if !id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(Rule::NotGraphic);
    }
    Ok(id)
}

/// Unix seconds as a plain JSON integer; `1e9` or `1.0` are not accepted as integers.
fn created(text: &str) -> Result<i64, Rule> {
    let integer = Rule::WrongType {
        expected: "an integer",
    };
    let range = Rule::OutOfRange {
        min: 0,
        max: i64::MAX,
    };
    if text.starts_with('-') && text.bytes().skip(1).all(|byte| byte.is_ascii_digit()) {
        return Err(range);
    }
    if !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(integer);
    }
    text.parse().map_err(|_| range)
}

impl<'de> Deserialize<'de> for StripeEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// A key; it borrows from the body unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Stores `value` in `slot`, refusing a second value for the same known key.
fn once<T, E: de::Error>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format_args!("duplicate key `{key}`")));
    }
    *slot = Some(value);
    Ok(())
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = StripeEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stripe event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StripeEvent<'de>, A::Error> {
        let mut event = StripeEvent {
            id: None,
            event_type: None,
            created: None,
            object: None,
        };
        let mut data_seen = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "id" => once(&mut event.id, &key, map.next_value()?)?,
                "type" => once(&mut event.event_type, &key, map.next_value()?)?,
                "created" => once(&mut event.created, &key, map.next_value()?)?,
                "data" if data_seen => return Err(de::Error::custom("duplicate key `data`")),
                "data" => {
                    data_seen = true;
                    event.object = map.next_value::<Data<'de>>()?.object;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(event)
    }
}

/// `data`: only `object` is read; `previous_attributes` and the rest are skipped.
struct Data<'a> {
    object: Option<Object<'a>>,
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stripe data object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data<'de>, A::Error> {
        let mut object = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "object" {
                once(&mut object, &key, map.next_value::<Object<'de>>()?)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Data { object })
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stripe api object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut object = Object::default();
        while let Some(Key(key)) = map.next_key()? {
            let slot = match &*key {
                "id" => &mut object.id,
                "amount" => &mut object.amount,
                "amount_total" => &mut object.amount_total,
                "amount_paid" => &mut object.amount_paid,
                "currency" => &mut object.currency,
                "metadata" => &mut object.metadata,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            once(slot, &key, map.next_value()?)?;
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    //! Bodies follow the shapes of Stripe's API reference, trimmed; the tables are
    //! `#[rustfmt::skip]` so that each case stays on one line.

    use super::*;
    use crate::limits::JSON_DEPTH_MAX;

    /// `parse` then `validate`, summarised: `store <id> <created> <type> <object> <amount>
    /// <currency> <metadata>`, `ignored <id>`, `400 <message>` or `422 <message>`.
    fn outcome(body: &str) -> String {
        let event = match parse(body.as_bytes()) {
            Ok(event) => event,
            Err(error) => return format!("400 {error}"),
        };
        match validate(&event) {
            Ok(Outcome::Store { id, created, event }) => format!(
                "store {id} {created} {} {} {} {} {}",
                event.event_type,
                event.object_id,
                event.amount_cents,
                event.currency.code(),
                event.metadata
            ),
            Ok(Outcome::Ignored { id }) => format!("ignored {id}"),
            Err(error) => format!("422 {error}"),
        }
    }

    #[track_caller]
    fn check(body: &str, expected: &str) {
        assert_eq!(outcome(body), expected);
    }

    /// An event of `kind` around `object` (the members inside `data.object`'s braces).
    fn event(kind: &str, object: &str) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","api_version":"2024-06-20","created":1680064028,"data":{{"object":{{{object}}},"previous_attributes":{{"status":"open"}}}},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"{kind}"}}"#
        )
    }

    /// A payment intent with `field` set to the raw JSON `value`.
    fn intent(extra: &str) -> String {
        event(
            "payment_intent.succeeded",
            &format!(
                r#""id":"pi_1","object":"payment_intent","amount":2000,"currency":"usd","metadata":{{"order_id":"6735"}}{extra}"#
            ),
        )
    }

    const PRETTY: &str = r#"{
  "id": "evt_3MtwBwLkdIwHu7ix0Qd4Wz2f",
  "object": "event",
  "api_version": "2022-11-15",
  "created": 1680064028,
  "data": {
    "object": {
      "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
      "object": "payment_intent",
      "amount": 2000,
      "amount_capturable": 0,
      "amount_details": {
        "tip": {}
      },
      "amount_received": 2000,
      "automatic_payment_methods": {
        "enabled": true
      },
      "charges": {
        "object": "list",
        "data": [],
        "has_more": false
      },
      "currency": "usd",
      "metadata": {},
      "status": "succeeded"
    }
  },
  "livemode": false,
  "pending_webhooks": 0,
  "request": {
    "id": "req_1",
    "idempotency_key": "a0c7b1b7-7b3c-4f0b-8a3c-8c2d7c8c8c8c"
  },
  "type": "payment_intent.succeeded"
}
"#;

    #[test]
    #[rustfmt::skip]
    fn stored_shapes() {
        check(PRETTY, "store evt_3MtwBwLkdIwHu7ix0Qd4Wz2f 1680064028 payment_intent.succeeded pi_3MtwBwLkdIwHu7ix28a3tqPa 2000 USD {}");
        check(&intent(""), r#"store evt_1 1680064028 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        check(&event("charge.succeeded", r#""id":"ch_1","object":"charge","amount":1099,"amount_captured":1099,"amount_refunded":0,"currency":"eur","metadata":{},"outcome":{"type":"authorized"},"refunds":{"data":[]}"#), "store evt_1 1680064028 charge.succeeded ch_1 1099 EUR {}");
        check(&event("charge.refunded", r#""id":"ch_1","object":"charge","amount":1099,"amount_refunded":1099,"currency":"eur""#), "store evt_1 1680064028 charge.refunded ch_1 1099 EUR {}");
        check(&event("refund.created", r#""id":"re_1","object":"refund","amount":500,"charge":"ch_1","currency":"gbp","metadata":{"reason":"dup"},"status":"succeeded""#), r#"store evt_1 1680064028 refund.created re_1 500 GBP {"reason":"dup"}"#);
        check(&event("charge.dispute.created", r#""id":"dp_1","object":"dispute","amount":1000,"charge":"ch_1","currency":"usd","evidence":{"receipt":null},"metadata":{},"reason":"fraudulent""#), "store evt_1 1680064028 charge.dispute.created dp_1 1000 USD {}");
        check(&event("checkout.session.completed", r#""id":"cs_test_1","object":"checkout.session","amount_subtotal":2198,"amount_total":2198,"currency":"usd","customer_details":{"email":"a@b.c"},"metadata":{"cart":"42"}"#), r#"store evt_1 1680064028 checkout.session.completed cs_test_1 2198 USD {"cart":"42"}"#);
        check(&event("invoice.paid", r#""id":"in_1","object":"invoice","amount_due":1500,"amount_paid":1500,"amount_remaining":0,"currency":"usd","lines":{"data":[{"amount":1500}]}"#), "store evt_1 1680064028 invoice.paid in_1 1500 USD {}");
        check(&event("invoice.payment_failed", r#""id":"in_1","object":"invoice","amount_due":1500,"amount_paid":0,"currency":"jpy","metadata":null"#), "store evt_1 1680064028 invoice.payment_failed in_1 0 JPY {}");
        // The first amount present wins; a null one counts as absent.
        check(&event("x.y", r#""id":"o","amount":1,"amount_total":2,"amount_paid":3,"currency":"usd""#), "store evt_1 1680064028 x.y o 1 USD {}");
        check(&event("x.y", r#""id":"o","amount_paid":3,"amount_total":2,"currency":"usd""#), "store evt_1 1680064028 x.y o 2 USD {}");
        check(&event("x.y", r#""id":"o","amount":null,"amount_total":null,"amount_paid":3,"currency":"usd""#), "store evt_1 1680064028 x.y o 3 USD {}");
    }

    #[test]
    #[rustfmt::skip]
    fn ignored_shapes() {
        check(&event("customer.created", r#""id":"cus_1","object":"customer","balance":0,"currency":null,"email":"a@b.c","metadata":{}"#), "ignored evt_1");
        check(&event("customer.created", r#""id":"cus_1","object":"customer","email":"a@b.c""#), "ignored evt_1");
        check(&event("product.created", r#""id":"prod_1","object":"product","name":"T-shirt""#), "ignored evt_1");
        check(&event("checkout.session.completed", r#""id":"cs_1","amount_total":null,"currency":"usd""#), "ignored evt_1");
        check(&event("x.y", r#""id":"o","amount":100"#), "ignored evt_1");
        check(&event("x.y", r#""id":"o","currency":"usd""#), "ignored evt_1");
        check(&event("x.y", ""), "ignored evt_1");
        // Ignored only after the event's own fields passed.
        check(&event("x.y", "").replace(r#""id":"evt_1""#, r#""id":"""#), "422 id is empty");
    }

    #[test]
    #[rustfmt::skip]
    fn object_fields_use_payload_rules() {
        check(&intent("").replace("2000", "-1"), "422 data.object.amount must be between 0 and 1000000000000000");
        check(&intent("").replace("2000", "1e3"), "422 data.object.amount must be an integer");
        check(&intent("").replace("2000", r#""2000""#), "422 data.object.amount must be an integer");
        check(&event("x.y", r#""id":"o","amount_total":20.5,"currency":"usd""#), "422 data.object.amount_total must be an integer");
        check(&event("x.y", r#""id":"o","amount_paid":1000000000000001,"currency":"usd""#), "422 data.object.amount_paid must be between 0 and 1000000000000000");
        check(&event("x.y", r#""id":"o","amount_paid":1000000000000000,"currency":"usd""#), "store evt_1 1680064028 x.y o 1000000000000000 USD {}");
        check(&intent("").replace(r#""usd""#, r#""xyz""#), "422 data.object.currency is not an active iso 4217 code");
        check(&intent("").replace(r#""usd""#, r#""xau""#), "422 data.object.currency XAU has no minor units");
        check(&intent("").replace(r#""usd""#, "1"), "422 data.object.currency must be a string");
        check(&intent("").replace(r#""pi_1""#, r#""pi 1""#), "422 data.object.id must be ascii characters 0x21 to 0x7e");
        check(&intent("").replace(r#""id":"pi_1","#, ""), "422 data.object.id is missing");
        check(&intent("").replace(r#""pi_1""#, "null"), "422 data.object.id is null");
        check(&intent("").replace(r#""pi_1""#, &format!(r#""{}""#, "p".repeat(256))), "422 data.object.id longer than 255 bytes");
        check(&intent("").replace(r#"{"order_id":"6735"}"#, "[]"), "422 data.object.metadata must be an object");
        check(&intent("").replace(r#"{"order_id":"6735"}"#, r#"{"a":"\u0000"}"#), "422 data.object.metadata has a \\u0000 escape");
        let keys: Vec<String> = (0..51).map(|n| format!(r#""k{n}":1"#)).collect();
        check(&intent("").replace(r#"{"order_id":"6735"}"#, &format!("{{{}}}", keys.join(","))), "422 data.object.metadata has more than 50 keys");
        check(&intent("").replace("payment_intent.succeeded", "PaymentIntent"), "422 type must be lowercase words joined by dots, like payment.succeeded");
        check(&intent("").replace(r#","type":"payment_intent.succeeded""#, ""), "422 type is missing");
    }

    #[test]
    #[rustfmt::skip]
    fn event_fields() {
        let with_id = |raw: &str| intent("").replace(r#""id":"evt_1""#, &format!(r#""id":{raw}"#));
        check(&with_id(r#""evt_\u0031""#), r#"store evt_1 1680064028 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        check(&with_id(&format!(r#""{}""#, "e".repeat(EVENT_ID_LEN_MAX))), &format!(r#"store {} 1680064028 payment_intent.succeeded pi_1 2000 USD {{"order_id":"6735"}}"#, "e".repeat(EVENT_ID_LEN_MAX)));
        check(&with_id(&format!(r#""{}""#, "e".repeat(EVENT_ID_LEN_MAX + 1))), "422 id longer than 255 bytes");
        check(&with_id(r#""""#), "422 id is empty");
        check(&with_id(r#""evt 1""#), "422 id must be ascii characters 0x21 to 0x7e");
        check(&with_id(r#""evt_é""#), "422 id must be ascii characters 0x21 to 0x7e");
        check(&with_id("1"), "422 id must be a string");
        check(&with_id("null"), "422 id is null");
        check(&intent("").replace(r#""id":"evt_1","#, ""), "422 id is missing");
        let with_created = |raw: &str| intent("").replace("1680064028", raw);
        check(&with_created("0"), r#"store evt_1 0 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        check(&with_created("9223372036854775807"), r#"store evt_1 9223372036854775807 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        check(&with_created("9223372036854775808"), "422 created must be between 0 and 9223372036854775807");
        check(&with_created("-1"), "422 created must be between 0 and 9223372036854775807");
        check(&with_created("1.6e9"), "422 created must be an integer");
        check(&with_created(r#""1680064028""#), "422 created must be an integer");
        check(&with_created("null"), "422 created is null");
        check(&intent("").replace(r#""created":1680064028,"#, ""), "422 created is missing");
        check(&intent("").replace(r#""data":{"object":"#, r#""data":{"objekt":"#), "422 data.object is missing");
        check(r#"{"id":"evt_1","type":"a.b","created":1}"#, "422 data.object is missing");
    }

    #[test]
    #[rustfmt::skip]
    fn syntax() {
        check("", "400 EOF while parsing a value at line 1 column 0");
        check("[]", "400 invalid type: sequence, expected a stripe event object at line 1 column 0");
        check(&format!("{} x", intent("")), "400 trailing characters at line 1 column 358");
        check(&format!("\u{feff}{}", intent("")), "400 body starts with a utf-8 byte order mark");
        check("{\"id\":\"\u{ff}\"}", r#"422 id must be ascii characters 0x21 to 0x7e"#);
        assert_eq!(parse(b"{\"id\":\"\xff\"}").unwrap_err().to_string(), "body is not valid utf-8 at byte 7");
        check(&intent("").replace(r#""created":"#, r#""id":"evt_2","created":"#), "400 duplicate key `id` at line 1 column 70");
        check(&intent(r#","amount":1"#), "400 duplicate key `amount` at line 1 column 208");
        check(&intent(r#","currency":"usd""#), "400 duplicate key `currency` at line 1 column 214");
        check(&intent("").replace(r#""livemode""#, r#""data":{},"livemode""#), "400 duplicate key `data` at line 1 column 245");
        check(&intent("").replace(r#""data":{"object":"#, r#""data":{"object":{},"object":"#), "400 duplicate key `object` at line 1 column 209");
        check(&intent("").replace(r#""data":{"object":"#, r#""data":[],"x":"#), "400 invalid type: sequence, expected a stripe data object at line 1 column 86");
        check(&intent("").replace(r#""data":{"object":{"#, r#""data":{"object":"s","x":{"#), "400 invalid type: string \"s\", expected a stripe api object at line 1 column 99");
        // Unknown keys may repeat and are never decoded, however deep (within the limit).
        check(&intent(r#","x":1,"x":{"y":[1,2,{"z":"\ud800"}]}"#), r#"store evt_1 1680064028 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // The event is depth 1, data 2, data.object 3, so "x" there may nest JSON_DEPTH_MAX - 3.
        check(&intent(&format!(r#","x":{}"#, deep(JSON_DEPTH_MAX - 3))), r#"store evt_1 1680064028 payment_intent.succeeded pi_1 2000 USD {"order_id":"6735"}"#);
        check(&intent(&format!(r#","x":{}"#, deep(JSON_DEPTH_MAX - 2))), "400 body nested deeper than 128 at byte 326");
    }
}
