//! A private PostgreSQL cluster run from the installed server binaries.
//!
//! `hooksink` without `DATABASE_URL` and the integration tests need a database on a machine where
//! no service runs. This module runs `initdb` once per data folder and then `postgres -D` as a
//! foreground child: trust authentication for the superuser `postgres`, TCP on 127.0.0.1 only,
//! no Unix sockets. PostgreSQL refuses to run as root, so as root the cluster runs as `nobody`.
//!
//! Each postmaster is spawned by a supervisor thread that lives exactly as long as the child.
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned a child exits, so spawning from a
//! thread of our own means the signal comes only when the whole process dies, whichever thread
//! called `start` or `restart`. The supervisor notes the exit under a lock before it reaps the
//! child, so a signal is never sent to a reused pid.
//!
//! Layout: this file holds the public face (`LocalPostgres`, `Options`, the time limits);
//! `cluster` the data folder, `initdb` and start-up; `postmaster` the child, its supervisor
//! thread and the parent-death signal (also used by the test harness); `pid_file` what
//! `postmaster.pid` and `/proc` say, including stale postmasters; `account` running as `nobody`;
//! `binaries` finding the server binaries; `connection` connections and URL text; `error` the
//! `Error` enum. A supervisor that restarts a crashed postmaster belongs in `postmaster`, where
//! the exit is first seen, driving `cluster`'s start-up again.

mod account;
mod binaries;
mod cluster;
mod connection;
mod error;
mod pid_file;
mod postmaster;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use binaries::bin_dir;
pub use error::Error;
pub use postmaster::die_with_parent;

use account::{Account, is_root, unprivileged_account};
use connection::{connect, percent_encode, quote_ident};
use error::io_error;
use postmaster::Postmaster;

/// Where Debian and Ubuntu install the server binaries, one folder per major version.
pub const INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates; it logs in without a password over 127.0.0.1.
pub const SUPERUSER: &str = "postgres";
/// The account the cluster runs as when we are root, because PostgreSQL refuses root.
pub const UNPRIVILEGED_USER: &str = "nobody";
/// The file in the data folder that receives the postmaster's stdout and stderr.
pub const LOG_FILE: &str = "postgres.log";
/// A start gives up when the cluster does not answer a query within this time.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A fast shutdown (SIGINT) gets this long before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// After SIGKILL the postmaster gets this long to be reaped.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How a cluster is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// `false` turns off fsync, synchronous_commit and full_page_writes: for tests only, since
    /// an OS crash can then lose or corrupt committed data.
    pub fsync: bool,
}

/// A running (or stopped) private cluster; dropping it stops the postmaster.
pub struct LocalPostgres {
    dir: PathBuf,
    options: Options,
    bin: PathBuf,
    account: Option<Account>,
    postmaster: Option<Postmaster>,
}

impl LocalPostgres {
    /// Runs `initdb` if `data_dir` holds no cluster, then starts `postgres -D data_dir` and waits
    /// until it answers a query. A postmaster left running on `data_dir` by a crashed run of ours
    /// is stopped first.
    pub fn start(data_dir: &Path, options: &Options) -> Result<LocalPostgres, Error> {
        let dir = std::path::absolute(data_dir).map_err(io_error("resolve", data_dir))?;
        let account = if is_root() {
            Some(unprivileged_account()?)
        } else {
            None
        };
        let mut cluster = LocalPostgres {
            dir,
            options: *options,
            bin: bin_dir()?,
            account,
            postmaster: None,
        };
        // On failure `cluster` is dropped here, which stops a postmaster that did start.
        cluster.launch()?;
        Ok(cluster)
    }

    /// A connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}?connect_timeout=2",
            self.options.port,
            percent_encode(database)
        )
    }

    /// The TCP port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.options.port
    }

    /// The data folder, absolute.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The postmaster's log file, for diagnostics.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Whether a postmaster started by this value is running.
    pub fn is_running(&self) -> bool {
        self.postmaster.as_ref().is_some_and(|p| !p.has_exited())
    }

    /// Fast shutdown (SIGINT), then SIGKILL after [`STOP_TIMEOUT`]. Stopping a stopped cluster
    /// does nothing.
    pub fn stop(&mut self) -> Result<(), Error> {
        match self.postmaster.take() {
            Some(postmaster) => postmaster.stop(),
            None => Ok(()),
        }
    }

    /// Stops the cluster if it runs and starts it again on the same folder and port.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        self.launch()
    }

    /// Creates database `name` (quoted, so any name works).
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        if !self.is_running() {
            return Err(Error::NotRunning);
        }
        let statement = format!("CREATE DATABASE {}", quote_ident(name));
        let query = |source| Error::Query {
            action: statement.clone(),
            source,
        };
        let mut client = connect(self.options.port, "postgres").map_err(query)?;
        client.batch_execute(&statement).map_err(query)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            log::warn!("{error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cluster::tail;
    use super::*;

    #[test]
    fn text_helpers() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(percent_encode("hooksink_it_1"), "hooksink_it_1");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(tail("a\nb\n\nc\n", 2), "b | c");
        assert_eq!(tail("a\n", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn url_form() {
        let cluster = LocalPostgres {
            dir: PathBuf::from("/tmp/x"),
            options: Options {
                port: 5999,
                fsync: false,
            },
            bin: PathBuf::new(),
            account: None,
            postmaster: None,
        };
        assert_eq!(
            cluster.url("db_1"),
            "postgres://postgres@127.0.0.1:5999/db_1?connect_timeout=2"
        );
        assert!(!cluster.is_running());
        assert!(matches!(
            cluster.create_database("x"),
            Err(Error::NotRunning)
        ));
    }
}
