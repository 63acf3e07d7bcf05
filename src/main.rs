//! Entry point: wiring only. Reads the configuration, starts the writers and the HTTP server,
//! and shuts down cleanly on SIGTERM or SIGINT.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hooksink::config::Config;
use hooksink::localdb::{self, LocalPostgres};
use hooksink::service::Context;
use hooksink::store::{self, Store};
use hooksink::{
    admission, cli, db_error, logging, metrics, secret, server, thread_stack, trim, tunables,
};
use log::{error, info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Coroutine stack in words: 64 KiB in release, measured against the deepest body the contract
/// accepts and a `v1a` (ed25519) check, which use at most 1718 words (odd stack size, may's
/// report). Unoptimised builds (the tests') need 10801 words for the `v1a` check, so 128 KiB.
const COROUTINE_STACK_WORDS: usize = if cfg!(debug_assertions) {
    0x4000
} else {
    0x2000
};
/// Finished coroutines kept for reuse. Each costs 8 KiB of idle memory (its stack's top page and
/// the bottom page `generator` marks, which may reads when a coroutine ends, so it cannot be
/// given back), so may's default (1000) costs ~8 MB and 64 cost 512 KiB;
/// 8 measured no more CPU per request than 64 at 2,000 new connections a second.
const COROUTINE_POOL: usize = 8;
/// Coroutines may creates in advance when its scheduler starts (its pool starts full, and 0
/// means its default). Filled with `COROUTINE_POOL` unused stacks it held 40 KiB more idle
/// memory (460 → 420 KiB after one `/readyz`, `smaps_rollup`); now it fills only with
/// coroutines that served and finished (up to `COROUTINE_POOL`).
const COROUTINE_POOL_AT_START: usize = 1;
/// Time in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Folder of the private cluster used when `DATABASE_URL` is unset.
const LOCAL_DATA_DIR: &str = ".hooksink/pgdata";
/// Port of that private cluster, unless it is taken; below Linux's ephemeral range (32768..)
/// so that no outgoing connection can hold it when the cluster restarts after a crash, and
/// below the test harness's ports (20000..32000), which could take it during a restart.
const LOCAL_PORT: u16 = 15432;
/// Ports tried from `LOCAL_PORT` on, all below the ephemeral range.
const LOCAL_PORT_TRIES: u16 = 100;
const _: () = assert!(LOCAL_PORT as u32 + LOCAL_PORT_TRIES as u32 <= 32768);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            // Before any thread exists: this may start the binary again, same pid and arguments.
            tunables::restart_with_additions();
            with_config(|config| serve(&config))
        }
        Some("--help" | "-h" | "help") => {
            print!("{}", cli::help());
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("hooksink {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("secret") => cli::secret(),
        Some("keypair") => cli::keypair(),
        Some("sign") => cli::sign(args.get(1..).unwrap_or_default()),
        Some("migrate") => with_database(true),
        Some("check-config") => with_database(false),
        Some(other) => cli::fail(&format!("unknown command {other:?}; see hooksink --help")),
    }
}

fn with_config(run: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    if let Err(message) = logging::init() {
        return cli::fail(&message);
    }
    match Config::from_lookup(|name| std::env::var(name).ok()) {
        Ok(config) => run(config),
        Err(error) => cli::fail(&error.to_string()),
    }
}

fn with_database(apply: bool) -> ExitCode {
    with_config(|config| match database_url(&config, Private::Reuse) {
        // `_local`, a cluster started for this command, stops when the command is done.
        Ok((url, _local)) => cli::database_command(&config, &url, apply),
        Err(message) => cli::fail(&message),
    })
}

/// What `stop` needs of a server that started.
struct Running {
    store: Store,
    address: SocketAddr,
    signals: Signals,
    /// The private cluster, stopped when this is dropped.
    local: Option<LocalPostgres>,
}

fn serve(config: &Config) -> ExitCode {
    let mut running = match start(config) {
        Ok(running) => running,
        Err(code) => return code,
    };
    // Start-up ran deeper than the wait below.
    thread_stack::release_unused();
    // Blocks without polling until SIGTERM or SIGINT arrives.
    let signal = signal_name(running.signals.forever().next());
    stop(running, signal)
}

/// Starts the database, writers and listener; on failure, the exit code after the message.
// Out of line, as `stop`: inlined, their locals (configuration, keys, every thread's start)
// made the frame that waits for the signal 16 KiB deep, all of it resident for good.
#[inline(never)]
fn start(config: &Config) -> Result<Running, ExitCode> {
    info!(
        "starting hooksink {}: {}",
        env!("CARGO_PKG_VERSION"),
        config.describe()
    );
    let published = config.webhook_keys.as_ref().map(secret::published_in);
    for source in published.unwrap_or_default() {
        warn!(
            "WEBHOOK_SECRET includes the published secret from {source}: anyone can sign \
             webhooks this server accepts; make your own with `hooksink secret`"
        );
    }
    let (url, local) = match database_url(config, Private::Start) {
        Ok(found) => found,
        Err(message) => return Err(cli::fail(&message)),
    };
    let connection = match store::connection_config(&url) {
        Ok(connection) => connection,
        Err(error) => {
            let cause = db_error::chain(&error);
            return Err(cli::fail(&format!("DATABASE_URL is not usable: {cause}")));
        }
    };
    let migration = on_own_stack("migrate", || {
        store::connect(&connection).and_then(|mut client| store::migrate(&mut client))
    });
    match migration {
        Ok(Ok(_)) => metrics::set_database_up(true),
        Ok(Err(error)) => warn!(
            "database not ready at start-up, answering 503 until it is: {}",
            db_error::describe(&error, &connection)
        ),
        Err(error) => {
            return Err(cli::fail(&format!(
                "cannot start the migration thread: {error}"
            )));
        }
    }
    let connections_max = server::raise_connection_limit(config.connections_max);
    may::config()
        .set_workers(config.workers)
        .set_stack_size(COROUTINE_STACK_WORDS)
        .set_pool_capacity(COROUTINE_POOL_AT_START)
        // Pinned workers of several instances on one host would all share the first cores.
        .set_worker_pin(false);
    if let Err(error) = trim::start(admission::buffer_bytes) {
        return Err(cli::fail(&format!(
            "cannot start the memory-trim thread: {error}"
        )));
    }
    let store = match Store::start(connection, config.db_writers) {
        Ok(store) => store,
        Err(error) => return Err(cli::fail(&format!("cannot start writer threads: {error}"))),
    };
    if let Err(message) = ensure_port_free(config.listen_addr) {
        return Err(cli::fail(&message));
    }
    let listener = match on_own_stack("may-start", || {
        may::net::TcpListener::bind(config.listen_addr)
    }) {
        Ok(Ok(listener)) => listener,
        Ok(Err(error)) => {
            return Err(cli::fail(&format!(
                "cannot listen on {}: {error}",
                config.listen_addr
            )));
        }
        Err(error) => return Err(cli::fail(&format!("cannot start may: {error}"))),
    };
    // The bind built may's scheduler and its pool; from now on may keeps this many finished ones.
    may::config().set_pool_capacity(COROUTINE_POOL);
    let address = listener.local_addr().unwrap_or(config.listen_addr);
    let context: &'static Context = Box::leak(Box::new(Context {
        webhook_keys: config.webhook_keys.clone(),
        stripe_secrets: config.stripe_secrets.clone(),
        body_size_max: config.body_size_max,
        tolerance_secs: config.tolerance_secs,
        request_timeout: config.request_timeout,
        idle_timeout: config.idle_timeout,
        store: store.clone(),
    }));
    let signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(error) => return Err(cli::fail(&format!("cannot handle SIGTERM/SIGINT: {error}"))),
    };
    if let Err(error) = server::start(listener, context, connections_max) {
        return Err(cli::fail(&format!(
            "cannot start the read-deadline thread: {error}"
        )));
    }
    info!("listening on {address}");
    Ok(Running {
        store,
        address,
        signals,
        local,
    })
}

/// After `signal`: stops accepting, drains in-flight requests for `SHUTDOWN_GRACE`, stops the
/// private cluster.
#[inline(never)]
fn stop(running: Running, signal: &str) -> ExitCode {
    let Running {
        store,
        address,
        local,
        ..
    } = running;
    info!("{signal}: no new connections, finishing in-flight requests");
    server::begin_shutdown();
    // Not joined: if the wake-up connection went elsewhere (another SO_REUSEPORT listener),
    // the loop still stops at its next accept, and the process exits after the drain anyway.
    wake_accept_loop(address);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while (metrics::in_flight() > 0 || store.queued() > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if metrics::in_flight() > 0 {
        error!(
            "{} requests still in flight after the grace period",
            metrics::in_flight()
        );
    }
    drop(local);
    info!("stopped");
    ExitCode::SUCCESS
}

/// Runs `work` on a short-lived thread and returns its result. For start-up work with deep
/// stacks: a stack that `main` touched stays resident for the process's life, a finished
/// thread's is given back. Measured on the idle server (`/proc/PID/smaps`, `[stack]`): the
/// driver's connect future and may's scheduler, which is built on the stack of the thread that
/// first uses it, each touch ~140 KiB; with both here `main`'s stack holds 20 KiB, not 156.
fn on_own_stack<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, work)?;
        Ok(thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Whether a private cluster already running in `LOCAL_DATA_DIR` is used or replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Private {
    /// `migrate` and `check-config` use a server's running cluster.
    Reuse,
    /// The server starts its own, stopping one left by a crashed run.
    Start,
}

/// `DATABASE_URL`, or the private cluster in `LOCAL_DATA_DIR`: the one running there when
/// `private` says so, else one started now (and stopped when the value is dropped).
fn database_url(
    config: &Config,
    private: Private,
) -> Result<(String, Option<LocalPostgres>), String> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), None));
    }
    let dir = Path::new(LOCAL_DATA_DIR);
    if private == Private::Reuse
        && let Some(url) = localdb::running_url(dir, "postgres")
    {
        info!("DATABASE_URL is unset: using the private PostgreSQL running at {url}");
        return Ok((url, None));
    }
    info!("DATABASE_URL is unset: starting a private PostgreSQL in {LOCAL_DATA_DIR}");
    let Some(port) = local_port() else {
        return Err(format!(
            "no free port for the private PostgreSQL in {LOCAL_PORT}..{}",
            u32::from(LOCAL_PORT) + u32::from(LOCAL_PORT_TRIES)
        ));
    };
    let options = localdb::Options { port, fsync: true };
    match LocalPostgres::start(dir, &options) {
        Ok(local) => {
            let url = local.url("postgres");
            info!("private PostgreSQL ready at {url}");
            Ok((url, Some(local)))
        }
        Err(error) => Err(format!("cannot start the private PostgreSQL: {error}")),
    }
}

/// may binds with `SO_REUSEPORT`, so a second instance on the same port would start silently
/// and take a share of the connections. A plain bind first fails if anyone holds the port.
fn ensure_port_free(address: SocketAddr) -> Result<(), String> {
    if address.port() == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind(address) {
        Ok(_probe) => Ok(()),
        Err(error) => Err(format!("cannot listen on {address}: {error}")),
    }
}

/// `LOCAL_PORT`, or the next free one when another server (another checkout's cluster)
/// holds it.
fn local_port() -> Option<u16> {
    let port = localdb::free_port(LOCAL_PORT, LOCAL_PORT_TRIES)?;
    if port != LOCAL_PORT {
        info!("port {LOCAL_PORT} is taken: the private PostgreSQL uses port {port}");
    }
    Some(port)
}

/// The name of a signal `main` waits for, as an operator would write it.
fn signal_name(signal: Option<i32>) -> &'static str {
    match signal {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        // `forever` ends only when the handle is closed, which nothing here does.
        _ => "signal handle closed",
    }
}

/// Connects once to the listener so a blocked `accept` returns and sees the shutdown flag.
fn wake_accept_loop(address: SocketAddr) {
    let target = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    // If this fails the accept loop is not blocked in accept, which is all we need.
    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
}
