//! Connection memory against the real binary: an idle keep-alive connection holds no buffer,
//! a quiet one parks without a coroutine and serves again when it speaks, and the buffers of a
//! burst of large slow bodies are all given back once it closes.

use std::time::Duration;

use hooksink::limits::{CONNECTION_BUFFER_IDLE, IDLE_PARK_AFTER};
use serde_json::json;

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

/// Quiet keep-alive connections park (`hooksink_parked_connections`), answer their next
/// request like any other (a stored event, a duplicate, a health check), park again, and leave
/// the table when their clients close.
#[test]
fn quiet_keep_alive_connections_park_and_serve_again() {
    const QUIET: usize = 12;
    let server = start(&[]);
    let parked = |count: usize| {
        wait_until(IDLE_PARK_AFTER + FREE_WAIT, || {
            metric(&server, "hooksink_parked_connections") == count as f64
        })
    };
    let mut ids = Vec::new();
    let mut clients: Vec<Client> = (0..QUIET)
        .map(|index| {
            let mut client = Client::connect(server.addr());
            // A third are new and silent, a third served a health check, a third an event.
            match index % 3 {
                0 => {}
                1 => {
                    client.send(&request("GET", "/healthz", &[], b"")).unwrap();
                    assert_eq!(client.response().expect("no answer").status, 200);
                }
                _ => {
                    let id = unique_id("parked");
                    client.send(&signed_request(&id, now(), EXAMPLE)).unwrap();
                    let answer = client.response().expect("no answer");
                    assert_eq!(answer.json(), json!({"status": "accepted", "id": id}));
                    ids.push(id);
                }
            }
            client
        })
        .collect();
    assert!(
        parked(QUIET),
        "parked: {}",
        metric(&server, "hooksink_parked_connections")
    );
    // Each event connection sends its own event again; the others send a new one.
    let mut repeated = ids.iter();
    for (index, client) in clients.iter_mut().enumerate() {
        let again = if index % 3 == 2 {
            repeated.next()
        } else {
            None
        };
        let (bytes, expected) = match again {
            Some(id) => (
                signed_request(id, now(), EXAMPLE),
                json!({"status": "duplicate", "id": id}),
            ),
            None => {
                let id = unique_id("resumed");
                let expected = json!({"status": "accepted", "id": id});
                (signed_request(&id, now(), EXAMPLE), expected)
            }
        };
        client.send(&bytes).unwrap();
        let answer = client.response().expect("no answer after parking");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert_eq!(answer.json(), expected);
    }
    assert!(parked(QUIET), "not parked again");
    drop(clients);
    assert!(parked(0), "closed connections stay parked");
    assert!(wait_until(FREE_WAIT, || metric(
        &server,
        "hooksink_open_connections"
    ) == 1.0));
    assert_served(&server);
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

/// The server runs with glibc's tunables of `hooksink::tunables` (per-thread cache and
/// thread-stack cache off, one arena): it started itself again with them, keeping its pid.
#[test]
fn the_server_runs_with_its_glibc_tunables() {
    let server = start(&[]);
    assert_served(&server);
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    // glibc's start-up writes a NUL after each tunable it read into the original environment
    // block, which is what /proc shows: the entries after the first follow as "variables".
    let mut entries = environ
        .split('\0')
        .skip_while(|entry| !entry.starts_with("GLIBC_TUNABLES="));
    let first = entries
        .next()
        .and_then(|entry| entry.strip_prefix("GLIBC_TUNABLES="));
    let rest = entries.take_while(|entry| entry.starts_with("glibc."));
    let value: Vec<&str> = first.into_iter().chain(rest).collect();
    assert_eq!(value.join(":"), hooksink::tunables::ADDITIONS.join(":"));
    // Started again through /proc/self/exe, it still goes by its binary's name (ps, pkill).
    let name = std::fs::read_to_string(format!("/proc/{}/comm", server.pid())).unwrap();
    assert_eq!(name.trim_end(), "hooksink");
}
