//! Gives memory that a burst or a spell of load took back to the system.
//!
//! glibc keeps freed memory in its per-thread arenas; after a burst of large slow bodies the
//! freed connection buffers are fragmented, so nothing is returned from the top of a heap and
//! the process keeps tens of MB for good. `malloc_trim(0)` returns the free pages of every
//! arena (measured: 55.5 → 6.9 MB after a 2,000-connection burst). It walks every arena under
//! its lock, so it runs on a thread of its own, never on a coroutine worker, and once per
//! episode: when the connection buffers' bytes fell back to `TRIM_LOW` after having reached
//! `TRIM_HIGH`, and when no request came and no connection closed for `QUIET` after at least
//! `TRIM_AFTER_REQUESTS` requests or `TRIM_AFTER_CLOSES` connections released since the last
//! trim (load ends: the workers' and writers' arenas hold what the load freed, and a client
//! that kept its connections open past its last request frees their coroutines only when
//! they park or close).
//! While requests come it looks once per `QUIET`; once they stop it sleeps until the next one
//! (`activity`, `connection_released`), so an idle server never wakes it. It depends on no other
//! module: `admission` tells it of requests, closes and bursts, and `main` hands it the buffer
//! count to read.
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::Duration;

/// Connection-buffer bytes that make a burst: 256 buffers of 4 KiB, four times what 64
/// keep-alive connections under full load hold.
pub const TRIM_HIGH: usize = 1024 * 1024;
/// Connection-buffer bytes below which the burst is over and its memory is returned.
const TRIM_LOW: usize = TRIM_HIGH / 4;
/// How often the buffers are looked at during a burst.
const TRIM_POLL: Duration = Duration::from_millis(250);
/// A server that read no request for this long after a spell of load is quiet.
const QUIET: Duration = Duration::from_secs(1);
/// Requests since the last trim that make a spell of load worth a trim: a few requests'
/// buffers are reused by the next ones, and trimming costs a walk of every arena.
const TRIM_AFTER_REQUESTS: u64 = 1000;
/// Connections released (closed or parked) since the last trim that are worth one: a
/// connection that posted events frees its reply slot and may's data for its coroutine when
/// it closes or parks, scattered through the arena, so 64 connections that outlived their
/// load (wrk's drain) left 2.0 MB of private memory that a trim brings to 1.4 MB.
const TRIM_AFTER_CLOSES: u64 = 32;

static TRIMMER: OnceLock<Thread> = OnceLock::new();
/// Whether the thread sleeps until requests come (set by itself, cleared by `wake`).
static DORMANT: AtomicBool = AtomicBool::new(false);
/// Requests seen by `activity` since start.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Connections closed or parked since start (`connection_released`).
static CLOSES: AtomicU64 = AtomicU64::new(0);

/// Starts the trimming thread; `buffer_bytes` reads the connection buffers' bytes allocated
/// now (`admission::buffer_bytes`, passed in so that this module depends on nothing).
pub fn start(buffer_bytes: fn() -> usize) -> std::io::Result<()> {
    let thread = std::thread::Builder::new()
        .name("memory-trim".into())
        .stack_size(64 * 1024)
        .spawn(move || run(buffer_bytes))?;
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

/// Counts a request being read, and wakes a dormant thread: one atomic add and one load per
/// request while it is awake.
pub fn activity() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    wake();
}

/// Counts a connection that closed or parked (its coroutine's memory was freed), and wakes a
/// dormant thread, as `activity` does.
pub fn connection_released() {
    CLOSES.fetch_add(1, Ordering::Relaxed);
    wake();
}

fn wake() {
    if DORMANT.load(Ordering::Relaxed)
        && DORMANT.swap(false, Ordering::AcqRel)
        && let Some(thread) = TRIMMER.get()
    {
        thread.unpark();
    }
}

fn run(buffer_bytes: fn() -> usize) {
    let mut seen_at_trim = Seen::now();
    let mut seen_before = seen_at_trim;
    loop {
        std::thread::park_timeout(QUIET);
        if buffer_bytes() >= TRIM_HIGH {
            while buffer_bytes() > TRIM_LOW {
                std::thread::sleep(TRIM_POLL);
            }
            trim();
            seen_at_trim = Seen::now();
            continue;
        }
        let seen = Seen::now();
        if seen != seen_before {
            seen_before = seen;
            continue;
        }
        if seen.worth_a_trim_since(seen_at_trim) {
            trim();
            seen_at_trim = seen;
        }
        sleep_until_activity();
        seen_before = Seen::now();
    }
}

/// The counts of requests and connections released at one moment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Seen {
    requests: u64,
    closes: u64,
}

impl Seen {
    fn now() -> Seen {
        Seen {
            requests: REQUESTS.load(Ordering::Relaxed),
            closes: CLOSES.load(Ordering::Relaxed),
        }
    }

    /// Whether enough happened after `earlier` for a quiet server to trim.
    fn worth_a_trim_since(self, earlier: Seen) -> bool {
        self.requests - earlier.requests >= TRIM_AFTER_REQUESTS
            || self.closes - earlier.closes >= TRIM_AFTER_CLOSES
    }
}

fn trim() {
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Parks until `activity`, `connection_released` or `burst_began`; an idle server wakes this
/// thread never. A request read between the last look and this sleep wakes nobody; the next
/// one does.
fn sleep_until_activity() {
    DORMANT.store(true, Ordering::Release);
    while DORMANT.load(Ordering::Acquire) {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Seen = Seen {
        requests: 5,
        closes: 7,
    };

    fn after(requests: u64, closes: u64) -> Seen {
        Seen {
            requests: START.requests + requests,
            closes: START.closes + closes,
        }
    }

    #[test]
    fn a_spell_of_requests_or_of_closes_is_worth_a_trim() {
        assert!(after(TRIM_AFTER_REQUESTS, 0).worth_a_trim_since(START));
        assert!(after(0, TRIM_AFTER_CLOSES).worth_a_trim_since(START));
    }

    #[test]
    fn a_few_requests_and_closes_are_not() {
        assert!(!START.worth_a_trim_since(START));
        assert!(!after(TRIM_AFTER_REQUESTS - 1, TRIM_AFTER_CLOSES - 1).worth_a_trim_since(START));
    }
}
