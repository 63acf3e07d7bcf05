//! Reply channels: a writer thread's answer to the job a connection submitted.
//!
//! A connection keeps one `may` channel and reuses it for every job (`Replies`), made on its
//! first job, so a connection that only answers health checks holds none. A wait that times out
//! consumes the channel: the late reply lands in a channel nobody reads again, so it can never
//! answer a later request on the connection, and the next job gets a fresh channel.
//!
//! Measured, and why not cheaper: a `may` channel made and dropped per request grew anonymous
//! memory by about 110 bytes per request (28 MB per 250,000 requests, `oha` on the duplicate
//! path), and two slots of our own on `may::sync::Blocker` let a wait outlast its 5 s timeout
//! under load (`slow_database_answers_503_after_a_bounded_wait`: 14.2 s); the cause of either
//! inside `may` is not found. One channel per connection did neither.

use std::time::Duration;

use may::sync::mpsc;

/// Sends the one value of a job; dropping it unsent leaves the receiver to time out.
pub struct Sender<T>(mpsc::Sender<T>);

/// A connection's reply channel, reused from job to job.
pub struct Replies<T> {
    sender: mpsc::Sender<T>,
    receiver: mpsc::Receiver<T>,
}

/// A channel for one job whose reply nobody waits for (the value is dropped).
pub fn unheard<T>() -> Sender<T> {
    Sender(mpsc::channel().0)
}

impl<T> Sender<T> {
    /// Delivers `value`; it is dropped unread when the receiver is gone.
    pub fn send(self, value: T) {
        // An error means the requester stopped waiting and dropped its end: nobody to tell.
        let _ = self.0.send(value);
    }
}

impl<T> Replies<T> {
    /// A new, empty channel.
    pub fn new() -> Replies<T> {
        let (sender, receiver) = mpsc::channel();
        Replies { sender, receiver }
    }

    /// The end a job carries to its writer.
    pub fn sender(&self) -> Sender<T> {
        Sender(self.sender.clone())
    }

    /// The reply, with the channel back for the next job; `None` after `timeout`, and the
    /// channel is gone with any reply still to come.
    pub fn wait(self, timeout: Duration) -> Option<(T, Replies<T>)> {
        let value = self.receiver.recv_timeout(timeout).ok()?;
        Some((value, self))
    }
}

impl<T> Default for Replies<T> {
    fn default() -> Replies<T> {
        Replies::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sent_from_another_thread_arrives_and_the_channel_is_reused() {
        let replies = Replies::new();
        let sender = replies.sender();
        std::thread::spawn(move || sender.send(7));
        let (value, replies) = replies.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(value, 7);
        let sender = replies.sender();
        std::thread::spawn(move || sender.send(8));
        assert_eq!(replies.wait(Duration::from_secs(5)).unwrap().0, 8);
    }

    #[test]
    fn a_wait_times_out_and_a_late_send_goes_nowhere() {
        let replies = Replies::<u8>::new();
        let late = replies.sender();
        assert!(replies.wait(Duration::from_millis(20)).is_none());
        late.send(1);
    }
}
