//! Cancels a writer's round trip that outlives `DB_WRITE_WAIT_MAX`.
//!
//! PostgreSQL applies no timeout to a commit's wait for the synchronous standby, so only a
//! cancel request from the client ends it. One watchdog thread serves one writer: the writer
//! arms it with its connection's cancel token before a round trip and disarms it after, which
//! costs a lock, not a thread per commit. Arming wakes the thread only when it waits without
//! a timeout (nothing was armed when it last looked): otherwise it looks again by the earlier
//! deadline it sleeps towards, and finds the new one then. Under load it wakes once per
//! `limit` instead of once per round trip (a wake-up on the writer's path and a thread
//! competing with the database for the cores). The watchdog holds its lock while it
//! sends the cancel, so a disarm that follows reports the cancel and no cancel meant for one
//! round trip is sent during the next.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use log::warn;
use postgres::{CancelToken, NoTls};

/// Shared between one writer and its watchdog thread.
pub struct Watchdog {
    state: Mutex<State>,
    wake: Condvar,
    limit: Duration,
}

struct State {
    /// The round trip in flight: when to cancel it, and how.
    armed: Option<(Instant, CancelToken)>,
    /// Whether a cancel was sent since the last `arm`.
    fired: bool,
    /// The writer is gone; the thread ends.
    closed: bool,
    /// When the waiting thread looks at the state again by itself; `None` while it waits for
    /// a notification (or has not waited yet: it looks before its first wait).
    looks_at: Option<Instant>,
}

impl Watchdog {
    /// Starts the thread for the writer called `name`; it cancels after `limit`.
    pub fn start(name: &str, limit: Duration) -> std::io::Result<Arc<Watchdog>> {
        let watchdog = Arc::new(Watchdog {
            state: Mutex::new(State {
                armed: None,
                fired: false,
                closed: false,
                looks_at: None,
            }),
            wake: Condvar::new(),
            limit,
        });
        let watched = Arc::clone(&watchdog);
        std::thread::Builder::new()
            .name(format!("{name}-watchdog"))
            .spawn(move || watched.run())?;
        Ok(watchdog)
    }

    /// A round trip on the connection `token` belongs to starts now.
    pub fn arm(&self, token: CancelToken) {
        let mut state = self.lock();
        assert!(state.armed.is_none(), "armed twice without a disarm");
        let deadline = Instant::now() + self.limit;
        state.armed = Some((deadline, token));
        state.fired = false;
        if state.looks_at.is_none_or(|at| at > deadline) {
            self.wake.notify_one();
        }
    }

    /// The round trip ended; whether it was cancelled, in which case its outcome is unknown.
    pub fn disarm(&self) -> bool {
        let mut state = self.lock();
        state.armed = None;
        state.fired
    }

    /// Ends the thread (the writer is gone).
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut state = self.lock();
        while !state.closed {
            let Some((deadline, _)) = &state.armed else {
                state.looks_at = None;
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let deadline = *deadline;
            let left = deadline.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                state.looks_at = Some(deadline);
                state = self
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            if let Some((_, token)) = state.armed.take() {
                state.fired = true;
                warn!(
                    "database write not finished within {} ms (a synchronous standby unreachable?); \
                     cancelling it, its outcome is unknown",
                    self.limit.as_millis()
                );
                // Under the lock on purpose (see the module comment). It is bounded by the
                // connect timeout; if it fails, the writer still waits for the server.
                if let Err(error) = token.cancel_query(NoTls) {
                    warn!("cancelling the database write failed: {error}");
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
