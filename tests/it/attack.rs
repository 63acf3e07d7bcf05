//! What the hostile-input tests (`framing`, `keep_alive`, `timeouts`, `caps`, `json_abuse`)
//! share: the contract's limits, a bystander that must still be served, and checks of an error
//! answer and of a closed connection.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Client, EXAMPLE, Response, Server, closing, fresh_database, now, signed_request, unique_id,
};

/// The contract's default body limit.
pub const BODY_LIMIT: usize = 65_536;
/// How long a server gets to close a connection it has answered with `connection: close`.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Latency normal requests must keep while other connections attack the server.
pub const SERVED_LATENCY_MAX: Duration = Duration::from_secs(1);
/// Pause between the normal requests sent during an attack.
pub const BYSTANDER_PAUSE: Duration = Duration::from_millis(100);

/// A server on a database of its own.
pub fn start(extra_env: &[(&str, &str)]) -> Server {
    Server::start(&fresh_database(), extra_env)
}

/// A normal signed POST on a new connection is stored; returns how long it took.
#[track_caller]
pub fn assert_served(server: &Server) -> Duration {
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
pub fn bystanders(server: &Server, count: usize, attacked: impl Fn() -> bool) -> Duration {
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
pub fn assert_error(response: &Response, status: u16, code: &str, connection: &str) {
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
pub fn answer_then_close(server: &Server, bytes: &[u8]) -> Response {
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
pub fn server_alive(server: &Server) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()));
    status.is_ok_and(|stat| !stat.contains(") Z "))
}

/// The head of `request`, without its body.
pub fn head_of(request: &[u8]) -> &[u8] {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &request[..end + 4]
}
