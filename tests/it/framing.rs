//! Hostile framing against the real binary: oversized heads, malformed, lying or conflicting
//! Content-Length, chunked bodies and request smuggling. Each test checks the exact status and
//! `error` code, whether the server closed the connection, and that other clients are still served.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attack::{
    BODY_LIMIT, CLOSE_WAIT, SERVED_LATENCY_MAX, answer_then_close, assert_error, assert_served,
    bystanders, head_of, server_alive, start,
};
use crate::support::{
    Client, EXAMPLE, Server, closing, db, fresh_database, now, request, resident_kib, row,
    set_header, set_request_line, signature, signed_request, unique_id,
};

/// The contract's head limit (`limits::HEAD_SIZE_MAX`).
const HEAD_LIMIT: usize = 8192;
/// Resident memory the server must stay under while attacked (the debug build idles at ~8 MB).
const RESIDENT_KIB_MAX: u64 = 20 * 1024;

/// A signed POST with `connection: close` whose head (including the request line) is exactly
/// `len` bytes.
fn head_of_length(len: usize) -> Vec<u8> {
    let signed = closing(&signed_request(&unique_id("head"), now(), EXAMPLE));
    let short = head_of(&signed).len() + "x-pad: \r\n".len();
    set_header(&signed, "x-pad", Some(&"p".repeat(len - short)))
}

#[test]
fn head_over_8192_bytes_answers_431_and_closes() {
    let server = start(&[]);
    let at_limit = head_of_length(HEAD_LIMIT);
    assert_eq!(head_of(&at_limit).len(), HEAD_LIMIT);
    let answer = answer_then_close(&server, &at_limit);
    assert_eq!(
        answer.status, 200,
        "a head of exactly 8192 bytes: {answer:?}"
    );

    let long_target = format!("GET /{} HTTP/1.1", "a".repeat(HEAD_LIMIT));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one byte over", head_of_length(HEAD_LIMIT + 1)),
        ("one 20 KB header", head_of_length(20_000)),
        (
            "a request line over the limit",
            set_request_line(&request("GET", "/healthz", &[], b""), &long_target),
        ),
    ];
    for (case, bytes) in &cases {
        let answer = answer_then_close(&server, bytes);
        assert_error(&answer, 431, "header_too_large", "close");
        assert_eq!(
            answer.json()["message"],
            "request head larger than 8192 bytes",
            "{case}"
        );
        assert_served(&server);
    }
}

#[test]
fn more_than_32_headers_answers_431_and_closes() {
    let server = start(&[]);
    // `request` adds `host`, so 31 more make 32.
    let headers = |n: usize| -> Vec<(String, String)> {
        (0..n).map(|i| (format!("x-{i}"), i.to_string())).collect()
    };
    let build = |n: usize| {
        let headers = headers(n);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request("GET", "/healthz", &pairs, b"")
    };
    let answer = answer_then_close(&server, &closing(&build(30)));
    assert_eq!(answer.status, 200, "32 headers: {answer:?}");
    for extra in [32, 100] {
        let answer = answer_then_close(&server, &build(extra));
        assert_error(&answer, 431, "header_too_large", "close");
        assert_eq!(answer.json()["message"], "more than 32 request headers");
    }
    assert_served(&server);
}

/// A client that streams header bytes without ever ending the head: the server must answer
/// 431 and close after about 8 KiB, not buffer what follows (an attacker could send 512 MiB).
#[test]
fn endless_head_is_cut_off_at_431_without_growing_memory() {
    /// Bytes an attacker is willing to send; far above what socket buffers hold.
    const STREAM_MAX: usize = 16 << 20;
    const ATTACKERS: usize = 8;
    let server = start(&[]);
    let addr = server.addr();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                client
                    .send(b"POST /webhook HTTP/1.1\r\nx-endless: ")
                    .unwrap();
                let chunk = [b'a'; 16 * 1024];
                let mut sent = 0;
                while sent < STREAM_MAX && client.send(&chunk).is_ok() {
                    sent += chunk.len();
                }
                let answer = client.response();
                let closed = client.closed_within(CLOSE_WAIT);
                (sent, answer, closed)
            })
        })
        .collect();
    let attacked = || !attackers.iter().all(|a| a.is_finished());
    let took = bystanders(&server, 5, attacked);
    assert!(took < SERVED_LATENCY_MAX, "normal requests took {took:?}");
    for attacker in attackers {
        let (sent, answer, closed) = attacker.join().unwrap();
        assert!(sent < STREAM_MAX, "the server read all {sent} bytes");
        let answer = answer.expect("no 431 before the close");
        assert_error(&answer, 431, "header_too_large", "close");
        assert!(closed, "still open after {answer:?}");
    }
    let resident = resident_kib(server.pid());
    assert!(resident < RESIDENT_KIB_MAX, "VmRSS {resident} KiB");
    assert_served(&server);
}

#[test]
fn malformed_content_length_answers_400_and_closes() {
    let server = start(&[]);
    let signed = signed_request(&unique_id("length"), now(), EXAMPLE);
    let length = EXAMPLE.len().to_string();
    let twice = |first: &str, second: &str| {
        let once = set_header(&signed, "content-length", Some(first));
        let text = String::from_utf8(once).unwrap();
        let header = format!("content-length: {first}\r\n");
        text.replacen(&header, &format!("{header}content-length: {second}\r\n"), 1)
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not a number",
            set_header(&signed, "content-length", Some("abc")),
        ),
        (
            "negative",
            set_header(&signed, "content-length", Some("-1")),
        ),
        (
            "a plus sign",
            set_header(&signed, "content-length", Some("+5")),
        ),
        (
            "hexadecimal",
            set_header(&signed, "content-length", Some("0x10")),
        ),
        (
            "a list",
            set_header(
                &signed,
                "content-length",
                Some(&format!("{length}, {length}")),
            ),
        ),
        ("two values", twice(&length, "5")),
    ];
    for (case, bytes) in &cases {
        let answer = answer_then_close(&server, bytes);
        assert_error(&answer, 400, "bad_request", "close");
        assert!(answer.json()["message"].is_string(), "{case}: {answer:?}");
    }
    // The same value twice is one length, not a conflict.
    let answer = answer_then_close(&server, &closing(&twice(&length, &length)));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_served(&server);
}

#[test]
fn content_length_over_the_limit_answers_413_before_the_body() {
    let server = start(&[]);
    for length in [BODY_LIMIT + 1, 100_000_000] {
        let signed = signed_request(&unique_id("huge"), now(), EXAMPLE);
        let huge = set_header(&signed, "content-length", Some(&length.to_string()));
        let mut client = Client::connect(server.addr());
        // Only the head: the answer must not wait for a body that never comes.
        client.send(head_of(&huge)).unwrap();
        let started = Instant::now();
        let answer = client
            .response_within(CLOSE_WAIT)
            .expect("no 413 without the body");
        assert!(
            started.elapsed() < SERVED_LATENCY_MAX,
            "{:?}",
            started.elapsed()
        );
        assert_error(&answer, 413, "payload_too_large", "close");
        assert_eq!(answer.json(), json!({"error": "payload_too_large"}));
        assert!(
            client.closed_within(CLOSE_WAIT),
            "still open after {answer:?}"
        );
    }
    assert_served(&server);
}

/// `POST /nope` or `GET /webhook` with a huge Content-Length: 404 and 405 come before the size
/// check, and the server used to read (and allocate) the announced body to keep the
/// connection; 100 GB aborted the whole process with a failed allocation.
#[test]
fn early_404_with_huge_content_length_closes_without_reading_the_body() {
    let server = start(&[]);
    let cases = [
        ("POST /nope HTTP/1.1", "100000000000", 404, "not_found"),
        ("POST /nope HTTP/1.1", "1000000000", 404, "not_found"),
        (
            "POST /nope HTTP/1.1",
            "99999999999999999999999",
            404,
            "not_found",
        ),
        (
            "GET /webhook HTTP/1.1",
            "100000000000",
            405,
            "method_not_allowed",
        ),
        ("POST /nope HTTP/1.1", "65537", 404, "not_found"),
    ];
    for (line, length, status, code) in cases {
        let bytes = format!("{line}\r\nhost: 127.0.0.1\r\ncontent-length: {length}\r\n\r\n");
        let mut client = Client::connect(server.addr());
        client.send(bytes.as_bytes()).unwrap();
        let answer = client
            .response_within(CLOSE_WAIT)
            .unwrap_or_else(|| panic!("no {status} without the body: {line} {length}"));
        assert_error(&answer, status, code, "close");
        assert!(
            client.closed_within(CLOSE_WAIT),
            "still open after {answer:?}"
        );
        assert!(server_alive(&server), "{line} {length}");
    }
    // A small body is still read and the connection kept.
    let body = b"GET /metrics HTTP/1.1\r\n\r\n";
    let mut client = Client::connect(server.addr());
    client.send(&request("POST", "/nope", &[], body)).unwrap();
    let answer = client.response().unwrap();
    assert_error(&answer, 404, "not_found", "keep-alive");
    assert!(!client.closed_within(Duration::from_millis(300)));
    let resident = resident_kib(server.pid());
    assert!(resident < RESIDENT_KIB_MAX, "VmRSS {resident} KiB");
    assert_served(&server);
}

#[test]
fn content_length_with_transfer_encoding_answers_400_and_closes() {
    let server = start(&[]);
    let smuggled = "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let chunked = format!("0\r\n\r\n{smuggled}");
    let with_both = |first: &str, second: &str| {
        format!(
            "POST /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             {first}\r\n{second}\r\n\r\n{chunked}"
        )
        .into_bytes()
    };
    let length = format!("content-length: {}", chunked.len());
    let cases = [
        with_both(&length, "transfer-encoding: chunked"),
        with_both("transfer-encoding: chunked", "content-length: 5"),
        with_both("Transfer-Encoding: gzip, chunked", "Content-Length: 0"),
    ];
    for bytes in &cases {
        let answer = answer_then_close(&server, bytes);
        assert_error(&answer, 400, "bad_request", "close");
        assert_eq!(
            answer.json()["message"],
            "content-length together with transfer-encoding"
        );
    }
    assert_served(&server);
}

/// A signed request for `body` with its body sent as `chunks` (raw chunked bytes).
fn chunked_request(id: &str, body: &str, chunks: &str) -> Vec<u8> {
    let signed = signed_request(id, now(), body);
    let head = set_header(&signed, "content-length", None);
    let head = set_header(&head, "transfer-encoding", Some("chunked"));
    let mut bytes = head_of(&head).to_vec();
    bytes.extend_from_slice(chunks.as_bytes());
    bytes
}

#[test]
fn chunked_body_is_decoded_verified_and_stored() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let id = unique_id("chunked");
    let (first, rest) = EXAMPLE.split_at(7);
    let (second, third) = rest.split_at(1);
    // Three chunks, one with an extension, then a trailer; a pipelined request follows.
    let chunks = format!(
        "{:x}\r\n{first}\r\n{:X};name=value\r\n{second}\r\n{:x}\r\n{third}\r\n0\r\nx-trailer: 1\r\n\r\n",
        first.len(),
        second.len(),
        third.len()
    );
    let mut bytes = chunked_request(&id, EXAMPLE, &chunks);
    bytes.extend_from_slice(&closing(&request("GET", "/healthz", &[], b"")));
    let mut client = Client::connect(server.addr());
    client.send(&bytes).unwrap();
    let answers = client.responses(2);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0].json(), json!({"status": "accepted", "id": id}));
    assert_eq!(answers[1].status, 200);
    let stored = row(&mut db(&url), &id).expect("chunked event stored");
    assert_eq!(stored.object_id, "pi_3MtwBw");
    // One byte per chunk, each with a long extension: the framing read so far is dropped
    // from the buffer as it piles up (compaction), and the body still comes out whole.
    let id = unique_id("chunked_tiny");
    let extension = "e".repeat(200);
    let chunks: String = EXAMPLE
        .chars()
        .map(|c| format!("1;{extension}\r\n{c}\r\n"))
        .chain(std::iter::once("0\r\n\r\n".to_owned()))
        .collect();
    let answer = answer_then_close(&server, &closing(&chunked_request(&id, EXAMPLE, &chunks)));
    assert_eq!(answer.json(), json!({"status": "accepted", "id": id}));
    assert!(row(&mut db(&url), &id).is_some());
    assert_served(&server);
}

#[test]
fn chunked_body_over_the_limit_answers_413_and_closes() {
    let server = start(&[]);
    // Only the size line: the 413 must come before any data.
    let bytes = chunked_request(&unique_id("chunked_big"), EXAMPLE, "10001\r\n");
    let answer = answer_then_close(&server, &bytes);
    assert_error(&answer, 413, "payload_too_large", "close");
    // Many chunks that add up past the limit are refused the same way.
    let piece = "a".repeat(4096);
    let chunks = format!("1000\r\n{piece}\r\n").repeat(17);
    let bytes = chunked_request(&unique_id("chunked_sum"), EXAMPLE, &chunks);
    let answer = answer_then_close(&server, &bytes);
    assert_error(&answer, 413, "payload_too_large", "close");
    assert_served(&server);
}

#[test]
fn malformed_chunked_bodies_answer_400_and_close() {
    let server = start(&[]);
    for chunks in ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcX\r\n0\r\n\r\n", "-1\r\n"] {
        let bytes = chunked_request(&unique_id("chunked_bad"), EXAMPLE, chunks);
        let answer = answer_then_close(&server, &bytes);
        assert_error(&answer, 400, "bad_request", "close");
    }
    for coding in ["gzip, chunked", "gzip"] {
        let signed = signed_request(&unique_id("coding"), now(), EXAMPLE);
        let head = set_header(&signed, "content-length", None);
        let head = set_header(&head, "transfer-encoding", Some(coding));
        let answer = answer_then_close(&server, head_of(&head));
        assert_error(&answer, 400, "bad_request", "close");
    }
    assert_served(&server);
}

#[test]
fn post_without_content_length_answers_411_and_closes() {
    let server = start(&[]);
    let signed = signed_request(&unique_id("no_length"), now(), EXAMPLE);
    let head = set_header(&signed, "content-length", None);
    // Only the head: without a length the server cannot know a body follows.
    let answer = answer_then_close(&server, head_of(&head));
    assert_error(&answer, 411, "length_required", "close");
    assert_eq!(answer.json()["message"], "content-length header missing");
    assert_served(&server);
}

/// Early rejections consume a body they do not use; the bytes of that body must never be read
/// as the next request.
#[test]
fn rejected_body_holding_a_request_is_never_run() {
    let server = start(&[]);
    let smuggled = b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let signed = |id: &str| signed_request(id, now(), smuggled);
    let other = signature("someone_else", now(), smuggled);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            set_header(&signed("s1"), "webhook-signature", Some(&other)),
            401,
            "invalid_signature",
        ),
        (signed("s2"), 400, "invalid_json"),
        (
            set_request_line(&signed("s3"), "POST /nope HTTP/1.1"),
            404,
            "not_found",
        ),
        (
            set_request_line(&signed("s4"), "PUT /webhook HTTP/1.1"),
            405,
            "method_not_allowed",
        ),
        (
            set_header(&signed("s5"), "content-type", Some("text/plain")),
            415,
            "unsupported_media_type",
        ),
    ];
    let mut bytes = Vec::new();
    for (request, _, _) in &cases {
        bytes.extend_from_slice(request);
    }
    bytes.extend(closing(&request("GET", "/healthz", &[], b"")));
    let mut client = Client::connect(server.addr());
    client.send(&bytes).unwrap();
    let answers = client.responses(cases.len() + 1);
    assert!(client.closed_within(CLOSE_WAIT), "open after {answers:?}");
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let mut expected: Vec<u16> = cases.iter().map(|(_, status, _)| *status).collect();
    expected.push(200);
    assert_eq!(statuses, expected, "{answers:?}");
    for (answer, (_, _, code)) in answers.iter().zip(&cases) {
        assert_error(answer, answer.status, code, "keep-alive");
    }
    assert_eq!(answers[cases.len()].json(), json!({"status": "ok"}));
}
