//! What `postmaster.pid` and `/proc` say about a postmaster: whether it is ready, and whether a
//! pid file left by an earlier run belongs to a postgres of ours that still runs.

use std::fs;
use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::error::io_error;
use super::{Error, KILL_TIMEOUT, STOP_TIMEOUT};

/// What to do with a postmaster of ours found running on the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leftover {
    /// Stop it: a crashed run of ours left it (a first start).
    Stop,
    /// Refuse to start: another process of ours started it after our own died (a restart),
    /// and stopping it would take that process's database away.
    Refuse,
}

/// The fields of `postmaster.pid` we read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PidFile<'a> {
    /// Line 1.
    pub(super) pid: libc::pid_t,
    /// Line 4.
    pub(super) port: u16,
    /// Line 8: starting, ready, stopping, standby.
    pub(super) status: &'a str,
}

/// Deals with a `postmaster.pid` left by an earlier postmaster: handles a postmaster of ours
/// that still runs on `dir` as `leftover` says, refuses a postgres we did not start, and removes
/// the file when its pid is dead or now belongs to another program (postgres would refuse to
/// start over it).
pub(super) fn clear_stale_postmaster(dir: &Path, leftover: Leftover) -> Result<(), Error> {
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
    if !runs_on_dir(pid, dir) || leftover == Leftover::Refuse {
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

pub(super) fn parse_pid_file(text: &str) -> Option<PidFile<'_>> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let port = lines.nth(2)?.trim().parse().ok()?;
    let status = lines.nth(3)?.trim();
    Some(PidFile { pid, port, status })
}

/// The port of a ready postmaster running on `dir` (absolute), if one does.
pub(super) fn running_port(dir: &Path) -> Option<u16> {
    let text = fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let file = parse_pid_file(&text)?;
    let live = file.status == "ready" && is_live_postgres(file.pid) && runs_on_dir(file.pid, dir);
    live.then_some(file.port)
}

/// Whether process `pid`'s command line holds `-D <dir>`.
fn runs_on_dir(pid: libc::pid_t, dir: &Path) -> bool {
    runs_on(
        &fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
        dir,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn check_pid_file(text: &str, expected: Option<(i32, u16, &str)>) {
        let expected = expected.map(|(pid, port, status)| PidFile { pid, port, status });
        assert_eq!(parse_pid_file(text), expected, "{text:?}");
    }

    #[test]
    fn pid_file() {
        let ready = "8959\n/tmp/d\n1795654564\n25432\n\n127.0.0.1\n  0 1\nready   \n";
        check_pid_file(ready, Some((8959, 25432, "ready")));
        check_pid_file(
            &ready.replace("ready   ", "starting"),
            Some((8959, 25432, "starting")),
        );
        check_pid_file("8959\n/tmp/d\n1795654564\n25432\n\n127.0.0.1\n", None);
        check_pid_file("x\n/tmp/d\n1\n2\n\n\n\nready\n", None);
        check_pid_file("1\n/tmp/d\n1\nport\n\n\n\nready\n", None);
        check_pid_file("1\n/tmp/d\n1\n65536\n\n\n\nready\n", None);
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
}
