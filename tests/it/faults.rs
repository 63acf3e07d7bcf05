//! Faults the contract promises to survive: the database going away and coming back while
//! hooksink keeps running, and many concurrent requests with redeliveries mixed in.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    EXAMPLE, Load, Server, db, event_ids, fresh_database, get, post_webhook, private_database, row,
    unique_id, wait_until,
};

#[test]
fn database_stopped_answers_503_then_200_again_without_restarting_hooksink() {
    let (mut cluster, url) = private_database();
    let server = Server::start(&url, &[]);
    let addr = server.addr();
    let before = unique_id("before");
    assert_eq!(post_webhook(addr, &before, EXAMPLE).status, 200);

    cluster.stop().unwrap();
    let refused: Vec<String> = (0..3).map(|_| unique_id("during")).collect();
    for id in &refused {
        let started = Instant::now();
        let answer = post_webhook(addr, id, EXAMPLE);
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.header("retry-after"), Some("5"), "{answer:?}");
        assert_eq!(answer.json(), json!({"error": "unavailable"}));
        assert!(took < Duration::from_secs(6), "503 took {took:?}");
    }
    assert_eq!(get(addr, "/readyz").status, 503);

    cluster.restart().unwrap();
    let restarted = Instant::now();
    let mut after = String::new();
    let recovered = wait_until(Duration::from_secs(10), || {
        after = unique_id("after");
        post_webhook(addr, &after, EXAMPLE).status == 200
    });
    assert!(recovered, "no 200 within 10 s of the database coming back");
    eprintln!("recovered {:?} after the restart", restarted.elapsed());
    assert_eq!(get(addr, "/readyz").status, 200);

    let mut client = db(&url);
    assert!(row(&mut client, &before).is_some());
    assert!(row(&mut client, &after).is_some());
    for id in &refused {
        assert!(
            row(&mut client, id).is_none(),
            "{id} was answered 503 but stored"
        );
        // The provider retries what was refused; now it is stored.
        let retry = post_webhook(addr, id, EXAMPLE);
        assert_eq!(retry.json(), json!({"status": "accepted", "id": id}));
    }
}

#[test]
fn readyz_names_an_unreachable_database_and_recovers_without_traffic() {
    let (mut cluster, url) = private_database();
    let server = Server::start(&url, &[]);
    let addr = server.addr();
    let ready = get(addr, "/readyz");
    assert_eq!((ready.status, ready.json()), (200, json!({"status": "ok"})));

    cluster.stop().unwrap();
    let refused = json!({
        "error": "unavailable",
        "reason": "database_unreachable",
        "message": format!("connection refused (127.0.0.1:{})", cluster.port()),
    });
    // The first probe may find the old connection broken (`write_failed`); the next one's
    // reconnect is refused.
    let mut last = None;
    let named = wait_until(Duration::from_secs(5), || {
        let answer = get(addr, "/readyz");
        let done = answer.status == 503 && answer.json() == refused;
        last = Some(answer);
        done
    });
    let last = last.unwrap();
    assert!(named, "{last:?}");
    assert_eq!(last.header("retry-after"), Some("5"), "{last:?}");
    assert_eq!(get(addr, "/readyz").json(), refused, "it stays named");
    assert_eq!(get(addr, "/healthz").status, 200);

    cluster.restart().unwrap();
    // No event is sent: the probes alone bring readiness back.
    let mut last = None;
    let ready = wait_until(Duration::from_secs(10), || {
        let answer = get(addr, "/readyz");
        let done = answer.status == 200;
        last = Some(answer);
        done
    });
    let last = last.unwrap();
    assert!(ready, "{last:?}\n{}", server.log_text());
    assert_eq!(last.json(), json!({"status": "ok"}));
}

#[test]
fn concurrent_requests_with_duplicates_store_each_accepted_id_once() {
    const THREADS: usize = 50;
    const PER_THREAD: usize = 10;
    const DISTINCT: usize = 400;
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let addr = server.addr();

    // 400 distinct ids plus 100 redeliveries of some of them (20% of 500), in a fixed shuffle
    // so that redeliveries of one id often run at the same time on different threads.
    let prefix = unique_id("conc");
    let mut ids: Vec<String> = (0..DISTINCT).map(|i| format!("{prefix}_{i}")).collect();
    ids.extend((0..THREADS * PER_THREAD - DISTINCT).map(|i| format!("{prefix}_{}", i * 4)));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..ids.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let j = usize::try_from(state >> 33).unwrap() % (i + 1);
        ids.swap(i, j);
    }

    let answers: Vec<(String, u16, String)> = Load::each(addr, &ids, PER_THREAD)
        .finish()
        .into_iter()
        .map(|answer| {
            let status = answer.json()["status"].as_str().unwrap_or("").to_owned();
            assert_eq!(answer.json()["id"], json!(answer.id), "{answer:?}");
            (answer.id, answer.status, status)
        })
        .collect();

    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} answers were not 200: {failed:?}",
        failed.len()
    );
    let accepted: Vec<&str> = answers
        .iter()
        .filter(|(_, _, s)| s == "accepted")
        .map(|(id, _, _)| id.as_str())
        .collect();
    let duplicates: Vec<&str> = answers
        .iter()
        .filter(|(_, _, s)| s == "duplicate")
        .map(|(id, _, _)| id.as_str())
        .collect();
    eprintln!(
        "{} accepted, {} duplicate",
        accepted.len(),
        duplicates.len()
    );
    assert_eq!(accepted.len() + duplicates.len(), THREADS * PER_THREAD);

    let accepted_set: HashSet<&str> = accepted.iter().copied().collect();
    assert_eq!(
        accepted_set.len(),
        accepted.len(),
        "an id was accepted twice"
    );
    let stored = event_ids(&mut db(&url));
    let stored_set: HashSet<&str> = stored.iter().map(String::as_str).collect();
    assert_eq!(stored_set.len(), stored.len());
    assert_eq!(
        stored_set, accepted_set,
        "the table must hold exactly the accepted ids"
    );
    for id in &duplicates {
        assert!(
            stored_set.contains(id),
            "{id} answered duplicate but is not stored"
        );
    }
    assert_eq!(accepted.len(), DISTINCT);
}

#[test]
fn sigterm_exits_zero_within_ten_seconds() {
    let url = fresh_database();
    let mut server = Server::start(&url, &[]);
    let id = unique_id("term");
    assert_eq!(post_webhook(server.addr(), &id, EXAMPLE).status, 200);
    server.stop_with(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    let pid = server.pid();
    assert!(
        status.is_some_and(|s| s.success()),
        "hooksink (pid {pid}) after SIGTERM: {status:?}\n{}",
        server.log_text()
    );
    assert!(row(&mut db(&url), &id).is_some());
}
