//! Every event answered 200 survives the loss of the primary: hooksink on a multi-host URL in
//! front of a primary with a synchronous standby (`standby.rs`), through a failover, a lost
//! standby, and the retry of an event whose replication wait was cancelled.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::standby::{DATABASE, Pair};
use crate::support::{
    Client, EXAMPLE, Server, db, event_ids, get, now, post_webhook, signed_request, unique_id,
    wait_until,
};

/// hooksink's writer cancels a write after 4 s (`DB_WRITE_WAIT_MAX`) and a request answers
/// 503 by itself after 5 s (`COMMIT_WAIT_TIMEOUT`); this adds slack for a loaded machine.
const ANSWER_BOUND: Duration = Duration::from_secs(7);

/// What one request of a load run got; status 0 = no answer on the connection.
struct Outcome {
    id: String,
    status: u16,
    body: String,
    /// When the request was sent.
    sent: Instant,
}

/// Posts unique ids over `threads` keep-alive connections until `stop` is set.
fn load(addr: SocketAddr, prefix: &str, threads: usize, stop: &AtomicBool) -> Vec<Outcome> {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut outcomes = Vec::new();
                    let mut client = Client::connect(addr);
                    let mut n = 0;
                    while !stop.load(Ordering::Acquire) {
                        let id = format!("{prefix}_{t}_{n}");
                        n += 1;
                        let sent = Instant::now();
                        let answer = client
                            .send(&signed_request(&id, now(), EXAMPLE))
                            .ok()
                            .and_then(|()| client.response());
                        let (status, body) = match answer {
                            Some(response) => (response.status, response.body),
                            None => {
                                client = Client::connect(addr);
                                (0, String::new())
                            }
                        };
                        outcomes.push(Outcome {
                            id,
                            status,
                            body,
                            sent,
                        });
                    }
                    outcomes
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    })
}

#[test]
fn failover_under_load_keeps_every_event_answered_200() {
    let pair = Pair::start();
    let standby = &pair.standby;
    let server = Server::start(&pair.url(), &[("DB_WRITERS", "2")]);
    let addr = server.addr();
    let stop = AtomicBool::new(false);
    let (outcomes, killed) = thread::scope(|scope| {
        let loader = scope.spawn(|| load(addr, &unique_id("failover"), 6, &stop));
        thread::sleep(Duration::from_millis(1500));
        let killed = Instant::now();
        pair.kill_primary();
        thread::sleep(Duration::from_millis(500));
        standby.promote();
        // Load goes on until 200s have come back for a while, without restarting hooksink.
        let resumed = wait_until(Duration::from_secs(15), || {
            post_webhook(addr, &unique_id("probe"), EXAMPLE).status == 200
        });
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Release);
        let outcomes = loader.join().unwrap();
        assert!(resumed, "no 200 after the failover:\n{}", server.log_text());
        (outcomes, killed)
    });
    let stored: HashSet<String> = event_ids(&mut db(&standby.url(DATABASE)))
        .into_iter()
        .collect();
    let mut answered_200 = 0;
    for outcome in &outcomes {
        assert!(
            matches!(outcome.status, 200 | 503),
            "{} got {}: {}",
            outcome.id,
            outcome.status,
            outcome.body
        );
        if outcome.status == 200 {
            assert!(
                outcome.body.contains("\"accepted\"") || outcome.body.contains("\"duplicate\""),
                "{}",
                outcome.body
            );
            assert!(
                stored.contains(&outcome.id),
                "{} answered 200 but is not on the new primary",
                outcome.id
            );
            answered_200 += 1;
        }
    }
    let before = outcomes
        .iter()
        .filter(|o| o.status == 200 && o.sent < killed)
        .count();
    let first_200_after = outcomes
        .iter()
        .filter(|o| o.status == 200 && o.sent > killed)
        .map(|o| o.sent - killed)
        .min();
    let refused = outcomes.iter().filter(|o| o.status == 503).count();
    assert!(before > 0, "nothing was accepted before the kill");
    let Some(first_200_after) = first_200_after else {
        panic!("the load got no 200 after the kill:\n{}", server.log_text());
    };
    // The primary key makes "exactly once" a given; this shows the rows are the ones answered.
    let mut client = db(&standby.url(DATABASE));
    let rows: i64 = client
        .query_one("SELECT count(*) FROM webhook_events", &[])
        .unwrap()
        .get(0);
    assert!(usize::try_from(rows).unwrap() >= answered_200);
    let promoted = format!("at 127.0.0.1:{}", standby.port());
    assert!(
        server.log_text().contains(&promoted),
        "the log does not name the new primary:\n{}",
        server.log_text()
    );
    eprintln!(
        "failover: {answered_200} answered 200 ({before} before the kill), all on the new \
         primary; first request sent after the kill and answered 200 was sent {first_200_after:?} after it; {refused} answered 503"
    );
}

#[test]
fn standby_gone_answers_503_within_the_bound_and_recovers() {
    let mut pair = Pair::start();
    let server = Server::start(&pair.url(), &[("DB_WRITERS", "2")]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    pair.standby.stop();
    let prefix = unique_id("nostandby");
    // More requests than writers, twice over: none may wait for good.
    let answers: Vec<(String, u16, Duration)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let prefix = &prefix;
                scope.spawn(move || {
                    (0..2)
                        .map(|n| {
                            let id = format!("{prefix}_{t}_{n}");
                            let started = Instant::now();
                            let status = post_webhook(addr, &id, EXAMPLE).status;
                            (id, status, started.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for (id, status, took) in &answers {
        assert_eq!(*status, 503, "{id}");
        assert!(*took < ANSWER_BOUND, "{id}: 503 took {took:?}");
    }
    // The writers are not stuck: a new request and a probe are still answered in time.
    let started = Instant::now();
    assert_eq!(post_webhook(addr, &unique_id("still"), EXAMPLE).status, 503);
    get(addr, "/readyz");
    let took = started.elapsed();
    assert!(took < ANSWER_BOUND * 2, "took {took:?}");
    pair.standby.start();
    pair.wait_synchronous();
    let back = Instant::now();
    let recovered = wait_until(Duration::from_secs(15), || {
        post_webhook(addr, &unique_id("back"), EXAMPLE).status == 200
    });
    assert!(
        recovered,
        "no 200 after the standby returned:\n{}",
        server.log_text()
    );
    // The events answered 503 were committed on the primary alone; now their retries are
    // answered, and the rows are on the standby.
    for (id, _, _) in &answers {
        let retry = post_webhook(addr, id, EXAMPLE);
        assert_eq!(retry.status, 200, "{id}: {}", retry.body);
    }
    let mut standby = db(&pair.standby.url(DATABASE));
    assert!(wait_until(Duration::from_secs(5), || {
        answers.iter().all(|(id, _, _)| {
            standby
                .query_opt("SELECT 1 FROM webhook_events WHERE event_id = $1", &[id])
                .unwrap()
                .is_some()
        })
    }));
    assert!(
        server.log_text().contains("cancelling it"),
        "{}",
        server.log_text()
    );
    eprintln!(
        "standby gone: every request 503 within {ANSWER_BOUND:?}; 200 again {:?} after it returned",
        back.elapsed()
    );
}

#[test]
fn a_retry_after_a_cancelled_replication_wait_is_not_200_until_replicated() {
    let mut pair = Pair::start();
    let server = Server::start(&pair.url(), &[]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    pair.standby.stop();
    let id = unique_id("unreplicated");
    assert_eq!(post_webhook(addr, &id, EXAMPLE).status, 503);
    // The cancelled wait left the row committed on the primary only: the case to guard.
    let mut primary = db(&pair.primary.url(DATABASE));
    let on_primary = primary
        .query_opt("SELECT 1 FROM webhook_events WHERE event_id = $1", &[&id])
        .unwrap();
    assert!(on_primary.is_some(), "the row is not on the primary");
    // Before the fix this retry was answered 200 `duplicate` in 2 ms.
    let started = Instant::now();
    let retry = post_webhook(addr, &id, EXAMPLE);
    assert_eq!(retry.status, 503, "{}", retry.body);
    assert!(started.elapsed() < ANSWER_BOUND, "{:?}", started.elapsed());
    pair.standby.start();
    pair.wait_synchronous();
    let replicated = wait_until(Duration::from_secs(15), || {
        let retry = post_webhook(addr, &id, EXAMPLE);
        assert!(matches!(retry.status, 200 | 503), "{retry:?}");
        retry.status == 200 && retry.body.contains("\"duplicate\"")
    });
    assert!(replicated, "{}", server.log_text());
    let mut standby = db(&pair.standby.url(DATABASE));
    let on_standby = standby
        .query_opt("SELECT 1 FROM webhook_events WHERE event_id = $1", &[&id])
        .unwrap();
    assert!(on_standby.is_some(), "answered 200 but not on the standby");
}
