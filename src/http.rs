//! HTTP/1.1 request heads: the protocol's input side, without sockets.
//!
//! `parse_head` turns the bytes of a request head into a `Head` that records *where* the
//! interesting values sit in the connection buffer (spans, not copies), so the body can be read
//! into the same buffer afterwards. What goes back is in `answer`. Signature headers are kept
//! by name only: the head records where each header of `signature::HEADER_NAMES` sits, and the
//! schemes read them through `Head::header`, so this module knows no scheme.

use std::ops::Range;

use crate::answer::{Malformed, Oversized, Rejection};
use crate::limits::{HEAD_SIZE_MAX, HEADERS_COUNT_MAX};
use crate::signature::HEADER_NAMES;

/// A byte range of the connection buffer.
pub type Span = Range<usize>;

/// The request methods this server distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// A parsed request head. Spans index the buffer the head was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The request target without its query string.
    pub path: Span,
    /// Length of the head in bytes, including the blank line; the body starts here.
    pub len: usize,
    pub body: BodyFraming,
    pub content_type: Option<Span>,
    pub expect_continue: bool,
    pub keep_alive: bool,
    pub http10: bool,
    /// Where the value of each of `signature::HEADER_NAMES` sits (same index), if sent; a
    /// fixed array, so a head costs no allocation.
    signature_headers: [Option<Span>; HEADER_NAMES.len()],
}

impl Head {
    /// The value of signature header `name` (one of `signature::HEADER_NAMES`, lowercase) in
    /// `buffer`, the buffer this head was parsed from; `None` when it was not sent.
    pub fn header<'b>(&self, buffer: &'b [u8], name: &str) -> Option<&'b [u8]> {
        let index = HEADER_NAMES.iter().position(|known| *known == name);
        debug_assert!(index.is_some(), "{name} is not a signature header");
        let span = self.signature_headers.get(index?)?.clone()?;
        buffer.get(span)
    }
}

/// How the request says its body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length and no Transfer-Encoding: no body.
    None,
    Length(u64),
    Chunked,
}

/// Parses a request head from the start of `bytes`. `Ok(None)` means more bytes are needed.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_COUNT_MAX];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() >= HEAD_SIZE_MAX => {
            return Err(Rejection::HeadTooLarge(Oversized::Head));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::HeadTooLarge(Oversized::HeaderCount));
        }
        Err(error) => return Err(Rejection::BadRequest(Malformed::Head(error))),
    };
    if len > HEAD_SIZE_MAX {
        return Err(Rejection::HeadTooLarge(Oversized::Head));
    }
    let base = bytes.as_ptr() as usize;
    let span_of = |text: &[u8]| {
        let start = text.as_ptr() as usize - base;
        start..start + text.len()
    };
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let target = request.path.unwrap_or("/").as_bytes();
    let path_len = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let http10 = request.version == Some(0);
    let mut head = Head {
        method,
        path: span_of(target.get(..path_len).unwrap_or(target)),
        len,
        body: BodyFraming::None,
        content_type: None,
        expect_continue: false,
        keep_alive: !http10,
        http10,
        signature_headers: [const { None }; HEADER_NAMES.len()],
    };
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_content_length(value)?;
            if content_length.is_some_and(|seen| seen != parsed) {
                return Err(Rejection::BadRequest(Malformed::ConflictingContentLengths));
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding.is_some() {
                return Err(Rejection::BadRequest(Malformed::TransferEncodings));
            }
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(span_of(value));
        } else if name.eq_ignore_ascii_case("connection") {
            apply_connection_header(&mut head, value);
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(Rejection::ExpectationFailed);
            }
            head.expect_continue = !http10;
        } else if let Some(index) = signature_header_index(name)
            && let Some(slot) = head.signature_headers.get_mut(index)
        {
            // As for any repeated header, the last one wins.
            *slot = Some(span_of(value));
        }
    }
    head.body = match (content_length, transfer_encoding) {
        (Some(_), Some(_)) => {
            return Err(Rejection::BadRequest(Malformed::LengthWithTransferEncoding));
        }
        (Some(length), None) => BodyFraming::Length(length),
        (None, Some(coding)) if is_chunked(coding) => BodyFraming::Chunked,
        (None, Some(_)) => {
            return Err(Rejection::BadRequest(Malformed::TransferCodingNotChunked));
        }
        (None, None) => BodyFraming::None,
    };
    Ok(Some(head))
}

/// Whether `content-type` names `application/json`, with or without parameters.
pub fn is_json_media_type(value: &[u8]) -> bool {
    let media_type = value.split(|&b| b == b';').next().unwrap_or(value);
    media_type
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
}

fn signature_header_index(name: &str) -> Option<usize> {
    HEADER_NAMES
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))
}

fn parse_content_length(value: &[u8]) -> Result<u64, Rejection> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Rejection::BadRequest(Malformed::ContentLengthNotNumber));
    }
    // More than 19 digits cannot be a size we accept; saturate so it is answered 413.
    if digits.len() > 19 {
        return Ok(u64::MAX);
    }
    Ok(digits
        .iter()
        .fold(0u64, |total, &digit| total * 10 + u64::from(digit - b'0')))
}

fn apply_connection_header(head: &mut Head, value: &[u8]) {
    for option in value.split(|&b| b == b',') {
        let option = option.trim_ascii();
        if option.eq_ignore_ascii_case(b"close") {
            head.keep_alive = false;
        } else if option.eq_ignore_ascii_case(b"keep-alive") && head.http10 {
            head.keep_alive = true;
        }
    }
}

fn is_chunked(coding: &[u8]) -> bool {
    // Only plain `chunked`: a content coding such as `gzip, chunked` is not understood.
    coding.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(raw: &str, expected: Result<Option<BodyFraming>, &str>) {
        let actual = match parse_head(raw.as_bytes()) {
            Ok(head) => Ok(head.map(|head| head.body)),
            Err(rejection) => Err(rejection.code()),
        };
        assert_eq!(actual, expected, "{raw:?}");
    }

    #[test]
    fn heads() {
        let post = "POST /webhook HTTP/1.1\r\n";
        check("POST /webhook HTTP/1.1\r\n", Ok(None));
        check("GET / HTTP/1.1\r\n\r\n", Ok(Some(BodyFraming::None)));
        check(
            &format!("{post}content-length: 5\r\n\r\n"),
            Ok(Some(BodyFraming::Length(5))),
        );
        check(
            &format!("{post}Content-Length:  5 \r\n\r\n"),
            Ok(Some(BodyFraming::Length(5))),
        );
        check(
            &format!("{post}content-length: 5\r\ncontent-length: 5\r\n\r\n"),
            Ok(Some(BodyFraming::Length(5))),
        );
        check(
            &format!("{post}content-length: 5\r\ncontent-length: 6\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}content-length: abc\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}content-length: -1\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}content-length: +1\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}content-length: 1,1\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}content-length: 99999999999999999999999\r\n\r\n"),
            Ok(Some(BodyFraming::Length(u64::MAX))),
        );
        check(
            &format!("{post}transfer-encoding: chunked\r\n\r\n"),
            Ok(Some(BodyFraming::Chunked)),
        );
        check(
            &format!("{post}transfer-encoding: gzip, chunked\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}transfer-encoding: gzip\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}transfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"),
            Err("bad_request"),
        );
        check(
            &format!("{post}expect: 100-continue\r\n\r\n"),
            Ok(Some(BodyFraming::None)),
        );
        check(
            &format!("{post}expect: something\r\n\r\n"),
            Err("expectation_failed"),
        );
        check(
            "POST /webhook HTTP/1.1\r\nbad header\r\n\r\n",
            Err("bad_request"),
        );
        check("POST /webhook HTTP/9.1\r\n\r\n", Err("bad_request"));
    }

    #[test]
    fn head_size_limit() {
        let fill = |n: usize| format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(n));
        let overhead = fill(0).len();
        check(&fill(HEAD_SIZE_MAX - overhead), Ok(Some(BodyFraming::None)));
        check(&fill(HEAD_SIZE_MAX - overhead + 1), Err("header_too_large"));
        let partial = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(HEAD_SIZE_MAX));
        check(&partial, Err("header_too_large"));
    }

    #[test]
    fn header_count_limit() {
        let with = |n: usize| format!("GET / HTTP/1.1\r\n{}\r\n", "x: 1\r\n".repeat(n));
        check(&with(HEADERS_COUNT_MAX), Ok(Some(BodyFraming::None)));
        check(&with(HEADERS_COUNT_MAX + 1), Err("header_too_large"));
    }

    #[test]
    fn spans_point_into_the_buffer() {
        let raw = b"POST /webhook?x=1 HTTP/1.1\r\nWebhook-Id: msg_1\r\nContent-Type: application/json; charset=utf-8\r\nSTRIPE-Signature: t=1\r\nsvix-id: a\r\nsvix-id: b\r\n\r\n{}";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(&raw[head.path.clone()], b"/webhook");
        assert_eq!(head.header(raw, "webhook-id"), Some(b"msg_1".as_slice()));
        assert_eq!(
            head.header(raw, "stripe-signature"),
            Some(b"t=1".as_slice())
        );
        assert_eq!(head.header(raw, "svix-id"), Some(b"b".as_slice()));
        assert_eq!(head.header(raw, "webhook-signature"), None);
        assert!(is_json_media_type(&raw[head.content_type.clone().unwrap()]));
        assert_eq!(&raw[head.len..], b"{}");
        assert!(head.keep_alive);
    }

    #[test]
    fn keep_alive_rules() {
        let keep = |raw: &str| parse_head(raw.as_bytes()).unwrap().unwrap().keep_alive;
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nconnection: close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type(b"application/json"));
        assert!(is_json_media_type(b"Application/JSON ; charset=utf-8"));
        assert!(!is_json_media_type(b"application/jsonx"));
        assert!(!is_json_media_type(b"text/plain"));
        assert!(!is_json_media_type(b""));
    }
}
