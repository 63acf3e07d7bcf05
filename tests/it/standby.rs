//! A primary with a synchronous streaming standby, for the replication tests.
//!
//! The primary is a private cluster of the harness (`support::private_cluster`). The standby is
//! cloned from it with `pg_basebackup -R` and run here as a foreground `postgres` child (as
//! `nobody` when we are root, like `localdb` does), because `localdb` waits for a "ready"
//! postmaster and a standby reports "standby" until it is promoted.
//!
//! The harness runs clusters with `synchronous_commit=off` on the command line (fsync off, for
//! speed); `ALTER DATABASE hooksink SET synchronous_commit = on` outranks it, so hooksink's
//! commits wait for the standby while the harness's own sessions never do.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hooksink::localdb::{self, LocalPostgres, SUPERUSER, UNPRIVILEGED_USER};

use crate::support::{db, pick_port, private_cluster, scratch_dir, wait_until};

/// The database hooksink writes to on the pair.
pub const DATABASE: &str = "hooksink";
/// The standby must stream and be the synchronous one within this time of starting.
const STANDBY_START_TIMEOUT: Duration = Duration::from_secs(30);
/// A fast shutdown of the standby gets this long before SIGKILL.
const STANDBY_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A primary and its synchronous standby.
pub struct Pair {
    pub primary: LocalPostgres,
    pub standby: Standby,
}

/// The standby's data folder, port and (while it runs) postmaster.
pub struct Standby {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Pair {
    /// Starts a primary, creates [`DATABASE`] with synchronous commits, clones the standby,
    /// starts it, and returns once the primary lists it as its synchronous standby.
    pub fn start() -> Pair {
        let primary = private_cluster();
        primary.create_database(DATABASE).unwrap();
        let mut admin = db(&primary.url("postgres"));
        for statement in [
            "ALTER DATABASE hooksink SET synchronous_commit = on",
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "SELECT pg_reload_conf()",
        ] {
            admin.batch_execute(statement).unwrap();
        }
        let standby = Standby::clone_from(&primary);
        let mut pair = Pair { primary, standby };
        pair.standby.start();
        pair.wait_synchronous();
        pair
    }

    /// hooksink's URL: both hosts, and only a writable one will do.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{},127.0.0.1:{}/{DATABASE}?connect_timeout=2&target_session_attrs=read-write",
            self.primary.port(),
            self.standby.port
        )
    }

    /// Waits until the primary reports the standby streaming as `sync`.
    pub fn wait_synchronous(&self) {
        let url = self.primary.url("postgres");
        let synchronous = wait_until(STANDBY_START_TIMEOUT, || {
            let mut client = db(&url);
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication \
                     WHERE state = 'streaming' AND sync_state = 'sync'",
                    &[],
                )
                .unwrap();
            row.get::<_, i64>(0) == 1
        });
        assert!(
            synchronous,
            "the standby did not become synchronous; its log:\n{}",
            self.standby.log()
        );
    }

    /// SIGKILL to the primary's postmaster and every backend (its process group), as when
    /// its machine dies.
    pub fn kill_primary(&self) {
        let pid_file = fs::read_to_string(self.primary.data_dir().join("postmaster.pid")).unwrap();
        let pid: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        // SAFETY: kill has no memory effects; localdb starts each postmaster in a group of its own.
        assert_eq!(unsafe { libc::kill(-pid, libc::SIGKILL) }, 0);
        assert!(wait_until(Duration::from_secs(10), || {
            !self.primary.is_running()
        }));
    }
}

impl Standby {
    /// `pg_basebackup -R` of `primary` into a fresh folder, on a port of its own.
    fn clone_from(primary: &LocalPostgres) -> Standby {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let parent = scratch_dir(&format!(
            "standby-{}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let dir = parent.join("data");
        let account = account();
        if let Some((uid, gid)) = account {
            chown(&parent, Some(uid), Some(gid)).unwrap();
        }
        let mut command = Command::new(localdb::bin_dir().unwrap().join("pg_basebackup"));
        command
            .arg("-D")
            .arg(&dir)
            .args([
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-U",
                SUPERUSER,
                "-p",
            ])
            .arg(primary.port().to_string())
            .current_dir("/");
        if let Some((uid, gid)) = account {
            command.uid(uid).gid(gid);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        Standby {
            dir,
            port: pick_port(),
            child: None,
        }
    }

    /// The standby's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` on the standby.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{database}?connect_timeout=2",
            self.port
        )
    }

    /// Starts the standby's postmaster and waits until it answers queries. Its own commits
    /// never wait for a standby (`synchronous_standby_names` is empty on its command line):
    /// once promoted it is alone, as a failover manager would leave it.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the standby runs already");
        let log = self.dir.join("postgres.log");
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(localdb::bin_dir().unwrap().join("postgres"));
        command.arg("-D").arg(&self.dir);
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.port),
            "unix_socket_directories=".to_owned(),
            "fsync=off".to_owned(),
            // A standby needs at least the primary's value (`localdb` sets 200).
            "max_connections=200".to_owned(),
            "synchronous_standby_names=".to_owned(),
            "hot_standby=on".to_owned(),
            "wal_receiver_status_interval=1".to_owned(),
        ] {
            command.arg("-c").arg(setting);
        }
        command
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if let Some((uid, gid)) = account() {
            command.uid(uid).gid(gid);
        }
        // SAFETY: prctl is async-signal-safe; the standby dies with this test's thread.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(command.spawn().unwrap());
        let url = self.url("postgres");
        let up = wait_until(STANDBY_START_TIMEOUT, || {
            postgres::Client::connect(&url, postgres::NoTls)
                .and_then(|mut client| client.simple_query("SELECT 1"))
                .is_ok()
        });
        assert!(up, "the standby did not start; its log:\n{}", self.log());
    }

    /// Fast shutdown, SIGKILL if it takes too long.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill has no memory effects; the child is not reaped yet, so the pid is ours.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + STANDBY_STOP_TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                // Killing an exited process fails harmlessly; wait reaps it either way.
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Promotes the standby to primary and waits until it accepts writes.
    pub fn promote(&self) {
        let mut client = db(&self.url("postgres"));
        let promoted: bool = client
            .query_one("SELECT pg_promote(true, 30)", &[])
            .unwrap()
            .get(0);
        assert!(promoted, "pg_promote failed; log:\n{}", self.log());
    }

    /// The standby's server log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The uid and gid clusters run as: `nobody` when we are root, else none (our own).
fn account() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = CString::new(UNPRIVILEGED_USER).unwrap();
    // SAFETY: getpwnam gets a NUL-terminated name; the result is read at once, before any
    // other passwd call on this thread could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!entry.is_null(), "no user {UNPRIVILEGED_USER}");
    // SAFETY: non-null, filled in by getpwnam.
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}
