//! Hostile HTTP input against the real binary: oversized and malformed heads, lying or
//! conflicting Content-Length, request smuggling, slow clients, connection floods, pipelining,
//! `Expect: 100-continue` and hostile JSON. Each test checks the exact status and `error`
//! code, whether the server closed the connection, and that other clients are still served.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    Client, EXAMPLE, Response, Server, closing, db, fresh_database, get, jsonb_text, now,
    post_webhook, request, resident_kib, row, set_header, set_request_line, signature,
    signed_request, unique_id, wait_until,
};

/// The contract's head limit (`limits::HEAD_SIZE_MAX`).
const HEAD_LIMIT: usize = 8192;
/// The contract's default body limit.
const BODY_LIMIT: usize = 65_536;
/// The contract's nesting limit; the top-level object is depth 1.
const DEPTH_LIMIT: usize = 128;
/// How long a server gets to close a connection it has answered with `connection: close`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Resident memory the server must stay under while attacked (the debug build idles at ~8 MB).
const RESIDENT_KIB_MAX: u64 = 20 * 1024;
/// Latency normal requests must keep while other connections attack the server.
const SERVED_LATENCY_MAX: Duration = Duration::from_secs(1);
/// Pause between the normal requests sent during an attack.
const BYSTANDER_PAUSE: Duration = Duration::from_millis(100);

/// A server on a database of its own.
fn start(extra_env: &[(&str, &str)]) -> Server {
    Server::start(&fresh_database(), extra_env)
}

/// A normal signed POST on a new connection is stored; returns how long it took.
#[track_caller]
fn assert_served(server: &Server) -> Duration {
    let id = unique_id("bystander");
    let bytes = closing(&signed_request(&id, now(), EXAMPLE));
    let started = Instant::now();
    let mut client = Client::connect(server.addr());
    client.send(&bytes).unwrap();
    let answer = client.response().expect("no answer to a normal request");
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({"status": "accepted", "id": id}));
    took
}

/// Normal signed POSTs on new connections, every `BYSTANDER_PAUSE` while `attacked()` holds and
/// at least `count` of them, each stored; returns the 90th percentile of their latency. A
/// percentile rather than the maximum: a starved CI machine can delay one commit by itself.
fn bystanders(server: &Server, count: usize, attacked: impl Fn() -> bool) -> Duration {
    let mut latencies = Vec::new();
    while latencies.len() < count || attacked() {
        latencies.push(assert_served(server));
        thread::sleep(BYSTANDER_PAUSE);
    }
    latencies.sort_unstable();
    latencies[latencies.len() * 9 / 10]
}

/// The exact status, a JSON body with `error` = `code`, and the connection header.
#[track_caller]
fn assert_error(response: &Response, status: u16, code: &str, connection: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    assert_eq!(response.json()["error"], code, "{response:?}");
    assert_eq!(
        response.header("connection"),
        Some(connection),
        "{response:?}"
    );
}

/// Sends `bytes` on a new connection; returns the one answer after checking that the server
/// closed the connection after it, without a second answer.
#[track_caller]
fn answer_then_close(server: &Server, bytes: &[u8]) -> Response {
    let mut client = Client::connect(server.addr());
    // The server may answer and close before reading everything; the answer still arrives.
    let _ = client.send(bytes);
    let answer = client
        .response()
        .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(bytes)));
    assert!(
        client.closed_within(CLOSE_WAIT),
        "still open after {answer:?}"
    );
    answer
}

/// Whether the server process still runs (a crash would be a zombie child until reaped).
fn server_alive(server: &Server) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()));
    status.is_ok_and(|stat| !stat.contains(") Z "))
}

/// Sends `bytes` one byte per `pause` until an answer arrives; returns it, the time from the
/// first byte, and whether the server then closed the connection.
fn trickle(addr: SocketAddr, bytes: &[u8], pause: Duration) -> (Option<Response>, Duration, bool) {
    let mut client = Client::connect(addr);
    let started = Instant::now();
    for byte in bytes {
        if client.send(&[*byte]).is_err() {
            break;
        }
        if let Some(answer) = client.response_within(pause) {
            let took = started.elapsed();
            return (Some(answer), took, client.closed_within(CLOSE_WAIT));
        }
    }
    let answer = client.response();
    (answer, started.elapsed(), client.closed_within(CLOSE_WAIT))
}

/// The head of `request`, without its body.
fn head_of(request: &[u8]) -> &[u8] {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &request[..end + 4]
}

/// A signed POST with `connection: close` whose head (including the request line) is exactly
/// `len` bytes.
fn head_of_length(len: usize) -> Vec<u8> {
    let signed = closing(&signed_request(&unique_id("head"), now(), EXAMPLE));
    let short = head_of(&signed).len() + "x-pad: \r\n".len();
    set_header(&signed, "x-pad", Some(&"p".repeat(len - short)))
}

/// The value of the Prometheus sample `name` (without labels).
fn metric(server: &Server, name: &str) -> f64 {
    let text = get(server.addr(), "/metrics").body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// `levels` arrays nested in each other: `[[...]]`.
fn arrays(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// `levels` objects nested in each other: `{"a":{"a":{}}}`.
fn objects(levels: usize) -> String {
    let open = "{\"a\":".repeat(levels - 1);
    format!("{open}{{}}{}", "}".repeat(levels - 1))
}

/// A metadata object nested `depth` deep counting the body's object (1) and its own (2), made
/// of arrays or objects below its own.
fn metadata(depth: usize, of_arrays: bool) -> String {
    if of_arrays {
        format!("{{\"a\":{}}}", arrays(depth - 2))
    } else {
        objects(depth - 1)
    }
}

/// The example body with `metadata(depth, of_arrays)`.
fn deep_metadata(depth: usize, of_arrays: bool) -> String {
    with_metadata(&metadata(depth, of_arrays))
}

/// The example body with an ignored field nested `depth` deep in all.
fn deep_ignored(depth: usize, of_arrays: bool) -> String {
    let value = if of_arrays {
        arrays(depth - 1)
    } else {
        objects(depth - 1)
    };
    with_ignored(&value)
}

/// The example body with `metadata` replaced by the raw JSON `metadata`.
fn with_metadata(metadata: &str) -> String {
    EXAMPLE.replace(r#"{"order_id":"6735"}"#, metadata)
}

/// The example body with one more, ignored, field `x` holding the raw JSON `value`.
fn with_ignored(value: &str) -> String {
    format!("{},\"x\":{value}}}", EXAMPLE.strip_suffix('}').unwrap())
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

/// One byte a second: after `REQUEST_TIMEOUT_SECS` (10 s by default) from the first byte the
/// server answers 408 and closes, and serves everyone else at normal speed meanwhile.
#[test]
fn slow_head_answers_408_and_closes_while_others_are_served() {
    const ATTACKERS: usize = 20;
    let server = start(&[]);
    let addr = server.addr();
    let head = closing(&signed_request(&unique_id("slow"), now(), EXAMPLE));
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let head = head.clone();
            thread::spawn(move || trickle(addr, &head, Duration::from_secs(1)))
        })
        .collect();
    let attacked = || !attackers.iter().all(|a| a.is_finished());
    let took = bystanders(&server, 5, attacked);
    assert!(took < SERVED_LATENCY_MAX, "normal requests took {took:?}");
    for attacker in attackers {
        let (answer, took, closed) = attacker.join().unwrap();
        let answer = answer.expect("no 408");
        assert_error(&answer, 408, "request_timeout", "close");
        assert_eq!(answer.json(), json!({"error": "request_timeout"}));
        let window = Duration::from_secs(10)..Duration::from_secs(12);
        assert!(window.contains(&took), "408 after {took:?}");
        assert!(closed, "still open after the 408");
    }
}

#[test]
fn slow_body_answers_408_and_closes() {
    let server = start(&[("REQUEST_TIMEOUT_SECS", "2")]);
    let signed = signed_request(&unique_id("slow_body"), now(), EXAMPLE);
    let mut client = Client::connect(server.addr());
    let started = Instant::now();
    client.send(head_of(&signed)).unwrap();
    let mut answer = None;
    for byte in EXAMPLE.bytes() {
        if client.send(&[byte]).is_err() {
            break;
        }
        answer = client.response_within(Duration::from_millis(500));
        if answer.is_some() {
            break;
        }
    }
    let took = started.elapsed();
    let answer = answer.expect("no 408 while the body trickled");
    assert_error(&answer, 408, "request_timeout", "close");
    let window = Duration::from_secs(2)..Duration::from_millis(3500);
    assert!(window.contains(&took), "408 after {took:?}");
    assert!(client.closed_within(CLOSE_WAIT));
    assert_served(&server);
}

/// The timeout covers the head and the body together from the request's first byte: a head
/// that takes most of it leaves the body only the rest (it used to restart for the body).
#[test]
fn request_deadline_counts_from_the_first_byte_of_the_head() {
    let server = start(&[("REQUEST_TIMEOUT_SECS", "3")]);
    let signed = signed_request(&unique_id("deadline"), now(), EXAMPLE);
    let head = head_of(&signed);
    let mut client = Client::connect(server.addr());
    let started = Instant::now();
    client.send(&head[..10]).unwrap();
    thread::sleep(Duration::from_secs(2));
    client.send(&head[10..]).unwrap();
    let mut answer = None;
    for byte in EXAMPLE.bytes() {
        if client.send(&[byte]).is_err() {
            break;
        }
        answer = client.response_within(Duration::from_millis(250));
        if answer.is_some() {
            break;
        }
    }
    let took = started.elapsed();
    let answer = answer.expect("no 408 while the body trickled");
    assert_error(&answer, 408, "request_timeout", "close");
    let window = Duration::from_secs(3)..Duration::from_millis(4500);
    assert!(
        window.contains(&took),
        "408 after {took:?}, not 3 s after the first byte"
    );
    assert!(client.closed_within(CLOSE_WAIT));
}

#[test]
fn idle_connection_closes_after_idle_timeout_without_an_answer() {
    let server = start(&[("IDLE_TIMEOUT_SECS", "2")]);
    // Never used at all, and kept alive after an answer: both are idle.
    let mut unused = Client::connect(server.addr());
    let mut used = Client::connect(server.addr());
    used.send(&request("GET", "/healthz", &[], b"")).unwrap();
    let answer = used.response().unwrap();
    assert_eq!(answer.header("connection"), Some("keep-alive"));
    let started = Instant::now();
    thread::sleep(Duration::from_secs(1));
    for client in [&mut unused, &mut used] {
        assert!(
            !client.closed_within(Duration::from_millis(10)),
            "closed before 2 s"
        );
    }
    for client in [&mut unused, &mut used] {
        assert!(
            client.closed_within(Duration::from_secs(3)),
            "open after 4 s"
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert_served(&server);
}

#[test]
fn hundreds_of_idle_connections_leave_room_for_new_clients() {
    const IDLE: usize = 300;
    let server = start(&[]);
    let mut idle: Vec<Client> = (0..IDLE).map(|_| Client::connect(server.addr())).collect();
    // Half of them sent half a head, the others nothing.
    for client in idle.iter_mut().step_by(2) {
        client.send(b"GET /healthz HTTP/1.1\r\n").unwrap();
    }
    // The metrics request's own connection counts too.
    let open = || metric(&server, "hooksink_open_connections");
    let all_open = wait_until(Duration::from_secs(5), || open() >= (IDLE + 1) as f64);
    assert!(all_open, "{} open", open());
    let took = bystanders(&server, 5, || false);
    assert!(took < SERVED_LATENCY_MAX, "normal requests took {took:?}");
    // The idle ones still work.
    let client = &mut idle[1];
    client
        .send(&closing(&request("GET", "/healthz", &[], b"")))
        .unwrap();
    assert_eq!(client.response().unwrap().status, 200);
    drop(idle);
    let all_closed = wait_until(Duration::from_secs(5), || open() == 1.0);
    assert!(all_closed, "{} open after closing them", open());
}

#[test]
fn connection_over_max_connections_is_closed_at_once_while_others_keep_working() {
    const CAP: usize = 8;
    let server = start(&[("MAX_CONNECTIONS", "8")]);
    let health = request("GET", "/healthz", &[], b"");
    let mut open: Vec<Client> = (0..CAP)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(&health).unwrap();
            assert_eq!(client.response().unwrap().status, 200);
            client
        })
        .collect();
    for _ in 0..3 {
        let mut refused = Client::connect(server.addr());
        let started = Instant::now();
        assert!(refused.closed_within(CLOSE_WAIT), "not closed at the cap");
        assert!(
            started.elapsed() < SERVED_LATENCY_MAX,
            "{:?}",
            started.elapsed()
        );
        // Nothing sent on it is answered.
        let _ = refused.send(&health);
        assert!(
            refused
                .response_within(Duration::from_millis(200))
                .is_none()
        );
    }
    for client in &mut open {
        client.send(&health).unwrap();
        let answer = client.response().unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    open.truncate(CAP - 1);
    let id = unique_id("after_cap");
    let bytes = closing(&signed_request(&id, now(), EXAMPLE));
    let served = wait_until(Duration::from_secs(5), || {
        let mut client = Client::connect(server.addr());
        let _ = client.send(&bytes);
        client
            .response_within(CLOSE_WAIT)
            .is_some_and(|a| a.status == 200)
    });
    assert!(served, "a freed slot was not reused");
}

#[test]
fn keep_alive_answers_three_requests_in_order() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let id = unique_id("keep");
    let mut client = Client::connect(server.addr());
    let requests = [
        signed_request(&id, now(), EXAMPLE),
        request("GET", "/healthz", &[], b""),
        signed_request(&id, now(), EXAMPLE),
    ];
    let expected = [
        json!({"status": "accepted", "id": id}),
        json!({"status": "ok"}),
        json!({"status": "duplicate", "id": id}),
    ];
    for (bytes, body) in requests.iter().zip(expected) {
        client.send(bytes).unwrap();
        let answer = client.response().unwrap();
        assert_eq!((answer.status, answer.json()), (200, body));
        assert_eq!(answer.header("connection"), Some("keep-alive"));
    }
    assert!(!client.closed_within(Duration::from_millis(300)));
    assert!(row(&mut db(&url), &id).is_some());
}

#[test]
fn pipelined_requests_with_mixed_outcomes_answer_in_order() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let ids: Vec<String> = (0..5).map(|_| unique_id("pipe")).collect();
    let other = signature("someone_else", now(), EXAMPLE.as_bytes());
    let bad_currency = EXAMPLE.replace("usd", "ZZZ");
    let mut bytes = signed_request(&ids[0], now(), EXAMPLE);
    bytes.extend(set_header(
        &signed_request(&ids[1], now(), EXAMPLE),
        "webhook-signature",
        Some(&other),
    ));
    bytes.extend(signed_request(&ids[2], now(), &bad_currency));
    bytes.extend(set_request_line(
        &signed_request(&ids[3], now(), EXAMPLE),
        "POST /nope HTTP/1.1",
    ));
    bytes.extend(signed_request(&ids[4], now(), EXAMPLE));
    let mut client = Client::connect(server.addr());
    client.send(&bytes).unwrap();
    let answers = client.responses(5);
    let summary: Vec<(u16, Value)> = answers
        .iter()
        .map(|a| (a.status, a.json()["error"].clone()))
        .collect();
    let none = Value::Null;
    assert_eq!(
        summary,
        vec![
            (200, none.clone()),
            (401, json!("invalid_signature")),
            (422, json!("validation_failed")),
            (404, json!("not_found")),
            (200, none),
        ]
    );
    assert_eq!(
        answers[0].json(),
        json!({"status": "accepted", "id": ids[0]})
    );
    assert_eq!(answers[2].json()["field"], "currency");
    assert_eq!(
        answers[4].json(),
        json!({"status": "accepted", "id": ids[4]})
    );
    assert!(!client.closed_within(Duration::from_millis(300)));
    let mut client = db(&url);
    let stored: Vec<bool> = ids
        .iter()
        .map(|id| row(&mut client, id).is_some())
        .collect();
    assert_eq!(stored, [true, false, false, false, true]);
}

#[test]
fn http10_without_keep_alive_closes_after_the_answer() {
    let server = start(&[]);
    let id = unique_id("http10");
    let post = set_request_line(
        &signed_request(&id, now(), EXAMPLE),
        "POST /webhook HTTP/1.0",
    );
    let health = b"GET /healthz HTTP/1.0\r\n\r\n".to_vec();
    for (bytes, body) in [
        (health, json!({"status": "ok"})),
        (post, json!({"status": "accepted", "id": id})),
    ] {
        let answer = answer_then_close(&server, &bytes);
        assert_eq!((answer.status, answer.json()), (200, body));
        assert_eq!(answer.header("connection"), Some("close"));
    }
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let server = start(&[]);
    let mut client = Client::connect(server.addr());
    for _ in 0..2 {
        client
            .send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let answer = client.response().unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert!(!client.closed_within(Duration::from_millis(300)));
    }
}

#[test]
fn expect_100_continue_answers_100_then_reads_the_body() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let id = unique_id("continue");
    let signed = set_header(
        &signed_request(&id, now(), EXAMPLE),
        "expect",
        Some("100-continue"),
    );
    let mut client = Client::connect(server.addr());
    client.send(head_of(&signed)).unwrap();
    let interim = client.response_within(CLOSE_WAIT).expect("no 100 Continue");
    assert_eq!(interim.status, 100, "{interim:?}");
    client.send(EXAMPLE.as_bytes()).unwrap();
    let answer = client.response().unwrap();
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"status": "accepted", "id": id}))
    );
    assert!(row(&mut db(&url), &id).is_some());
    assert!(!client.closed_within(Duration::from_millis(300)));
}

#[test]
fn expect_100_continue_with_wrong_content_type_answers_415_without_100_and_closes() {
    let server = start(&[]);
    let signed = signed_request(&unique_id("continue"), now(), EXAMPLE);
    let signed = set_header(&signed, "content-type", Some("text/plain"));
    let signed = set_header(&signed, "expect", Some("100-continue"));
    // The head alone: a 100 would invite the body, the final answer must come instead.
    let answer = answer_then_close(&server, head_of(&signed));
    assert_error(&answer, 415, "unsupported_media_type", "close");
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

/// The answer a hostile body must get.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Accepted,
    /// 400 `invalid_json`.
    NotJson,
    /// 400 `invalid_json` for nesting deeper than 128.
    TooDeep,
    /// 422 `validation_failed` naming this field.
    Breaks(&'static str),
}

#[test]
fn hostile_json_bodies_are_refused_and_the_server_lives_on() {
    use Outcome::{Accepted, Breaks, NotJson, TooDeep};
    // Room for a 100000-digit number; every other case fits the default 64 KiB.
    let server = start(&[("MAX_BODY_BYTES", "131072")]);
    let prefixed = |prefix: &[u8]| [prefix, &EXAMPLE.as_bytes()[1..]].concat();
    let digits = "7".repeat(100_000);
    let duplicate = EXAMPLE.replace("\"usd\"", "\"usd\",\"currency\":\"eur\"");
    let big_string = format!("\"{}\"", "s".repeat(60_000));
    assert!(with_ignored(&big_string).len() < BODY_LIMIT);
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "invalid UTF-8 in an ignored field",
            prefixed(b"{\"n\":\"\xff\xfe\","),
            NotJson,
        ),
        (
            "a byte order mark",
            [b"\xef\xbb\xbf", EXAMPLE.as_bytes()].concat(),
            NotJson,
        ),
        (
            "a raw NUL in a string",
            prefixed(b"{\"n\":\"a\x00b\","),
            NotJson,
        ),
        (
            "\\u0000 in metadata",
            with_metadata(r#"{"a":"\u0000"}"#).into(),
            Breaks("metadata"),
        ),
        (
            "exponent 1001 in metadata",
            with_metadata(r#"{"a":1e1001}"#).into(),
            Breaks("metadata"),
        ),
        (
            "metadata arrays 129 deep",
            deep_metadata(DEPTH_LIMIT + 1, true).into(),
            TooDeep,
        ),
        (
            "metadata objects 129 deep",
            deep_metadata(DEPTH_LIMIT + 1, false).into(),
            TooDeep,
        ),
        (
            "ignored arrays 129 deep",
            deep_ignored(DEPTH_LIMIT + 1, true).into(),
            TooDeep,
        ),
        (
            "ignored objects 129 deep",
            deep_ignored(DEPTH_LIMIT + 1, false).into(),
            TooDeep,
        ),
        (
            "100000 open brackets",
            with_ignored(&"[".repeat(100_000)).into(),
            TooDeep,
        ),
        (
            "a 60 KB ignored string",
            with_ignored(&big_string).into(),
            Accepted,
        ),
        (
            "amount_cents 1e400",
            EXAMPLE.replace("2000", "1e400").into(),
            Breaks("amount_cents"),
        ),
        (
            "amount_cents 100000 digits",
            EXAMPLE.replace("2000", &digits).into(),
            Breaks("amount_cents"),
        ),
        ("trailing garbage", format!("{EXAMPLE}}}x").into(), NotJson),
        ("a duplicate top-level key", duplicate.into(), NotJson),
    ];
    for (case, body, outcome) in &cases {
        let id = unique_id("hostile");
        let answer = answer_then_close(&server, &closing(&signed_request(&id, now(), body)));
        match outcome {
            Accepted => {
                let expected = json!({"status": "accepted", "id": id});
                assert_eq!((answer.status, answer.json()), (200, expected), "{case}");
            }
            NotJson | TooDeep => {
                assert_error(&answer, 400, "invalid_json", "close");
                assert_eq!(answer.json()["field"], Value::Null, "{case}");
                let message = answer.json()["message"].as_str().unwrap().to_owned();
                let deep = message.starts_with("body nested deeper than 128");
                assert_eq!(deep, matches!(outcome, TooDeep), "{case}: {message}");
            }
            Breaks(field) => {
                assert_error(&answer, 422, "validation_failed", "close");
                assert_eq!(answer.json()["field"], *field, "{case}");
            }
        }
    }
    // serde_json may refuse a number it cannot hold even in an ignored field; both are fine,
    // but the server must answer and live on.
    let huge = signed_request(&unique_id("digits"), now(), with_ignored(&digits));
    let answer = answer_then_close(&server, &closing(&huge));
    assert!(matches!(answer.status, 200 | 400), "{answer:?}");
    assert!(server_alive(&server));
    assert_eq!(get(server.addr(), "/healthz").status, 200);
}

/// The deepest bodies the contract accepts, of arrays and of objects, in metadata and in an
/// ignored field: stored, and the coroutine's stack survives them (an overflow kills the
/// process).
#[test]
fn deepest_accepted_nesting_is_stored() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let mut client = db(&url);
    let example_metadata = r#"{"order_id":"6735"}"#;
    for of_arrays in [true, false] {
        let cases = [
            (
                deep_metadata(DEPTH_LIMIT, of_arrays),
                metadata(DEPTH_LIMIT, of_arrays),
            ),
            (
                deep_ignored(DEPTH_LIMIT, of_arrays),
                example_metadata.to_owned(),
            ),
        ];
        for (body, metadata) in &cases {
            let id = unique_id("deep");
            let answer = answer_then_close(&server, &closing(&signed_request(&id, now(), body)));
            assert_eq!(
                (answer.status, answer.json()),
                (200, json!({"status": "accepted", "id": id})),
                "{body}"
            );
            let stored = row(&mut client, &id).unwrap();
            assert_eq!(stored.metadata, jsonb_text(&mut client, metadata));
        }
    }
    assert!(server_alive(&server));
    assert_eq!(get(server.addr(), "/healthz").status, 200);
}

#[test]
fn silent_new_connection_is_closed_after_the_request_timeout_not_the_idle_timeout() {
    let server = start(&[("REQUEST_TIMEOUT_SECS", "2"), ("IDLE_TIMEOUT_SECS", "60")]);
    let started = Instant::now();
    let mut silent = Client::connect(server.addr());
    assert!(
        !silent.closed_within(Duration::from_millis(1500)),
        "closed before 2 s"
    );
    assert!(
        silent.closed_within(Duration::from_secs(3)),
        "open after 4.5 s"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    // After a first answer the connection gets the idle timeout, so it is still open.
    let mut used = Client::connect(server.addr());
    used.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(used.response().unwrap().status, 200);
    assert!(
        !used.closed_within(Duration::from_secs(3)),
        "kept-alive connection closed early"
    );
    assert_served(&server);
}

#[test]
fn unknown_expectation_answers_417_and_closes() {
    let server = start(&[]);
    let mut client = Client::connect(server.addr());
    let raw = set_header(
        &signed_request(&unique_id("expect"), now(), EXAMPLE),
        "expect",
        Some("something-else"),
    );
    client.send(&raw).unwrap();
    let answer = client.response().unwrap();
    assert_eq!(answer.status, 417);
    assert_eq!(answer.json()["error"], "expectation_failed");
    assert!(client.closed_within(Duration::from_secs(2)));
    assert_served(&server);
}

#[test]
fn announced_bodies_that_never_arrive_do_not_reserve_memory() {
    // Each client announces a 1 MB body and sends none of it: memory must follow the bytes
    // that arrive, not the Content-Length (200 x 1 MB would be 200 MB).
    const CLIENTS: usize = 200;
    let server = start(&[("MAX_BODY_BYTES", "1048576")]);
    let before = resident_kib(server.pid());
    let head = set_header(
        &signed_request(&unique_id("announced"), now(), EXAMPLE),
        "content-length",
        Some("1000000"),
    );
    let head_end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(&head[..head_end]).unwrap();
            client
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let during = resident_kib(server.pid());
    assert!(
        during < before + 30 * 1024,
        "VmRSS grew from {before} to {during} KiB"
    );
    assert_served(&server);
    clients.clear();
}

#[test]
fn connection_cap_stays_below_the_descriptor_limit_and_accept_does_not_spin() {
    // 100 descriptors: the server keeps 64 in reserve and caps connections at 36, so a flood
    // is refused by the cap, never by EMFILE in accept.
    let server = Server::start_limited(&fresh_database(), &[], Some(100));
    assert!(
        server
            .log_text()
            .contains("file descriptor limit 100 caps open connections at 36"),
        "{}",
        server.log_text()
    );
    let cpu_before = cpu_ticks(server.pid());
    let flood: Vec<Client> = (0..80).map(|_| Client::connect(server.addr())).collect();
    thread::sleep(Duration::from_secs(2));
    let cpu = cpu_ticks(server.pid()) - cpu_before;
    // Spinning on EMFILE would burn ~200 ticks in 2 s; an idle server burns almost none.
    assert!(cpu < 50, "{cpu} clock ticks in 2 s under the flood");
    drop(flood);
    let recovered = wait_until(Duration::from_secs(5), || {
        post_webhook(server.addr(), &unique_id("after_flood"), EXAMPLE).status == 200
    });
    assert!(recovered, "{}", server.log_text());
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn held_bodies_beyond_the_process_budget_answer_503_and_small_requests_still_pass() {
    // 40 clients each hold all but the last byte of a 1 MiB body: the 32 MiB budget
    // (limits::BUFFERED_BYTES_MAX) admits about 30 of them; the rest get 503 at once.
    const CLIENTS: usize = 40;
    const BODY: usize = 1 << 20;
    let server = start(&[
        ("MAX_BODY_BYTES", "1048576"),
        ("REQUEST_TIMEOUT_SECS", "30"),
    ]);
    let head = format!(
        "POST /webhook HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {BODY}\r\n\r\n"
    );
    let partial = vec![b' '; BODY - 1];
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(head.as_bytes()).unwrap();
            // The server may answer 503 and close before taking every byte.
            let _ = client.send(&partial);
            client
        })
        .collect();
    let refused = clients
        .iter_mut()
        .filter_map(|client| client.response_within(Duration::from_millis(200)))
        .inspect(|answer| assert_error(answer, 503, "unavailable", "close"))
        .count();
    assert!(
        (1..CLIENTS).contains(&refused),
        "{refused} of {CLIENTS} refused"
    );
    let resident = resident_kib(server.pid());
    assert!(resident < 60 * 1024, "VmRSS {resident} KiB");
    // A normal request needs no room beyond its connection's idle buffer.
    assert_served(&server);
    clients.clear();
}
