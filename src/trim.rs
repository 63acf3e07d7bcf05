//! Gives memory that a burst or a spell of load took back to the system.
//!
//! glibc keeps freed memory in its per-thread arenas; after a burst of large slow bodies the
//! freed connection buffers are fragmented, so nothing is returned from the top of a heap and
//! the process keeps tens of MB for good. `malloc_trim(0)` returns the free pages of every
//! arena (measured: 55.5 → 6.9 MB after a 2,000-connection burst). It walks every arena under
//! its lock, so it runs on a thread of its own, never on a coroutine worker, and once per
//! episode: when the connection buffers' bytes fell back to `TRIM_LOW` after having reached
//! `TRIM_HIGH`, and when the server has answered nothing for `QUIET` after answering at least
//! `TRIM_AFTER_ANSWERS` requests since the last trim (load ends: the workers' and writers'
//! arenas hold what the load freed). Between episodes it looks once per `QUIET`, reading two
//! counters.

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

use crate::{admission, metrics};

/// Connection-buffer bytes that make a burst: 256 buffers of 4 KiB, four times what 64
/// keep-alive connections under full load hold.
pub const TRIM_HIGH: usize = 1024 * 1024;
/// Connection-buffer bytes below which the burst is over and its memory is returned.
const TRIM_LOW: usize = TRIM_HIGH / 4;
/// How often the buffers are looked at during a burst.
const TRIM_POLL: Duration = Duration::from_millis(250);
/// A server that answered nothing for this long after a spell of load is quiet.
const QUIET: Duration = Duration::from_secs(1);
/// Answers since the last trim that make a spell of load worth a trim: a few requests'
/// buffers are reused by the next ones, and trimming costs a walk of every arena.
const TRIM_AFTER_ANSWERS: u64 = 1000;

static TRIMMER: OnceLock<Thread> = OnceLock::new();

/// Starts the trimming thread.
pub fn start() -> std::io::Result<()> {
    let thread = std::thread::Builder::new()
        .name("memory-trim".into())
        .stack_size(64 * 1024)
        .spawn(run)?;
    // Only `main` starts it, once; a second start would leave the first thread parked.
    let _ = TRIMMER.set(thread.thread().clone());
    Ok(())
}

/// Tells the thread that the buffers just reached `TRIM_HIGH`; cheap, and safe on coroutines
/// (an unpark never blocks). Does nothing when the thread was not started (tests, tools).
pub fn burst_began() {
    if let Some(thread) = TRIMMER.get() {
        thread.unpark();
    }
}

fn run() {
    let mut answered_at_trim = metrics::answered();
    let mut answered_before = answered_at_trim;
    loop {
        // Woken by `burst_began`, or after `QUIET` to look at the answers.
        std::thread::park_timeout(QUIET);
        if admission::buffer_bytes() >= TRIM_HIGH {
            while admission::buffer_bytes() > TRIM_LOW {
                std::thread::sleep(TRIM_POLL);
            }
        } else {
            let answered = metrics::answered();
            let quiet = answered == answered_before;
            answered_before = answered;
            if !(quiet && answered - answered_at_trim >= TRIM_AFTER_ANSWERS) {
                continue;
            }
        }
        // SAFETY: malloc_trim only walks glibc's own free lists; it takes the arena locks itself.
        unsafe {
            libc::malloc_trim(0);
        }
        answered_at_trim = metrics::answered();
    }
}
