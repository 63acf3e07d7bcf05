//! Slow and silent clients against the real binary: the request deadline (head and body from
//! the first byte) and the idle timeout close them while everyone else is served at normal speed.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attack::{
    CLOSE_WAIT, SERVED_LATENCY_MAX, assert_error, assert_served, bystanders, head_of, start,
};
use crate::support::{
    Client, EXAMPLE, Response, closing, metric, now, request, signed_request, unique_id,
};

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

/// Hundreds of deadlines expiring together (silent new connections and half-sent heads) are
/// all enforced in the same second, while a kept-alive connection with a later deadline stays
/// open and usable and new requests are served meanwhile.
#[test]
fn many_deadlines_expiring_at_once_close_every_one_and_spare_the_rest() {
    const SILENT: usize = 200;
    const HALF_SENT: usize = 50;
    let server = start(&[("REQUEST_TIMEOUT_SECS", "2"), ("IDLE_TIMEOUT_SECS", "60")]);
    let mut kept = Client::connect(server.addr());
    kept.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(kept.response().unwrap().status, 200);
    let started = Instant::now();
    let mut silent: Vec<_> = (0..SILENT)
        .map(|_| Client::connect(server.addr()))
        .collect();
    let head = closing(&signed_request(&unique_id("half"), now(), EXAMPLE));
    let mut half_sent: Vec<_> = (0..HALF_SENT)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(&head[..20]).unwrap();
            client
        })
        .collect();
    let opened = started.elapsed();
    assert!(opened < Duration::from_secs(1), "opening took {opened:?}");
    thread::sleep(Duration::from_millis(1500) - opened);
    assert_served(&server);
    for client in &mut half_sent {
        let answer = client
            .response_within(Duration::from_secs(3))
            .expect("no 408");
        assert_error(&answer, 408, "request_timeout", "close");
        assert!(client.closed_within(CLOSE_WAIT), "open after the 408");
    }
    for client in &mut silent {
        assert!(client.closed_within(Duration::from_secs(3)), "still open");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "all closed after {took:?}");
    kept.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(kept.response().unwrap().status, 200);
    assert_served(&server);
}

/// A client that pipelines requests and never reads its answers: once the answers fill the
/// sockets' buffers, the server's write waits at most `WRITE_TIMEOUT`, then the
/// connection is closed and its slot freed, while everyone else is served meanwhile.
#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout() {
    use hooksink::limits::WRITE_TIMEOUT;
    use std::io::Write;
    /// Pipelined requests per write; each answer is a few KiB of metrics.
    const BATCH: usize = 64;
    const STALL_WITHIN: Duration = Duration::from_secs(60);
    /// The server's write may have waited a little before the client's stalled.
    const CLOSE_SLACK: Duration = Duration::from_secs(3);
    let server = start(&[]);
    let open = || metric(&server, "hooksink_open_connections");
    let alone = open();
    let mut greedy = std::net::TcpStream::connect(server.addr()).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let batch = request("GET", "/metrics", &[], b"").repeat(BATCH);
    let started = Instant::now();
    // The server stops reading requests while its write waits, so the client's writes stall.
    while greedy.write_all(&batch).is_ok() {
        assert!(started.elapsed() < STALL_WITHIN, "the server kept reading");
    }
    let stalled = Instant::now();
    assert_eq!(open(), alone + 1.0, "the stalled connection is not open");
    let took = bystanders(&server, 5, || {
        open() > alone && stalled.elapsed() < WRITE_TIMEOUT + CLOSE_SLACK
    });
    assert!(took < SERVED_LATENCY_MAX, "normal requests took {took:?}");
    assert_eq!(
        open(),
        alone,
        "open {:?} after the stall",
        stalled.elapsed()
    );
    assert_eq!(metric(&server, "hooksink_buffered_bytes"), 0.0);
}
