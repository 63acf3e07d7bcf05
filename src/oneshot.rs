//! A one-shot slot: one value from a writer thread to the coroutine (or thread) waiting for it.
//!
//! Made per request and dropped with it, so an idle connection holds none (a `may::sync::mpsc`
//! channel allocates two 2.6 KiB blocks up front), and a reply that arrives after its requester
//! stopped waiting lands in a slot that nobody reads again: it can never answer a later
//! request. It wraps a `may` channel made per request. Two slots of our own on
//! `may::sync::Blocker` (no queue, no blocks) let a coroutine wait past its timeout while
//! writers were being cancelled under load (`standby_gone_answers_503_within_the_bound_and_recovers`:
//! 8.1 s; `slow_database_answers_503_after_a_bounded_wait`: 14.2 s, for a 5 s bound), which the
//! channel's `recv_timeout` never did; the cause inside `may` is not found yet.

use std::time::Duration;

use may::sync::mpsc;

/// Sends the one value; dropping it unsent wakes the receiver with nothing.
pub struct Sender<T>(mpsc::Sender<T>);

/// Waits for the one value.
pub struct Receiver<T>(mpsc::Receiver<T>);

/// A new slot; call it where the value will be waited for.
pub fn slot<T>() -> (Sender<T>, Receiver<T>) {
    let (sender, receiver) = mpsc::channel();
    (Sender(sender), Receiver(receiver))
}

impl<T> Sender<T> {
    /// Delivers `value`; it is dropped unread when the receiver is gone.
    pub fn send(self, value: T) {
        // An error means the requester stopped waiting and dropped its end: nobody to tell.
        let _ = self.0.send(value);
    }
}

impl<T> Receiver<T> {
    /// The value, or `None` when the sender was dropped unsent or `timeout` passed first.
    pub fn wait(self, timeout: Duration) -> Option<T> {
        self.0.recv_timeout(timeout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
