//! Admission control: the connection slots and the process-wide budget of buffered request
//! bytes, so a flood of connections or of slow large bodies cannot exhaust memory or
//! descriptors; the bytes of connection buffers allocated now; and the shutdown flag that
//! stops admitting. `metrics` and `trim` only read the counts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::trim;

static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
static BUFFERED: AtomicUsize = AtomicUsize::new(0);
static BUFFER_BYTES: AtomicUsize = AtomicUsize::new(0);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Holds a connection slot; dropping it frees the slot.
pub struct Slot(());

/// Tries to take one of `max` connection slots.
pub fn connection_slot(max: usize) -> Option<Slot> {
    let previous = CONNECTIONS.fetch_add(1, Ordering::AcqRel);
    if previous >= max {
        CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    Some(Slot(()))
}

impl Drop for Slot {
    fn drop(&mut self) {
        CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
        trim::connection_released();
    }
}

/// Open client connections now.
pub fn open_connections() -> usize {
    CONNECTIONS.load(Ordering::Relaxed)
}

/// Takes `bytes` of the process-wide budget of `max` buffered request bytes; false when the
/// budget would be exceeded (nothing is taken then).
pub fn reserve_bytes(bytes: usize, max: usize) -> bool {
    let previous = BUFFERED.fetch_add(bytes, Ordering::AcqRel);
    if previous.saturating_add(bytes) > max {
        BUFFERED.fetch_sub(bytes, Ordering::AcqRel);
        return false;
    }
    true
}

/// Request bytes buffered beyond idle buffers now (the budget `reserve_bytes` spends).
pub fn buffered_bytes() -> usize {
    BUFFERED.load(Ordering::Relaxed)
}

/// Gives back `bytes` taken with `reserve_bytes`.
pub fn release_bytes(bytes: usize) {
    BUFFERED.fetch_sub(bytes, Ordering::AcqRel);
}

/// Counts `bytes` of connection buffer allocated (a request is being read: `trim` wakes up);
/// reaching `trim::TRIM_HIGH` starts a burst, whose memory `trim` returns once it is over.
pub fn buffer_allocated(bytes: usize) {
    let previous = BUFFER_BYTES.fetch_add(bytes, Ordering::Relaxed);
    if previous < trim::TRIM_HIGH && previous + bytes >= trim::TRIM_HIGH {
        trim::burst_began();
    } else {
        trim::activity();
    }
}

/// Counts `bytes` of connection buffer freed.
pub fn buffer_freed(bytes: usize) {
    BUFFER_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// Bytes of connection buffers allocated now (idle connections hold none).
pub fn buffer_bytes() -> usize {
    BUFFER_BYTES.load(Ordering::Relaxed)
}

/// Stops accepting; open connections close after their current request.
pub fn begin_shutdown() {
    SHUTTING_DOWN.store(true, Ordering::Release);
}

/// Whether a shutdown has begun.
pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_are_capped() {
        let first = connection_slot(usize::MAX);
        assert!(first.is_some());
        assert!(connection_slot(0).is_none());
    }

    #[test]
    fn buffer_budget_is_never_exceeded() {
        assert!(reserve_bytes(10, usize::MAX));
        assert!(!reserve_bytes(usize::MAX / 2, usize::MAX / 2));
        release_bytes(10);
    }
}
