//! The private PostgreSQL cluster from `hooksink::localdb`: start, stop, restart, leftovers.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use hooksink::localdb::{LocalPostgres, Options, bin_dir};

use crate::support::{db, fresh_database, pick_port, postmaster_pid, private_cluster, scratch_dir};

#[track_caller]
fn select_1(url: &str) {
    let value: i32 = db(url).query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(value, 1);
}

fn refuses(url: &str) -> bool {
    postgres::Client::connect(url, postgres::NoTls).is_err()
}

#[test]
fn shared_cluster_gives_each_test_its_own_database() {
    let first = fresh_database();
    let second = fresh_database();
    assert_ne!(first, second);
    for url in [&first, &second] {
        select_1(url);
        let name: String = db(url)
            .query_one("SELECT current_database()::text", &[])
            .unwrap()
            .get(0);
        assert!(url.contains(&format!("/{name}?")), "{url} is not {name}");
    }
}

#[test]
fn stop_refuses_connections_and_restart_accepts_them() {
    let mut cluster = private_cluster();
    assert!(cluster.is_running());
    let url = cluster.url("postgres");
    db(&url)
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .unwrap();
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        let owner = std::fs::metadata(cluster.data_dir()).unwrap().uid();
        assert_ne!(
            owner, 0,
            "as root the cluster must run as an unprivileged user"
        );
    }

    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert!(refuses(&url));
    cluster.stop().unwrap();

    cluster.restart().unwrap();
    assert!(cluster.is_running());
    let n: i32 = db(&url)
        .query_one("SELECT n FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
}

#[test]
fn two_clusters_run_at_once_on_different_ports() {
    let one = private_cluster();
    let two = private_cluster();
    assert_ne!(one.port(), two.port());
    assert_ne!(one.data_dir(), two.data_dir());
    one.create_database("only_in_one").unwrap();
    select_1(&one.url("only_in_one"));
    select_1(&two.url("postgres"));
    assert!(refuses(&two.url("only_in_one")));
}

#[test]
fn start_stops_a_postmaster_left_by_a_crashed_run() {
    let mut cluster = private_cluster();
    let dir = cluster.data_dir().to_path_buf();
    let options = Options {
        port: cluster.port(),
        fsync: false,
    };
    let url = cluster.url("postgres");
    db(&url).batch_execute("CREATE TABLE kept (n int)").unwrap();
    cluster.stop().unwrap();
    // A postmaster nobody supervises, as an older version or `pg_ctl` by hand leaves one
    // (ours die with their parent and would be restarted by it while it lives).
    let owner = std::fs::metadata(&dir).unwrap();
    let settings = format!(
        "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories=",
        options.port
    );
    let started = Command::new(bin_dir().unwrap().join("pg_ctl"))
        .args(["start", "--wait", "--silent", "-D"])
        .arg(&dir)
        .args(["-o", &settings, "-l"])
        .arg(dir.join("leftover.log"))
        .current_dir("/")
        .uid(owner.uid())
        .gid(owner.gid())
        .status()
        .unwrap();
    assert!(started.success());
    let leftover = postmaster_pid(&dir).unwrap();

    let again = LocalPostgres::start(&dir, &options).unwrap();
    assert!(again.is_running());
    assert_ne!(postmaster_pid(&dir), Some(leftover));
    // Gone, or a zombie until its parent (not us: pg_ctl detached it) reaps it.
    let stat = std::fs::read_to_string(format!("/proc/{leftover}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "{stat}");
    let count: i64 = db(&url)
        .query_one("SELECT count(*) FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[test]
fn start_refuses_a_folder_that_holds_something_else() {
    let dir = scratch_dir("not-a-cluster");
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let options = Options {
        port: pick_port(),
        fsync: false,
    };
    let error = LocalPostgres::start(&dir, &options).err().unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not empty and holds no PostgreSQL cluster (no PG_VERSION)",
            dir.display()
        )
    );
}

#[test]
fn start_reports_a_taken_port_with_the_log() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = Options { port, fsync: false };
    let started = std::time::Instant::now();
    let error = LocalPostgres::start(&scratch_dir("port-taken").join("pgdata"), &options)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("postgres exited during start-up"),
        "{error}"
    );
    assert!(error.contains("already in use"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20), "{error}");
}
