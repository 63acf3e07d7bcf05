//! A private PostgreSQL cluster run from the installed server binaries.
//!
//! `hooksink` without `DATABASE_URL` and the integration tests need a database on a machine where
//! no service runs. This module runs `initdb` once per data folder and then `postgres -D` as a
//! foreground child: trust authentication for the superuser `postgres`, TCP on 127.0.0.1 only,
//! no Unix sockets. PostgreSQL refuses to run as root, so as root the cluster runs as `nobody`.
//!
//! Each postmaster is spawned by a supervisor thread that lives exactly as long as the cluster.
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned a child exits, so spawning from a
//! thread of our own means the signal comes only when the whole process dies, whichever thread
//! called `start` or `restart`. The supervisor notes the exit under a lock before it reaps the
//! child, so a signal is never sent to a reused pid. Once started, a postmaster that dies
//! without `stop` (kill -9, the OOM killer) is logged with the tail of its log and started again
//! on the same folder and port after a back-off ([`RESTART_DELAY_MIN`] doubling up to
//! [`RESTART_DELAY_MAX`]); a start that fails because the port is taken is retried the same way.
//!
//! Layout: this file holds the public face (`LocalPostgres`, `Options`, the time limits,
//! `running_url`); `cluster` the data folder, `initdb` and start-up; `postmaster` the child,
//! its supervisor thread with the restarts, and the parent-death signal (also used by the test
//! harness); `pid_file` what `postmaster.pid` and `/proc` say, including stale postmasters;
//! `port` choosing a free port; `account` running as `nobody`; `binaries` finding the server
//! binaries; `connection` connections and URL text; `error` the `Error` enum.

mod account;
mod binaries;
mod cluster;
mod connection;
mod error;
mod pid_file;
mod port;
mod postmaster;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use binaries::bin_dir;
pub use error::Error;
pub use port::free_port;
pub use postmaster::die_with_parent;

use account::{is_root, unprivileged_account};
use cluster::Cluster;
use connection::{connect, quote_ident, url};
use error::io_error;
use pid_file::running_port;
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
/// The first restart after an unexpected exit waits this long: the old backends need a moment
/// to notice and release the shared memory, which the new postmaster refuses to start beside.
pub const RESTART_DELAY_MIN: Duration = Duration::from_millis(100);
/// Each failed restart doubles the wait, up to this.
pub const RESTART_DELAY_MAX: Duration = Duration::from_secs(5);
/// A postmaster that ran this long was healthy: the wait starts again from the minimum.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(30);
const _: () = assert!(RESTART_DELAY_MIN.as_millis() < RESTART_DELAY_MAX.as_millis());
const _: () = assert!(RESTART_DELAY_MAX.as_millis() < RESTART_RESET_AFTER.as_millis());

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
    cluster: Cluster,
    postmaster: Option<Postmaster>,
}

impl LocalPostgres {
    /// Runs `initdb` if `data_dir` holds no cluster, then starts `postgres -D data_dir` and waits
    /// until it answers a query. A postmaster left running on `data_dir` by a crashed run of ours
    /// is stopped first. From then on a postmaster that exits without [`LocalPostgres::stop`] is
    /// started again, on the same port, after a back-off.
    pub fn start(data_dir: &Path, options: &Options) -> Result<LocalPostgres, Error> {
        let dir = std::path::absolute(data_dir).map_err(io_error("resolve", data_dir))?;
        let account = if is_root() {
            Some(unprivileged_account()?)
        } else {
            None
        };
        let mut cluster = LocalPostgres {
            cluster: Cluster {
                dir,
                options: *options,
                bin: bin_dir()?,
                account,
            },
            postmaster: None,
        };
        // On failure `cluster` is dropped here, which stops a postmaster that did start.
        cluster.launch()?;
        Ok(cluster)
    }

    /// A connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        url(self.cluster.options.port, database)
    }

    /// The TCP port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.cluster.options.port
    }

    /// The data folder, absolute.
    pub fn data_dir(&self) -> &Path {
        &self.cluster.dir
    }

    /// The postmaster's log file, for diagnostics.
    pub fn log_path(&self) -> PathBuf {
        self.cluster.log_path()
    }

    /// Whether a postmaster started by this value is running now (during a restart it is not).
    pub fn is_running(&self) -> bool {
        self.postmaster.as_ref().is_some_and(|p| p.pid().is_some())
    }

    /// Fast shutdown (SIGINT), then SIGKILL after [`STOP_TIMEOUT`]; no restart follows.
    /// Stopping a stopped cluster does nothing.
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
        let mut client = connect(self.cluster.options.port, "postgres").map_err(query)?;
        client.batch_execute(&statement).map_err(query)
    }
}

/// The URL of `database` on the cluster a process of ours runs and has made ready on
/// `data_dir` (a server's), read from its `postmaster.pid`; `None` when none runs there.
pub fn running_url(data_dir: &Path, database: &str) -> Option<String> {
    let dir = std::path::absolute(data_dir).ok()?;
    running_port(&dir).map(|port| url(port, database))
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
        assert_eq!(connection::percent_encode("hooksink_it_1"), "hooksink_it_1");
        assert_eq!(connection::percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(tail("a\nb\n\nc\n", 2), "b | c");
        assert_eq!(tail("a\n", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn url_form() {
        let cluster = LocalPostgres {
            cluster: Cluster {
                dir: PathBuf::from("/tmp/x"),
                options: Options {
                    port: 5999,
                    fsync: false,
                },
                bin: PathBuf::new(),
                account: None,
            },
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
