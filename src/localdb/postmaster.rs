//! One supervised postmaster: the supervisor thread that spawns the child, waits for it, and
//! after an unexpected exit (kill -9, the OOM killer) logs why and starts it again with a
//! bounded back-off; plus the parent-death signal every child we start gets.
//!
//! The supervisor thread is the one place that learns when a postmaster exits, and it spawns
//! every restart itself, so `PR_SET_PDEATHSIG` keeps following a thread that lives as long as
//! the cluster. Crash recovery runs by itself in the restarted postmaster; the writers
//! reconnect by themselves, to the same port.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::cluster::{read_tail, tail};
use super::error::io_error;
use super::{
    Error, KILL_TIMEOUT, RESTART_DELAY_MAX, RESTART_DELAY_MIN, RESTART_RESET_AFTER, STOP_TIMEOUT,
};

/// Builds the command for a restart, on the supervisor thread.
pub(super) type Relaunch = Box<dyn FnMut() -> Result<Command, Error> + Send>;

/// Lines of the postmaster's log quoted when it exits unexpectedly.
const EXIT_LOG_LINES: usize = 10;

/// One postmaster, restarted after unexpected exits once [`Postmaster::heal`] was called.
pub(super) struct Postmaster {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    /// Notified when `stopping` or `ended` changes.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Our child while it runs; cleared under the lock before it is reaped, so a signal is
    /// never sent to a reused pid.
    child: Option<libc::pid_t>,
    /// Restart after an unexpected exit; set once the first start-up succeeded, so that a
    /// postmaster that cannot start at all is reported instead of retried.
    heal: bool,
    /// Set by `stop`: the next exit is the last, and no restart is spawned.
    stopping: bool,
    /// How the last postmaster ended, once the supervisor has given it up.
    ended: Option<String>,
}

/// The delays between restarts: doubling from [`RESTART_DELAY_MIN`] up to
/// [`RESTART_DELAY_MAX`], and back to the minimum after a postmaster that ran for
/// [`RESTART_RESET_AFTER`].
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Postmaster {
    /// Spawns `first` on a new supervisor thread; `relaunch` builds each restart's command.
    /// `log` is the postmaster's log file, quoted when it exits unexpectedly.
    pub(super) fn spawn(
        first: Command,
        log: PathBuf,
        relaunch: Relaunch,
    ) -> Result<Postmaster, Error> {
        let program = PathBuf::from(first.get_program());
        let (started_sender, started) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let supervised = Arc::clone(&shared);
        let supervisor = thread::Builder::new()
            .name("postgres-supervisor".into())
            .spawn(move || {
                // `stop` cannot run before `spawn` returns, so `None` cannot come here.
                let first = supervised.spawn_child(first);
                let child = match first.and_then(|child| child.ok_or(Error::NotRunning)) {
                    Ok(child) => child,
                    Err(error) => {
                        supervised.end(format!("not started: {error}"));
                        // The receiver waits for this message; it cannot be gone yet.
                        let _ = started_sender.send(Err(error));
                        return;
                    }
                };
                // If `spawn` gave up waiting, nobody reads this; the child is still supervised.
                let _ = started_sender.send(Ok(()));
                supervised.supervise(child, &log, relaunch);
            })
            .map_err(io_error("start a thread for", &program))?;
        match started.recv() {
            Ok(Ok(())) => Ok(Postmaster { shared, supervisor }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Io {
                action: "run",
                path: program,
                source: io::Error::other("supervisor thread ended early"),
            }),
        }
    }

    /// The running child's pid; `None` while it is down.
    pub(super) fn pid(&self) -> Option<libc::pid_t> {
        self.shared.lock().child
    }

    /// How the postmaster ended, once the supervisor restarts it no more.
    pub(super) fn exit_status(&self) -> Option<String> {
        self.shared.lock().ended.clone()
    }

    /// From now on an unexpected exit is followed by a restart. `false` when the postmaster
    /// has already ended (it exited before start-up was confirmed).
    pub(super) fn heal(&self) -> bool {
        let mut state = self.shared.lock();
        state.heal = state.ended.is_none();
        state.heal
    }

    /// Fast shutdown (SIGINT), then SIGKILL after [`STOP_TIMEOUT`]; no restart follows, and a
    /// restart waiting out its back-off is called off.
    pub(super) fn stop(self) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.stopping = true;
        self.shared.changed.notify_all();
        for (signal, timeout) in [(libc::SIGINT, STOP_TIMEOUT), (libc::SIGKILL, KILL_TIMEOUT)] {
            if let Some(pid) = state.child {
                if signal == libc::SIGKILL {
                    log::warn!("postgres (pid {pid}) ignored SIGINT; killing it");
                }
                // SAFETY: kill has no memory effects; the pid is our unreaped child (the lock
                // is held). An error means it is already gone, which is what we want.
                let _ = unsafe { libc::kill(pid, signal) };
            }
            state = self.shared.wait_ended(state, timeout);
            if state.ended.is_some() {
                drop(state);
                // The supervisor has ended the child, so it is about to return; a panic in it
                // would have been a bug already reported on stderr.
                let _ = self.supervisor.join();
                return Ok(());
            }
        }
        // The supervisor thread is left blocked on a child that will not die.
        Err(Error::StopFailed {
            pid: state.child.unwrap_or_default(),
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The supervisor's loop: wait for the child; after an unexpected exit log why and start
    /// it again, waiting out the back-off, until `stop` or an exit before `heal`.
    fn supervise(&self, mut child: Child, log: &Path, mut relaunch: Relaunch) {
        let mut backoff = Backoff::new();
        loop {
            let started = Instant::now();
            let pid = child.id();
            let status = self.wait(&mut child);
            {
                let state = self.lock();
                if state.stopping || !state.heal {
                    drop(state);
                    self.end(status);
                    return;
                }
            }
            let mut delay = backoff.after_exit(started.elapsed());
            log::error!(
                "private postgres (pid {pid}) exited unexpectedly ({status}); restarting in \
                 {} ms; log {}: {}",
                delay.as_millis(),
                log.display(),
                tail(&read_tail(log), EXIT_LOG_LINES)
            );
            child = loop {
                if self.sleep_unless_stopping(delay) {
                    self.end(status);
                    return;
                }
                match relaunch().and_then(|command| self.spawn_child(command)) {
                    Ok(Some(next)) => {
                        log::warn!("private postgres restarted as pid {}", next.id());
                        break next;
                    }
                    Ok(None) => {
                        self.end(status);
                        return;
                    }
                    Err(error) => {
                        delay = backoff.after_exit(Duration::ZERO);
                        log::error!(
                            "cannot restart the private postgres: {error}; next try in {} ms",
                            delay.as_millis()
                        );
                    }
                }
            };
        }
    }

    /// Spawns `command` unless `stop` was called; the lock makes the two exclusive.
    fn spawn_child(&self, mut command: Command) -> Result<Option<Child>, Error> {
        let mut state = self.lock();
        if state.stopping {
            return Ok(None);
        }
        let child = command
            .spawn()
            .map_err(io_error("run", Path::new(command.get_program())))?;
        state.child = Some(libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX));
        Ok(Some(child))
    }

    /// Waits until `child` exits, forgets its pid under the lock, then reaps it.
    fn wait(&self, child: &mut Child) -> String {
        wait_without_reaping(child.id());
        let mut state = self.lock();
        state.child = None;
        match child.wait() {
            Ok(status) => describe(status),
            Err(error) => format!("wait failed: {error}"),
        }
    }

    /// Sleeps `delay` or until `stop` is called; says whether it was.
    fn sleep_unless_stopping(&self, delay: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, delay, |state| !state.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        state.stopping
    }

    fn end(&self, status: String) {
        self.lock().ended = Some(status);
        self.changed.notify_all();
    }

    fn wait_ended<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout_while(state, timeout, |state| state.ended.is_none())
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: RESTART_DELAY_MIN,
        }
    }

    /// The wait before the next start, after a postmaster that ran for `ran` (zero when it
    /// could not even be spawned).
    fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= RESTART_RESET_AFTER {
            self.next = RESTART_DELAY_MIN;
        }
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(RESTART_DELAY_MAX);
        delay
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

/// Blocks until child `pid` has exited but leaves it a zombie, so the pid cannot be reused yet.
fn wait_without_reaping(pid: u32) {
    loop {
        // SAFETY: siginfo_t is plain data, and waitid only writes into it.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[track_caller]
    fn check_backoff(runs: &[Duration], expected: &[Duration]) {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = runs.iter().map(|&ran| backoff.after_exit(ran)).collect();
        assert_eq!(delays, expected, "{runs:?}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_after_a_healthy_run() {
        let quick = Duration::ZERO;
        check_backoff(&[quick], &[RESTART_DELAY_MIN]);
        check_backoff(
            &[quick; 9],
            &[
                100 * MS,
                200 * MS,
                400 * MS,
                800 * MS,
                1600 * MS,
                3200 * MS,
                5000 * MS,
                5000 * MS,
                5000 * MS,
            ],
        );
        let healthy = RESTART_RESET_AFTER;
        let almost = RESTART_RESET_AFTER - MS;
        check_backoff(
            &[quick, quick, quick, healthy, quick],
            &[100 * MS, 200 * MS, 400 * MS, 100 * MS, 200 * MS],
        );
        check_backoff(&[quick, quick, almost], &[100 * MS, 200 * MS, 400 * MS]);
        check_backoff(&[healthy, healthy], &[100 * MS, 100 * MS]);
    }

    #[test]
    fn exit_status_names_the_signal() {
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by signal 9");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit status: 1");
    }
}
