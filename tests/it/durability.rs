//! Nothing lost, nothing faked, under load: every id answered 200 is in the table whatever
//! happens to hooksink or PostgreSQL, and the writers' group commit answers each event of a
//! batch individually.

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    self, EXAMPLE, Load, Outcome, Server, db, event_ids, fresh_database, get, post_webhook,
    private_database, row, unique_id, wait_until,
};

/// Asserts that every 200 `accepted` of `outcomes` is stored, and returns how many there were.
#[track_caller]
fn assert_every_200_stored(url: &str, outcomes: &[Outcome]) -> usize {
    let stored: HashSet<String> = event_ids(&mut db(url)).into_iter().collect();
    let mut accepted = 0;
    for outcome in outcomes {
        if outcome.status == 200 {
            assert!(outcome.body.contains("\"accepted\""), "{}", outcome.body);
            assert!(
                stored.contains(&outcome.id),
                "{} answered 200 but is not stored",
                outcome.id
            );
            accepted += 1;
        }
    }
    accepted
}

/// Asserts that each of `outcomes` got 200 or no answer at all (status 0), nothing else.
#[track_caller]
fn assert_200_or_no_answer(outcomes: &[Outcome]) {
    for outcome in outcomes {
        assert!(
            matches!(outcome.status, 0 | 200),
            "{} got {}",
            outcome.id,
            outcome.status
        );
    }
}

fn count(outcomes: &[Outcome], status: u16) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

#[test]
fn kill_9_under_load_loses_no_event_answered_200() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let load = Load::until_stopped(server.addr(), &unique_id("kill9"), 8);
    thread::sleep(Duration::from_millis(1500));
    server.stop_with(libc::SIGKILL);
    thread::sleep(Duration::from_millis(300));
    let outcomes = load.stop();
    let accepted = assert_every_200_stored(&url, &outcomes);
    assert!(accepted > 0, "no request succeeded before the kill");
    assert_200_or_no_answer(&outcomes);
    // Restarted on the same database, it serves again and the ids seen before stay put.
    let restarted = Server::start(&url, &[]);
    let id = unique_id("after_kill");
    assert_eq!(post_webhook(restarted.addr(), &id, EXAMPLE).status, 200);
    eprintln!("kill -9: {accepted} accepted before the kill, all stored");
}

#[test]
fn sigterm_under_load_finishes_in_flight_requests_and_exits_zero() {
    let url = fresh_database();
    let mut server = Server::start(&url, &[]);
    let load = Load::until_stopped(server.addr(), &unique_id("term"), 8);
    thread::sleep(Duration::from_millis(1000));
    let signalled = Instant::now();
    server.stop_with(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(15));
    let took = signalled.elapsed();
    let outcomes = load.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}",
        server.log_text()
    );
    assert!(took < Duration::from_secs(11), "exit took {took:?}");
    let accepted = assert_every_200_stored(&url, &outcomes);
    assert!(accepted > 0);
    assert_200_or_no_answer(&outcomes);
}

#[test]
fn database_stopped_under_load_answers_503_quickly_and_recovers_within_5_s() {
    let (mut cluster, url) = private_database();
    let server = Server::start(&url, &[("DB_WRITERS", "2")]);
    let addr = server.addr();
    let load = Load::until_stopped(addr, &unique_id("dbdown"), 6);
    thread::sleep(Duration::from_millis(800));
    cluster.stop().unwrap();
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let probe = post_webhook(addr, &unique_id("probe_down"), EXAMPLE);
    assert_eq!(probe.status, 503, "{probe:?}");
    assert_eq!(probe.header("retry-after"), Some("5"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(get(addr, "/readyz").status, 503);
    cluster.restart().unwrap();
    let back = Instant::now();
    let recovered = wait_until(Duration::from_secs(5), || {
        post_webhook(addr, &unique_id("probe_up"), EXAMPLE).status == 200
    });
    assert!(recovered, "no 200 within 5 s of the database coming back");
    eprintln!(
        "recovered {:?} after the database came back",
        back.elapsed()
    );
    thread::sleep(Duration::from_millis(500));
    let outcomes = load.stop();
    assert_eq!(get(addr, "/readyz").status, 200);
    let accepted = assert_every_200_stored(&url, &outcomes);
    let refused = count(&outcomes, 503);
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
    assert_eq!(
        accepted + refused,
        outcomes.len(),
        "only 200 and 503 are expected"
    );
}

#[test]
fn slow_database_answers_503_after_a_bounded_wait() {
    let url = fresh_database();
    let server = Server::start(&url, &[]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    let mut locker = db(&url);
    let transaction = lock_events_table(&mut locker);
    let ids: Vec<String> = (0..20).map(|_| unique_id("slow")).collect();
    let answers = Load::each(addr, &ids, 1).finish();
    transaction.rollback().unwrap();
    for answer in &answers {
        assert_eq!(answer.status, 503);
        // COMMIT_WAIT_TIMEOUT is 5 s; allow scheduling slack on a loaded machine.
        assert!(
            answer.took < Duration::from_secs(8),
            "503 took {:?}",
            answer.took
        );
    }
    // The writer gets the lock back and serves again.
    let recovered = wait_until(Duration::from_secs(15), || {
        post_webhook(addr, &unique_id("unlocked"), EXAMPLE).status == 200
    });
    assert!(recovered, "{}", server.log_text());
}

#[test]
fn one_batch_answers_in_batch_duplicates_individually() {
    let url = fresh_database();
    let server = Server::start(&url, &[("DB_WRITERS", "1")]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    let prefix = unique_id("batch");
    let ids: Vec<String> = (0..30)
        .flat_map(|i| [format!("{prefix}_{i}"), format!("{prefix}_{i}")])
        .collect();
    let outcomes = post_held_back(&url, addr, &ids);
    let mut accepted = HashSet::new();
    let mut duplicates = 0;
    for Outcome {
        id, status, body, ..
    } in &outcomes
    {
        assert_eq!(*status, 200, "{id}: {body}");
        if body.contains("\"accepted\"") {
            assert!(accepted.insert(id.clone()), "{id} accepted twice");
        } else {
            assert!(body.contains("\"duplicate\""), "{body}");
            duplicates += 1;
        }
    }
    assert_eq!((accepted.len(), duplicates), (30, 30));
    let stored: HashSet<String> = event_ids(&mut db(&url))
        .into_iter()
        .filter(|id| id.starts_with(&prefix))
        .collect();
    assert_eq!(stored, accepted);
    let metrics = get(addr, "/metrics").body;
    let batch_sum = metric(&metrics, "hooksink_batch_events_sum");
    let batch_count = metric(&metrics, "hooksink_batch_events_count");
    assert!(
        batch_sum > batch_count,
        "no batch held more than one event:\n{metrics}"
    );
}

#[test]
fn a_batch_that_meets_a_stored_id_is_sent_again_and_answers_each_event() {
    let url = fresh_database();
    let server = Server::start(&url, &[("DB_WRITERS", "1")]);
    let addr = server.addr();
    let resent = || support::metric(&server, "hooksink_batches_resent_total");
    let stored = unique_id("stored");
    assert_eq!(
        post_webhook(addr, &stored, EXAMPLE).json()["status"],
        "accepted"
    );
    assert_eq!(resent(), 0.0, "a new event is stored by the first INSERT");
    // The stored id among new ones.
    let prefix = unique_id("mixed");
    let mut ids: Vec<String> = (0..5).map(|i| format!("{prefix}_{i}")).collect();
    ids.insert(2, stored.clone());
    for Outcome {
        id, status, body, ..
    } in &post_held_back(&url, addr, &ids)
    {
        assert_eq!(*status, 200, "{id}: {body}");
        let expected = if *id == stored {
            "duplicate"
        } else {
            "accepted"
        };
        assert!(body.contains(&format!("\"{expected}\"")), "{id}: {body}");
    }
    let mut client = db(&url);
    for id in &ids {
        assert!(row(&mut client, id).is_some(), "{id} is not stored");
    }
    // Whichever batch held the stored id went twice, and only that one: a batch after it asks
    // which ids are new from the start.
    assert_eq!(resent(), 1.0);
    // One event a batch from here on. Which of the held-back batches came last is up to the
    // scheduler, so a new event first: a batch without duplicates sends the next one to the
    // plain INSERT, and a redelivery then goes twice.
    let post = |id: &str| post_webhook(addr, id, EXAMPLE).json()["status"].clone();
    assert_eq!(post(&unique_id("new")), "accepted");
    assert_eq!(resent(), 1.0, "a new event is stored by the first INSERT");
    assert_eq!(post(&stored), "duplicate");
    assert_eq!(resent(), 2.0);
    assert_eq!(post(&stored), "duplicate");
    assert_eq!(resent(), 2.0, "the batch before met a duplicate");
    assert_eq!(post(&unique_id("new")), "accepted");
    assert_eq!(post(&stored), "duplicate");
    assert_eq!(resent(), 3.0);
}

#[test]
fn a_batch_inserts_its_rows_in_id_order() {
    let url = fresh_database();
    let server = Server::start(&url, &[("DB_WRITERS", "1")]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    // Ids whose order differs from the order they are posted in.
    let prefix = unique_id("order");
    let ids: Vec<String> = [7, 3, 12, 0, 9, 14, 1, 5, 11, 2, 15, 8, 4, 13, 6, 10]
        .iter()
        .map(|i| format!("{prefix}_{i:02}"))
        .collect();
    let outcomes = post_held_back(&url, addr, &ids);
    assert!(outcomes.iter().all(|outcome| outcome.status == 200));
    // The heap's order is the order of insertion. The first request may have made a batch of
    // its own before the others queued behind the lock: at most two batches, each sorted.
    let inserted: Vec<String> = db(&url)
        .query(
            "SELECT event_id FROM webhook_events WHERE starts_with(event_id, $1) ORDER BY ctid",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(inserted.len(), ids.len());
    let descents = inserted.windows(2).filter(|pair| pair[0] > pair[1]).count();
    assert!(descents <= 1, "not in id order per batch: {inserted:?}");
}

#[test]
fn a_trigger_that_skips_rows_costs_one_503_then_each_id_is_asked_for() {
    let url = fresh_database();
    let server = Server::start(&url, &[("DB_WRITERS", "1")]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    db(&url)
        .batch_execute(
            "CREATE FUNCTION drop_tests() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.event_id LIKE 'dropped%' THEN RETURN NULL; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER drop_tests BEFORE INSERT ON webhook_events \
             FOR EACH ROW EXECUTE FUNCTION drop_tests()",
        )
        .unwrap();
    let dropped = unique_id("dropped");
    let answer = post_webhook(addr, &dropped, EXAMPLE);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("5"));
    // The log is read from the server's stderr by a thread of the harness: give it a moment.
    let warned = wait_until(Duration::from_secs(5), || {
        server
            .log_text()
            .contains("an INSERT of 1 new events stored 0 rows")
    });
    assert!(warned, "{}", server.log_text());
    // The writer now asks which ids were stored, for every batch: new events are accepted
    // without a second round trip.
    let kept = unique_id("kept");
    assert_eq!(
        post_webhook(addr, &kept, EXAMPLE).json()["status"],
        "accepted"
    );
    let mut client = db(&url);
    assert!(row(&mut client, &kept).is_some());
    assert!(row(&mut client, &dropped).is_none());
    assert_eq!(
        support::metric(&server, "hooksink_batches_resent_total"),
        0.0
    );
}

#[test]
fn database_stopped_mid_batch_answers_503_never_200_and_the_writer_recovers() {
    let (mut cluster, url) = private_database();
    let server = Server::start(&url, &[("DB_WRITERS", "1")]);
    let addr = server.addr();
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    let mut locker = db(&url);
    let transaction = lock_events_table(&mut locker);
    let prefix = unique_id("midbatch");
    let ids: Vec<String> = (0..10).map(|i| format!("{prefix}_{i}")).collect();
    let load = Load::each(addr, &ids, 1);
    thread::sleep(Duration::from_millis(700));
    // The writer is inside its INSERT, waiting for the lock: take the database away at
    // once. An immediate shutdown (SIGQUIT) lets nothing commit; a fast one would abort
    // the lock holder first and could let the waiting INSERT commit, a true 200.
    let postmaster = immediate_shutdown(&cluster);
    // Not `!cluster.is_running()`: the cluster restarts itself after a short back-off.
    let gone = || !Path::new(&format!("/proc/{postmaster}")).exists();
    assert!(wait_until(Duration::from_secs(10), gone));
    let answers = load.finish();
    drop(transaction);
    for Outcome {
        id, status, body, ..
    } in &answers
    {
        assert_eq!(*status, 503, "{id}: {body}\n{}", server.log_text());
    }
    cluster.restart().unwrap();
    let recovered = wait_until(Duration::from_secs(10), || {
        post_webhook(addr, &unique_id("after"), EXAMPLE).status == 200
    });
    assert!(recovered, "{}", server.log_text());
    let stored: HashSet<String> = event_ids(&mut db(&url)).into_iter().collect();
    for Outcome { id, .. } in &answers {
        assert!(!stored.contains(id), "{id} was answered 503 but stored");
    }
}

/// Sends SIGQUIT to the cluster's postmaster: PostgreSQL's immediate shutdown. Returns its pid.
fn immediate_shutdown(cluster: &hooksink::localdb::LocalPostgres) -> i32 {
    let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    let pid: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGQUIT) }, 0);
    pid
}

/// Posts `ids` (a client each) while the table is locked, then unlocks it: the requests queue
/// behind the writer's first batch and go in one or two batches. Returns their outcomes.
fn post_held_back(url: &str, addr: std::net::SocketAddr, ids: &[String]) -> Vec<Outcome> {
    let mut locker = db(url);
    let transaction = lock_events_table(&mut locker);
    let load = Load::each(addr, ids, 1);
    thread::sleep(Duration::from_millis(1000));
    transaction.rollback().unwrap();
    load.finish()
}

/// Holds an exclusive lock on `webhook_events` until the transaction ends, so writers wait.
fn lock_events_table(client: &mut postgres::Client) -> postgres::Transaction<'_> {
    let mut transaction = client.transaction().unwrap();
    transaction
        .batch_execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    transaction
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing"))
}
