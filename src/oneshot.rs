//! Reply slots: a writer thread's answer to the job a connection submitted.
//!
//! A connection keeps one slot and reuses it for every job (`Replies`), made on its first job,
//! so a connection that only answers health checks holds none. The writer puts its value in
//! the slot and calls the `may` waker of the connection's socket; the connection's coroutine
//! waits in `deadline::Watched::wake_by`, bounded by a wake-up of the read-deadline sweeper. A
//! wait that times out consumes the slot: the late reply lands in a slot nobody reads again,
//! so it can never answer a later request on the connection, and the next job gets a fresh
//! slot. A late reply's wake-up reaches the socket's next wait, which looks again and waits on.
//!
//! Measured, and why not a `may` channel: `recv_timeout` puts a node on `may`'s timer list per
//! wait, and removing it wakes `may`'s timer thread, about once per two requests under load
//! (`/proc/PID/task/*/status`); that thread preempted the workers three times as often as
//! anything else, and hooksink took 20-35 % more CPU per request with it (`loadtest/README.md`,
//! issue #8, seventh round). Earlier: a channel made and dropped per request grew anonymous
//! memory by about 110 bytes per request, and two slots on `may::sync::Blocker` with a timed
//! park let a wait outlast its 5 s timeout under load (also `may`'s timer).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use may::io::{WaitIo, WaitIoWaker};

use crate::deadline::{Waited, Watched};

/// What a writer and the waiting connection share.
struct Slot<T> {
    value: Mutex<Option<T>>,
    /// Wakes the coroutine waiting on the connection's socket; `None` when nobody waits.
    waker: Option<WaitIoWaker>,
}

/// Sends the one value of a job; dropping it unsent leaves the receiver to time out.
pub struct Sender<T>(Arc<Slot<T>>);

/// A connection's reply slot, reused from job to job.
pub struct Replies<T>(Arc<Slot<T>>);

/// A slot for one job whose reply nobody waits for (the value is dropped with it).
pub fn unheard<T>() -> Sender<T> {
    Sender(Arc::new(Slot {
        value: Mutex::new(None),
        waker: None,
    }))
}

impl<T> Sender<T> {
    /// Delivers `value` and wakes the waiting coroutine; the value is dropped unread when the
    /// wait is over.
    pub fn send(self, value: T) {
        // A poisoned lock means a panic between `lock` and a plain store: the slot is sound.
        *self.0.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        if let Some(waker) = &self.0.waker {
            waker.wakeup();
        }
    }
}

impl<T> Replies<T> {
    /// A new, empty slot whose sender wakes whoever waits on `socket`.
    pub fn new(socket: &impl WaitIo) -> Replies<T> {
        Replies(Arc::new(Slot {
            value: Mutex::new(None),
            waker: Some(socket.waker()),
        }))
    }

    /// The end a job carries to its writer.
    pub fn sender(&self) -> Sender<T> {
        Sender(Arc::clone(&self.0))
    }

    /// The reply, with the slot back for the next job; `None` after `timeout` (or when the
    /// socket's read deadline fired meanwhile), and the slot is gone with any reply still to
    /// come. Waits on `socket`, whose waker this slot's senders call.
    pub fn wait<S: AsRawFd + WaitIo>(
        self,
        socket: &mut Watched<'_, S>,
        timeout: Duration,
    ) -> Option<(T, Replies<T>)> {
        let waited = socket.wake_by(Instant::now() + timeout, |_| self.take());
        match waited {
            Ok(Waited::Ready(value)) => Some((value, self)),
            Ok(Waited::Quiet) | Err(_) => None,
        }
    }

    fn take(&self) -> Option<T> {
        self.0
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::watched_socket;

    #[test]
    fn a_value_sent_from_another_thread_wakes_the_wait_and_the_slot_is_reused() {
        let (mut watched, _client) = watched_socket();
        let took = may::go!(move || {
            let started = Instant::now();
            let replies = Replies::new(&*watched);
            let sender = replies.sender();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                sender.send(7)
            });
            let (first, replies) = replies.wait(&mut watched, Duration::from_secs(5)).unwrap();
            let sender = replies.sender();
            std::thread::spawn(move || sender.send(8));
            let (second, _) = replies.wait(&mut watched, Duration::from_secs(5)).unwrap();
            (first, second, started.elapsed())
        })
        .join()
        .unwrap();
        assert_eq!((took.0, took.1), (7, 8));
        assert!(took.2 < Duration::from_secs(5), "woken after {:?}", took.2);
    }

    #[test]
    fn a_wait_times_out_and_a_late_send_goes_nowhere() {
        let (mut watched, _client) = watched_socket();
        let (waited, took, next) = may::go!(move || {
            let replies = Replies::<u8>::new(&*watched);
            let late = replies.sender();
            let started = Instant::now();
            let waited = replies
                .wait(&mut watched, Duration::from_millis(50))
                .is_none();
            let took = started.elapsed();
            late.send(1);
            // A fresh slot: the late value and its wake-up answer nothing here.
            let replies = Replies::<u8>::new(&*watched);
            let next = replies
                .wait(&mut watched, Duration::from_millis(50))
                .map(|r| r.0);
            (waited, took, next)
        })
        .join()
        .unwrap();
        assert!(waited);
        assert!(
            took >= Duration::from_millis(50),
            "timed out after {took:?}"
        );
        assert_eq!(next, None);
    }

    #[test]
    fn an_unheard_value_is_dropped_with_its_sender() {
        let value = Arc::new(());
        unheard().send(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
