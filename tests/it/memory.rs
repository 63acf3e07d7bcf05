//! Connection memory against the real binary: an idle keep-alive connection holds no buffer,
//! and the buffers of a burst of large slow bodies are all given back once it closes.

use std::time::Duration;

use hooksink::limits::CONNECTION_BUFFER_IDLE;

use crate::attack::{assert_served, start};
use crate::support::{
    Client, EXAMPLE, metric, now, request, signed_request, unique_id, wait_until,
};

/// What `GET /metrics` reports when no other request is being read or answered: its own
/// request's buffer, and nothing held against the request-byte budget.
const IDLE_BUFFER_BYTES: f64 = CONNECTION_BUFFER_IDLE as f64;
/// Time the server gets to free a buffer after its answer was sent or its client left.
const FREE_WAIT: Duration = Duration::from_secs(5);

#[test]
fn idle_keep_alive_connections_hold_no_buffer() {
    const IDLE: usize = 20;
    let server = start(&[]);
    let mut clients: Vec<Client> = (0..IDLE)
        .map(|index| {
            let mut client = Client::connect(server.addr());
            // Half were served a health check, half a stored event (its buffer went to the
            // writer and came back).
            let bytes = if index % 2 == 0 {
                request("GET", "/healthz", &[], b"")
            } else {
                signed_request(&unique_id("idle"), now(), EXAMPLE)
            };
            client.send(&bytes).unwrap();
            let answer = client.response().expect("no answer");
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.header("connection"), Some("keep-alive"));
            client
        })
        .collect();
    let idle = wait_until(FREE_WAIT, || {
        metric(&server, "hooksink_connection_buffer_bytes") == IDLE_BUFFER_BYTES
    });
    assert!(
        idle,
        "buffer bytes stay at {}",
        metric(&server, "hooksink_connection_buffer_bytes")
    );
    assert_eq!(metric(&server, "hooksink_buffered_bytes"), 0.0);
    // They are still open (plus the metrics request's own connection; the one before it may
    // still be closing) and still serve.
    let open = (IDLE + 1) as f64;
    assert!(wait_until(FREE_WAIT, || metric(
        &server,
        "hooksink_open_connections"
    ) == open));
    for client in &mut clients {
        client.send(&request("GET", "/healthz", &[], b"")).unwrap();
        assert_eq!(client.response().expect("no answer").status, 200);
    }
}

#[test]
fn a_burst_of_held_bodies_gives_every_buffer_back() {
    const CLIENTS: usize = 40;
    const LENGTH: usize = 65_000;
    const SENT: usize = 60_000;
    let server = start(&[("REQUEST_TIMEOUT_SECS", "30")]);
    let head = format!(
        "POST /webhook HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {LENGTH}\r\n\r\n"
    );
    let part = vec![b' '; SENT];
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.send(head.as_bytes()).unwrap();
            client.send(&part).unwrap();
            client
        })
        .collect();
    // 40 × 60 KB fit the 32 MiB budget: every body is held, beyond its first 4 KiB.
    let held = (CLIENTS * SENT) as f64;
    let all_held = wait_until(FREE_WAIT, || {
        metric(&server, "hooksink_connection_buffer_bytes") >= held
    });
    assert!(
        all_held,
        "buffer bytes {}",
        metric(&server, "hooksink_connection_buffer_bytes")
    );
    assert!(
        metric(&server, "hooksink_buffered_bytes")
            >= held - (CLIENTS * CONNECTION_BUFFER_IDLE) as f64
    );
    drop(clients);
    let freed = wait_until(FREE_WAIT, || {
        metric(&server, "hooksink_connection_buffer_bytes") == IDLE_BUFFER_BYTES
            && metric(&server, "hooksink_buffered_bytes") == 0.0
    });
    assert!(
        freed,
        "buffer bytes {}, buffered bytes {}",
        metric(&server, "hooksink_connection_buffer_bytes"),
        metric(&server, "hooksink_buffered_bytes")
    );
    assert_served(&server);
}

/// The server runs with glibc's per-thread cache off (`hooksink::tunables`): it started itself
/// again with the setting, keeping its pid.
#[test]
fn the_server_runs_with_the_malloc_thread_cache_off() {
    let server = start(&[]);
    assert_served(&server);
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    let variables: Vec<&[u8]> = environ.split(|byte| *byte == 0).collect();
    assert!(
        variables.contains(&b"GLIBC_TUNABLES=glibc.malloc.tcache_count=0".as_slice()),
        "the server's environment lacks the tunable"
    );
}
