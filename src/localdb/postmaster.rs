//! One postmaster child and the supervisor thread that spawned it and waits for it, plus the
//! parent-death signal every child we start gets.
//!
//! The supervisor thread is the one place that learns when a postmaster exits; restarting a
//! crashed postmaster (with back-off, logging the tail of its log) belongs next to it.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};

use super::error::io_error;
use super::{Error, KILL_TIMEOUT, STOP_TIMEOUT};

/// One postmaster and the thread that spawned it and waits for it.
pub(super) struct Postmaster {
    pub(super) pid: libc::pid_t,
    /// Set, under this lock, once the child has exited and before it is reaped.
    exited: Arc<Mutex<bool>>,
    /// Receives the exit status once the supervisor has reaped the child.
    status: mpsc::Receiver<io::Result<ExitStatus>>,
    supervisor: JoinHandle<()>,
}

impl Postmaster {
    pub(super) fn spawn(mut command: Command) -> Result<Postmaster, Error> {
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

    pub(super) fn has_exited(&self) -> bool {
        *self.exited.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit status if the postmaster has exited and been reaped.
    pub(super) fn exit_status(&self) -> Option<String> {
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

    pub(super) fn stop(self) -> Result<(), Error> {
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

/// Makes `command`'s child get `signal` when the thread that spawns it exits (Linux
/// `PR_SET_PDEATHSIG` follows the spawning thread, not the process). Set in the child after std
/// has changed its uid and gid (a credential change clears it); the spawn fails if we died
/// before it took effect.
pub fn die_with_parent(command: &mut Command, signal: libc::c_int) {
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

fn describe(status: ExitStatus) -> String {
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => status.to_string(),
    }
}
