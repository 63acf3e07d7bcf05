//! Scale-out: several hooksink instances on one PostgreSQL. Migrations race safely and the
//! database decides duplicates, so an id posted to every instance is stored once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::panic;
use std::sync::{Barrier, mpsc};
use std::thread;

use crate::support::{Load, Server, db, event_ids, fresh_database, unique_id};

#[test]
fn two_instances_store_each_id_once_and_commit_every_200() {
    let url = fresh_database();
    // Both start on an empty database at once: the migration lock must serialise them. Each
    // server stays owned by the thread that started it, because the harness ties a server's
    // life to that thread (PR_SET_PDEATHSIG).
    let (addresses, done) = (mpsc::channel(), Barrier::new(3));
    thread::scope(|scope| {
        for _ in 0..2 {
            let (started, done, url) = (addresses.0.clone(), &done, &url);
            scope.spawn(move || {
                let server = Server::start(url, &[]);
                started.send(server.addr()).unwrap();
                done.wait();
            });
        }
        let first = addresses.1.recv().unwrap();
        let second = addresses.1.recv().unwrap();
        // Release the servers' threads even when an assertion fails, or the scope never ends.
        let checked = panic::catch_unwind(|| exchange(&url, first, second));
        done.wait();
        if let Err(failure) = checked {
            panic::resume_unwind(failure);
        }
    });
}

fn exchange(url: &str, first: SocketAddr, second: SocketAddr) {
    let prefix = unique_id("scale");
    let ids: Vec<String> = (0..100).map(|i| format!("{prefix}_{i}")).collect();
    let loads = [first, second].map(|addr| Load::each(addr, &ids, 25));
    let answers: Vec<(String, u16, String)> = loads
        .into_iter()
        .flat_map(Load::finish)
        .map(|answer| {
            let status = answer.json()["status"].as_str().unwrap().to_owned();
            (answer.id, answer.status, status)
        })
        .collect();
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for (id, status, outcome) in &answers {
        assert_eq!(*status, 200, "{id}");
        if outcome == "accepted" {
            *accepted.entry(id).or_default() += 1;
        } else {
            assert_eq!(outcome, "duplicate");
        }
    }
    assert_eq!(answers.len(), 200);
    assert!(
        accepted.values().all(|&n| n == 1),
        "an id was accepted by both instances"
    );
    assert_eq!(
        accepted.len(),
        100,
        "every id is accepted by exactly one instance"
    );
    let stored: HashSet<String> = event_ids(&mut db(url)).into_iter().collect();
    let expected: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(stored, expected);
    let migrations: i64 = db(url)
        .query_one("SELECT count(*) FROM hooksink_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        migrations,
        i64::try_from(crate::support::migration_count()).unwrap(),
        "each migration is applied exactly once"
    );
}
