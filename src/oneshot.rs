//! A one-shot slot: one value from a writer thread to the coroutine (or thread) waiting for it.
//!
//! Made per request and dropped with it, so an idle connection holds none (a `may::sync::mpsc`
//! channel allocates two 2.6 KiB blocks up front), and a reply that arrives after its requester
//! stopped waiting lands in a slot that nobody reads again: it can never answer a later
//! request. It waits as `may::sync::mpsc` does, with a fresh `Blocker` per park registered
//! after the slot was checked; one `Blocker` made with the slot let a wait outlast its timeout
//! while writers were being cancelled (`replication::standby_gone_answers_503_within_the_bound_and_recovers`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::{Duration, Instant};

use may::sync::{AtomicOption, Blocker};

struct Shared<T> {
    value: AtomicOption<T>,
    /// Set once the sender sent or was dropped: nothing more will come.
    done: AtomicBool,
    /// The receiver's blocker while it is parked; made per park, as `may::sync::mpsc` does.
    waiter: AtomicOption<Arc<Blocker>>,
}

/// Sends the one value; dropping it unsent wakes the receiver with nothing.
pub struct Sender<T>(Arc<Shared<T>>);

/// Waits for the one value.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A new slot.
pub fn slot<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: AtomicOption::none(),
        done: AtomicBool::new(false),
        waiter: AtomicOption::none(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Delivers `value`; it is dropped unread when the receiver is gone.
    pub fn send(self, value: T) {
        self.0.value.store(value);
        // `drop` marks the slot done and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // SeqCst store, fence, then load on both sides: one of the two sees the other's store,
        // so a wake-up is never lost between the receiver's check and its park.
        self.0.done.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(waiter) = self.0.waiter.take() {
            waiter.unpark();
        }
    }
}

impl<T> Receiver<T> {
    /// The value, or `None` when the sender was dropped unsent or `timeout` passed first.
    pub fn wait(self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.0.done.load(Ordering::Acquire) {
                return self.0.value.take();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let waiter = Blocker::current();
            self.0.waiter.store(waiter.clone());
            fence(Ordering::SeqCst);
            // The sender may have finished before the waiter was registered.
            if self.0.done.load(Ordering::SeqCst) {
                self.0.waiter.clear();
                return self.0.value.take();
            }
            let _ = waiter.park(Some(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sent_from_another_thread_arrives() {
        let (sender, receiver) = slot();
        std::thread::spawn(move || sender.send(7));
        assert_eq!(receiver.wait(Duration::from_secs(5)), Some(7));
    }

    #[test]
    fn a_dropped_sender_ends_the_wait_at_once() {
        let (sender, receiver) = slot::<u8>();
        let started = Instant::now();
        std::thread::spawn(move || drop(sender));
        assert_eq!(receiver.wait(Duration::from_secs(5)), None);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_wait_times_out_and_a_late_send_goes_nowhere() {
        let (sender, receiver) = slot();
        assert_eq!(receiver.wait(Duration::from_millis(20)), None);
        sender.send(1);
    }
}
