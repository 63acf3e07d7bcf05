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
//! arenas hold what the load freed). While requests come it looks once per `QUIET`; once they
//! stop it sleeps until the next one (`activity`), so an idle server never wakes it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// Whether the thread sleeps until requests come (set by itself, cleared by `activity`).
static DORMANT: AtomicBool = AtomicBool::new(false);

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
    DORMANT.store(false, Ordering::Release);
    if let Some(thread) = TRIMMER.get() {
        thread.unpark();
    }
}

/// Tells a dormant thread that requests are being read again: one atomic load per request
/// while it is awake.
pub fn activity() {
    if DORMANT.load(Ordering::Relaxed)
        && DORMANT.swap(false, Ordering::AcqRel)
        && let Some(thread) = TRIMMER.get()
    {
        thread.unpark();
    }
}

fn run() {
    let mut answered_at_trim = metrics::answered();
    let mut answered_before = answered_at_trim;
    loop {
        std::thread::park_timeout(QUIET);
        if admission::buffer_bytes() >= TRIM_HIGH {
            while admission::buffer_bytes() > TRIM_LOW {
                std::thread::sleep(TRIM_POLL);
            }
            trim();
            answered_at_trim = metrics::answered();
            continue;
        }
        let answered = metrics::answered();
        if answered != answered_before {
            answered_before = answered;
            continue;
        }
        if answered - answered_at_trim >= TRIM_AFTER_ANSWERS {
            trim();
            answered_at_trim = answered;
        }
        sleep_until_activity();
        answered_before = metrics::answered();
    }
}

fn trim() {
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Parks until `activity` or `burst_began`; an idle server wakes this thread never. A request
/// read between the last look and this sleep wakes nobody; the next one does, and its
/// answers are counted then.
fn sleep_until_activity() {
    DORMANT.store(true, Ordering::Release);
    while DORMANT.load(Ordering::Acquire) {
        std::thread::park();
    }
}
