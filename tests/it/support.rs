//! What every integration test needs: PostgreSQL clusters, the real `hooksink` binary, a raw
//! HTTP/1.1 client, a [`Load`] of concurrent clients, and read-back of stored rows.
//!
//! One cluster serves the whole test process (fsync off) and each test gets a database of its
//! own on it, so tests run in parallel without seeing each other's rows. Tests that stop the
//! database take a private cluster instead. Every cluster lives in one folder per process under
//! the temp folder, removed at exit by an `atexit` handler (libtest ends through `exit`, which
//! runs them); folders left by processes that died harder are removed by the next run.
//!
//! The client is hand-written over `TcpStream` so tests control every byte sent, including
//! broken requests a real client would refuse to send.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hooksink::localdb::{LocalPostgres, Options, die_with_parent};
use hooksink::signature::{Secrets, sign};

/// The secret the test server verifies with (a Standard Webhooks test vector's secret).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The contract's example body: 2000 cents in USD.
pub const EXAMPLE: &str = concat!(
    r#"{"event_type":"payment.succeeded","object_id":"pi_3MtwBw","#,
    r#""amount_cents":2000,"currency":"usd","metadata":{"order_id":"6735"}}"#
);
/// A server must print its `listening on` line within this time.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// A client read gives up after this long without a byte; above the server's 5 s commit wait.
pub const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The process-wide cluster (fsync off), started on first use.
///
/// No dedicated thread is needed to keep `PR_SET_PDEATHSIG` from firing early: `localdb`
/// spawns every postmaster from a supervisor thread of its own that lives as long as the child.
pub fn shared_cluster() -> &'static Mutex<LocalPostgres> {
    static SHARED: OnceLock<Result<Mutex<LocalPostgres>, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| start_cluster(&run_dir().join("shared")).map(Mutex::new));
    // The atexit handler finds the cluster through this pointer; statics are never dropped.
    if let Ok(cluster) = shared {
        SHARED_CLUSTER.get_or_init(|| cluster);
    }
    match shared {
        Ok(cluster) => cluster,
        Err(message) => panic!("shared test cluster: {message}"),
    }
}

/// Creates a database of its own for the calling test on the shared cluster; returns its URL.
pub fn fresh_database() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let test = thread::current()
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect::<String>();
    let name = format!("it_{test}_{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    let cluster = lock(shared_cluster());
    cluster
        .create_database(&name)
        .unwrap_or_else(|e| panic!("{e}"));
    cluster.url(&name)
}

/// A cluster of the caller's own (fsync off), for tests that stop and restart the database.
pub fn private_cluster() -> LocalPostgres {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    start_cluster(&run_dir().join(format!("private-{n}"))).unwrap_or_else(|e| panic!("{e}"))
}

/// A [`private_cluster`] holding an empty database `hooksink`, and that database's URL.
pub fn private_database() -> (LocalPostgres, String) {
    let cluster = private_cluster();
    cluster
        .create_database("hooksink")
        .unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url("hooksink");
    (cluster, url)
}

/// A folder under this process's run folder, removed at exit, for tests that need one.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = run_dir().join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port on 127.0.0.1 that is free now, below Linux's ephemeral range (32768..) so that a
/// client connection cannot take it between now and a restart of the cluster.
pub fn pick_port() -> u16 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let seed = std::process::id() as usize * 7919 + nanos;
    for _ in 0..200 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed + n * 104_729) % 12_000;
        let port = u16::try_from(port).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// The real `hooksink` binary, started against a database.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `hooksink` on 127.0.0.1:0 with the test secret, 2 workers and 1 writer, plus
    /// `extra_env` (which wins; a value of [`UNSET`] removes the variable), and waits until it
    /// prints `listening on 127.0.0.1:PORT`.
    pub fn start(db_url: &str, extra_env: &[(&str, &str)]) -> Server {
        Server::start_limited(db_url, extra_env, None)
    }

    /// Like [`Server::start`], with the file descriptor limit (soft and hard) set to
    /// `nofile` when given, as a small VM or a strict unit file would.
    pub fn start_limited(db_url: &str, extra_env: &[(&str, &str)], nofile: Option<u64>) -> Server {
        Server::start_with(Some(db_url), None, extra_env, nofile)
    }

    /// Like [`Server::start_limited`], in working folder `cwd` when given, and with
    /// `DATABASE_URL` unset when `db_url` is `None`: the server then runs its private cluster
    /// in `<cwd>/.hooksink/pgdata`.
    pub fn start_with(
        db_url: Option<&str>,
        cwd: Option<&Path>,
        extra_env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hooksink"));
        // A clean environment: the caller's DATABASE_URL or MAX_BODY_BYTES must not leak in.
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        if let Some(db_url) = db_url {
            command.env("DATABASE_URL", db_url);
        }
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .env("WORKERS", "2")
            .env("DB_WRITERS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        set_env(&mut command, extra_env);
        // SIGKILL if this thread dies first, so no server outlives a test.
        die_with_parent(&mut command, libc::SIGKILL);
        if let Some(nofile) = nofile {
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads `limit`.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready, listening) = mpsc::channel();
        collect_lines(child.stdout.take().unwrap(), Arc::clone(&log), None);
        collect_lines(child.stderr.take().unwrap(), Arc::clone(&log), Some(ready));
        let addr = match listening.recv_timeout(SERVER_START_TIMEOUT) {
            Ok(addr) => addr,
            Err(reason) => {
                // Give the stdout reader a moment so the panic shows everything printed.
                thread::sleep(Duration::from_millis(100));
                let exit = child.try_wait().ok().flatten();
                // Killing a process that already exited fails harmlessly.
                let _ = child.kill();
                let _ = child.wait();
                let text = lock(&log).clone();
                panic!(
                    "hooksink did not report `listening on` ({reason:?}, exit {exit:?}); output:\n{text}"
                );
            }
        };
        Server { child, addr, log }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far (stderr and stdout, by line).
    pub fn log_text(&self) -> String {
        lock(&self.log).clone()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server.
    pub fn stop_with(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory effects; the child is not reaped until `wait_exit`/`kill`.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits up to `timeout` for the server to exit; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        // An error means the process already exited; `wait` still reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- hooksink output ---\n{}", self.log_text());
        }
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header called `name`, in any letter case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `bytes` on a new connection and reads responses until the server closes it or is
/// silent for [`READ_IDLE_TIMEOUT`]. On a keep-alive connection that means waiting out the
/// timeout: prefer [`send_raw_n`] or a `connection: close` request.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<Response> {
    send_raw_n(addr, bytes, usize::MAX)
}

/// Like [`send_raw`], but returns as soon as `count` responses have arrived.
pub fn send_raw_n(addr: SocketAddr, bytes: &[u8], count: usize) -> Vec<Response> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(READ_IDLE_TIMEOUT)).unwrap();
    // The server may answer and close before reading everything (413); its answer is still
    // waiting in our receive buffer, so a failed write is not a failed exchange.
    let _ = stream.write_all(bytes);
    let mut buffer = Vec::new();
    let mut responses = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some((response, used)) = parse_response(&buffer, false) {
            responses.push(response);
            buffer.drain(..used);
            if responses.len() >= count {
                return responses;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    // At end of stream a response without Content-Length ends here.
    if let Some((response, _)) = parse_response(&buffer, true) {
        responses.push(response);
    }
    responses
}

/// Sends `bytes` and returns the one response; panics when none arrives.
pub fn send_one(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut responses = send_raw_n(addr, bytes, 1);
    assert!(
        !responses.is_empty(),
        "no response to {:?}",
        String::from_utf8_lossy(bytes)
    );
    responses.remove(0)
}

/// One connection whose answers are read one at a time, for tests about the connection itself:
/// keep-alive, slow clients, and whether and when the server closes it.
pub struct Client {
    stream: TcpStream,
    /// Bytes received and not yet returned as a response.
    received: Vec<u8>,
}

/// What one read from a [`Client`]'s connection gave.
enum Received {
    Bytes,
    /// End of stream, or reset: the server closed the connection.
    Closed,
    /// Nothing within the timeout.
    Silent,
}

impl Client {
    /// Connects to `addr`. Writes give up after [`READ_IDLE_TIMEOUT`] so a server that stops
    /// reading cannot hang a test.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(READ_IDLE_TIMEOUT)).unwrap();
        Client {
            stream,
            received: Vec::new(),
        }
    }

    /// Writes all of `bytes`; an error means the server closed or reset the connection.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next response, or `None` when the server closes the connection or stays silent for
    /// [`READ_IDLE_TIMEOUT`] first.
    pub fn response(&mut self) -> Option<Response> {
        self.response_within(READ_IDLE_TIMEOUT)
    }

    /// The next response if it arrives within `timeout`.
    pub fn response_within(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((response, used)) = parse_response(&self.received, false) {
                self.received.drain(..used);
                return Some(response);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.read_some(left) {
                Received::Bytes => {}
                Received::Silent => return None,
                Received::Closed => {
                    let (response, used) = parse_response(&self.received, true)?;
                    self.received.drain(..used);
                    return Some(response);
                }
            }
        }
    }

    /// `count` responses, each within [`READ_IDLE_TIMEOUT`] of the one before; fewer when the
    /// server closes the connection or stays silent.
    pub fn responses(&mut self, count: usize) -> Vec<Response> {
        (0..count).map_while(|_| self.response()).collect()
    }

    /// Whether the server closes the connection within `timeout` without sending anything
    /// more. Panics when bytes arrive instead: an answer nobody asked for.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.received.is_empty(),
                "bytes instead of a close: {:?}",
                String::from_utf8_lossy(&self.received)
            );
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.read_some(left) {
                Received::Bytes => {}
                Received::Closed => return true,
                Received::Silent => return false,
            }
        }
    }

    fn read_some(&mut self, timeout: Duration) -> Received {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Received::Closed,
            Ok(n) => {
                self.received.extend_from_slice(&chunk[..n]);
                Received::Bytes
            }
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Received::Silent,
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Received::Closed,
                _ => panic!("reading from the server: {e}"),
            },
        }
    }
}

/// The resident memory (`VmRSS`) of process `pid`, in KiB.
pub fn resident_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}

/// What one request of a [`Load`] got.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: String,
    /// The answer's status, or 0 when no complete answer came.
    pub status: u16,
    pub body: String,
    /// From the connect to the end of the answer.
    pub took: Duration,
}

impl Outcome {
    /// The body as JSON; panics with the outcome when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Clients on threads of their own, each posting signed [`EXAMPLE`] webhooks with ids of its
/// own, one connection per request, until stopped or out of ids. A client never panics on a
/// dead or silent server: that request's outcome has status 0. Dropping a `Load` (say, when an
/// assertion fails) stops its clients after their current request.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// `clients` clients posting fresh ids `<prefix>_<client>_<n>` to `addr` until
    /// [`Load::stop`]; a client pauses 20 ms after a request that got no answer.
    pub fn until_stopped(addr: SocketAddr, prefix: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (stop, prefix) = (Arc::clone(&stop), prefix.to_owned());
                thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    for n in 0.. {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let outcome = try_post(addr, &format!("{prefix}_{client}_{n}"));
                        if outcome.status == 0 {
                            thread::sleep(Duration::from_millis(20));
                        }
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// One client per `per_client` ids of `ids` (in order), each posting its ids to `addr`
    /// one after another; [`Load::finish`] waits for them.
    pub fn each(addr: SocketAddr, ids: &[String], per_client: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = ids
            .chunks(per_client)
            .map(|chunk| {
                let (stop, chunk) = (Arc::clone(&stop), chunk.to_vec());
                thread::spawn(move || {
                    chunk
                        .iter()
                        .take_while(|_| !stop.load(Ordering::Acquire))
                        .map(|id| try_post(addr, id))
                        .collect()
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops every client after its current request; returns every outcome.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Release);
        self.finish()
    }

    /// Waits until every client is done; returns every outcome, client by client.
    pub fn finish(mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.clients)
            .into_iter()
            .flat_map(|client| client.join().unwrap())
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// POSTs `body` to /webhook signed with the current time, on a connection of its own.
pub fn post_webhook(addr: SocketAddr, id: &str, body: &str) -> Response {
    post_webhook_at(addr, id, now(), body)
}

/// POSTs `body` to /webhook signed with `timestamp`, on a connection of its own.
pub fn post_webhook_at(addr: SocketAddr, id: &str, timestamp: i64, body: &str) -> Response {
    send_one(addr, &closing(&signed_request(id, timestamp, body)))
}

/// GETs `path` on a connection of its own.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    send_one(addr, &closing(&request("GET", path, &[], b"")))
}

/// The value of the Prometheus sample `name` (without labels), from a `GET /metrics`.
pub fn metric(server: &Server, name: &str) -> f64 {
    let text = get(server.addr(), "/metrics").body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// The raw bytes of a signed `POST /webhook` (keep-alive, for pipelining).
pub fn signed_request(id: &str, timestamp: i64, body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let timestamp_text = timestamp.to_string();
    let signature = signature(id, timestamp, body);
    request(
        "POST",
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp_text),
            ("webhook-signature", &signature),
        ],
        body,
    )
}

/// The `v1,<base64>` signature of `body` under [`SECRET`].
pub fn signature(id: &str, timestamp: i64, body: &[u8]) -> String {
    // Mapped by hand so the test does not depend on the error type implementing Debug.
    let secrets = Secrets::parse(SECRET).unwrap_or_else(|_| panic!("SECRET does not parse"));
    sign(&secrets, id, timestamp, body)
}

/// The raw bytes of a request: request line, `host`, `headers`, and `content-length` when
/// there is a body or the method is POST.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `request` with header `name` replaced (any letter case), removed (`None`), or added.
pub fn set_header(request: &[u8], name: &str, value: Option<&str>) -> Vec<u8> {
    let (head, body) = split_head(request);
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    let matches = |line: &String| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    };
    let position = lines.iter().position(matches);
    lines.retain(|line| !matches(line));
    if let Some(value) = value {
        let at = position.unwrap_or(lines.len());
        lines.insert(at, format!("{name}: {value}"));
    }
    join_head(&lines, body)
}

/// `request` with its first line replaced, e.g. by `GET /webhook HTTP/1.1`.
pub fn set_request_line(request: &[u8], line: &str) -> Vec<u8> {
    let (head, body) = split_head(request);
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    lines[0] = line.to_owned();
    join_head(&lines, body)
}

/// `request` with `connection: close`, so the server closes after answering.
pub fn closing(request: &[u8]) -> Vec<u8> {
    set_header(request, "connection", Some("close"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// An event id no other test uses: `prefix`, the process id and a counter.
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; says whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A client on `url`.
pub fn db(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Every column of one `webhook_events` row as PostgreSQL prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub event_id: String,
    pub event_type: String,
    pub category: String,
    pub action: String,
    pub object_id: String,
    pub amount_cents: String,
    pub currency: String,
    pub amount: String,
    pub metadata: String,
    /// `provider_ts` in Unix seconds.
    pub provider_ts: i64,
}

/// The row stored for `event_id`, if any.
pub fn row(client: &mut postgres::Client, event_id: &str) -> Option<StoredRow> {
    let rows = client
        .query(
            "SELECT event_id, event_type, category, action, object_id, amount_cents::text, \
             currency::text, amount::text, metadata::text, \
             extract(epoch from provider_ts)::bigint \
             FROM webhook_events WHERE event_id = $1",
            &[&event_id],
        )
        .unwrap_or_else(|e| panic!("reading row {event_id}: {e}"));
    rows.first().map(|r| StoredRow {
        event_id: r.get(0),
        event_type: r.get(1),
        category: r.get(2),
        action: r.get(3),
        object_id: r.get(4),
        amount_cents: r.get(5),
        currency: r.get(6),
        amount: r.get(7),
        metadata: r.get(8),
        provider_ts: r.get(9),
    })
}

/// Every stored event id, sorted.
pub fn event_ids(client: &mut postgres::Client) -> Vec<String> {
    client
        .query("SELECT event_id FROM webhook_events ORDER BY event_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// How PostgreSQL prints `json` once stored as `jsonb`: the expected `metadata` column.
pub fn jsonb_text(client: &mut postgres::Client, json: &str) -> String {
    client
        .query_one("SELECT $1::text::jsonb::text", &[&json])
        .unwrap()
        .get(0)
}

static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
static SHARED_CLUSTER: OnceLock<&'static Mutex<LocalPostgres>> = OnceLock::new();
const RUN_DIR_PREFIX: &str = "hooksink-it-";

/// This process's folder for clusters, made on first use along with the exit handler.
fn run_dir() -> &'static Path {
    RUN_DIR.get_or_init(|| {
        remove_stale_run_dirs();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // As root the clusters run as nobody, who must be able to pass through this folder.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: registers a plain function; atexit only stores the pointer.
        let rc = unsafe { libc::atexit(clean_up_at_exit) };
        assert_eq!(rc, 0, "atexit failed");
        dir
    })
}

/// Stops the shared cluster and removes this process's folder. Runs inside `exit`, so it must
/// not panic (that would abort): every error is printed and passed over.
extern "C" fn clean_up_at_exit() {
    if let Some(cluster) = SHARED_CLUSTER.get() {
        let mut cluster = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = cluster.stop() {
            eprintln!("stopping the shared test cluster: {error}");
        }
    }
    if let Some(dir) = RUN_DIR.get()
        && let Err(error) = fs::remove_dir_all(dir)
    {
        eprintln!("removing {}: {error}", dir.display());
    }
}

/// Removes `hooksink-it-<pid>-*` folders whose process is gone (killed before its exit
/// handler could run); their clusters stopped with them through PDEATHSIG.
fn remove_stale_run_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            // Another run may be removing it at the same time; either way it goes.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts a fsync-off cluster in `dir`, trying other ports when one turns out to be taken.
fn start_cluster(dir: &Path) -> Result<LocalPostgres, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let options = Options {
            port: pick_port(),
            fsync: false,
        };
        match LocalPostgres::start(dir, &options) {
            Ok(cluster) => return Ok(cluster),
            Err(error) if error.to_string().contains("already in use") => {
                last = error.to_string();
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Err(last)
}

/// One signed POST of [`EXAMPLE`] on a connection of its own, with `connection: close`.
fn try_post(addr: SocketAddr, id: &str) -> Outcome {
    let started = Instant::now();
    let answer = exchange(addr, &closing(&signed_request(id, now(), EXAMPLE)));
    let (status, body) = answer
        .as_deref()
        .and_then(|bytes| parse_response(bytes, true))
        .map_or((0, String::new()), |(response, _)| {
            (response.status, response.body)
        });
    Outcome {
        id: id.to_owned(),
        status,
        body,
        took: started.elapsed(),
    }
}

/// Sends `bytes` and reads until the server closes; `None` when connecting or sending failed.
/// A reset mid-answer leaves a partial answer, which does not parse as an answer.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(bytes).ok()?;
    let mut answer = Vec::new();
    // The error is the reset or timeout described above; what arrived is judged by the parser.
    let _ = stream.read_to_end(&mut answer);
    Some(answer)
}

/// Copies `source` line by line into `log` on a thread; with `ready`, also reports the address
/// of the first `listening on` line. The sender is dropped at end of stream, so a server that
/// exits before listening is noticed at once.
fn collect_lines(
    source: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    mut ready: Option<mpsc::Sender<SocketAddr>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            lock(&log).push_str(&text);
            if ready.is_some()
                && let Some(addr) = listening_addr(&text)
                && let Some(sender) = ready.take()
            {
                // The starter may have given up already; the log keeps the line anyway.
                let _ = sender.send(addr);
            }
        }
    });
}

/// The address in a log line containing `listening on 127.0.0.1:PORT`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let token = rest.split_whitespace().next()?;
    token
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// One response from the front of `buffer` and the bytes it used, if complete. `at_end` means
/// no more bytes will come, which completes a response that has no Content-Length.
fn parse_response(buffer: &[u8], at_end: bool) -> Option<(Response, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(e) => panic!(
            "unparsable response ({e}): {:?}",
            String::from_utf8_lossy(buffer)
        ),
    };
    let status = parsed.code?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>().unwrap());
    let body_len = match length {
        Some(n) => n,
        None if (100..200).contains(&status) || status == 204 || status == 304 => 0,
        None if at_end => buffer.len() - head_len,
        None => return None,
    };
    let body = buffer.get(head_len..head_len + body_len)?;
    let response = Response {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    Some((response, head_len + body_len))
}

fn split_head(request: &[u8]) -> (String, &[u8]) {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("request without a blank line");
    let head = String::from_utf8(request[..end].to_vec()).unwrap();
    (head, &request[end + 4..])
}

fn join_head(lines: &[String], body: &[u8]) -> Vec<u8> {
    let mut bytes = lines.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(body);
    bytes
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `Stripe-Signature` value (`t=<timestamp>,v1=<hex>`) of `body` under `secret`, the first
/// of a `STRIPE_WEBHOOK_SECRET` list.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // Mapped by hand so the test does not depend on the error type implementing Debug.
    let secrets = hooksink::signature::stripe::Secrets::parse(secret)
        .unwrap_or_else(|error| panic!("stripe secret does not parse: {error}"));
    hooksink::signature::stripe::sign(&secrets, timestamp, body)
}

/// The raw bytes of a signed `POST /stripe` (keep-alive, for pipelining), as Stripe sends it.
pub fn stripe_request(body: impl AsRef<[u8]>, secret: &str, timestamp: i64) -> Vec<u8> {
    let body = body.as_ref();
    let signature = stripe_signature(secret, timestamp, body);
    request(
        "POST",
        "/stripe",
        &[
            ("content-type", "application/json"),
            ("stripe-signature", &signature),
        ],
        body,
    )
}

/// The pid in line 1 of the `postmaster.pid` in cluster folder `data_dir`, if there is one.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// An `extra_env` value for [`Server::start`] that removes the variable instead of setting it
/// (no environment value can hold a NUL byte, so no real value is mistaken for it).
pub const UNSET: &str = "\0unset";

/// Sets `env` on `command`, removing the variables whose value is [`UNSET`].
fn set_env(command: &mut Command, env: &[(&str, &str)]) {
    for (name, value) in env {
        if *value == UNSET {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
}

/// The `source` column of the row stored for `event_id`, if any.
pub fn source(client: &mut postgres::Client, event_id: &str) -> Option<String> {
    client
        .query_opt(
            "SELECT source FROM webhook_events WHERE event_id = $1",
            &[&event_id],
        )
        .unwrap_or_else(|e| panic!("reading the source of {event_id}: {e}"))
        .map(|row| row.get(0))
}

/// How many rows hold `event_id` (0 or 1, the primary key says; counted to prove it).
pub fn row_count(client: &mut postgres::Client, event_id: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE event_id = $1",
            &[&event_id],
        )
        .unwrap()
        .get(0)
}

/// How many migrations `sql/` holds: what a fresh database has pending.
pub fn migration_count() -> usize {
    fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let lines = [
            "[INFO hooksink] listening on 127.0.0.1:4321",
            "listening on 127.0.0.1:4321 (2 workers)\n",
            "listening on http://127.0.0.1:4321/, 1 writer",
        ];
        for line in lines {
            assert_eq!(listening_addr(line), Some(addr), "{line}");
        }
        assert_eq!(listening_addr("listening soon"), None);
    }

    #[test]
    fn responses_are_split_by_content_length() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\n\
                      content-type: application/json\r\ncontent-length: 0\r\n\r\nHTTP/1.1 503 x\r\n";
        let (first, used) = parse_response(bytes, false).unwrap();
        assert_eq!((first.status, first.body.as_str()), (200, "ok"));
        let (second, used2) = parse_response(&bytes[used..], false).unwrap();
        assert_eq!(second.status, 404);
        assert_eq!(second.header("Content-Type"), Some("application/json"));
        assert!(parse_response(&bytes[used + used2..], true).is_none());
    }

    #[test]
    fn headers_are_replaced_removed_and_added() {
        let base = request("POST", "/webhook", &[("Content-Type", "text/plain")], b"{}");
        let replaced = set_header(&base, "content-type", Some("application/json"));
        assert!(String::from_utf8_lossy(&replaced).contains("content-type: application/json\r\n"));
        let removed = set_header(&base, "CONTENT-TYPE", None);
        assert!(
            !String::from_utf8_lossy(&removed)
                .to_lowercase()
                .contains("content-type")
        );
        let added = closing(&removed);
        assert!(added.ends_with(b"connection: close\r\n\r\n{}"));
        let get = set_request_line(&base, "GET /webhook HTTP/1.1");
        assert!(get.starts_with(b"GET /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\n"));
    }
}
