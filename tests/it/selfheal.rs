//! The private cluster heals itself: a postmaster killed behind our back (kill -9, the OOM
//! killer) is started again on the same port, and the server answers 503 meanwhile and 200
//! again afterwards without a restart of its own.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use hooksink::limits::RETRY_AFTER_SECS;
use hooksink::localdb::{RESTART_DELAY_MAX, RESTART_DELAY_MIN};

use crate::support::{
    EXAMPLE, Load, Server, db, post_webhook, postmaster_pid, private_cluster, scratch_dir,
    unique_id, wait_until,
};

/// After the kill, the server must answer 200 again within this time.
const RECOVERY_MAX: Duration = Duration::from_secs(15);

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// The private cluster's folder for a server started in `cwd`.
fn private_data_dir(cwd: &Path) -> PathBuf {
    cwd.join(".hooksink/pgdata")
}

/// The URL the server logged for its private cluster.
fn logged_url(server: &Server) -> String {
    let log = server.log_text();
    let marker = "private PostgreSQL ready at ";
    let start = log
        .find(marker)
        .unwrap_or_else(|| panic!("no URL logged:\n{log}"))
        + marker.len();
    log[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn private_postmaster_killed_under_load_restarts_and_every_accepted_id_is_stored_once() {
    let cwd = scratch_dir("selfheal-server");
    let server = Server::start_with(None, Some(&cwd), &[("DB_WRITERS", "2")], None);
    let addr = server.addr();
    let url = logged_url(&server);
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    assert_eq!(post_webhook(addr, &unique_id("warm"), EXAMPLE).status, 200);
    let data_dir = private_data_dir(&cwd);
    let prefix = unique_id("heal");
    let load = Load::until_stopped(addr, &prefix, 4);
    thread::sleep(Duration::from_millis(500));

    let old_pid = postmaster_pid(&data_dir).unwrap();
    kill(old_pid, libc::SIGKILL);
    let killed = Instant::now();
    let mut probe_503s = 0;
    let recovered = loop {
        let answer = post_webhook(addr, &unique_id("probe"), EXAMPLE);
        match answer.status {
            // A backend still busy when its postmaster dies can finish a commit: a 200 counts
            // as recovered only after the outage was seen.
            200 if probe_503s > 0 => break killed.elapsed(),
            200 => {}
            503 => {
                let retry_after = RETRY_AFTER_SECS.to_string();
                assert_eq!(answer.header("retry-after"), Some(retry_after.as_str()));
                assert_eq!(answer.body, r#"{"error":"unavailable"}"#);
                probe_503s += 1;
            }
            other => panic!("{other} {}\n{}", answer.body, server.log_text()),
        }
        assert!(killed.elapsed() < RECOVERY_MAX, "{}", server.log_text());
        thread::sleep(Duration::from_millis(20));
    };
    // Long enough for every load client to see the database back.
    thread::sleep(Duration::from_millis(500));
    let outcomes = load.stop();

    let mut accepted = HashSet::new();
    let mut unavailable = 0;
    for outcome in &outcomes {
        match outcome.status {
            200 => {
                assert_eq!(outcome.json()["status"], "accepted", "{outcome:?}");
                accepted.insert(outcome.id.clone());
            }
            503 => {
                assert_eq!(outcome.body, r#"{"error":"unavailable"}"#, "{outcome:?}");
                unavailable += 1;
            }
            _ => panic!("{outcome:?}\n{}", server.log_text()),
        }
    }
    let log = server.log_text();
    assert!(
        log.contains(&format!(
            "private postgres (pid {old_pid}) exited unexpectedly (killed by signal 9)"
        )),
        "{log}"
    );
    assert_ne!(postmaster_pid(&data_dir).unwrap(), old_pid);

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(data_dir.join("postgres.log")).unwrap_or_default();
        panic!("{url}: {e:?}\n{log}")
    });
    let rows = client
        .query(
            "SELECT event_id, count(*) FROM webhook_events WHERE event_id LIKE $1 GROUP BY 1",
            &[&format!("{prefix}_%")],
        )
        .unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for id in &accepted {
        assert_eq!(stored.get(id), Some(&1), "{id} answered accepted");
    }
    eprintln!(
        "selfheal: kill to first 200 {} ms; 503s meanwhile: {probe_503s} probe + {unavailable} \
         load; load answers {} ({} accepted)",
        recovered.as_millis(),
        outcomes.len(),
        accepted.len()
    );

    server.stop_with(libc::SIGTERM);
    let mut server = server;
    let status = server.wait_exit(Duration::from_secs(40));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        server.log_text()
    );
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "the cluster outlived the server"
    );
}

#[test]
fn killed_postmaster_is_restarted_on_the_same_port_with_its_data() {
    let cluster = private_cluster();
    let url = cluster.url("postgres");
    let mut client = db(&url);
    client
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .unwrap();
    // The harness runs with synchronous_commit off: a checkpoint makes the row crash-safe.
    client.batch_execute("CHECKPOINT").unwrap();
    let old_pid = postmaster_pid(cluster.data_dir()).unwrap();
    kill(old_pid, libc::SIGKILL);
    let back = wait_until(RECOVERY_MAX, || {
        postgres::Client::connect(&url, postgres::NoTls)
            .and_then(|mut client| client.query_one("SELECT n FROM kept", &[]))
            .is_ok_and(|row| row.get::<_, i32>(0) == 7)
    });
    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    assert!(back, "not back within {RECOVERY_MAX:?}; log:\n{log}");
    assert!(cluster.is_running());
    assert_ne!(postmaster_pid(cluster.data_dir()).unwrap(), old_pid);
}

#[test]
fn restart_waits_until_a_port_taken_meanwhile_is_free_again() {
    let cluster = private_cluster();
    let url = cluster.url("postgres");
    kill(postmaster_pid(cluster.data_dir()).unwrap(), libc::SIGKILL);
    // Stands in for an outgoing connection given the port while the postmaster was down.
    let started = Instant::now();
    let thief = loop {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", cluster.port())) {
            break listener;
        }
        assert!(
            started.elapsed() < RESTART_DELAY_MIN,
            "the port stayed busy"
        );
        thread::sleep(Duration::from_millis(1));
    };
    thread::sleep(RESTART_DELAY_MIN * 10);
    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    assert!(log.contains("Address already in use"), "{log}");
    drop(thief);
    let back = wait_until(RESTART_DELAY_MAX * 3, || {
        postgres::Client::connect(&url, postgres::NoTls).is_ok()
    });
    assert!(back, "not back after the port was freed");
}

#[test]
fn stop_is_not_followed_by_a_restart() {
    let mut cluster = private_cluster();
    let url = cluster.url("postgres");
    cluster.stop().unwrap();
    thread::sleep(RESTART_DELAY_MIN * 5);
    assert!(!cluster.is_running());
    assert!(!cluster.data_dir().join("postmaster.pid").exists());
    assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
}
