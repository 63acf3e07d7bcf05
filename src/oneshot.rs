//! A one-shot slot: one value from a writer thread to the coroutine (or thread) waiting for it.
//!
//! Made per request, so an idle connection holds none (a `may::sync::mpsc` channel allocates
//! two 2.6 KiB blocks up front), and a reply that arrives after its requester stopped waiting
//! lands in a slot that nobody reads again: it can never answer a later request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use may::sync::{AtomicOption, Blocker};

/// What the sending side left in the slot.
enum Delivery<T> {
    Value(T),
    /// The sender was dropped without sending (its job was dropped).
    Dropped,
}

struct Shared<T> {
    delivery: AtomicOption<Delivery<T>>,
    /// Parks the receiver; created on the receiver's side, so it parks a coroutine there.
    blocker: Blocker,
}

/// Sends the one value; dropping it unsent wakes the receiver with nothing.
pub struct Sender<T>(Option<Arc<Shared<T>>>);

/// Waits for the one value.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A new slot; call it where the value will be waited for.
pub fn slot<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        delivery: AtomicOption::none(),
        blocker: Blocker::new(false),
    });
    (Sender(Some(shared.clone())), Receiver(shared))
}

impl<T> Sender<T> {
    /// Delivers `value`; it is dropped unread when the receiver is gone.
    pub fn send(mut self, value: T) {
        if let Some(shared) = self.0.take() {
            deliver(&shared, Delivery::Value(value));
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            deliver(&shared, Delivery::Dropped);
        }
    }
}

fn deliver<T>(shared: &Shared<T>, delivery: Delivery<T>) {
    shared.delivery.store(delivery);
    shared.blocker.unpark();
}

impl<T> Receiver<T> {
    /// The value, or `None` when the sender was dropped unsent or `timeout` passed first.
    pub fn wait(self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.0.delivery.take() {
                Some(Delivery::Value(value)) => return Some(value),
                Some(Delivery::Dropped) => return None,
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by the sender or the timeout; the loop looks at the slot either way.
            let _ = self.0.blocker.park(Some(left));
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
