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

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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

    fn launch(&mut self) -> Result<(), Error> {
        self.prepare_dir()?;
        if !self.dir.join("PG_VERSION").exists() {
            self.initdb()?;
        }
        clear_stale_postmaster(&self.dir)?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error("open", &log_path))?;
        if let Some(account) = &self.account {
            chown(&log_path, account)?;
        }
        let command = self.postgres_command(log)?;
        self.postmaster = Some(Postmaster::spawn(command)?);
        self.wait_ready()
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

    fn postgres_command(&self, log: File) -> Result<Command, Error> {
        let log_path = self.log_path();
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
        if let Some(account) = &self.account {
            command.uid(account.uid).gid(account.gid);
        }
        command
    }

    /// Waits until our postmaster reports "ready" in `postmaster.pid` (as `pg_ctl -w` does) and
    /// then answers `SELECT 1`. Reading the pid file first matters: whatever else listens on
    /// the port may accept a connection and never answer, and the driver's connect timeout
    /// covers only the TCP connect.
    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.dir.join("postmaster.pid");
        loop {
            let Some(postmaster) = &self.postmaster else {
                return Err(Error::NotRunning);
            };
            if let Some(status) = postmaster.exit_status() {
                self.postmaster = None;
                return Err(Error::Exited {
                    status,
                    log: self.log_path(),
                    log_tail: tail(&read_tail(&self.log_path()), 10),
                });
            }
            let text = fs::read_to_string(&pid_file).unwrap_or_default();
            let last_error = if parse_pid_file(&text) != Some((postmaster.pid, "ready")) {
                String::from("postmaster.pid does not say ready yet")
            } else {
                match connect(self.options.port, "postgres")
                    .and_then(|mut client| client.simple_query("SELECT 1"))
                {
                    Ok(_) => return Ok(()),
                    Err(error) => error.to_string(),
                }
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    log: self.log_path(),
                    last_error,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            log::warn!("{error}");
        }
    }
}

/// Finds the server binaries: `$PG_BIN`, else the highest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    find_bin_dir(std::env::var_os("PG_BIN"), Path::new(INSTALL_ROOT))
}

/// The account PostgreSQL runs as when we are root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: u32,
    gid: u32,
}

/// One postmaster and the thread that spawned it and waits for it.
struct Postmaster {
    pid: libc::pid_t,
    /// Set, under this lock, once the child has exited and before it is reaped.
    exited: Arc<Mutex<bool>>,
    /// Receives the exit status once the supervisor has reaped the child.
    status: mpsc::Receiver<io::Result<ExitStatus>>,
    supervisor: JoinHandle<()>,
}

impl Postmaster {
    fn spawn(mut command: Command) -> Result<Postmaster, Error> {
        let program = PathBuf::from(command.get_program());
        let (started_sender, started) = mpsc::channel();
        let (status_sender, status) = mpsc::channel();
        let exited = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&exited);
        let supervisor = thread::Builder::new()
            .name("postgres-supervisor".into())
            .spawn(move || {
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(error) => {
                        // The receiver waits for this message; it cannot be gone yet.
                        let _ = started_sender.send(Err(error));
                        return;
                    }
                };
                let pid = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
                // If `spawn` gave up waiting, nobody reads this; the child still gets reaped.
                let _ = started_sender.send(Ok(pid));
                wait_without_reaping(pid);
                let mut exited = flag.lock().unwrap_or_else(PoisonError::into_inner);
                *exited = true;
                let result = child.wait();
                drop(exited);
                // A stopper that gave up no longer listens; nothing else needs the status.
                let _ = status_sender.send(result);
            })
            .map_err(io_error("start a thread for", &program))?;
        let pid = match started.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(source)) => {
                return Err(Error::Io {
                    action: "run",
                    path: program,
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Io {
                    action: "run",
                    path: program,
                    source: io::Error::other("supervisor thread ended early"),
                });
            }
        };
        Ok(Postmaster {
            pid,
            exited,
            status,
            supervisor,
        })
    }

    fn has_exited(&self) -> bool {
        *self.exited.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit status if the postmaster has exited and been reaped.
    fn exit_status(&self) -> Option<String> {
        match self.status.try_recv() {
            Ok(Ok(status)) => Some(describe(status)),
            Ok(Err(error)) => Some(format!("wait failed: {error}")),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some("status unknown".into()),
        }
    }

    /// Sends `signal` unless the child has exited; the lock keeps the pid from being reused.
    fn signal(&self, signal: libc::c_int) {
        let exited = self.exited.lock().unwrap_or_else(PoisonError::into_inner);
        if !*exited {
            // SAFETY: kill has no memory effects; the pid is our unreaped child.
            // An error means the child is already gone, which is what we want.
            let _ = unsafe { libc::kill(self.pid, signal) };
        }
    }

    fn stop(self) -> Result<(), Error> {
        self.signal(libc::SIGINT);
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.status.recv_timeout(STOP_TIMEOUT) {
            log::warn!("postgres (pid {}) ignored SIGINT; killing it", self.pid);
            self.signal(libc::SIGKILL);
            if let Err(mpsc::RecvTimeoutError::Timeout) = self.status.recv_timeout(KILL_TIMEOUT) {
                // The supervisor thread is left blocked on a child that will not die.
                return Err(Error::StopFailed { pid: self.pid });
            }
        }
        // The supervisor has sent the status, so it is about to return; a panic in it would
        // have been a bug already reported on stderr.
        let _ = self.supervisor.join();
        Ok(())
    }
}

fn find_bin_dir(pg_bin: Option<OsString>, root: &Path) -> Result<PathBuf, Error> {
    if let Some(dir) = pg_bin {
        let dir = PathBuf::from(dir);
        if has_binaries(&dir) {
            return Ok(dir);
        }
        return Err(Error::BinariesNotFound {
            looked_in: dir,
            from_env: true,
        });
    }
    let not_found = || Error::BinariesNotFound {
        looked_in: root.to_path_buf(),
        from_env: false,
    };
    let entries = fs::read_dir(root).map_err(|_| not_found())?;
    let mut versions: Vec<((u32, u32), PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_binaries(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(not_found)
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// "15" -> (15, 0), "9.6" -> (9, 6); anything else is not a version folder.
fn parse_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.split_once('.').unwrap_or((name, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn initdb_args(dir: &Path, fsync: bool) -> Vec<OsString> {
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

fn postgres_args(dir: &Path, options: &Options) -> Vec<OsString> {
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
    ];
    let mut args: Vec<OsString> = vec!["-D".into(), dir.into()];
    for setting in settings {
        args.push("-c".into());
        args.push(setting.into());
    }
    args
}

/// Finds `name` in passwd-format `text`.
fn parse_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Account { uid, gid })
    })
}

fn unprivileged_account() -> Result<Account, Error> {
    let text =
        fs::read_to_string("/etc/passwd").map_err(io_error("read", Path::new("/etc/passwd")))?;
    parse_passwd(&text, UNPRIVILEGED_USER).ok_or(Error::NoUnprivilegedUser)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `account` may search (enter) a folder with this mode and owner.
fn searchable(mode: u32, owner: u32, group: u32, account: &Account) -> bool {
    if owner == account.uid {
        mode & 0o100 != 0
    } else if group == account.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Builds the `map_err` closure for a file system step on `path`.
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn chown(path: &Path, account: &Account) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
        .map_err(io_error("chown", path))
}

/// Sets the parent-death signal in the child, after std has changed its uid and gid (a
/// credential change clears it), and fails the spawn if we died before it took effect.
fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (prctl, getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Blocks until `pid` has exited but leaves it a zombie, so the pid cannot be reused yet.
fn wait_without_reaping(pid: libc::pid_t) {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return;
    };
    loop {
        // SAFETY: siginfo_t is plain data, and waitid only writes into it.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Deals with a `postmaster.pid` left by an earlier run: stops a postmaster of ours that still
/// runs on `dir`, refuses a postgres we did not start, and removes the file when its pid is dead
/// or now belongs to another program (postgres would refuse to start over it).
fn clear_stale_postmaster(dir: &Path) -> Result<(), Error> {
    let pid_file = dir.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return Ok(());
    };
    if !is_live_postgres(pid) {
        return fs::remove_file(&pid_file).map_err(io_error("remove stale", &pid_file));
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !runs_on(&cmdline, dir) {
        return Err(Error::Busy {
            pid,
            dir: dir.to_path_buf(),
        });
    }
    log::warn!(
        "stopping postgres (pid {pid}) left running on {}",
        dir.display()
    );
    for (signal, timeout) in [(libc::SIGINT, STOP_TIMEOUT), (libc::SIGKILL, KILL_TIMEOUT)] {
        // SAFETY: kill has no memory effects. The pid was just checked to be a postgres on
        // `dir`; ESRCH means it is gone, which the loop below notices.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
            // Another user's postgres: not ours to stop.
            return Err(Error::Busy {
                pid,
                dir: dir.to_path_buf(),
            });
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !is_live_postgres(pid) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Err(Error::StopFailed { pid })
}

/// The pid (line 1) and status (line 8: starting, ready, stopping, standby) of a
/// `postmaster.pid` file.
fn parse_pid_file(text: &str) -> Option<(libc::pid_t, &str)> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = lines.nth(6)?.trim();
    Some((pid, status))
}

/// Whether `pid` is a postgres process that has not exited (a zombie has).
fn is_live_postgres(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(parse_stat(&stat), Some(("postgres", state)) if state != 'Z' && state != 'X')
}

/// The command name and state from `/proc/<pid>/stat` ("123 (postgres) S 1 ...").
fn parse_stat(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

/// Whether a NUL-separated command line holds `-D <dir>`, as every postmaster we start does.
fn runs_on(cmdline: &[u8], dir: &Path) -> bool {
    let dir = dir.as_os_str().as_encoded_bytes();
    let mut args = cmdline.split(|&b| b == 0);
    while let Some(arg) = args.next() {
        if arg == b"-D" && args.next() == Some(dir) {
            return true;
        }
    }
    false
}

fn connect(port: u16, database: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(SUPERUSER)
        .dbname(database)
        .connect_timeout(Duration::from_secs(2))
        .connect(postgres::NoTls)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn describe(status: ExitStatus) -> String {
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => status.to_string(),
    }
}

/// The last `lines` lines of `text`, joined with " | " so they fit in one error line.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = all.len().saturating_sub(lines);
    all.get(skip..).unwrap_or_default().join(" | ")
}

/// The last few KiB of a log file, or a note saying why it could not be read.
fn read_tail(path: &Path) -> String {
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

    const NOBODY: Account = Account {
        uid: 65534,
        gid: 65534,
    };

    #[track_caller]
    fn check_passwd(text: &str, name: &str, expected: Option<(u32, u32)>) {
        let actual = parse_passwd(text, name).map(|a| (a.uid, a.gid));
        assert_eq!(actual, expected, "{text:?} / {name}");
    }

    #[test]
    fn passwd() {
        let debian = "root:x:0:0:root:/root:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        check_passwd(debian, "nobody", Some((65534, 65534)));
        check_passwd(debian, "root", Some((0, 0)));
        check_passwd(debian, "postgres", None);
        check_passwd("nobodyx:x:1:1::/:/bin/sh\n", "nobody", None);
        check_passwd("nobody:x:abc:1::/:/bin/sh\n", "nobody", None);
        check_passwd("nobody:x:1\n", "nobody", None);
        check_passwd("nobody:x:99:98\n", "nobody", Some((99, 98)));
        check_passwd("", "nobody", None);
    }

    #[track_caller]
    fn check_searchable(mode: u32, owner: u32, group: u32, expected: bool) {
        assert_eq!(
            searchable(mode, owner, group, &NOBODY),
            expected,
            "{mode:o}"
        );
    }

    #[test]
    fn searchable_by_nobody() {
        check_searchable(0o40755, 0, 0, true);
        check_searchable(0o41777, 0, 0, true);
        check_searchable(0o40700, 0, 0, false);
        check_searchable(0o40750, 0, 0, false);
        check_searchable(0o40750, 0, 65534, true);
        check_searchable(0o40700, 65534, 0, true);
        check_searchable(0o40077, 65534, 0, false);
        check_searchable(0o40701, 0, 65534, false);
        check_searchable(0o40711, 0, 0, true);
    }

    #[track_caller]
    fn check_version(name: &str, expected: Option<(u32, u32)>) {
        assert_eq!(parse_version(name), expected, "{name}");
    }

    #[test]
    fn versions() {
        check_version("15", Some((15, 0)));
        check_version("9.6", Some((9, 6)));
        check_version("16", Some((16, 0)));
        check_version("", None);
        check_version("15beta", None);
        check_version("common", None);
        check_version("9.", None);
    }

    #[test]
    fn bin_dir_prefers_pg_bin_then_highest_version() {
        let root =
            std::env::temp_dir().join(format!("hooksink-localdb-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for version in ["9.6", "15", "16", "17"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            // 17 is incomplete: without postgres it must be skipped.
            let programs: &[&str] = if version == "17" {
                &["initdb"]
            } else {
                &["initdb", "postgres"]
            };
            for program in programs {
                fs::write(bin.join(program), "").unwrap();
            }
        }
        assert_eq!(find_bin_dir(None, &root).unwrap(), root.join("16/bin"));
        let pinned = root.join("9.6/bin");
        assert_eq!(
            find_bin_dir(Some(pinned.clone().into()), &root).unwrap(),
            pinned
        );
        let wrong = find_bin_dir(Some(root.join("17/bin").into()), &root).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            format!(
                "postgres binaries (initdb, postgres) not found in PG_BIN={}/17/bin",
                root.display()
            )
        );
        let missing = find_bin_dir(None, &root.join("absent")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!(
                "postgres binaries not found in {}/absent/*/bin; set PG_BIN",
                root.display()
            )
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bin_dir_message_names_the_install_root() {
        let missing = find_bin_dir(None, Path::new("/nonexistent/postgresql")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "postgres binaries not found in /nonexistent/postgresql/*/bin; set PG_BIN"
        );
    }

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
             -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        );
        let fast = Options {
            port: 1,
            fsync: false,
        };
        let fast = strings(postgres_args(dir, &fast)).join(" ");
        assert!(fast.ends_with("-c fsync=off -c synchronous_commit=off -c full_page_writes=off"));
        assert_eq!(
            strings(initdb_args(dir, true)).join(" "),
            "-D /tmp/data --username postgres --auth=trust --encoding=UTF8 --locale=C"
        );
        assert!(strings(initdb_args(dir, false)).ends_with(&["--no-sync".to_owned()]));
    }

    #[track_caller]
    fn check_stat(stat: &str, expected: Option<(&str, char)>) {
        assert_eq!(parse_stat(stat), expected, "{stat:?}");
    }

    #[test]
    fn proc_stat() {
        check_stat("123 (postgres) S 1 123 123 0", Some(("postgres", 'S')));
        check_stat("123 (postgres) Z 1", Some(("postgres", 'Z')));
        check_stat("7 (a) b) R 1", Some(("a) b", 'R')));
        check_stat("7 (bash) ", None);
        check_stat("", None);
    }

    #[track_caller]
    fn check_pid_file(text: &str, expected: Option<(i32, &str)>) {
        assert_eq!(parse_pid_file(text), expected, "{text:?}");
    }

    #[test]
    fn pid_file() {
        let ready = "8959\n/tmp/d\n1795654564\n25432\n\n127.0.0.1\n  0 1\nready   \n";
        check_pid_file(ready, Some((8959, "ready")));
        check_pid_file(
            &ready.replace("ready   ", "starting"),
            Some((8959, "starting")),
        );
        check_pid_file("8959\n/tmp/d\n1795654564\n25432\n\n127.0.0.1\n", None);
        check_pid_file("x\n/tmp/d\n1\n2\n\n\n\nready\n", None);
        check_pid_file("", None);
    }

    #[test]
    fn command_line_names_the_data_dir() {
        let dir = Path::new("/tmp/x/pgdata");
        assert!(runs_on(
            b"/usr/bin/postgres\0-D\0/tmp/x/pgdata\0-c\0port=1\0",
            dir
        ));
        assert!(!runs_on(b"/usr/bin/postgres\0-D\0/tmp/x/pgdata2\0", dir));
        assert!(!runs_on(b"/usr/bin/postgres\0/tmp/x/pgdata\0", dir));
        assert!(!runs_on(b"/usr/bin/postgres\0-D\0", dir));
        assert!(!runs_on(b"", dir));
    }

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
