//! `check-config`, `migrate` and the README's `psql` command with no `DATABASE_URL`: they use
//! the private cluster in `./.hooksink/pgdata`, a server's running one or one of their own.

use std::path::Path;
use std::process::{Command, Output};

use hooksink::localdb::bin_dir;

use crate::support::{
    EXAMPLE, SECRET, Server, post_webhook, postmaster_pid, scratch_dir, unique_id,
};

/// `hooksink args` in `cwd` with only the secret set.
fn hooksink_in(cwd: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooksink"));
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "info");
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The URL after `marker` in `log`.
fn url_after(log: &str, marker: &str) -> String {
    let start = log
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{log}"))
        + marker.len();
    log[start..].split_whitespace().next().unwrap().to_owned()
}

fn private_postmaster(cwd: &Path) -> Option<i32> {
    postmaster_pid(&cwd.join(".hooksink/pgdata"))
}

/// The SQL of the README's `psql "postgres://..." -c '...'` line.
fn readme_query() -> String {
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|line| line.starts_with("psql \"postgres://"))
        .expect("README shows no psql command");
    let sql = line
        .split_once(" -c '")
        .expect("psql line without -c '...'")
        .1;
    sql.strip_suffix('\'')
        .expect("-c '...' ends the line")
        .to_owned()
}

#[test]
fn commands_without_database_url_use_the_private_cluster_and_psql_reads_it() {
    let cwd = scratch_dir("private-cli");
    let check = hooksink_in(&cwd, &["check-config"]);
    let log = text(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{log}");
    assert!(
        text(&check.stdout).starts_with(&format!(
            "configuration ok, {} migration(s) pending",
            crate::support::migration_count()
        )),
        "{}",
        text(&check.stdout)
    );
    let url = url_after(&log, "private PostgreSQL ready at ");
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    assert_eq!(
        private_postmaster(&cwd),
        None,
        "check-config left its cluster running"
    );

    let migrate = hooksink_in(&cwd, &["migrate"]);
    assert_eq!(
        text(&migrate.stdout),
        format!(
            "migrations applied: {}\n",
            crate::support::migration_count()
        ),
        "{}",
        text(&migrate.stderr)
    );
    assert_eq!(
        private_postmaster(&cwd),
        None,
        "migrate left its cluster running"
    );

    let server = Server::start_with(None, Some(&cwd), &[], None);
    let id = unique_id("psql");
    assert_eq!(post_webhook(server.addr(), &id, EXAMPLE).status, 200);
    let running = private_postmaster(&cwd).unwrap();
    let url = url_after(&server.log_text(), "private PostgreSQL ready at ");
    let check = hooksink_in(&cwd, &["check-config"]);
    let log = text(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{log}");
    assert!(
        text(&check.stdout).starts_with("configuration ok: "),
        "{log}"
    );
    assert_eq!(
        url_after(&log, "using the private PostgreSQL running at "),
        url
    );
    assert_eq!(
        private_postmaster(&cwd),
        Some(running),
        "check-config replaced the server's cluster"
    );
    assert_eq!(
        post_webhook(server.addr(), &unique_id("after"), EXAMPLE).status,
        200
    );

    // The README's command, as root too: psql connects over TCP as `postgres`, which needs no
    // password, whoever runs it.
    let url = url.split('?').next().unwrap();
    let psql = Command::new(bin_dir().unwrap().join("psql"))
        .args([url, "-c", &readme_query()])
        .env_clear()
        .output()
        .unwrap();
    let printed = text(&psql.stdout);
    assert!(psql.status.success(), "{}", text(&psql.stderr));
    let row = printed
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("{id} not in:\n{printed}"));
    assert!(row.contains("payment.succeeded"), "{row}");
}
