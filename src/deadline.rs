//! Read deadlines of every connection, enforced by one OS thread instead of a `may` timer per
//! read.
//!
//! A `may` read with a timeout pushes a timer node that outlives the read under load (its
//! removal skips the newest node of a list), so tens of thousands of small nodes lived until
//! their 10 s / 60 s timeout and pinned malloc arena pages. Here a connection `watch`es its
//! socket in a fixed table of slots sized once from the connection cap; arming a deadline is
//! an atomic compare-and-swap on its slot (no allocation, no syscall). The `read-deadlines`
//! thread sleeps until the earliest armed deadline (plus `DEADLINE_SLACK`, so a mass expiry is
//! one sweep), marks each expired slot and calls `shutdown(fd, SHUT_RD)`, which wakes the
//! parked read with end-of-file; the connection tells that from the peer's end-of-file by the
//! mark (`Expired`). With nothing armed the thread parks without a timeout: an idle server gets
//! no wake-ups.
//!
//! A deadline can also be a wake-up (`Watched::wait_by`): then the sweeper only wakes the
//! coroutine waiting on the socket (through the `may` waker the slot holds), and the slot goes
//! back to `TAKEN`, disarmed; the socket stays as it was. An idle connection uses it to learn
//! that it has been quiet long enough to give up its coroutine (`parking`). Writes are bounded
//! the same way (`Watched::write_by`): a wait for room in the socket's buffer is a wake-up at
//! the write's deadline, so `may`'s `io_timeout` feature (a timer list per event loop) is off.
//!
//! **Slot protocol.** A slot's word holds a state in its low two bits, the wake-up flag in the
//! third, and a deadline (ms on the table's monotonic clock, 0 = none) above them:
//! - `FREE` → `TAKEN` (deadline 0): `watch`, which then stores the fd;
//! - `TAKEN` → `TAKEN` with another deadline: the connection arms or disarms (a CAS: it fails
//!   only when the sweeper fired);
//! - `TAKEN` → `FIRING`: the sweeper, by a CAS from the exact word it found expired (so a
//!   re-armed deadline is never fired), then `shutdown`, then → `FIRED`; for a wake-up, the
//!   wake, then → `TAKEN` without a deadline. `FIRING` belongs to the sweeper alone, so nobody
//!   else writes the word meanwhile (arming waits while a wake-up fires);
//! - `TAKEN` or `FIRED` → `FREE`: the connection's release, which waits while the slot is
//!   `FIRING`. It runs before the socket is closed (`Watched` owns the socket and drops it
//!   after the release), so the sweeper never shuts down a descriptor that was closed and
//!   whose number was reused. A fired slot stays fired: its read side is shut for good.
//!
//! Free slots are a lock-free stack (tagged head against ABA) over the slots used before;
//! slots never used are taken in order, so pages of the table that no connection reached are
//! never touched (the table is an anonymous mapping: unused slots cost no resident memory).

use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use may::io::{WaitIo, WaitIoWaker};

use crate::limits::DEADLINE_SLACK;

/// The low bits of a slot's word: its state, then the wake-up flag.
const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = 0b11;
const FREE: u64 = 0;
const TAKEN: u64 = 1;
const FIRING: u64 = 2;
const FIRED: u64 = 3;
/// The armed deadline only wakes the waiting coroutine; the socket is left as it is.
const WAKE: u64 = 0b100;
/// The free stack's head: the top slot's index + 1 (0 = empty) in the low half, a tag that
/// changes with every push and pop in the high half.
const INDEX_MASK: u64 = u32::MAX as u64;
const TAG_STEP: u64 = 1 << 32;
/// Spins on a `FIRING` slot before yielding the OS thread while the sweeper finishes one
/// `shutdown` call.
const FIRING_SPINS: u32 = 64;

/// The deadline of the read passed, before it began or while it waited: the socket's read side
/// is shut for good.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired;

/// The slot table and what the sweeper thread needs.
pub struct Deadlines {
    slots: &'static [Slot],
    /// Origin of the deadlines' millisecond clock.
    epoch: Instant,
    free: AtomicU64,
    /// Slots below this index were taken at least once; the sweeper looks at them only.
    used: AtomicU32,
    /// The earliest deadline the sleeping sweeper will wake for; `u64::MAX` while it sweeps or
    /// has nothing armed, so that every new deadline wakes it.
    wake_at: AtomicU64,
    sweeper: OnceLock<Thread>,
}

/// A socket whose reads are bounded by deadlines; dropping it frees its slot, then closes the
/// socket.
pub struct Watched<'d, S: AsRawFd> {
    deadlines: &'d Deadlines,
    index: u32,
    socket: S,
}

/// One connection's place in the table; all zero is `FREE`.
struct Slot {
    word: AtomicU64,
    fd: AtomicI32,
    /// Next free slot's index + 1 (0 = none) while this one is on the free stack.
    next: AtomicU32,
    /// Wakes the coroutine waiting on the socket (a leaked `Box`, owned by the slot while it
    /// is taken; null for a socket without one). The sweeper uses it only while `FIRING`.
    waker: AtomicPtr<WaitIoWaker>,
}

/// What `Watched::wait_by` saw first.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited<T> {
    /// The socket had something for the caller.
    Ready(T),
    /// The wake-up time came and the socket had nothing.
    Quiet,
}

impl Deadlines {
    /// A table of `capacity` slots, without the sweeper thread.
    pub fn new(capacity: usize) -> io::Result<Deadlines> {
        let Ok(count) = u32::try_from(capacity) else {
            return Err(io::Error::other("too many connection slots"));
        };
        assert!(
            count < u32::MAX,
            "slot index + 1 must fit the free stack's head"
        );
        Ok(Deadlines {
            slots: map_zeroed(capacity)?,
            epoch: Instant::now(),
            free: AtomicU64::new(0),
            used: AtomicU32::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            sweeper: OnceLock::new(),
        })
    }

    /// A table of `capacity` slots (one per connection the server admits) and the
    /// `read-deadlines` thread that enforces them; lives as long as the process.
    pub fn start(capacity: usize) -> io::Result<&'static Deadlines> {
        let deadlines: &'static Deadlines = Box::leak(Box::new(Deadlines::new(capacity)?));
        let thread = std::thread::Builder::new()
            .name("read-deadlines".into())
            .stack_size(64 * 1024)
            .spawn(|| deadlines.run())?;
        let _ = deadlines.sweeper.set(thread.thread().clone());
        // The first deadline may have been armed before the handle was set.
        thread.thread().unpark();
        Ok(deadlines)
    }

    /// Takes a slot for `socket`, whose coroutine `waker` wakes (it is what `Watched::wait_by`
    /// needs; without one, wake-ups are not possible and `wait_by` must not be used); `None`
    /// (the socket is dropped) when every slot is taken, which the connection cap rules out.
    pub fn watch<S: AsRawFd>(
        &self,
        socket: S,
        waker: Option<WaitIoWaker>,
    ) -> Option<Watched<'_, S>> {
        let Some(index) = self.pop_free().or_else(|| self.take_unused()) else {
            debug_assert!(false, "more connections than slots");
            return None;
        };
        let slot = self.slot(index);
        debug_assert_eq!(
            slot.word.load(Ordering::Relaxed),
            FREE,
            "a taken slot was free"
        );
        slot.fd.store(socket.as_raw_fd(), Ordering::Relaxed);
        let waker = waker.map_or(std::ptr::null_mut(), |waker| Box::into_raw(Box::new(waker)));
        slot.waker.store(waker, Ordering::Relaxed);
        // Publishes the fd and waker with the slot: the sweeper reads them only after a CAS on
        // the word.
        slot.word.store(TAKEN, Ordering::Release);
        Some(Watched {
            deadlines: self,
            index,
            socket,
        })
    }

    /// Milliseconds since the epoch, rounded down.
    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `at` in milliseconds since the epoch, rounded up so that a deadline never fires early;
    /// at least 1 (0 means none).
    fn millis(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000))
            .unwrap_or(u64::MAX >> STATE_BITS)
            .clamp(1, u64::MAX >> STATE_BITS)
    }

    // Indexes come only from `pop_free` and `take_unused`, below the table's length: an
    // index out of it is a programmer error.
    #[allow(clippy::indexing_slicing)]
    fn slot(&self, index: u32) -> &Slot {
        &self.slots[index as usize]
    }

    /// Sets the slot's deadline (0 = none); `Expired` once the sweeper fired it. With `wake`,
    /// the deadline is a wake-up (see the module doc).
    fn set(&self, index: u32, millis: u64, wake: bool) -> Result<(), Expired> {
        let slot = self.slot(index);
        let mut word = slot.word.load(Ordering::Acquire);
        let mut spins = 0;
        loop {
            match word & STATE_MASK {
                TAKEN => {}
                FIRING if word & WAKE != 0 => {
                    // The sweeper is waking this coroutine (one `wakeup` call); the slot is
                    // `TAKEN` again right after.
                    wait_for_sweeper(&mut spins);
                    word = slot.word.load(Ordering::Acquire);
                    continue;
                }
                FIRING | FIRED => return Err(Expired),
                _ => {
                    debug_assert!(false, "a deadline set on a free slot");
                    return Err(Expired);
                }
            }
            let flag = if wake && millis != 0 { WAKE } else { 0 };
            let armed = millis << STATE_BITS | flag | TAKEN;
            // SeqCst with the load of `wake_at` below, against the sweeper's store of
            // `u64::MAX` and its scan: one of the two sees the other's write.
            match slot
                .word
                .compare_exchange(word, armed, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        if millis != 0
            && millis < self.wake_at.load(Ordering::SeqCst)
            && self.wake_at.fetch_min(millis, Ordering::SeqCst) > millis
            && let Some(sweeper) = self.sweeper.get()
        {
            sweeper.unpark();
        }
        Ok(())
    }

    /// Frees the slot; waits while the sweeper shuts its socket down, so that the caller may
    /// close it afterwards.
    fn release(&self, index: u32) {
        let slot = self.slot(index);
        let mut spins = 0;
        let mut word = slot.word.load(Ordering::Acquire);
        loop {
            match word & STATE_MASK {
                FIRING => {
                    wait_for_sweeper(&mut spins);
                    word = slot.word.load(Ordering::Acquire);
                    continue;
                }
                TAKEN | FIRED => {}
                _ => {
                    debug_assert!(false, "a free slot released");
                    return;
                }
            }
            match slot
                .word
                .compare_exchange(word, FREE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        let waker = slot.waker.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !waker.is_null() {
            // SAFETY: `watch` leaked this box for the slot, and the slot is free now, so the
            // sweeper (which reads it only while `FIRING`) is done with it.
            drop(unsafe { Box::from_raw(waker) });
        }
        self.push_free(index);
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let top = (head & INDEX_MASK) as u32;
            let index = top.checked_sub(1)?;
            // Stale when another thread popped `index` meanwhile: then the tag changed too and
            // the CAS fails.
            let next = self.slot(index).next.load(Ordering::Relaxed);
            let popped = (head & !INDEX_MASK).wrapping_add(TAG_STEP) | u64::from(next);
            match self
                .free
                .compare_exchange_weak(head, popped, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(now) => head = now,
            }
        }
    }

    fn push_free(&self, index: u32) {
        let slot = self.slot(index);
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            slot.next
                .store((head & INDEX_MASK) as u32, Ordering::Relaxed);
            let pushed = (head & !INDEX_MASK).wrapping_add(TAG_STEP) | u64::from(index + 1);
            match self.free.compare_exchange_weak(
                head,
                pushed,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    fn take_unused(&self) -> Option<u32> {
        let count = self.slots.len() as u32;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < count).then_some(used + 1)
            })
            .ok()
    }

    /// Fires every slot whose deadline is at or before `now` (ms): marks it, calls `fire` with
    /// its fd, marks it fired; a wake-up calls `wake` with its waker instead and leaves the slot
    /// taken and disarmed. Returns the earliest deadline still armed.
    fn sweep(
        &self,
        now: u64,
        mut fire: impl FnMut(RawFd),
        mut wake: impl FnMut(&WaitIoWaker),
    ) -> Option<u64> {
        let used = self.used.load(Ordering::Acquire) as usize;
        let mut earliest: Option<u64> = None;
        for slot in self.slots.iter().take(used) {
            let word = slot.word.load(Ordering::SeqCst);
            let at = word >> STATE_BITS;
            if word & STATE_MASK != TAKEN || at == 0 {
                continue;
            }
            if at > now {
                earliest = Some(earliest.map_or(at, |earliest| earliest.min(at)));
                continue;
            }
            let firing = (word & !STATE_MASK) | FIRING;
            // Fails when the connection re-armed, disarmed or left meanwhile; a new deadline
            // lowers `wake_at` (`u64::MAX` during a sweep) and so wakes the next sweep.
            if slot
                .word
                .compare_exchange(word, firing, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if word & WAKE == 0 {
                fire(slot.fd.load(Ordering::Relaxed));
                slot.word.store(at << STATE_BITS | FIRED, Ordering::Release);
                continue;
            }
            let waker = slot.waker.load(Ordering::Relaxed);
            // SAFETY: the box lives until `release` frees the slot, which waits while it is
            // `FIRING`.
            match unsafe { waker.as_ref() } {
                Some(waker) => wake(waker),
                None => debug_assert!(false, "a wake-up armed on a slot without a waker"),
            }
            slot.word.store(TAKEN, Ordering::Release);
        }
        earliest
    }

    /// The sweeper thread's loop.
    fn run(&self) {
        loop {
            self.wake_at.store(u64::MAX, Ordering::SeqCst);
            let Some(earliest) = self.sweep(self.now_millis(), shutdown_read, WaitIoWaker::wakeup)
            else {
                // Nothing armed: the next deadline set unparks (`wake_at` is `u64::MAX`).
                std::thread::park();
                continue;
            };
            self.wake_at.fetch_min(earliest, Ordering::SeqCst);
            // A deadline armed since the sweep lowered `wake_at` and unparked: this returns at
            // once and the next sweep sees it.
            let wake = self.epoch + Duration::from_millis(earliest) + DEADLINE_SLACK;
            std::thread::park_timeout(wake.saturating_duration_since(Instant::now()));
        }
    }
}

impl<S: AsRawFd> Watched<'_, S> {
    /// Runs `read`, a blocking read of the socket, under `deadline`: if the deadline passes
    /// first, its read side is shut down and the read returns end-of-file, answered here as
    /// `Expired` (whatever `read` returned).
    pub fn read_by<T>(
        &mut self,
        deadline: Instant,
        read: impl FnOnce(&mut S) -> T,
    ) -> Result<T, Expired> {
        self.arm(deadline)?;
        let read = read(&mut self.socket);
        // Disarmed at once: the connection may take long to answer what it read.
        self.deadlines.set(self.index, 0, false)?;
        Ok(read)
    }

    /// Arms `deadline` and leaves it armed (`read_by` disarms it after its read; a socket that
    /// waits elsewhere, in `parking`, keeps it): when it passes, the read side is shut, whoever
    /// holds the socket then.
    pub fn arm(&mut self, deadline: Instant) -> Result<(), Expired> {
        if deadline <= Instant::now() {
            return Err(Expired);
        }
        self.deadlines
            .set(self.index, self.deadlines.millis(deadline), false)
    }

    /// The slot's index: unique among the sockets watched now.
    pub fn key(&self) -> u32 {
        self.index
    }
}

impl<S: AsRawFd + WaitIo> Watched<'_, S> {
    /// Calls `ready` (a non-blocking look at the socket) until it returns something, waiting
    /// for the socket's events in between, under `deadline` (as `read_by`) and until `quiet`:
    /// once that passes with nothing from `ready`, `Quiet`. Needs the socket's waker (`watch`).
    pub fn wait_by<T>(
        &mut self,
        deadline: Instant,
        quiet: Instant,
        ready: impl FnMut(&mut S) -> Option<T>,
    ) -> Result<Waited<T>, Expired> {
        self.wait_until(Some(deadline), quiet, ready)
    }

    /// Calls `ready` until it returns something, waiting in between for the socket's events
    /// and for its waker (which any thread may call once `ready` has something), until
    /// `quiet`: then `Quiet`. No read deadline: the socket is left as it is. The bound is a
    /// wake-up of the sweeper, so the wait registers no `may` timer.
    pub fn wake_by<T>(
        &mut self,
        quiet: Instant,
        ready: impl FnMut(&mut S) -> Option<T>,
    ) -> Result<Waited<T>, Expired> {
        self.wait_until(None, quiet, ready)
    }

    /// Writes all of `bytes` by `deadline`, else `TimedOut` (the caller closes the socket). The
    /// wait for room is a wake-up (`wake_by`), so no `may` timer is armed; a socket whose read
    /// deadline already fired cannot be woken, so it gets what fits now and `TimedOut` for the
    /// rest.
    pub fn write_by(&mut self, deadline: Instant, bytes: &[u8]) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        let mut rest = bytes;
        while !rest.is_empty() {
            let sent = match send_now(fd, rest) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    let waited = self.wake_by(deadline, |_| match send_now(fd, rest) {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                        sent => Some(sent),
                    });
                    match waited {
                        Ok(Waited::Ready(sent)) => sent?,
                        Ok(Waited::Quiet) | Err(Expired) => {
                            return Err(io::ErrorKind::TimedOut.into());
                        }
                    }
                }
                sent => sent?,
            };
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = rest.get(sent..).unwrap_or_default();
        }
        Ok(())
    }

    fn wait_until<T>(
        &mut self,
        deadline: Option<Instant>,
        quiet: Instant,
        mut ready: impl FnMut(&mut S) -> Option<T>,
    ) -> Result<Waited<T>, Expired> {
        let (at, wake) = match deadline {
            Some(deadline) if deadline <= quiet => (deadline, false),
            _ => (quiet, true),
        };
        let at = self.deadlines.millis(at);
        let waited = loop {
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return Err(Expired);
            }
            // (Re-)armed on every round: a wake-up that fired leaves the slot disarmed.
            self.deadlines.set(self.index, at, wake)?;
            if let Some(found) = ready(&mut self.socket) {
                break Waited::Ready(found);
            }
            if quiet <= Instant::now() {
                break Waited::Quiet;
            }
            // Returns at once when an event or a wake-up came since the last wait.
            self.socket.wait_io();
        };
        self.deadlines.set(self.index, 0, false)?;
        Ok(waited)
    }
}

impl<S: AsRawFd> Deref for Watched<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.socket
    }
}

impl<S: AsRawFd> DerefMut for Watched<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.socket
    }
}

impl<S: AsRawFd> Drop for Watched<'_, S> {
    fn drop(&mut self) {
        // Before `socket` is dropped (fields drop after this body): the fd is still ours.
        self.deadlines.release(self.index);
    }
}

/// One round of waiting while the sweeper holds a slot `FIRING`: one `shutdown` or `wakeup`
/// call on its thread, microseconds unless it was preempted.
fn wait_for_sweeper(spins: &mut u32) {
    *spins += 1;
    if *spins < FIRING_SPINS {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// `count` zeroed slots in an anonymous mapping, never unmapped (the server's table lives as
/// long as the process): pages are backed only once a slot on them is used.
fn map_zeroed(count: usize) -> io::Result<&'static [Slot]> {
    let len = count.max(1) * size_of::<Slot>();
    // SAFETY: a fresh private anonymous mapping aliases nothing.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is page-aligned, `len` bytes long, zero-filled, and never unmapped;
    // all-zero bytes are valid atomics, and slots are only accessed through atomics.
    Ok(unsafe { std::slice::from_raw_parts(start.cast::<Slot>(), count) })
}

/// What has arrived on socket `fd` without waiting for more; `WouldBlock` when nothing has.
pub fn receive_now(fd: RawFd, into: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `into` is writable for its whole length during the call.
    bytes_moved(|| unsafe {
        libc::recv(fd, into.as_mut_ptr().cast(), into.len(), libc::MSG_DONTWAIT)
    })
}

/// Sends what fits in socket `fd`'s buffer now; `WouldBlock` when nothing does.
fn send_now(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is readable for its whole length during the call. MSG_NOSIGNAL: a peer
    // that left gives `EPIPE`, not a signal.
    bytes_moved(|| unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// The byte count of a `recv`/`send` call, retried when a signal interrupted it.
fn bytes_moved(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        match usize::try_from(call()) {
            Ok(moved) => return Ok(moved),
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

fn shutdown_read(fd: RawFd) {
    // SAFETY: the fd belongs to a `Watched` socket that cannot be closed while its slot is
    // `FIRING`. An error (the peer already reset it) leaves nothing to wake.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// A watched server-side socket on a table of its own, and the client end that keeps it open:
/// for tests of the waits on a real socket (`wait_by`, `wake_by` and those built on them).
#[cfg(test)]
pub fn watched_socket() -> (Watched<'static, may::net::TcpStream>, std::net::TcpStream) {
    let deadlines = Deadlines::start(2).unwrap();
    let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let waker = stream.waker();
    (deadlines.watch(stream, Some(waker)).unwrap(), client)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in socket: only its number matters to the table.
    struct Fake(RawFd);

    impl AsRawFd for Fake {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    fn state(deadlines: &Deadlines, index: u32) -> u64 {
        deadlines.slot(index).word.load(Ordering::Relaxed) & STATE_MASK
    }

    /// Sweeps at `now` ms; returns the fds fired and the earliest deadline left.
    #[track_caller]
    fn sweep(deadlines: &Deadlines, now: u64) -> (Vec<RawFd>, Option<u64>) {
        let mut fired = Vec::new();
        let earliest = deadlines.sweep(now, |fd| fired.push(fd), |_| panic!("woken"));
        (fired, earliest)
    }

    #[test]
    fn released_slots_are_reused_before_unused_ones() {
        let deadlines = Deadlines::new(4).unwrap();
        let first = deadlines.watch(Fake(10), None).unwrap();
        let second = deadlines.watch(Fake(11), None).unwrap();
        assert_eq!((first.index, second.index), (0, 1));
        drop(first);
        assert_eq!(state(&deadlines, 0), FREE);
        let third = deadlines.watch(Fake(12), None).unwrap();
        assert_eq!(third.index, 0);
        assert_eq!(deadlines.slot(0).fd.load(Ordering::Relaxed), 12);
        assert_eq!(deadlines.used.load(Ordering::Relaxed), 2);
        drop(second);
        drop(third);
        let again: Vec<_> = (0..4)
            .map(|fd| deadlines.watch(Fake(fd), None).unwrap())
            .collect();
        let mut indexes: Vec<_> = again.iter().map(|watched| watched.index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1, 2, 3]);
    }

    #[test]
    fn sweep_fires_exactly_the_expired_and_returns_the_earliest_left() {
        let deadlines = Deadlines::new(8).unwrap();
        let watched: Vec<_> = (20..25)
            .map(|fd| deadlines.watch(Fake(fd), None).unwrap())
            .collect();
        // fd 20 none, 21 at 5, 22 at 10 (the boundary fires), 23 at 11, 24 at 30.
        for (watched, at) in watched.iter().zip([0, 5, 10, 11, 30]) {
            deadlines.set(watched.index, at, false).unwrap();
        }
        assert_eq!(sweep(&deadlines, 4), (vec![], Some(5)));
        assert_eq!(sweep(&deadlines, 10), (vec![21, 22], Some(11)));
        assert_eq!(state(&deadlines, 1), FIRED);
        assert_eq!(state(&deadlines, 0), TAKEN);
        // Fired slots stay fired: not fired again, and arming them reports it.
        assert_eq!(sweep(&deadlines, 20), (vec![23], Some(30)));
        assert_eq!(deadlines.set(watched[1].index, 100, false), Err(Expired));
        assert_eq!(deadlines.set(watched[1].index, 0, false), Err(Expired));
        assert_eq!(sweep(&deadlines, 30), (vec![24], None));
    }

    #[test]
    fn a_rearmed_or_disarmed_deadline_is_not_fired() {
        let deadlines = Deadlines::new(2).unwrap();
        let moved = deadlines.watch(Fake(30), None).unwrap();
        let cleared = deadlines.watch(Fake(31), None).unwrap();
        deadlines.set(moved.index, 5, false).unwrap();
        deadlines.set(cleared.index, 5, false).unwrap();
        deadlines.set(moved.index, 50, false).unwrap();
        deadlines.set(cleared.index, 0, false).unwrap();
        assert_eq!(sweep(&deadlines, 10), (vec![], Some(50)));
        assert_eq!(state(&deadlines, moved.index), TAKEN);
    }

    #[test]
    fn a_released_slot_is_not_fired_and_its_next_owner_starts_unarmed() {
        let deadlines = Deadlines::new(1).unwrap();
        let gone = deadlines.watch(Fake(40), None).unwrap();
        deadlines.set(gone.index, 5, false).unwrap();
        drop(gone);
        assert_eq!(sweep(&deadlines, 10), (vec![], None));
        let next = deadlines.watch(Fake(41), None).unwrap();
        assert_eq!(sweep(&deadlines, 10), (vec![], None));
        deadlines.set(next.index, 5, false).unwrap();
        assert_eq!(sweep(&deadlines, 10), (vec![41], None));
    }

    #[test]
    fn a_wake_up_wakes_the_reader_and_leaves_the_socket_alone() {
        let deadlines = Deadlines::new(1).unwrap();
        let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let watched = deadlines.watch(Fake(70), Some(listener.waker())).unwrap();
        deadlines.set(watched.index, 5, true).unwrap();
        let mut woken = 0;
        let mut fired = Vec::new();
        let earliest = deadlines.sweep(10, |fd| fired.push(fd), |_| woken += 1);
        assert_eq!((fired.as_slice(), woken, earliest), (&[][..], 1, None));
        // Taken and disarmed: not woken twice, and an ordinary deadline still fires.
        assert_eq!(
            deadlines.slot(watched.index).word.load(Ordering::Relaxed),
            TAKEN
        );
        assert_eq!(sweep(&deadlines, 20), (vec![], None));
        deadlines.set(watched.index, 30, false).unwrap();
        assert_eq!(sweep(&deadlines, 30), (vec![70], None));
    }

    #[test]
    fn arming_waits_while_a_wake_up_fires() {
        let deadlines: &'static Deadlines = Box::leak(Box::new(Deadlines::new(1).unwrap()));
        let watched = deadlines.watch(Fake(80), None).unwrap();
        let slot = deadlines.slot(watched.index);
        slot.word
            .store(5 << STATE_BITS | WAKE | FIRING, Ordering::SeqCst);
        let index = watched.index;
        let arm = std::thread::spawn(move || deadlines.set(index, 50, false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!arm.is_finished(), "armed while the wake-up was firing");
        slot.word.store(TAKEN, Ordering::SeqCst);
        assert_eq!(arm.join().unwrap(), Ok(()));
        assert_eq!(slot.word.load(Ordering::Relaxed), 50 << STATE_BITS | TAKEN);
    }

    /// `wait_by` on a real socket in a coroutine: quiet when nothing comes, ready when bytes
    /// do, expired when the deadline comes before the quiet time.
    #[test]
    fn wait_by_ends_quiet_ready_or_expired() {
        use std::io::Write;
        let (mut watched, mut client) = watched_socket();
        let peek = |stream: &mut may::net::TcpStream| {
            let mut byte = [0u8; 1];
            // SAFETY: `byte` is writable for the call.
            let seen = unsafe {
                libc::recv(
                    stream.as_raw_fd(),
                    byte.as_mut_ptr().cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_PEEK,
                )
            };
            (seen > 0).then_some(byte[0])
        };
        let waited = may::go!(move || {
            let started = Instant::now();
            let quiet = watched.wait_by(
                started + Duration::from_secs(5),
                started + Duration::from_millis(100),
                peek,
            );
            let took = started.elapsed();
            client.write_all(b"x").unwrap();
            let ready = watched.wait_by(
                Instant::now() + Duration::from_secs(5),
                Instant::now() + Duration::from_secs(5),
                peek,
            );
            let started = Instant::now();
            let expired = watched.wait_by(
                started + Duration::from_millis(50),
                started + Duration::from_secs(5),
                |_| None::<u8>,
            );
            (quiet, took, ready, expired, client)
        })
        .join()
        .unwrap();
        let (quiet, took, ready, expired, _client) = waited;
        assert_eq!(quiet, Ok(Waited::Quiet));
        assert!(took >= Duration::from_millis(100), "quiet after {took:?}");
        assert!(took < Duration::from_secs(5), "quiet after {took:?}");
        assert_eq!(ready, Ok(Waited::Ready(b'x')));
        assert_eq!(expired, Err(Expired));
    }

    /// More than loopback's socket buffers on both ends can hold.
    const UNREAD_BYTES: usize = 64 << 20;

    #[test]
    fn write_by_sends_everything_to_a_reader_and_times_out_on_a_peer_that_does_not_read() {
        use std::io::Read;
        let (mut watched, mut client) = watched_socket();
        let reader = std::thread::spawn(move || {
            let mut total = 0;
            let mut chunk = vec![0; 1 << 16];
            while total < UNREAD_BYTES {
                total += client.read(&mut chunk).unwrap();
            }
            (total, client)
        });
        let (sent, watched) = may::go!(move || {
            let sent = watched.write_by(
                Instant::now() + Duration::from_secs(30),
                &vec![7; UNREAD_BYTES],
            );
            (sent, watched)
        })
        .join()
        .unwrap();
        assert_eq!(sent.map_err(|error| error.kind()), Ok(()));
        let (received, _client) = reader.join().unwrap();
        assert_eq!(received, UNREAD_BYTES);
        drop(watched);

        let (mut watched, _silent) = watched_socket();
        let (sent, took) = may::go!(move || {
            let started = Instant::now();
            let sent =
                watched.write_by(started + Duration::from_millis(200), &vec![7; UNREAD_BYTES]);
            (sent, started.elapsed())
        })
        .join()
        .unwrap();
        assert_eq!(
            sent.map_err(|error| error.kind()),
            Err(io::ErrorKind::TimedOut)
        );
        assert!(took >= Duration::from_millis(200), "gave up after {took:?}");
        assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    }

    #[test]
    fn write_by_on_a_fired_socket_sends_what_fits_and_does_not_wait() {
        let (mut watched, _silent) = watched_socket();
        let slot = watched.deadlines.slot(watched.index);
        slot.word.store(1 << STATE_BITS | FIRED, Ordering::SeqCst);
        let (small, large, took) = may::go!(move || {
            let small = watched.write_by(Instant::now() + Duration::from_secs(30), b"408");
            let started = Instant::now();
            let large = watched.write_by(
                Instant::now() + Duration::from_secs(30),
                &vec![7; UNREAD_BYTES],
            );
            (small, large, started.elapsed())
        })
        .join()
        .unwrap();
        assert_eq!(small.map_err(|error| error.kind()), Ok(()));
        assert_eq!(
            large.map_err(|error| error.kind()),
            Err(io::ErrorKind::TimedOut)
        );
        assert!(took < Duration::from_secs(5), "waited {took:?}");
    }

    #[test]
    fn release_waits_while_the_sweeper_is_firing() {
        let deadlines: &'static Deadlines = Box::leak(Box::new(Deadlines::new(1).unwrap()));
        let watched = deadlines.watch(Fake(50), None).unwrap();
        let slot = deadlines.slot(watched.index);
        slot.word.store(5 << STATE_BITS | FIRING, Ordering::SeqCst);
        let release = std::thread::spawn(move || drop(watched));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !release.is_finished(),
            "released while the socket was being shut down"
        );
        slot.word.store(5 << STATE_BITS | FIRED, Ordering::SeqCst);
        release.join().unwrap();
        assert_eq!(state(deadlines, 0), FREE);
    }

    #[test]
    fn only_an_earlier_deadline_lowers_the_wake_up() {
        let deadlines = Deadlines::new(2).unwrap();
        let first = deadlines.watch(Fake(60), None).unwrap();
        let second = deadlines.watch(Fake(61), None).unwrap();
        deadlines.set(first.index, 100, false).unwrap();
        assert_eq!(deadlines.wake_at.load(Ordering::Relaxed), 100);
        deadlines.set(second.index, 200, false).unwrap();
        deadlines.set(first.index, 0, false).unwrap();
        assert_eq!(deadlines.wake_at.load(Ordering::Relaxed), 100);
        deadlines.set(second.index, 40, false).unwrap();
        assert_eq!(deadlines.wake_at.load(Ordering::Relaxed), 40);
    }

    #[test]
    fn deadlines_round_up_to_the_millisecond_and_never_to_none() {
        let deadlines = Deadlines::new(1).unwrap();
        let epoch = deadlines.epoch;
        let check = |after: Duration, millis: u64| {
            assert_eq!(deadlines.millis(epoch + after), millis, "{after:?}");
        };
        check(Duration::ZERO, 1);
        check(Duration::from_nanos(1), 1);
        check(Duration::from_millis(1), 1);
        check(Duration::from_nanos(1_000_001), 2);
        check(Duration::from_secs(60), 60_000);
        assert_eq!(deadlines.millis(epoch - Duration::from_nanos(1)), 1);
    }

    #[test]
    fn an_expired_deadline_wakes_a_blocked_read_with_expired() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let deadlines = Deadlines::start(2).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut watched = deadlines.watch(listener.accept().unwrap().0, None).unwrap();
        let started = Instant::now();
        let timeout = Duration::from_millis(100);
        let read = watched.read_by(started + timeout, |socket| socket.read(&mut [0; 8]));
        let took = started.elapsed();
        assert_eq!(read.map(|read| read.ok()), Err(Expired));
        assert!(took >= timeout, "woken after {took:?}");
        // The mark stays: later reads are refused at once, even with bytes waiting.
        client.write_all(b"late").unwrap();
        let read = watched.read_by(Instant::now() + timeout, |socket| socket.read(&mut [0; 8]));
        assert_eq!(read.map(|read| read.ok()), Err(Expired));
        drop(watched);
        // A fresh connection reads what arrives in time, and never waits on a passed deadline.
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut watched = deadlines.watch(listener.accept().unwrap().0, None).unwrap();
        assert_eq!(watched.read_by(Instant::now(), |_| ()), Err(Expired));
        client.write_all(b"on time").unwrap();
        let mut bytes = [0; 8];
        let read = watched.read_by(Instant::now() + timeout, |socket| socket.read(&mut bytes));
        assert_eq!(read.map(|read| read.ok()), Ok(Some(7)));
    }
}
