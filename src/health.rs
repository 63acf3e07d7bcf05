//! Readiness: why writes cannot commit now, as the writers last found it, for `GET /readyz`.
//!
//! Writers publish a `Problem` when a connect fails, a write fails, or a write is cancelled
//! before the synchronous standby confirmed it, and clear it when a write commits. `/readyz`
//! reads it without waiting for a writer, so it answers at once even while writers are stuck in
//! a replication wait; a probe that finds a problem also asks one writer to look again
//! (`claim_refresh`), so readiness comes back without event traffic. The lock is `may`'s: it
//! is taken on coroutines and writer threads alike, only around a clone or a store.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use may::sync::Mutex;

/// Why `/readyz` answers 503; `label()` is the `reason` of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The last connect failed; writers retry with back-off.
    DatabaseUnreachable,
    /// The last write failed on an open connection (it was dropped; writers reconnect).
    WriteFailed,
    /// The last write was cancelled before the synchronous standby confirmed it.
    StandbyUnconfirmed,
    /// The queue to the writers is full.
    QueueFull,
    /// No writer answered the probe within `COMMIT_WAIT_TIMEOUT`.
    WritersBusy,
}

/// A reason with its one-line message for the operator (never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

/// Set while a problem is published, so the commit path clears it with one load.
static FAILING: AtomicBool = AtomicBool::new(false);
static PROBLEM: LazyLock<Mutex<Option<Problem>>> = LazyLock::new(|| Mutex::new(None));
/// Set while a refresh probe asked for by `claim_refresh` is waiting for a writer.
static REFRESHING: AtomicBool = AtomicBool::new(false);

impl Reason {
    /// The stable word clients and dashboards see.
    pub fn label(self) -> &'static str {
        match self {
            Reason::DatabaseUnreachable => "database_unreachable",
            Reason::WriteFailed => "write_failed",
            Reason::StandbyUnconfirmed => "standby_unconfirmed",
            Reason::QueueFull => "queue_full",
            Reason::WritersBusy => "writers_busy",
        }
    }
}

/// Publishes why writes cannot commit now.
pub fn fail(reason: Reason, message: String) {
    let problem = Problem { reason, message };
    *lock() = Some(problem);
    FAILING.store(true, Ordering::Release);
}

/// A write committed: nothing stands in the way of the next one.
pub fn committed() {
    if FAILING.swap(false, Ordering::AcqRel) {
        *lock() = None;
    }
}

/// The published problem, if any.
pub fn problem() -> Option<Problem> {
    if !FAILING.load(Ordering::Acquire) {
        return None;
    }
    lock().clone()
}

/// True for one caller until `refreshed`: that caller sends a probe to a writer, so a burst of
/// `/readyz` requests queues one probe, not one each.
pub fn claim_refresh() -> bool {
    !REFRESHING.swap(true, Ordering::AcqRel)
}

/// A writer answered probes (or the probe could not be queued): the next caller may send one.
pub fn refreshed() {
    REFRESHING.store(false, Ordering::Release);
}

fn lock() -> may::sync::MutexGuard<'static, Option<Problem>> {
    // A panic while the lock was held cannot leave a half-written `Option`: take it anyway.
    PROBLEM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refresh_is_claimed_at_a_time_and_a_commit_clears_the_problem() {
        // Claims first: `service` tests claim only while a problem is published.
        assert!(claim_refresh());
        assert!(!claim_refresh());
        refreshed();
        assert!(claim_refresh());
        refreshed();
        fail(Reason::StandbyUnconfirmed, "no standby".to_owned());
        let expected = Problem {
            reason: Reason::StandbyUnconfirmed,
            message: "no standby".to_owned(),
        };
        assert_eq!(problem(), Some(expected));
        committed();
        assert_eq!(problem(), None);
    }
}
