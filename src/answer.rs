//! Everything a request can be answered with, and the bytes of each answer.
//!
//! A success is an `Answer` (written by `write_success`); every request failure is a
//! `Rejection`, one variant per row of the contract's answers table plus the protocol-level
//! ones (written by `write_rejection`); no generic 500 exists. `Outcome` names each of them
//! once: its label is the `status` or `error` word of the body and the metrics label.

use std::fmt;
use std::io::Write;

use crate::limits::{HEAD_SIZE_MAX, HEADERS_COUNT_MAX, RETRY_AFTER_SECS};
use crate::text::{self, Text};
use crate::{health, payload, signature};

/// A successful answer.
#[derive(Debug)]
pub enum Answer {
    /// The event is committed now; its id, usually a span of the request buffer.
    Accepted(Text),
    /// The event was committed before; its id.
    Duplicate(Text),
    /// A verified event of a kind that is not stored (a Stripe event without an amount); its id.
    Ignored(Text),
    /// A health endpoint's plain `{"status":"ok"}`.
    Healthy,
    /// The Prometheus text.
    Metrics(String),
}

/// Every answer that is not a success, one per row of the contract's answers table plus the
/// protocol-level ones. `code()` is also the metrics label.
#[derive(Debug)]
pub enum Rejection {
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidSignature(signature::Error),
    InvalidJson(payload::SyntaxError),
    ValidationFailed(payload::Error),
    Unavailable,
    /// `/readyz` while writes cannot commit: 503 like `Unavailable`, with the reason.
    NotReady(health::Problem),
    LengthRequired(LengthMissing),
    BadRequest(Malformed),
    HeadTooLarge(Oversized),
    RequestTimeout,
    ExpectationFailed,
}

/// How a request ended. `label()` is the `hooksink_requests_total` label, the `status` of a
/// success body and the `error` of a rejection body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Ignored,
    Ok,
    InvalidJson,
    InvalidSignature,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    Unavailable,
    LengthRequired,
    BadRequest,
    HeaderTooLarge,
    RequestTimeout,
    ExpectationFailed,
}

impl Outcome {
    /// Every outcome, in declaration order, so `ALL[outcome as usize] == outcome`.
    pub const ALL: [Outcome; 17] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Ok,
        Outcome::InvalidJson,
        Outcome::InvalidSignature,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::PayloadTooLarge,
        Outcome::UnsupportedMediaType,
        Outcome::ValidationFailed,
        Outcome::Unavailable,
        Outcome::LengthRequired,
        Outcome::BadRequest,
        Outcome::HeaderTooLarge,
        Outcome::RequestTimeout,
        Outcome::ExpectationFailed,
    ];

    /// The stable name clients and dashboards see.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Ok => "ok",
            Outcome::InvalidJson => "invalid_json",
            Outcome::InvalidSignature => "invalid_signature",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::PayloadTooLarge => "payload_too_large",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::ValidationFailed => "validation_failed",
            Outcome::Unavailable => "unavailable",
            Outcome::LengthRequired => "length_required",
            Outcome::BadRequest => "bad_request",
            Outcome::HeaderTooLarge => "header_too_large",
            Outcome::RequestTimeout => "request_timeout",
            Outcome::ExpectationFailed => "expectation_failed",
        }
    }
}

/// Why a request is malformed (400, connection closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// httparse refused the request line or a header.
    Head(httparse::Error),
    ContentLengthNotNumber,
    ConflictingContentLengths,
    TransferEncodings,
    LengthWithTransferEncoding,
    TransferCodingNotChunked,
    ChunkSizeLine,
    ChunkDataEnd,
}

/// Which part of a request is over its limit (431, connection closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversized {
    Head,
    HeaderCount,
    Trailers,
}

/// Why a request has no usable body length (411).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthMissing {
    ContentLength,
    /// A chunked body on an endpoint that takes no body.
    ChunkedOffEvents,
}

/// Whether the connection may carry another request after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    KeepAlive,
    Close,
}

impl Rejection {
    /// HTTP status code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Rejection::NotFound => (404, "Not Found"),
            Rejection::MethodNotAllowed { .. } => (405, "Method Not Allowed"),
            Rejection::PayloadTooLarge => (413, "Payload Too Large"),
            Rejection::UnsupportedMediaType => (415, "Unsupported Media Type"),
            Rejection::InvalidSignature(_) => (401, "Unauthorized"),
            Rejection::InvalidJson(_) => (400, "Bad Request"),
            Rejection::ValidationFailed(_) => (422, "Unprocessable Content"),
            Rejection::Unavailable | Rejection::NotReady(_) => (503, "Service Unavailable"),
            Rejection::LengthRequired(_) => (411, "Length Required"),
            Rejection::BadRequest(_) => (400, "Bad Request"),
            Rejection::HeadTooLarge(_) => (431, "Request Header Fields Too Large"),
            Rejection::RequestTimeout => (408, "Request Timeout"),
            Rejection::ExpectationFailed => (417, "Expectation Failed"),
        }
    }

    /// Stable machine-readable code, sent as `error` and used as the metrics label.
    pub fn code(&self) -> &'static str {
        self.outcome().label()
    }

    /// The outcome this rejection counts under.
    pub fn outcome(&self) -> Outcome {
        match self {
            Rejection::NotFound => Outcome::NotFound,
            Rejection::MethodNotAllowed { .. } => Outcome::MethodNotAllowed,
            Rejection::PayloadTooLarge => Outcome::PayloadTooLarge,
            Rejection::UnsupportedMediaType => Outcome::UnsupportedMediaType,
            Rejection::InvalidSignature(_) => Outcome::InvalidSignature,
            Rejection::InvalidJson(_) => Outcome::InvalidJson,
            Rejection::ValidationFailed(_) => Outcome::ValidationFailed,
            Rejection::Unavailable | Rejection::NotReady(_) => Outcome::Unavailable,
            Rejection::LengthRequired(_) => Outcome::LengthRequired,
            Rejection::BadRequest(_) => Outcome::BadRequest,
            Rejection::HeadTooLarge(_) => Outcome::HeaderTooLarge,
            Rejection::RequestTimeout => Outcome::RequestTimeout,
            Rejection::ExpectationFailed => Outcome::ExpectationFailed,
        }
    }

    /// Protocol-level failures leave the byte stream in an unknown state: close after answering.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Rejection::BadRequest(_)
                | Rejection::HeadTooLarge(_)
                | Rejection::RequestTimeout
                | Rejection::ExpectationFailed
                | Rejection::PayloadTooLarge
                | Rejection::LengthRequired(_)
        )
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"error\":\"");
        out.extend_from_slice(self.code().as_bytes());
        out.push(b'"');
        match self {
            Rejection::ValidationFailed(error) => {
                out.extend_from_slice(b",\"field\":\"");
                out.extend_from_slice(error.field.as_bytes());
                out.push(b'"');
                write_message(out, format_args!("{error}"));
            }
            Rejection::InvalidSignature(error) => write_message(out, format_args!("{error}")),
            Rejection::InvalidJson(error) => write_message(out, format_args!("{error}")),
            Rejection::LengthRequired(cause) => write_message(out, format_args!("{cause}")),
            Rejection::BadRequest(cause) => write_message(out, format_args!("{cause}")),
            Rejection::HeadTooLarge(cause) => write_message(out, format_args!("{cause}")),
            Rejection::NotReady(problem) => {
                out.extend_from_slice(b",\"reason\":\"");
                out.extend_from_slice(problem.reason.label().as_bytes());
                out.push(b'"');
                write_message(out, format_args!("{}", problem.message));
            }
            Rejection::NotFound
            | Rejection::PayloadTooLarge
            | Rejection::MethodNotAllowed { .. }
            | Rejection::UnsupportedMediaType
            | Rejection::Unavailable
            | Rejection::RequestTimeout => {}
            Rejection::ExpectationFailed => {
                write_message(out, format_args!("only expect: 100-continue is understood"));
            }
        }
        out.push(b'}');
    }
}

impl Answer {
    /// The outcome this answer counts under.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Accepted(_) => Outcome::Accepted,
            Answer::Duplicate(_) => Outcome::Duplicate,
            Answer::Ignored(_) => Outcome::Ignored,
            Answer::Healthy | Answer::Metrics(_) => Outcome::Ok,
        }
    }
}

impl From<signature::Error> for Rejection {
    #[cold]
    fn from(error: signature::Error) -> Rejection {
        Rejection::InvalidSignature(error)
    }
}

impl From<payload::SyntaxError> for Rejection {
    #[cold]
    fn from(error: payload::SyntaxError) -> Rejection {
        Rejection::InvalidJson(error)
    }
}

impl From<payload::Error> for Rejection {
    #[cold]
    fn from(error: payload::Error) -> Rejection {
        Rejection::ValidationFailed(error)
    }
}

/// Appends the answer for `answer` to `out`; `buffer` holds the request an id span points into.
pub fn write_success(out: &mut Vec<u8>, answer: &Answer, buffer: &[u8], connection: Connection) {
    const JSON: &str = "application/json";
    let (Answer::Accepted(id) | Answer::Duplicate(id) | Answer::Ignored(id)) = answer else {
        let (content_type, body) = match answer {
            Answer::Metrics(text) => ("text/plain; version=0.0.4; charset=utf-8", text.as_bytes()),
            _ => (JSON, br#"{"status":"ok"}"#.as_slice()),
        };
        return write_response(out, (200, "OK"), content_type, &[], body, connection);
    };
    let id = text::resolve(id, buffer);
    let mut body = Vec::with_capacity(64 + id.len());
    body.extend_from_slice(b"{\"status\":\"");
    body.extend_from_slice(answer.outcome().label().as_bytes());
    body.extend_from_slice(b"\",\"id\":\"");
    write_json_escaped(&mut body, id);
    body.extend_from_slice(b"\"}");
    write_response(out, (200, "OK"), JSON, &[], &body, connection);
}

/// Appends the answer for `rejection` to `out`.
pub fn write_rejection(out: &mut Vec<u8>, rejection: &Rejection, connection: Connection) {
    let (status, reason) = rejection.status();
    let mut body = Vec::with_capacity(128);
    rejection.write_json(&mut body);
    let retry_after;
    let header = match rejection {
        Rejection::Unavailable | Rejection::NotReady(_) => {
            retry_after = RETRY_AFTER_SECS.to_string();
            Some(("retry-after", retry_after.as_str()))
        }
        Rejection::MethodNotAllowed { allow } => Some(("allow", *allow)),
        _ => None,
    };
    let extra = header.as_slice();
    write_response(
        out,
        (status, reason),
        "application/json",
        extra,
        &body,
        connection,
    );
}

/// Appends a whole answer with a body to `out`.
fn write_response(
    out: &mut Vec<u8>,
    (status, reason): (u16, &str),
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    connection: Connection,
) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    let _ = write!(out, "content-type: {content_type}\r\n");
    let _ = write!(out, "content-length: {}\r\n", body.len());
    for (name, value) in extra_headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    match connection {
        Connection::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n\r\n"),
        Connection::Close => out.extend_from_slice(b"connection: close\r\n\r\n"),
    }
    out.extend_from_slice(body);
}

/// Appends `s` to `out` as the inside of a JSON string.
pub fn write_json_escaped(out: &mut Vec<u8>, s: &str) {
    for &byte in s.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                // Writing into a Vec cannot fail.
                let _ = write!(out, "\\u{byte:04x}");
            }
            _ => out.push(byte),
        }
    }
}

fn write_message(out: &mut Vec<u8>, message: std::fmt::Arguments<'_>) {
    struct Escaper<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for Escaper<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            write_json_escaped(self.0, s);
            Ok(())
        }
    }
    out.extend_from_slice(b",\"message\":\"");
    // The escaper never fails, and neither does writing into a Vec.
    let _ = std::fmt::Write::write_fmt(&mut Escaper(out), message);
    out.push(b'"');
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Malformed::Head(httparse::Error::HeaderName) => "invalid header name",
            Malformed::Head(httparse::Error::HeaderValue) => "invalid header value",
            Malformed::Head(httparse::Error::NewLine) => "invalid line ending",
            Malformed::Head(httparse::Error::Status) => "invalid status",
            Malformed::Head(httparse::Error::Token) => "invalid token in request line",
            Malformed::Head(httparse::Error::TooManyHeaders) => {
                return Oversized::HeaderCount.fmt(f);
            }
            Malformed::Head(httparse::Error::Version) => "invalid http version",
            Malformed::ContentLengthNotNumber => "content-length is not a number",
            Malformed::ConflictingContentLengths => "conflicting content-length headers",
            Malformed::TransferEncodings => "more than one transfer-encoding header",
            Malformed::LengthWithTransferEncoding => {
                "content-length together with transfer-encoding"
            }
            Malformed::TransferCodingNotChunked => "transfer-encoding other than chunked",
            Malformed::ChunkSizeLine => "malformed chunk size line",
            Malformed::ChunkDataEnd => "chunk data not followed by crlf",
        };
        f.write_str(text)
    }
}

impl fmt::Display for Oversized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Oversized::Head => write!(f, "request head larger than {HEAD_SIZE_MAX} bytes"),
            Oversized::HeaderCount => write!(f, "more than {HEADERS_COUNT_MAX} request headers"),
            Oversized::Trailers => write!(f, "trailers larger than {HEAD_SIZE_MAX} bytes"),
        }
    }
}

impl fmt::Display for LengthMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LengthMissing::ContentLength => "content-length header missing",
            LengthMissing::ChunkedOffEvents => {
                "chunked bodies are accepted only on /webhook and /stripe"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_own_counter() {
        for (index, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, index, "{outcome:?}");
        }
    }

    #[test]
    fn answers_are_exact() {
        let mut out = Vec::new();
        write_rejection(&mut out, &Rejection::Unavailable, Connection::KeepAlive);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 23\r\nretry-after: 5\r\nconnection: keep-alive\r\n\r\n{\"error\":\"unavailable\"}"
        );
        let mut not_ready = Vec::new();
        let problem = health::Problem {
            reason: health::Reason::DatabaseUnreachable,
            message: "connection refused (127.0.0.1:1)".to_owned(),
        };
        let rejection = Rejection::NotReady(problem);
        write_rejection(&mut not_ready, &rejection, Connection::Close);
        assert_eq!(
            String::from_utf8(not_ready).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 100\r\nretry-after: 5\r\nconnection: close\r\n\r\n{\"error\":\"unavailable\",\"reason\":\"database_unreachable\",\"message\":\"connection refused (127.0.0.1:1)\"}"
        );
        let mut ignored = Vec::new();
        let buffer = b"xevt_1".as_slice();
        let id = Text::Span(1..6);
        write_success(
            &mut ignored,
            &Answer::Ignored(id),
            buffer,
            Connection::Close,
        );
        assert_eq!(
            String::from_utf8(ignored).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 33\r\nconnection: close\r\n\r\n{\"status\":\"ignored\",\"id\":\"evt_1\"}"
        );
        let mut escaped = Vec::new();
        write_json_escaped(&mut escaped, "a\"b\\c\n\u{1}");
        assert_eq!(escaped, b"a\\\"b\\\\c\\n\\u0001");
    }
}
