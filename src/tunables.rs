//! glibc malloc settings the server runs under: its per-thread cache (tcache) is off.
//!
//! tcache keeps up to seven freed chunks of each size below 1 KiB in every thread, outside the
//! arenas, where `malloc_trim` cannot reach them; the workers free each other's chunks and the
//! writers free the workers', so after load every thread holds a full cache and the arenas
//! stay fragmented around it. Measured (`loadtest/load.sh`-style runs, 12 s of wrk at 64
//! connections, then 6 s quiet): private memory after load 2.9 → 2.2 MB with the cache off,
//! CPU per request unchanged (19.8 / 20.3 vs 20.1 / 19.9 µs, alternating pairs).
//!
//! glibc reads tunables only from `GLIBC_TUNABLES` when a process starts, so `serve` starts the
//! binary once more with the setting added (same pid, same arguments, before any thread
//! exists). An operator's own `GLIBC_TUNABLES` is kept; one that already sets
//! `glibc.malloc.tcache_count` is left as it is. The processes hooksink starts (the private
//! PostgreSQL) get the environment as it was.

use std::ffi::OsString;

/// The variable glibc reads its tunables from.
pub const VARIABLE: &str = "GLIBC_TUNABLES";
/// The tunable, as `GLIBC_TUNABLES` spells it.
const TCACHE_COUNT: &str = "glibc.malloc.tcache_count";
/// Our addition to the variable.
const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";

/// The variable's value with the cache turned off, or `None` when `current` already says how
/// big the cache is (ours, on the second start, or the operator's).
pub fn with_tcache_off(current: Option<&str>) -> Option<String> {
    match current {
        None | Some("") => Some(TCACHE_OFF.to_owned()),
        Some(value) if sets_tcache_count(value) => None,
        Some(value) => Some(format!("{value}:{TCACHE_OFF}")),
    }
}

/// The value the variable had before `with_tcache_off` added to it: `None` when it was unset.
pub fn original(current: &str) -> Option<&str> {
    if current == TCACHE_OFF {
        return None;
    }
    Some(
        current
            .strip_suffix(&format!(":{TCACHE_OFF}"))
            .unwrap_or(current),
    )
}

fn sets_tcache_count(value: &str) -> bool {
    value.split(':').any(|entry| {
        entry
            .split_once('=')
            .is_some_and(|(name, _)| name == TCACHE_COUNT)
    })
}

/// Starts this binary again with the cache off, unless the environment already sets it;
/// returns only when it did not (the setting was there, or the start failed: the server then
/// runs with glibc's defaults). Call before any thread is started.
pub fn restart_with_tcache_off() {
    use std::os::unix::process::CommandExt;

    let current = std::env::var(VARIABLE).ok();
    let Some(value) = with_tcache_off(current.as_deref()) else {
        name_process();
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("hooksink"));
    // `exec` returns only on failure; the error is not fatal: the server runs as it is.
    let _ = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(VARIABLE, value)
        .exec();
}

/// Longest process name the kernel keeps (`TASK_COMM_LEN` less its terminating zero).
const PROCESS_NAME_MAX: usize = 15;

/// Names the process after its binary's file: the start through `/proc/self/exe` had the
/// kernel name it `exe`, which is what `ps`, `top` and `pkill hooksink` would see. Threads
/// started later inherit it unless they are named.
fn name_process() {
    use std::os::unix::ffi::OsStrExt;

    let Ok(path) = std::env::current_exe() else {
        return;
    };
    let Some(name) = path.file_name() else {
        return;
    };
    let mut name = name.as_bytes().to_vec();
    name.truncate(PROCESS_NAME_MAX);
    name.push(0);
    // SAFETY: PR_SET_NAME reads a zero-terminated string of at most 16 bytes, which `name` is.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
    }
}

/// Gives `command` the `GLIBC_TUNABLES` the operator started hooksink with.
pub fn restore_for_child(command: &mut std::process::Command) {
    match std::env::var(VARIABLE).ok().as_deref().map(original) {
        None => {}
        Some(None) => {
            command.env_remove(VARIABLE);
        }
        Some(Some(value)) => {
            command.env(VARIABLE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_turned_off_once_and_the_operators_settings_are_kept() {
        assert_eq!(with_tcache_off(None).as_deref(), Some(TCACHE_OFF));
        assert_eq!(with_tcache_off(Some("")).as_deref(), Some(TCACHE_OFF));
        assert_eq!(
            with_tcache_off(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
        );
        // The second start sees its own setting, and an operator's count is theirs.
        assert_eq!(with_tcache_off(Some(TCACHE_OFF)), None);
        assert_eq!(with_tcache_off(Some("glibc.malloc.tcache_count=7")), None);
        assert_eq!(
            with_tcache_off(Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=3")),
            None
        );
        // A different tunable that only starts with the same words is not the count.
        assert_eq!(
            with_tcache_off(Some("glibc.malloc.tcache_count_x=1")).as_deref(),
            Some("glibc.malloc.tcache_count_x=1:glibc.malloc.tcache_count=0")
        );
    }

    #[test]
    fn children_get_the_value_from_before_our_addition() {
        assert_eq!(original(TCACHE_OFF), None);
        assert_eq!(
            original("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"),
            Some("glibc.malloc.arena_max=2")
        );
        assert_eq!(
            original("glibc.malloc.tcache_count=7"),
            Some("glibc.malloc.tcache_count=7")
        );
    }
}
