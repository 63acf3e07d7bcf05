//! Operator errors name their cause: the server's own message and SQLSTATE, or the I/O cause
//! with the address tried, and never the password (issue #10).

use std::str::FromStr;
use std::time::Duration;

use crate::cli::{SECRET_ENV, hooksink};
use crate::support::{self, Server};

/// The password of the role the password test logs in as; must never be printed.
const PASSWORD: &str = "correct-horse-battery-staple";

/// `check-config` on `url`: exit code 1 and this cause on stderr, without `PASSWORD`.
#[track_caller]
fn check_config_fails_with(url: &str, cause: &str) {
    let output = hooksink(&["check-config"], &[SECRET_ENV, ("DATABASE_URL", url)]);
    let text = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{text}");
    let expected = format!("hooksink: cannot connect to the database: {cause}\n");
    assert_eq!(text, expected);
    assert!(!text.contains(PASSWORD), "{text}");
    let migrate = hooksink(&["migrate"], &[SECRET_ENV, ("DATABASE_URL", url)]);
    assert_eq!(migrate.status.code(), Some(1));
    assert_eq!(String::from_utf8(migrate.stderr).unwrap(), expected);
}

/// The port of the shared test cluster.
fn shared_port() -> u16 {
    let url = support::fresh_database();
    postgres::Config::from_str(&url).unwrap().get_ports()[0]
}

#[test]
fn a_wrong_database_name_is_named() {
    let port = shared_port();
    check_config_fails_with(
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/no_such_db"),
        "database \"no_such_db\" does not exist (SQLSTATE 3D000)",
    );
}

#[test]
fn an_unknown_user_is_named() {
    let port = shared_port();
    check_config_fails_with(
        &format!("postgres://no_such_user:{PASSWORD}@127.0.0.1:{port}/postgres"),
        "role \"no_such_user\" does not exist (SQLSTATE 28000)",
    );
}

#[test]
fn a_wrong_port_names_host_and_port() {
    let port = support::pick_port();
    check_config_fails_with(
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"),
        &format!("connection refused (127.0.0.1:{port})"),
    );
}

#[test]
fn a_bad_password_is_named_and_never_printed() {
    // The harness's clusters trust every local login; this one asks roles other than the
    // superuser for a password, as a production server does.
    let cluster = support::private_cluster();
    let mut admin = support::db(&cluster.url("postgres"));
    admin
        .batch_execute(&format!("CREATE ROLE alice LOGIN PASSWORD '{PASSWORD}'"))
        .unwrap();
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    let port = cluster.port();
    let wrong = format!("postgres://alice:wrong-{PASSWORD}@127.0.0.1:{port}/postgres");
    // The reload is asynchronous: until it lands, any password is accepted.
    let asked = support::wait_until(Duration::from_secs(10), || {
        postgres::Client::connect(&wrong, postgres::NoTls).is_err()
    });
    assert!(asked, "pg_hba.conf reload did not take effect");
    check_config_fails_with(
        &wrong,
        "password authentication failed for user \"alice\" (SQLSTATE 28P01)",
    );
    let right = format!("postgres://alice:{PASSWORD}@127.0.0.1:{port}/postgres");
    let output = hooksink(&["check-config"], &[SECRET_ENV, ("DATABASE_URL", &right)]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn the_server_start_up_warning_names_the_cause() {
    let port = shared_port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/no_such_db");
    let server = Server::start(&url, &[]);
    let log = server.log_text();
    assert!(
        log.contains(
            "database not ready at start-up, answering 503 until it is: \
             database \"no_such_db\" does not exist (SQLSTATE 3D000)"
        ),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn the_writers_warning_names_the_cause_when_the_database_goes_away() {
    let mut cluster = support::private_cluster();
    let port = cluster.port();
    let server = Server::start(&cluster.url("postgres"), &[]);
    assert_eq!(
        support::post_webhook(server.addr(), "msg_before", support::EXAMPLE).status,
        200
    );
    cluster.stop().unwrap();
    for id in ["msg_during_1", "msg_during_2"] {
        assert_eq!(
            support::post_webhook(server.addr(), id, support::EXAMPLE).status,
            503
        );
    }
    const STORE_WARNING: &str = "[WARN  hooksink::store]";
    // The log reaches us through a thread reading the server's stderr: it may trail the 503.
    let logged = support::wait_until(Duration::from_secs(5), || {
        server.log_text().contains(STORE_WARNING)
    });
    let log = server.log_text();
    assert!(logged, "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.starts_with(STORE_WARNING))
        .collect();
    // Each names what happened: the server's message and SQLSTATE, or the address tried.
    let address = format!("(127.0.0.1:{port})");
    for line in &warnings {
        assert!(
            line.contains("(SQLSTATE ") || line.ends_with(&address),
            "{line}\n{log}"
        );
    }
}

#[test]
fn an_unusable_url_names_what_is_wrong_with_it() {
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/db?bogus=1");
    let expected =
        "hooksink: DATABASE_URL is not usable: invalid connection string: unknown option `bogus`\n";
    for args in [&["check-config"][..], &[]] {
        let output = hooksink(args, &[SECRET_ENV, ("DATABASE_URL", &url)]);
        assert_eq!(output.status.code(), Some(1));
        let text = String::from_utf8(output.stderr).unwrap();
        assert!(text.ends_with(expected), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
}
