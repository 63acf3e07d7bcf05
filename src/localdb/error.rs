//! Why a private cluster could not be found, created, started, stopped or queried.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use super::{START_TIMEOUT, UNPRIVILEGED_USER};

/// Why a cluster could not be found, created, started, stopped or queried.
#[derive(Debug)]
pub enum Error {
    /// No folder holds both `initdb` and `postgres`; `from_env` when `PG_BIN` named it.
    BinariesNotFound { looked_in: PathBuf, from_env: bool },
    /// We run as root and the unprivileged account is not in /etc/passwd.
    NoUnprivilegedUser,
    /// The unprivileged account cannot search a folder on the way to the data folder.
    NotSearchable { path: PathBuf, uid: u32 },
    /// The data folder holds files but no cluster.
    NotACluster { dir: PathBuf },
    /// A file system or process step failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `initdb` ran and failed.
    Initdb { status: ExitStatus, output: String },
    /// The postmaster exited before it accepted connections.
    Exited {
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    /// The postmaster did not accept connections within [`START_TIMEOUT`].
    NotReady { log: PathBuf, last_error: String },
    /// A postgres process that we did not start holds the data folder.
    Busy { pid: i32, dir: PathBuf },
    /// A postmaster did not exit even after SIGKILL.
    StopFailed { pid: i32 },
    /// The cluster is stopped.
    NotRunning,
    /// A statement on the cluster failed.
    Query {
        action: String,
        source: postgres::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BinariesNotFound {
                looked_in,
                from_env: true,
            } => write!(
                f,
                "postgres binaries (initdb, postgres) not found in PG_BIN={}",
                looked_in.display()
            ),
            Error::BinariesNotFound {
                looked_in,
                from_env: false,
            } => write!(
                f,
                "postgres binaries not found in {}/*/bin; set PG_BIN",
                looked_in.display()
            ),
            Error::NoUnprivilegedUser => write!(
                f,
                "running as root, and PostgreSQL refuses root, but user {UNPRIVILEGED_USER} \
                 is not in /etc/passwd"
            ),
            Error::NotSearchable { path, uid } => write!(
                f,
                "{} is not searchable by user {UNPRIVILEGED_USER} (uid {uid}), who runs \
                 PostgreSQL because we run as root; use a data folder outside it or chmod o+x it",
                path.display()
            ),
            Error::NotACluster { dir } => write!(
                f,
                "{} is not empty and holds no PostgreSQL cluster (no PG_VERSION)",
                dir.display()
            ),
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Initdb { status, output } => write!(f, "initdb failed: {output} ({status})"),
            Error::Exited {
                status,
                log,
                log_tail,
            } => write!(
                f,
                "postgres exited during start-up ({status}); log: {}: {log_tail}",
                log.display()
            ),
            Error::NotReady { log, last_error } => write!(
                f,
                "postgres did not accept connections within {} s; log: {} (last error: {last_error})",
                START_TIMEOUT.as_secs(),
                log.display()
            ),
            Error::Busy { pid, dir } => write!(
                f,
                "another postgres (pid {pid}) holds {}; stop it first",
                dir.display()
            ),
            Error::StopFailed { pid } => {
                write!(f, "postgres (pid {pid}) did not exit after SIGKILL")
            }
            Error::NotRunning => write!(f, "the local postgres is not running"),
            Error::Query { action, source } => write!(f, "{action} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Query { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Builds the `map_err` closure for a file system step on `path`.
pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
