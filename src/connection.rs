//! One connection: its coroutine reads, handles and answers requests in order.
//!
//! A connection holds a buffer only while a request is being read or answered: the first bytes
//! of a request are read into a small array on the stack and moved into a buffer of
//! `CONNECTION_BUFFER_IDLE` bytes, which grows to at most `HEAD_SIZE_MAX` + the body limit, and
//! is freed (with the answer buffer) once the request is answered and no pipelined bytes
//! remain. Requests are answered in order, so keep-alive and pipelining need no queue.
//! Every read waits under a deadline that `deadline` enforces (no `may` timer per read): the
//! request's, counted from its first byte, or the idle one between requests; an answer is
//! written within `WRITE_TIMEOUT` (`Watched::write_by`), else the connection closes. A
//! connection that waits `IDLE_PARK_AFTER` for its next request gives up its coroutine and
//! waits in `parking` (its idle deadline still armed) until bytes or end-of-file bring it back.
//! **Invariant:** every answer leaves the connection in a known state: the body consumed, or
//! the connection closed.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{debug, warn};
use may::net::TcpStream;

use crate::answer::{self, Answer, Connection, Malformed, Oversized, Rejection};
use crate::deadline::{Expired, Waited, Watched, receive_now};
use crate::http::{self, BodyFraming, Head, Method};
use crate::limits::{
    BUFFERED_BYTES_MAX, CONNECTION_BUFFER_IDLE, HEAD_SIZE_MAX, IDLE_PARK_AFTER, WRITE_TIMEOUT,
};
use crate::parking::Parking;
use crate::service::{self, Context, Request, Session};
use crate::{admission, metrics, trim};

/// Longest chunk-size line (size, extensions, CRLF) accepted in a chunked body.
const CHUNK_LINE_MAX: usize = 1024;
/// Free space made in the buffer before reading more of a request head.
const HEAD_READ_SPACE: usize = 1024;
/// Stack bytes an idle connection reads its next request's first bytes into: a typical
/// webhook (head and body) fits, so it needs no second read.
const FIRST_READ_SIZE: usize = 1024;
const _: () = assert!(FIRST_READ_SIZE <= CONNECTION_BUFFER_IDLE);
/// Room an answer buffer is allocated with: every answer but `/metrics` fits.
const ANSWER_SIZE: usize = 512;

/// A connection between requests: what `parking` holds while it is quiet.
pub struct Idle {
    stream: Watched<'static, TcpStream>,
    /// Held for the connection's life: dropping it frees the admission slot.
    _slot: admission::Slot,
    /// Whether a request was answered; until then an idle wait is bounded by
    /// the request timeout, so silent connections cannot hold slots for the idle timeout.
    served: bool,
}

impl Idle {
    /// A connection just accepted under its admission `slot`.
    pub fn new(stream: Watched<'static, TcpStream>, slot: admission::Slot) -> Idle {
        // Best effort: a failure leaves the default, which still works.
        let _ = stream.set_nodelay(true);
        Idle {
            stream,
            _slot: slot,
            served: false,
        }
    }
}

impl AsRawFd for Idle {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

struct Conn<'c> {
    /// What outlives this coroutine when the connection parks.
    idle: Idle,
    /// Allocated (and zeroed) bytes; `filled` of them hold unread request data. Empty (not
    /// allocated) while the connection waits for a request.
    buffer: Vec<u8>,
    counted: Counted,
    filled: usize,
    out: Vec<u8>,
    session: Session<'c>,
    /// Whether a wait for the next request ends after `IDLE_PARK_AFTER`, to park.
    may_park: bool,
}

/// The connection's bytes as `admission` counts them, given back when it is dropped.
#[derive(Default)]
struct Counted {
    /// Bytes of `buffer` counted in `admission::buffer_bytes`.
    buffer: usize,
    /// Bytes of `buffer` beyond `CONNECTION_BUFFER_IDLE`, taken from the process-wide budget.
    reserved: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        admission::release_bytes(self.reserved);
        admission::buffer_freed(self.buffer);
    }
}

/// How the wait for a request ended.
enum Awaited {
    /// Its first bytes are in the buffer.
    Request,
    /// Nothing came for `IDLE_PARK_AFTER`; the connection waits under `deadline` still.
    Quiet { deadline: Instant },
    /// Peer closed, idle timeout or a socket error: close.
    Gone,
}

/// A body read into the buffer: where its bytes are, and where the request ended on the wire
/// (they differ for a chunked body, decoded in place).
struct BodyRead {
    body: std::ops::Range<usize>,
    end: usize,
}

/// Why reading stopped without a request to answer.
enum ReadError {
    /// Peer closed, idle timeout, or a socket error: close without an answer.
    Gone,
    /// Answer this, then close.
    Reject(Rejection),
}

/// Whether parking has failed once (logged once: every later failure is the same limit).
static PARKING_FAILED: AtomicBool = AtomicBool::new(false);

/// Serves requests on the connection until it closes; a quiet one waits in `parking`, which
/// calls this again when it has bytes.
pub fn serve(idle: Idle, context: &'static Context, parking: &'static Parking<Idle>) {
    let mut idle = idle;
    let mut may_park = true;
    while let Some((quiet, deadline)) = serve_until_quiet(idle, context, may_park) {
        match park(quiet, deadline, parking) {
            Some(back) => {
                idle = back;
                may_park = false;
            }
            None => return,
        }
    }
}

/// Serves requests until the connection closes (`None`) or waits `IDLE_PARK_AFTER` for the
/// next one (with `may_park`): then the connection and the idle deadline it waits under.
// Out of line, as is `park`: the request path runs under this frame, so it holds the
// connection and nothing else (stack depth is memory, see `await_request`).
#[inline(never)]
fn serve_until_quiet(idle: Idle, context: &Context, may_park: bool) -> Option<(Idle, Instant)> {
    let mut conn = Conn::new(idle, context, may_park);
    let deadline = conn.serve()?;
    Some((conn.into_idle(), deadline))
}

/// Parks a quiet connection with its idle `deadline` armed (the sweeper shuts its read side
/// when it passes, and the end-of-file closes it in the parking). Gives it back when parking
/// failed: it keeps its coroutine then.
#[inline(never)]
fn park(mut idle: Idle, deadline: Instant, parking: &Parking<Idle>) -> Option<Idle> {
    idle.stream.arm(deadline).ok()?;
    let key = idle.stream.key();
    match parking.park(key, idle) {
        Ok(()) => {
            trim::connection_released();
            None
        }
        Err((back, error)) => {
            if !PARKING_FAILED.swap(true, Ordering::Relaxed) {
                warn!("cannot park idle connections, they keep their coroutines: {error}");
            }
            Some(back)
        }
    }
}

impl<'c> Conn<'c> {
    fn new(idle: Idle, context: &'c Context, may_park: bool) -> Conn<'c> {
        Conn {
            idle,
            buffer: Vec::new(),
            counted: Counted::default(),
            filled: 0,
            out: Vec::new(),
            session: Session::new(context),
            may_park,
        }
    }

    /// Serves requests until the connection closes (`None`) or waits `IDLE_PARK_AFTER` for
    /// the next one: then the idle deadline it waits under.
    fn serve(&mut self) -> Option<Instant> {
        loop {
            match self.await_request() {
                Awaited::Request => {}
                Awaited::Quiet { deadline } => return Some(deadline),
                Awaited::Gone => return None,
            }
            if matches!(self.next_request(), Connection::Close) {
                return None;
            }
            self.idle.served = true;
        }
    }

    /// The connection without its coroutine's state; it holds no buffer between requests.
    fn into_idle(self) -> Idle {
        debug_assert!(
            self.filled == 0 && self.buffer.is_empty(),
            "a connection with bytes pending went idle"
        );
        let Conn { idle, .. } = self;
        idle
    }

    /// The settings this connection works under.
    fn context(&self) -> &'c Context {
        self.session.context()
    }

    /// Waits until a request's first bytes are here (at once when pipelined bytes are), the
    /// connection ends, or `IDLE_PARK_AFTER` passes. Kept apart from `next_request`, whose
    /// frame holds a request head and its answer, so that an idle connection waits on a
    /// shallow stack: it touches one page at the top of its coroutine stack, not two (4.4 KiB
    /// deep before, measured from `/proc/PID/mem`). Out of line, so that its read array
    /// (`FIRST_READ_SIZE`) is not in the frame `next_request` runs under: inlined, it made a
    /// webhook's path 8,784 bytes deep (three pages, not two).
    #[inline(never)]
    fn await_request(&mut self) -> Awaited {
        if self.filled > 0 {
            return Awaited::Request;
        }
        let context = self.context();
        let timeout = if self.idle.served {
            context.idle_timeout
        } else {
            context.request_timeout.min(context.idle_timeout)
        };
        let now = Instant::now();
        let deadline = now + timeout;
        let quiet = self.may_park.then(|| now + IDLE_PARK_AFTER);
        match self.read_first(deadline, quiet) {
            Ok(Waited::Ready(Ok(0))) | Err(Expired) => Awaited::Gone,
            Ok(Waited::Ready(Ok(read))) => {
                self.filled += read;
                Awaited::Request
            }
            Ok(Waited::Ready(Err(error))) => {
                debug!("connection read ended: {error}");
                Awaited::Gone
            }
            Ok(Waited::Quiet) => Awaited::Quiet { deadline },
        }
    }

    /// Reads, handles and answers one request.
    #[inline(never)]
    fn next_request(&mut self) -> Connection {
        let (head, deadline) = match self.read_head() {
            Ok(read) => read,
            Err(ReadError::Gone) => return Connection::Close,
            Err(ReadError::Reject(rejection)) => {
                let _in_flight = metrics::request_started();
                return self.reject(&rejection, Connection::Close, false);
            }
        };
        let _in_flight = metrics::request_started();
        let keep_alive = if head.keep_alive && !admission::shutting_down() {
            Connection::KeepAlive
        } else {
            Connection::Close
        };
        let head_only = head.method == Method::Head;
        let route = match service::precheck(&head, self.data(), self.context()) {
            Ok(route) => route,
            Err(rejection) => return self.reject_early(&head, deadline, &rejection, keep_alive),
        };
        if head.expect_continue && self.send(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return Connection::Close;
        }
        let BodyRead { body, end } = match self.read_body(&head, deadline) {
            Ok(read) => read,
            Err(ReadError::Gone) => return Connection::Close,
            Err(ReadError::Reject(rejection)) => {
                return self.reject(&rejection, Connection::Close, false);
            }
        };
        let request = Request {
            route,
            head: &head,
            buffer: std::mem::take(&mut self.buffer),
            body,
            now_secs: now_secs(),
        };
        let (answer, returned) = self.session.handle(request, &mut self.idle.stream);
        let Some(buffer) = returned else {
            // The writer still holds the buffer, so pipelined bytes are gone with it.
            return self.reject(&Rejection::Unavailable, Connection::Close, head_only);
        };
        self.buffer = buffer;
        self.count_buffer();
        let connection = match answer {
            Ok(answer) => self.answer(&answer, keep_alive, head_only),
            Err(rejection) => self.reject(&rejection, keep_alive, head_only),
        };
        self.consume(end);
        connection
    }

    /// The answer for a request rejected before its body was read: consume the body when it
    /// is small enough to be worth it and was not held back by `Expect: 100-continue`.
    fn reject_early(
        &mut self,
        head: &Head,
        deadline: Instant,
        rejection: &Rejection,
        keep_alive: Connection,
    ) -> Connection {
        let head_only = head.method == Method::Head;
        let consumable = match head.body {
            BodyFraming::None => true,
            BodyFraming::Length(_) => !rejection.closes_connection() && !head.expect_continue,
            BodyFraming::Chunked => false,
        };
        if !consumable {
            return self.reject(rejection, Connection::Close, head_only);
        }
        match self.read_body(head, deadline) {
            Ok(read) => {
                let connection = self.reject(rejection, keep_alive, head_only);
                self.consume(read.end);
                connection
            }
            Err(_) => self.reject(rejection, Connection::Close, head_only),
        }
    }

    fn reject(
        &mut self,
        rejection: &Rejection,
        connection: Connection,
        head_only: bool,
    ) -> Connection {
        let connection = if rejection.closes_connection() {
            Connection::Close
        } else {
            connection
        };
        metrics::count(rejection.outcome());
        self.out.reserve(ANSWER_SIZE);
        answer::write_rejection(&mut self.out, rejection, connection);
        self.flush(connection, head_only)
    }

    fn answer(&mut self, answer: &Answer, connection: Connection, head_only: bool) -> Connection {
        metrics::count(answer.outcome());
        self.out.reserve(ANSWER_SIZE);
        answer::write_success(&mut self.out, answer, &self.buffer, connection);
        self.flush(connection, head_only)
    }

    /// Sends the prepared answer (without its body for HEAD requests).
    fn flush(&mut self, connection: Connection, head_only: bool) -> Connection {
        let mut out = std::mem::take(&mut self.out);
        if head_only && let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(end + 4);
        }
        let sent = self.send(&out);
        out.clear();
        self.out = out;
        match sent {
            Ok(()) => connection,
            Err(_) => Connection::Close,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.idle
            .stream
            .write_by(Instant::now() + WRITE_TIMEOUT, bytes)
    }

    fn data(&self) -> &[u8] {
        self.buffer.get(..self.filled).unwrap_or_default()
    }

    /// Reads a request head; returns it with the deadline for the whole request, which starts
    /// at its first byte.
    // Out of line: the parser's header array (1 KiB) would otherwise sit in `next_request`'s
    // frame, under which a webhook's whole path runs, and push it onto a third stack page.
    #[inline(never)]
    fn read_head(&mut self) -> Result<(Head, Instant), ReadError> {
        debug_assert!(self.filled > 0, "a head read before its first bytes");
        let deadline = Instant::now() + self.context().request_timeout;
        loop {
            match http::parse_head(self.data()) {
                Ok(Some(head)) => return Ok((head, deadline)),
                Ok(None) => {}
                Err(rejection) => return Err(ReadError::Reject(rejection)),
            }
            self.fill(deadline, HEAD_READ_SPACE)?;
        }
    }

    /// Reads the Content-Length body after `head` by `deadline`; returns its span in the buffer.
    /// The buffer grows to fit the body, so one over the limit is refused unread whatever the
    /// answer would have been (a 404 or 405 comes before the size check).
    fn read_body(&mut self, head: &Head, deadline: Instant) -> Result<BodyRead, ReadError> {
        let length = match head.body {
            BodyFraming::Length(length) => usize::try_from(length).unwrap_or(usize::MAX),
            BodyFraming::Chunked => return self.read_chunked(head.len, deadline),
            BodyFraming::None => 0,
        };
        // No body longer than the limit is read, whatever answer it would get.
        if length > self.context().body_size_max {
            return Err(ReadError::Reject(Rejection::PayloadTooLarge));
        }
        let end = head.len.saturating_add(length);
        while self.filled < end {
            self.fill(deadline, end - self.filled)?;
        }
        Ok(BodyRead {
            body: head.len..end,
            end,
        })
    }

    /// Decodes a chunked body in place: chunk data is moved down to `start` as it arrives, so
    /// the body ends up contiguous after the head, within the same body limit. Chunk
    /// extensions and trailers are read and ignored.
    // Out of line for the same reason as `Session::webhook`: a shallow idle stack.
    #[inline(never)]
    fn read_chunked(&mut self, start: usize, deadline: Instant) -> Result<BodyRead, ReadError> {
        let reject = |rejection| Err(ReadError::Reject(rejection));
        let mut decoded = start;
        let mut raw = start;
        loop {
            let (line, size) = loop {
                let pending = self.buffer.get(raw..self.filled).unwrap_or_default();
                match httparse::parse_chunk_size(pending) {
                    Ok(httparse::Status::Complete(found)) => break found,
                    Ok(httparse::Status::Partial) if pending.len() < CHUNK_LINE_MAX => {
                        self.fill(deadline, HEAD_READ_SPACE)?;
                    }
                    _ => return reject(Rejection::BadRequest(Malformed::ChunkSizeLine)),
                }
            };
            raw += line;
            if size == 0 {
                break;
            }
            let size = match usize::try_from(size) {
                Ok(size) if decoded - start + size <= self.context().body_size_max => size,
                _ => return reject(Rejection::PayloadTooLarge),
            };
            while self.filled < raw + size + 2 {
                self.fill(deadline, raw + size + 2 - self.filled)?;
            }
            self.buffer.copy_within(raw..raw + size, decoded);
            decoded += size;
            raw += size;
            if self.buffer.get(raw..raw + 2) != Some(b"\r\n") {
                return reject(Rejection::BadRequest(Malformed::ChunkDataEnd));
            }
            raw += 2;
            // Drop the framing already read once it adds up, so the buffer holds the decoded
            // body plus what is still pending, not every chunk line and extension.
            if raw - decoded > CHUNK_LINE_MAX {
                self.buffer.copy_within(raw..self.filled, decoded);
                self.filled -= raw - decoded;
                raw = decoded;
            }
        }
        let trailers = raw;
        loop {
            let pending = self.buffer.get(raw..self.filled).unwrap_or_default();
            let line = pending.windows(2).position(|pair| pair == b"\r\n");
            if raw - trailers + line.unwrap_or(pending.len()) > HEAD_SIZE_MAX {
                return reject(Rejection::HeadTooLarge(Oversized::Trailers));
            }
            match line {
                Some(0) => break,
                Some(line) => raw += line + 2,
                None => self.fill(deadline, HEAD_READ_SPACE)?,
            }
        }
        Ok(BodyRead {
            body: start..decoded,
            end: raw + 2,
        })
    }

    /// Reads at least one more byte of a request into its buffer by `deadline`, first making
    /// room for `want` bytes.
    fn fill(&mut self, deadline: Instant, want: usize) -> Result<(), ReadError> {
        debug_assert!(
            !self.buffer.is_empty(),
            "a request's bytes read without a buffer"
        );
        if self.buffer.len() - self.filled < want {
            // Grow at most by doubling: memory follows the bytes that actually arrive, not
            // a Content-Length that a slow or idle client announces.
            let room = want.min(self.buffer.len().max(HEAD_READ_SPACE));
            self.grow(self.filled + room)?;
        }
        let space = self.buffer.get_mut(self.filled..).unwrap_or_default();
        match self
            .idle
            .stream
            .read_by(deadline, |stream| stream.read(space))
        {
            Ok(Ok(0)) => Err(ReadError::Gone),
            Ok(Ok(read)) => {
                self.filled += read;
                Ok(())
            }
            Err(Expired) => Err(ReadError::Reject(Rejection::RequestTimeout)),
            Ok(Err(error)) => {
                debug!("connection read ended: {error}");
                Err(ReadError::Gone)
            }
        }
    }

    /// Reads a request's first bytes into an array on the stack while no buffer is allocated
    /// (the connection is idle or new), and allocates one only once bytes arrived; the caller
    /// counts them in `filled`. With `quiet`, gives up then (`Waited::Quiet`) to park.
    fn read_first(
        &mut self,
        deadline: Instant,
        quiet: Option<Instant>,
    ) -> Result<Waited<io::Result<usize>>, Expired> {
        debug_assert_eq!(self.filled, 0, "bytes are pending without a buffer");
        let mut first = [0; FIRST_READ_SIZE];
        let read = match quiet {
            Some(quiet) => {
                self.idle.stream.wait_by(deadline, quiet, |stream| {
                    match receive_now(stream.as_raw_fd(), &mut first) {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                        read => Some(read),
                    }
                })?
            }
            None => Waited::Ready(
                self.idle
                    .stream
                    .read_by(deadline, |stream| stream.read(&mut first))?,
            ),
        };
        if let Waited::Ready(Ok(read)) = read
            && let Some(bytes) = first.get(..read).filter(|bytes| !bytes.is_empty())
        {
            let mut buffer = vec![0; CONNECTION_BUFFER_IDLE];
            if let Some(start) = buffer.get_mut(..read) {
                start.copy_from_slice(bytes);
            }
            self.buffer = buffer;
            self.count_buffer();
        }
        Ok(read)
    }

    /// Brings `admission::buffer_bytes` in line with what `buffer` holds now.
    fn count_buffer(&mut self) {
        let now = self.buffer.capacity();
        let counted = &mut self.counted.buffer;
        if now > *counted {
            admission::buffer_allocated(now - *counted);
        } else {
            admission::buffer_freed(*counted - now);
        }
        *counted = now;
    }

    /// Grows the buffer to `len` bytes within the process-wide `BUFFERED_BYTES_MAX`.
    fn grow(&mut self, len: usize) -> Result<(), ReadError> {
        let extra = len.saturating_sub(CONNECTION_BUFFER_IDLE.max(self.buffer.len()));
        if extra > 0 && !admission::reserve_bytes(extra, BUFFERED_BYTES_MAX) {
            return Err(ReadError::Reject(Rejection::Unavailable));
        }
        self.counted.reserved += extra;
        self.buffer.resize(len, 0);
        self.count_buffer();
        Ok(())
    }

    /// Drops the first `consumed` bytes (a handled request), keeping pipelined ones. Without
    /// pipelined bytes both buffers are freed until the next request arrives.
    fn consume(&mut self, consumed: usize) {
        let consumed = consumed.min(self.filled);
        self.buffer.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
        if self.filled == 0 {
            self.buffer = Vec::new();
            self.out = Vec::new();
        } else if self.buffer.len() > CONNECTION_BUFFER_IDLE
            && self.filled <= CONNECTION_BUFFER_IDLE
        {
            self.buffer.truncate(CONNECTION_BUFFER_IDLE);
            self.buffer.shrink_to_fit();
        } else {
            return;
        }
        admission::release_bytes(std::mem::take(&mut self.counted.reserved));
        self.count_buffer();
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
