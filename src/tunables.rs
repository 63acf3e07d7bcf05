//! glibc settings the server runs under: its per-thread malloc cache (tcache) off, no cache of
//! finished threads' stacks, and one malloc arena for every thread.
//!
//! tcache keeps up to seven freed chunks of each size below 1 KiB in every thread, outside the
//! arenas, where `malloc_trim` cannot reach them; the workers free each other's chunks and the
//! writers free the workers', so after load every thread holds a full cache and the arenas
//! stay fragmented around it. Measured (`loadtest/load.sh`-style runs, 12 s of wrk at 64
//! connections, then 6 s quiet): private memory after load 2.9 → 2.2 MB with the cache off,
//! CPU per request unchanged (19.8 / 20.3 vs 20.1 / 19.9 µs, alternating pairs).
//!
//! glibc keeps the stacks of finished threads (up to 40 MiB) to hand to new ones, each with
//! its top pages still resident. The server's threads that finish are the start-up ones
//! (`main::on_own_stack`) and none start later, so the cache only holds their pages, or hands
//! them to a thread that would have touched fewer: with it off, private memory idle
//! 604–616 → 572–576 KiB (`/proc/PID/smaps_rollup`, 1.5 s after `/readyz`, two runs each).
//!
//! glibc gives each thread that allocates an arena of its own (up to 8 per core): nine here,
//! each with its own free pages and fragmentation, which `malloc_trim` cannot merge. With one,
//! measured in five short `loadtest/bench` runs against five without, alternating: private
//! memory idle 576–584 → 508–520 KiB, 2 s after load 1,236–1,380 → 1,024–1,092 KiB; CPU per
//! request ÷ wrk's 1.66–1.76 against 1.70–1.74, p99 ÷ p50 2.40–3.40 against 2.64–3.06. The
//! price is one lock: under 64-connection load 0.16–0.19 futex calls per request wait for or wake a
//! malloc lock (`perf record -e syscalls:sys_enter_futex -g`), against 0.01 with an arena per
//! thread; a waiting thread is off the CPU, so it shows as throughput and tail (over nine
//! alternating pairs: slower in five, higher p99 ÷ p50 in seven; `loadtest/README.md`). Kept
//! for the memory. Measured on 2 cores (2 workers, 2 writers); with many workers, or where
//! throughput matters more, an operator can set `glibc.malloc.arena_max` to their count.
//!
//! glibc reads tunables only from `GLIBC_TUNABLES` when a process starts, so `serve` starts the
//! binary once more with the settings added (same pid, same arguments, before any thread
//! exists). An operator's own `GLIBC_TUNABLES` is kept, and a tunable of ours that it already
//! sets is left as the operator set it. The processes hooksink starts (the private PostgreSQL)
//! get the environment as it was.

use std::ffi::OsString;

/// The variable glibc reads its tunables from.
pub const VARIABLE: &str = "GLIBC_TUNABLES";
/// Our additions to the variable, as `GLIBC_TUNABLES` spells them, in the order added.
pub const ADDITIONS: [&str; 3] = [
    "glibc.malloc.tcache_count=0",
    "glibc.pthread.stack_cache_size=0",
    "glibc.malloc.arena_max=1",
];

/// The variable's value with our additions that `current` does not set appended, or `None`
/// when it sets them all (ours, on the second start, or the operator's).
pub fn with_additions(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or_default();
    let missing: Vec<&str> = ADDITIONS
        .into_iter()
        .filter(|addition| !sets(current, tunable_name(addition)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let entries: Vec<&str> = std::iter::once(current)
        .filter(|value| !value.is_empty())
        .chain(missing)
        .collect();
    Some(entries.join(":"))
}

/// The value the variable had before `with_additions` added to it: `None` when it was unset.
/// Our additions come last; an operator's entry identical to one of them, set last, is taken
/// for ours.
pub fn original(current: &str) -> Option<&str> {
    let mut rest = current;
    for addition in ADDITIONS.iter().rev() {
        if rest == *addition {
            return None;
        }
        if let Some(before) = rest
            .strip_suffix(addition)
            .and_then(|before| before.strip_suffix(':'))
        {
            rest = before;
        }
    }
    Some(rest)
}

/// `tunable=value` → `tunable`.
fn tunable_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

fn sets(value: &str, tunable: &str) -> bool {
    value.split(':').any(|entry| tunable_name(entry) == tunable)
}

/// Starts this binary again with our additions, unless the environment already sets them;
/// returns only when it did not (the settings were there, or the start failed: the server
/// then runs with glibc's defaults). Call before any thread is started.
pub fn restart_with_additions() {
    use std::os::unix::process::CommandExt;

    let current = std::env::var(VARIABLE).ok();
    let Some(value) = with_additions(current.as_deref()) else {
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

    const OURS: &str =
        "glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0:glibc.malloc.arena_max=1";
    /// An operator's tunable that is none of ours.
    const THEIRS: &str = "glibc.malloc.mmap_threshold=65536";

    #[test]
    fn the_additions_are_made_once_and_the_operators_settings_are_kept() {
        assert_eq!(ADDITIONS.join(":"), OURS);
        assert_eq!(with_additions(None).as_deref(), Some(OURS));
        assert_eq!(with_additions(Some("")).as_deref(), Some(OURS));
        assert_eq!(
            with_additions(Some(THEIRS)),
            Some(format!("{THEIRS}:{OURS}"))
        );
        // The second start sees its own settings.
        assert_eq!(with_additions(Some(OURS)), None);
        // An operator's count and arena limit are theirs; only what they left unset is added.
        assert_eq!(
            with_additions(Some("glibc.malloc.tcache_count=7:glibc.malloc.arena_max=4")).as_deref(),
            Some(
                "glibc.malloc.tcache_count=7:glibc.malloc.arena_max=4:glibc.pthread.stack_cache_size=0"
            )
        );
        assert_eq!(
            with_additions(Some(
                "glibc.pthread.stack_cache_size=1048576:glibc.malloc.tcache_count=3:glibc.malloc.arena_max=2"
            )),
            None
        );
        // A different tunable that only starts with the same words is not the count.
        assert_eq!(
            with_additions(Some("glibc.malloc.tcache_count_x=1")),
            Some(format!("glibc.malloc.tcache_count_x=1:{OURS}"))
        );
    }

    #[test]
    fn children_get_the_value_from_before_our_additions() {
        assert_eq!(original(OURS), None);
        assert_eq!(original(&format!("{THEIRS}:{OURS}")), Some(THEIRS));
        assert_eq!(
            original(
                "glibc.malloc.tcache_count=7:glibc.pthread.stack_cache_size=0:glibc.malloc.arena_max=1"
            ),
            Some("glibc.malloc.tcache_count=7")
        );
        assert_eq!(original(THEIRS), Some(THEIRS));
        // Every value `with_additions` makes comes back as it was.
        for before in [
            None,
            Some(THEIRS),
            Some("glibc.malloc.tcache_count=7"),
            Some("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=7"),
        ] {
            let after = with_additions(before).unwrap();
            assert_eq!(original(&after), before);
        }
    }
}
