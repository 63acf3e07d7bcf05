//! Connection floods and held bodies against the real binary: the connection cap, the file
//! descriptor reserve and the request-byte budget refuse the excess and keep serving the rest.

use std::thread;
use std::time::{Duration, Instant};

use crate::attack::{
    CLOSE_WAIT, SERVED_LATENCY_MAX, assert_error, assert_served, bystanders, start,
};
use crate::support::{
    Client, EXAMPLE, Server, closing, fresh_database, metric, now, request, resident_kib,
    send_raw_n, set_header, signed_request, unique_id, wait_until,
};

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
    // Until the server has seen every flood connection go, a new one is still over the cap
    // and closed without an answer: that is a try, not a failure.
    let recovered = wait_until(Duration::from_secs(5), || {
        let post = closing(&signed_request(&unique_id("after_flood"), now(), EXAMPLE));
        send_raw_n(server.addr(), &post, 1)
            .first()
            .is_some_and(|answer| answer.status == 200)
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
