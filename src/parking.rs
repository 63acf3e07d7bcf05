//! Idle connections without a coroutine.
//!
//! A coroutine keeps every stack page it once touched: at least two (the top page of frames and
//! the bottom page `generator` marks), more for one that has served a webhook, plus its reply
//! channel, so 10,000 provider connections waiting for their next event held 85–190 MB. A
//! connection quiet for `IDLE_PARK_AFTER` (`connection`) is parked here instead: the coroutine
//! ends and the socket waits in an epoll set of ours, with a few dozen bytes of state in a
//! table (in place, not boxed: one allocation for all, rather than a small one per park
//! pinning its page of an arena). Its first byte brings it back on a fresh coroutine through `resume`; end-of-file with
//! nothing left to read (the peer left, or the read deadlines' sweeper shut an expired one)
//! drops it here, without a coroutine.
//!
//! One coroutine waits for the epoll descriptor to become readable through `may`'s own selector
//! (an epoll descriptor is pollable), so no thread is added and an idle server gets no
//! wake-ups. **Invariant:** a socket is registered in the epoll set exactly while its item is in
//! the table; both change under the table's lock.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use log::error;
use may::io::{CoIo, WaitIo};

/// Events taken from the kernel per `epoll_wait` call.
const EVENTS_PER_WAIT: usize = 64;
/// Pause after a failed `epoll_wait` (a programmer error: a bad descriptor or buffer).
const WAIT_FAILED_PAUSE: Duration = Duration::from_millis(100);
/// The table's capacity is given back once it is this many times its length.
const SHRINK_RATIO: usize = 4;
/// Capacity the table keeps however few are parked.
const CAPACITY_KEPT: usize = 64;

/// Connections parked now, in every `Parking` of the process (there is one).
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Items whose sockets wait for their next bytes in the kernel; `resume` takes each back.
pub struct Parking<T: 'static> {
    epoll: CoIo<OwnedFd>,
    parked: Mutex<HashMap<u32, T>>,
    resume: Box<dyn Fn(&'static Parking<T>, T) + Send + Sync>,
}

/// Parked connections now (`hooksink_parked_connections`).
pub fn parked() -> usize {
    PARKED.load(Ordering::Relaxed)
}

impl<T: AsRawFd + Send + 'static> Parking<T> {
    /// An empty parking and its coroutine; `resume` runs on a new coroutine for each item whose
    /// socket became readable or closed. Lives as long as the process.
    pub fn start(
        resume: impl Fn(&'static Parking<T>, T) + Send + Sync + 'static,
    ) -> io::Result<&'static Parking<T>> {
        // SAFETY: epoll_create1 takes no pointers; a descriptor it returns is ours alone.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let epoll = CoIo::new(unsafe { OwnedFd::from_raw_fd(fd) })?;
        let parking: &'static Parking<T> = Box::leak(Box::new(Parking {
            epoll,
            parked: Mutex::new(HashMap::new()),
            resume: Box::new(resume),
        }));
        may::go!(move || parking.run());
        Ok(parking)
    }

    /// Parks `item` under `key`, unique among the parked; gives it back with the kernel's
    /// error when its socket cannot be watched (the caller keeps serving it).
    pub fn park(&self, key: u32, item: T) -> Result<(), (T, io::Error)> {
        let mut parked = self.lock();
        debug_assert!(!parked.contains_key(&key), "two parked under one key");
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: u64::from(key),
        };
        if let Err(error) = self.control(libc::EPOLL_CTL_ADD, item.as_raw_fd(), &mut event) {
            return Err((item, error));
        }
        parked.insert(key, item);
        PARKED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the item parked under `key` out of the table and the epoll set.
    fn unpark(&self, key: u32) -> Option<T> {
        let mut parked = self.lock();
        let item = parked.remove(&key)?;
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        if let Err(error) = self.control(libc::EPOLL_CTL_DEL, item.as_raw_fd(), &mut unused) {
            // Only a closed descriptor fails here, and parked sockets are open.
            debug_assert!(false, "a parked socket left the epoll set: {error}");
        }
        if parked.len() * SHRINK_RATIO < parked.capacity() && parked.capacity() > CAPACITY_KEPT {
            let kept = (parked.len() * 2).max(CAPACITY_KEPT);
            parked.shrink_to(kept);
        }
        PARKED.fetch_sub(1, Ordering::Relaxed);
        Some(item)
    }

    /// The parking's coroutine: harvests ready sockets, then waits until the epoll descriptor
    /// is readable again.
    fn run(&'static self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        loop {
            // SAFETY: the buffer holds `EVENTS_PER_WAIT` events; a zero timeout never blocks
            // the thread.
            let ready = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS_PER_WAIT as libc::c_int,
                    0,
                )
            };
            let Ok(ready) = usize::try_from(ready) else {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    error!("waiting for parked connections failed: {error}");
                    may::coroutine::sleep(WAIT_FAILED_PAUSE);
                }
                continue;
            };
            for event in events.iter().take(ready) {
                // The key was a u32 (`park`); a copy, since the struct is packed.
                let key = event.u64 as u32;
                let Some(item) = self.unpark(key) else {
                    continue;
                };
                // Nothing to read and the peer gone (or its read side shut at its deadline):
                // dropped here, without a coroutine started only to close it.
                if ended(item.as_raw_fd()) {
                    drop(item);
                } else {
                    may::go!(move || (self.resume)(self, item));
                }
            }
            if ready < EVENTS_PER_WAIT {
                // Returns at once when the descriptor became readable since the last wait,
                // so an event that arrived during the harvest is not missed.
                self.epoll.wait_io();
            }
        }
    }

    fn control(&self, op: libc::c_int, fd: RawFd, event: &mut libc::epoll_event) -> io::Result<()> {
        // SAFETY: `event` is a valid epoll_event for the call's duration.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, event) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, T>> {
        // Nothing panics while holding the lock; a poisoned table is still consistent.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the socket's next read would return end-of-file: nothing left to read and no more
/// coming.
fn ended(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: one writable byte; MSG_PEEK leaves what is there for the connection to read.
    let peeked = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    peeked == 0
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::mpsc;

    use may::net::{TcpListener, TcpStream};

    use super::*;

    /// A parked socket comes back once its peer writes; one whose peer leaves is dropped
    /// (closed) without coming back; until then each stays parked.
    #[test]
    fn a_parked_socket_resumes_on_its_first_byte_and_is_closed_at_its_end() {
        let (resumed, back) = mpsc::channel::<TcpStream>();
        let resumed = Mutex::new(resumed);
        let parking = Parking::start(move |_, stream| {
            let _ = resumed.lock().unwrap().send(stream);
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut writer = std::net::TcpStream::connect(addr).unwrap();
        let leaver = std::net::TcpStream::connect(addr).unwrap();
        let (first, _) = listener.accept().unwrap();
        let (second, _) = listener.accept().unwrap();
        parking.park(1, first).unwrap();
        parking.park(2, second).unwrap();
        assert_eq!(parking.lock().len(), 2);
        let nothing = back.recv_timeout(Duration::from_millis(200));
        assert!(nothing.is_err(), "resumed without an event");

        writer.write_all(b"x").unwrap();
        let mut stream = back.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut byte = [0; 1];
        assert_eq!(stream.read(&mut byte).unwrap(), 1);
        assert_eq!(&byte, b"x");
        assert_eq!(parking.lock().len(), 1);

        drop(leaver);
        assert!(
            wait(|| parking.lock().is_empty()),
            "the leaver stays parked"
        );
        let nothing = back.recv_timeout(Duration::from_millis(200));
        assert!(nothing.is_err(), "resumed only to be closed");
        drop(stream);
    }

    fn wait(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !condition() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// A socket whose peer sent a request and then left is resumed: the request is read first.
    #[test]
    fn bytes_before_the_end_still_resume() {
        let (resumed, back) = mpsc::channel::<TcpStream>();
        let parking = Parking::start(move |_, stream| {
            let _ = resumed.send(stream);
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        parking.park(3, stream).unwrap();
        client.write_all(b"last").unwrap();
        drop(client);
        let mut stream = back.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"last");
    }

    #[test]
    fn a_socket_the_kernel_cannot_watch_is_given_back() {
        let parking = Parking::start(|_, _: OwnedFd| {}).unwrap();
        // A regular file cannot be watched by epoll.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let (back, error) = parking.park(7, OwnedFd::from(file)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        assert!(back.as_raw_fd() >= 0);
        assert!(parking.lock().is_empty());
    }
}
