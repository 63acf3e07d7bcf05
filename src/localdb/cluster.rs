//! A cluster's life on disk: the data folder made ready for the account that runs it, `initdb`
//! once, then `postgres -D` started and waited for until it answers.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::account::{Account, chown, searchable};
use super::connection::connect;
use super::error::io_error;
use super::pid_file::{Leftover, clear_stale_postmaster, parse_pid_file};
use super::postmaster::{Postmaster, die_with_parent};
use super::{Error, LOG_FILE, LocalPostgres, Options, START_TIMEOUT, SUPERUSER};

/// Lines of the log quoted when a start-up fails.
const START_LOG_LINES: usize = 10;

/// How to run one cluster: its folder, settings, binaries and account. Cloned into the
/// supervisor thread, which starts the postmaster again the same way after a crash.
#[derive(Debug, Clone)]
pub(super) struct Cluster {
    pub(super) dir: PathBuf,
    pub(super) options: Options,
    pub(super) bin: PathBuf,
    pub(super) account: Option<Account>,
}

impl LocalPostgres {
    /// Readies the data folder, runs `initdb` if it holds no cluster, clears a stale
    /// postmaster, then starts ours, waits until it answers, and from then on has it restarted
    /// after an unexpected exit.
    pub(super) fn launch(&mut self) -> Result<(), Error> {
        let cluster = &self.cluster;
        cluster.prepare_dir()?;
        if !cluster.dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        let first = cluster.postgres_command(Leftover::Stop)?;
        let again = cluster.clone();
        let relaunch = Box::new(move || again.postgres_command(Leftover::Refuse));
        self.postmaster = Some(Postmaster::spawn(first, cluster.log_path(), relaunch)?);
        self.wait_ready()?;
        match &self.postmaster {
            Some(postmaster) if postmaster.heal() => Ok(()),
            // It exited between answering and now; `wait_ready` reports how.
            _ => self.wait_ready(),
        }
    }

    /// Waits until our postmaster reports "ready" in `postmaster.pid` (as `pg_ctl -w` does) and
    /// then answers `SELECT 1`. Reading the pid file first matters: whatever else listens on
    /// the port may accept a connection and never answer, and the driver's connect timeout
    /// covers only the TCP connect.
    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.cluster.dir.join("postmaster.pid");
        let port = self.cluster.options.port;
        loop {
            let Some(postmaster) = &self.postmaster else {
                return Err(Error::NotRunning);
            };
            if let Some(status) = postmaster.exit_status() {
                self.postmaster = None;
                let log = self.cluster.log_path();
                return Err(Error::Exited {
                    status,
                    log_tail: tail(&read_tail(&log), START_LOG_LINES),
                    log,
                });
            }
            let text = fs::read_to_string(&pid_file).unwrap_or_default();
            let ready = parse_pid_file(&text)
                .is_some_and(|file| Some(file.pid) == postmaster.pid() && file.status == "ready");
            let last_error = if !ready {
                String::from("postmaster.pid does not say ready yet")
            } else {
                match connect(port, "postgres")
                    .and_then(|mut client| client.simple_query("SELECT 1"))
                {
                    Ok(_) => return Ok(()),
                    Err(error) => error.to_string(),
                }
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    log: self.cluster.log_path(),
                    last_error,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Cluster {
    /// The postmaster's log file.
    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Creates the data folder and makes sure the account that runs PostgreSQL owns it and can
    /// reach it: `initdb` and `postgres` fail with less clear messages otherwise.
    fn prepare_dir(&self) -> Result<(), Error> {
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .map_err(io_error("create", &self.dir))?;
        }
        let Some(account) = &self.account else {
            return Ok(());
        };
        for ancestor in self.dir.ancestors().skip(1) {
            let meta = fs::metadata(ancestor).map_err(io_error("inspect", ancestor))?;
            if !searchable(meta.mode(), meta.uid(), meta.gid(), account) {
                return Err(Error::NotSearchable {
                    path: ancestor.to_path_buf(),
                    uid: account.uid,
                });
            }
        }
        chown(&self.dir, account)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error("chmod", &self.dir))
    }

    fn initdb(&self) -> Result<(), Error> {
        let occupied = fs::read_dir(&self.dir)
            .map_err(io_error("list", &self.dir))?
            .next()
            .is_some();
        if occupied {
            return Err(Error::NotACluster {
                dir: self.dir.clone(),
            });
        }
        log::info!("creating a PostgreSQL cluster in {}", self.dir.display());
        let program = self.bin.join("initdb");
        let mut command = self.command(&program);
        command.args(initdb_args(&self.dir, self.options.fsync));
        die_with_parent(&mut command, libc::SIGKILL);
        let output = command.output().map_err(io_error("run", &program))?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(Error::Initdb {
            status: output.status,
            output: tail(&text, 15),
        })
    }

    /// The `postgres -D` command, its output appended to the log, once a postmaster left on
    /// the folder is dealt with as `leftover` says.
    fn postgres_command(&self, leftover: Leftover) -> Result<Command, Error> {
        clear_stale_postmaster(&self.dir, leftover)?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error("open", &log_path))?;
        if let Some(account) = &self.account {
            chown(&log_path, account)?;
        }
        let stderr = log.try_clone().map_err(io_error("duplicate", &log_path))?;
        let mut command = self.command(&self.bin.join("postgres"));
        command
            .args(postgres_args(&self.dir, &self.options))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Keeps a terminal's Ctrl-C away from the cluster: our process decides when it stops.
            .process_group(0);
        // SIGINT is a fast shutdown: the cluster stays consistent even when we die.
        die_with_parent(&mut command, libc::SIGINT);
        Ok(command)
    }

    /// A command that runs as the unprivileged account when we are root, from `/` so that a
    /// working folder it cannot enter does not matter.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir("/");
        crate::tunables::restore_for_child(&mut command);
        if let Some(account) = &self.account {
            command.uid(account.uid).gid(account.gid);
        }
        command
    }
}

pub(super) fn initdb_args(dir: &Path, fsync: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-D".into(), dir.into()];
    for arg in [
        "--username",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
    ] {
        args.push(arg.into());
    }
    if !fsync {
        // Tests create clusters often; syncing a throwaway cluster to disk only costs time.
        args.push("--no-sync".into());
    }
    args
}

pub(super) fn postgres_args(dir: &Path, options: &Options) -> Vec<OsString> {
    let durable = if options.fsync { "on" } else { "off" };
    let settings = [
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={}", options.port),
        // No Unix socket: nothing lands in /tmp, and two clusters cannot collide there.
        "unix_socket_directories=".to_owned(),
        "max_connections=200".to_owned(),
        "shared_buffers=128MB".to_owned(),
        format!("fsync={durable}"),
        format!("synchronous_commit={durable}"),
        format!("full_page_writes={durable}"),
        // Crash recovery first syncs the data folder; one syncfs() call instead of an fsync
        // per file takes the restart after a crash from seconds to milliseconds.
        "recovery_init_sync_method=syncfs".to_owned(),
    ];
    let mut args: Vec<OsString> = vec!["-D".into(), dir.into()];
    for setting in settings {
        args.push("-c".into());
        args.push(setting.into());
    }
    args
}

/// The last `lines` lines of `text`, joined with " | " so they fit in one error line.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = all.len().saturating_sub(lines);
    all.get(skip..).unwrap_or_default().join(" | ")
}

/// The last few KiB of a log file, or a note saying why it could not be read.
pub(super) fn read_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 4096;
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        file.read_to_end(&mut text)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(error) => format!("(cannot read the log: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn arguments() {
        let dir = Path::new("/tmp/data");
        let durable = Options {
            port: 5433,
            fsync: true,
        };
        assert_eq!(
            strings(postgres_args(dir, &durable)).join(" "),
            "-D /tmp/data -c listen_addresses=127.0.0.1 -c port=5433 \
             -c unix_socket_directories= -c max_connections=200 -c shared_buffers=128MB \
             -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
             -c recovery_init_sync_method=syncfs"
        );
        let fast = Options {
            port: 1,
            fsync: false,
        };
        let fast = strings(postgres_args(dir, &fast)).join(" ");
        assert!(fast.contains("-c fsync=off -c synchronous_commit=off -c full_page_writes=off"));
        assert_eq!(
            strings(initdb_args(dir, true)).join(" "),
            "-D /tmp/data --username postgres --auth=trust --encoding=UTF8 --locale=C"
        );
        assert!(strings(initdb_args(dir, false)).ends_with(&["--no-sync".to_owned()]));
    }
}
