//! PostgreSQL: migrations and the writer threads that commit events.
//!
//! The sync `postgres` client blocks the OS thread it runs on and misbehaves on coroutines, so
//! every statement runs on a dedicated writer thread that owns one connection and its prepared
//! statement. Requests hand a `Job` over a `may` channel and park until the writer answers. A
//! writer takes every job waiting for it (up to `BATCH_SIZE_MAX`) and commits them in one
//! transaction: that group commit is what lets throughput exceed one-row transactions, with no
//! timer and no waiting for a batch to fill.
//!
//! A batch is one statement in one round trip (autocommit: the INSERT is atomic by itself), two
//! when its first try met an event stored already (`statement`). The statement that commits
//! always writes WAL under a transaction id (it inserts rows, or locks a duplicate's row), so
//! its commit waits for a synchronous standby even when every event was a duplicate: the
//! commit record then covers every earlier WAL record, including the original row a duplicate
//! points at. A watchdog thread per writer bounds each round trip (`watchdog`).
//!
//! Zero copy: a job carries the request's whole connection buffer plus spans into it, so the
//! body is not copied before the database write; the buffer travels back with the answer.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use log::{info, warn};
use may::sync::mpmc;
use postgres::error::DbError;
use postgres::error::SqlState;
use postgres::{Client, NoTls};

use crate::health::{self, Reason};
use crate::limits::{
    BATCH_SIZE_MAX, DB_CONNECT_TIMEOUT, DB_RECONNECT_DELAY_MAX, DB_RECONNECT_DELAY_MIN,
    DB_RECONNECT_JITTER_DIVISOR, DB_STATEMENT_TIMEOUT, DB_WRITE_WAIT_MAX, QUEUE_LEN_MAX,
};
use crate::metrics;
use crate::oneshot;
use crate::signature::Scheme;
use crate::text::{Text, locate, resolve};
use crate::transform::{Amount, Row};

mod statement;
mod watchdog;

use statement::{FirstTry, Prepared};
use watchdog::Watchdog;

/// Migrations in `sql/`, applied in this order, each once.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_webhook_events.sql",
        include_str!("../sql/0001_webhook_events.sql"),
    ),
    (2, "0002_source.sql", include_str!("../sql/0002_source.sql")),
];

/// The start of the WARNING PostgreSQL sends when a commit's wait for the synchronous standby
/// is cancelled: the commit then returns success although it exists on the primary only. The
/// watchdog's own cancels are known without it; this catches cancels by anyone else (an
/// operator's `pg_cancel_backend`) on servers that log in English.
const SYNC_REP_CANCELLED: &str = "canceling wait for synchronous replication";

/// The probe `/readyz` sends through a writer: a row lock writes WAL under a transaction id,
/// so its commit waits for the synchronous standby as a batch's does (see `statement::INSERT_ANY`).
/// Row 1 exists once the first migration ran, which every writer's connect does. `KEY SHARE`,
/// the weakest row lock, so probes on several writers or instances do not wait for each other.
const PING: &str = "SELECT version FROM hooksink_migrations WHERE version = 1 FOR KEY SHARE";

/// A writer without a job for this long is idle: it gives back the stack pages its commits
/// touched below its loop (a thread keeps them otherwise: 20 KiB after one `/readyz`, 12 KiB
/// once given back, `/proc/PID/smaps`). Under load it is never idle that long.
const WRITER_IDLE: Duration = Duration::from_millis(500);

/// Key of the advisory lock that serialises migrations across instances ("hooksink" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f6b_7369_6e6b;

/// The result of storing one event that is not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// Why an event was not stored; every variant is answered 503 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The queue to the writers is full.
    QueueFull,
    /// The database is unreachable, or the commit failed or has an unknown outcome.
    Unavailable,
    /// No answer within `COMMIT_WAIT_TIMEOUT`; the commit may still happen.
    Timeout,
}

/// The database answered a ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pong;

/// A writer's answer to one job.
pub enum Reply {
    /// An insert's outcome, with the connection buffer the job carried.
    Insert {
        outcome: Result<Stored, Error>,
        buffer: Vec<u8>,
    },
    /// A ping's outcome.
    Ping(Result<Pong, Error>),
}

/// Where a writer delivers its answer to one job; the requester waits on the other end.
pub type ReplySender = oneshot::Sender<Reply>;

/// A row detached from its borrow of the connection buffer, ready to travel with it.
#[derive(Debug)]
pub struct Pending {
    event_id: Text,
    event_type: Text,
    category: Text,
    action: Text,
    object_id: Text,
    amount_cents: i64,
    currency: [u8; 3],
    amount: Amount,
    metadata: Text,
    provider_ts: i64,
    /// The scheme that verified the row; its `name()` is the `source` column.
    source: Scheme,
}

/// Handle the request side uses to reach the writers.
#[derive(Clone)]
pub struct Store {
    jobs: mpmc::Sender<Job>,
    queued: Arc<AtomicUsize>,
}

/// An event to insert (with the buffer it lives in), or a ping when `insert` is `None`.
struct Job {
    insert: Option<(Vec<u8>, Pending)>,
    reply: ReplySender,
}

impl Pending {
    /// Records where each value of `row` (verified by `source`) sits in `buffer`; values that
    /// are not in it (decoded escapes, the `{}` default) are kept as owned text.
    pub fn new(row: &Row<'_>, buffer: &[u8], source: Scheme) -> Pending {
        let text = |value: &str| locate(value, buffer);
        // Validation only passes codes of the ISO table; anything else would commit a wrong row.
        assert!(
            row.currency.len() == 3 && row.currency.is_ascii(),
            "currency {:?} is not a three-letter code",
            row.currency
        );
        let mut currency = [b' '; 3];
        for (slot, byte) in currency.iter_mut().zip(row.currency.bytes()) {
            *slot = byte;
        }
        Pending {
            event_id: text(row.event_id),
            event_type: text(row.event_type),
            category: text(row.category),
            action: text(row.action),
            object_id: text(row.object_id),
            amount_cents: row.amount_cents,
            currency,
            amount: row.amount,
            metadata: text(row.metadata),
            provider_ts: row.provider_ts,
            source,
        }
    }
}

impl Store {
    /// Starts `writers` writer threads on `config`. They connect lazily and reconnect by
    /// themselves, so this succeeds while the database is down.
    pub fn start(config: postgres::Config, writers: usize) -> std::io::Result<Store> {
        let (jobs, receiver) = mpmc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        for index in 0..writers {
            let name = format!("db-writer-{index}");
            let unreplicated = Arc::new(AtomicBool::new(false));
            let mut config = config.clone();
            let flag = Arc::clone(&unreplicated);
            config.notice_callback(move |notice| on_notice(&notice, &flag));
            // Boxed: moved into the thread by value, the writer (its `postgres::Config` above all)
            // sat in a 2.7 KiB frame under the loop, resident for the thread's life.
            let mut writer = Box::new(Writer {
                config,
                jobs: receiver.clone(),
                queued: queued.clone(),
                connection: None,
                first_try: FirstTry::default(),
                watchdog: Watchdog::start(&name, DB_WRITE_WAIT_MAX)?,
                unreplicated,
                backoff: Backoff::new(),
            });
            std::thread::Builder::new()
                .name(name)
                .spawn(move || writer.run())?;
        }
        Ok(Store { jobs, queued })
    }

    /// Hands `row` (which lives in `buffer`) to a writer. On failure the buffer comes back.
    pub fn submit(
        &self,
        buffer: Vec<u8>,
        row: Pending,
        reply: ReplySender,
    ) -> Result<(), (Error, Vec<u8>)> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE_LEN_MAX {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((Error::QueueFull, buffer));
        }
        let job = Job {
            insert: Some((buffer, row)),
            reply,
        };
        self.send(job).map_err(|job| {
            let buffer = job.insert.map(|(buffer, _)| buffer).unwrap_or_default();
            (Error::Unavailable, buffer)
        })
    }

    /// Asks a writer whether the database answers; the result arrives on `reply`.
    pub fn ping(&self, reply: ReplySender) -> Result<(), Error> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE_LEN_MAX {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::QueueFull);
        }
        let job = Job {
            insert: None,
            reply,
        };
        self.send(job).map_err(|_| Error::Unavailable)
    }

    /// Events waiting for a writer now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn send(&self, job: Job) -> Result<(), Box<Job>> {
        self.jobs.send(job).map_err(|error| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Box::new(error.0)
        })
    }
}

/// Parses `DATABASE_URL` and sets the timeouts this server relies on.
pub fn connection_config(url: &str) -> Result<postgres::Config, postgres::Error> {
    let mut config = postgres::Config::from_str(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DB_CONNECT_TIMEOUT);
    }
    config
        .application_name("hooksink")
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    Ok(config)
}

/// Applies the migrations in `sql/` that are not applied yet, under an advisory lock so that
/// instances starting together apply each exactly once. Returns how many were applied.
pub fn migrate(client: &mut Client) -> Result<usize, postgres::Error> {
    client.query("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    let applied = apply_migrations(client);
    let unlocked = client.query("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// Opens a connection with the session settings every writer uses.
pub fn connect(config: &postgres::Config) -> Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    let statement_timeout_ms = DB_STATEMENT_TIMEOUT.as_millis();
    client.batch_execute(&format!(
        "SET statement_timeout = {statement_timeout_ms}; SET lock_timeout = {statement_timeout_ms}"
    ))?;
    Ok(client)
}

/// A notice on a writer's connection: the one that says a commit is not replicated sets
/// `unreplicated`; the rest are logged as the driver's default callback does.
fn on_notice(notice: &DbError, unreplicated: &AtomicBool) {
    if says_unreplicated(notice.message()) {
        unreplicated.store(true, Ordering::Release);
    }
    info!("{}: {}", notice.severity(), notice.message());
}

fn says_unreplicated(message: &str) -> bool {
    message.starts_with(SYNC_REP_CANCELLED)
}

struct Writer {
    config: postgres::Config,
    jobs: mpmc::Receiver<Job>,
    queued: Arc<AtomicUsize>,
    connection: Option<(Client, Prepared)>,
    first_try: FirstTry,
    watchdog: Arc<Watchdog>,
    /// Set by the connection's notice callback when a commit's replication wait was cancelled.
    unreplicated: Arc<AtomicBool>,
    backoff: Backoff,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.watchdog.close();
    }
}

/// When a writer may next try to connect: a failed attempt doubles the pause, from
/// `DB_RECONNECT_DELAY_MIN` up to `DB_RECONNECT_DELAY_MAX`, plus a little jitter. Batches that
/// arrive before then are answered 503 at once without touching the network, so a failover
/// (the multi-host URL landing on a read-only standby) is not hammered.
struct Backoff {
    next_attempt: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next_attempt: None,
            delay: DB_RECONNECT_DELAY_MIN,
        }
    }

    fn may_try(&self, now: Instant) -> bool {
        self.next_attempt.is_none_or(|at| now >= at)
    }

    fn failed(&mut self, now: Instant) {
        let jitter = self.delay / DB_RECONNECT_JITTER_DIVISOR;
        let pause = self.delay + jitter.mul_f64(random_fraction());
        self.next_attempt = Some(now + pause);
        self.delay = (self.delay * 2).min(DB_RECONNECT_DELAY_MAX);
    }

    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

/// A number in [0, 1) that differs between calls and threads; jitter needs nothing better.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    // RandomState's keys are random per thread and change with every `new`.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map(|since| since.as_nanos()).unwrap_or_default());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A batch's inserts, split from its pings. One per writer, emptied by each commit and
/// reused, so its storage grows to the largest batch seen instead of `BATCH_SIZE_MAX` up front.
struct Batch {
    inserts: Vec<(Vec<u8>, Pending, ReplySender)>,
    pings: Vec<ReplySender>,
}

impl Writer {
    fn run(&mut self) {
        let mut batch = Batch {
            inserts: Vec::new(),
            pings: Vec::new(),
        };
        // Blocking on a may channel from an OS thread is supported; see CRATES.md.
        while let Ok(first) = self.next_job() {
            batch.push(first);
            while batch.len() < BATCH_SIZE_MAX {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            self.commit(&mut batch);
        }
    }

    /// The next job; a writer that had none for `WRITER_IDLE` first gives back the stack pages
    /// its last commit touched below this frame, then waits without a bound.
    fn next_job(&self) -> Result<Job, ()> {
        match self.jobs.recv_timeout(WRITER_IDLE) {
            Ok(job) => Ok(job),
            Err(RecvTimeoutError::Timeout) => {
                crate::thread_stack::release_unused();
                self.jobs.recv().map_err(|_| ())
            }
            Err(RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    fn commit(&mut self, batch: &mut Batch) {
        let started = Instant::now();
        // A batch of readiness probes only asks whether the database is back, so it connects
        // whatever the back-off says: with two writers, one may still wait out its back-off
        // after the other reconnected, and `/readyz` must not answer 503 for it. Probes come
        // one at a time while a problem is published (`health::claim_refresh`).
        let probing = batch.inserts.is_empty();
        let outcomes = match self.ensure_connected(probing) {
            Ok(()) => self.insert(&batch.inserts),
            Err(()) => Err(Error::Unavailable),
        };
        if !batch.inserts.is_empty() {
            metrics::observe_commit(started.elapsed(), batch.inserts.len(), outcomes.is_ok());
        }
        let ping = match outcomes {
            Err(_) => Err(Error::Unavailable),
            Ok(_) if batch.inserts.is_empty() => self.ping(),
            Ok(_) => Ok(Pong),
        };
        for reply in batch.pings.drain(..) {
            // A requester that gave up waiting has dropped its receiver; nothing to do then.
            reply.send(Reply::Ping(ping));
            // The outcome is published: a `/readyz` may ask for another look.
            health::refreshed();
        }
        for (index, (buffer, _, reply)) in batch.inserts.drain(..).enumerate() {
            let outcome = match &outcomes {
                Ok(stored) => stored
                    .get(index)
                    .copied()
                    .unwrap_or(Err(Error::Unavailable)),
                Err(error) => Err(*error),
            };
            // As above: a requester that timed out is gone.
            reply.send(Reply::Insert { outcome, buffer });
        }
    }

    /// Connects unless connected; within the back-off only when `probing`.
    fn ensure_connected(&mut self, probing: bool) -> Result<(), ()> {
        if self
            .connection
            .as_ref()
            .is_some_and(|(client, _)| !client.is_closed())
        {
            return Ok(());
        }
        let now = Instant::now();
        if !probing && !self.backoff.may_try(now) {
            return Err(());
        }
        let opened = connect(&self.config).and_then(|mut client| {
            migrate(&mut client)?;
            let statements = Prepared::on(&mut client)?;
            let server = server_address(&mut client)?;
            Ok((client, statements, server))
        });
        crate::thread_stack::release_unused();
        match opened {
            Ok((client, statements, server)) => {
                // Each writer says where it writes: after a failover, the new primary.
                info!("writer connected to the database at {server}");
                metrics::set_database_up(true);
                self.backoff.succeeded();
                self.connection = Some((client, statements));
                Ok(())
            }
            Err(error) => {
                if metrics::database_up() {
                    warn!(
                        "database unreachable: {}",
                        crate::db_error::describe(&error, &self.config)
                    );
                }
                metrics::set_database_up(false);
                let cause = crate::db_error::located(&error, &self.config);
                health::fail(Reason::DatabaseUnreachable, cause);
                self.backoff.failed(now);
                self.connection = None;
                Err(())
            }
        }
    }

    /// A write that must be replicated, like a batch's: it locks one row, so its commit waits
    /// for the synchronous standby, under the watchdog. A `SELECT 1` would pass with the
    /// standby gone, and could not clear a published `StandbyUnconfirmed` without traffic.
    fn ping(&mut self) -> Result<Pong, Error> {
        let locked = self.round_trip(|client, _| client.simple_query(PING))?;
        self.settle(locked).map(|_| Pong)
    }

    /// Inserts the batch in its own transaction; per job: accepted, duplicate, or the error. A
    /// round trip the watchdog cancelled, or whose replication wait was cancelled, may be
    /// committed on the primary only: its outcome is unknown, so 503.
    fn insert(
        &mut self,
        inserts: &[(Vec<u8>, Pending, ReplySender)],
    ) -> Result<Vec<Result<Stored, Error>>, Error> {
        if inserts.is_empty() {
            return Ok(Vec::new());
        }
        let columns = Columns::gather(inserts);
        if self.first_try.new_only() {
            match self.insert_new(&columns)? {
                NewOnly::Inserted => {
                    self.first_try.stored(false);
                    return Ok(columns.outcomes(|_| true));
                }
                NewOnly::MetDuplicate => metrics::count_batch_resent(),
            }
        }
        let params = columns.params();
        let committed = self.round_trip(|client, prepared| client.query(&prepared.any, &params))?;
        let rows = self.settle(committed)?;
        let inserted: HashSet<&str> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
        self.first_try.stored(inserted.len() < columns.ids.len());
        Ok(columns.outcomes(|id| inserted.contains(id)))
    }

    /// Tries the batch with `INSERT_NEW`, which commits every row or none.
    fn insert_new(&mut self, columns: &Columns<'_>) -> Result<NewOnly, Error> {
        let params = columns.params();
        let committed =
            self.round_trip(|client, prepared| client.execute(&prepared.new, &params))?;
        if !committed.cancelled
            && let Err(error) = &committed.result
            && error.code() == Some(&SqlState::UNIQUE_VIOLATION)
        {
            // The statement's transaction rolled back; the connection is ready for the next.
            return Ok(NewOnly::MetDuplicate);
        }
        let inserted = self.settle(committed)?;
        if inserted != columns.ids.len() as u64 {
            // Committed, but which rows are stored is unknown: 503, and a retry finds them.
            warn!(
                "an INSERT of {} new events stored {inserted} rows (a trigger on webhook_events \
                 that skips rows?); answered 503, and this writer now always asks which ids \
                 were stored",
                columns.ids.len()
            );
            self.first_try.new_miscounted();
            return Err(Error::Unavailable);
        }
        Ok(NewOnly::Inserted)
    }

    /// One statement on the connection, under the watchdog. Autocommit: the driver returns
    /// after ReadyForQuery, i.e. after the commit (and its replication wait) and after any
    /// notice the commit raised.
    fn round_trip<T>(
        &mut self,
        call: impl FnOnce(&mut Client, &Prepared) -> Result<T, postgres::Error>,
    ) -> Result<RoundTrip<T>, Error> {
        let Some((client, prepared)) = self.connection.as_mut() else {
            return Err(Error::Unavailable);
        };
        self.unreplicated.store(false, Ordering::Release);
        self.watchdog.arm(client.cancel_token());
        let result = call(client, prepared);
        let cancelled = self.watchdog.disarm();
        Ok(RoundTrip { result, cancelled })
    }

    /// Ends a round trip: a cancelled or unreplicated commit, or an error, drops the connection
    /// and is published for `/readyz`; a commit clears that.
    fn settle<T>(&mut self, round_trip: RoundTrip<T>) -> Result<T, Error> {
        let RoundTrip { result, cancelled } = round_trip;
        let unreplicated = self.unreplicated.load(Ordering::Acquire);
        match result {
            Ok(_) if cancelled || unreplicated => {
                warn!(
                    "database write cancelled before the synchronous standby confirmed it; \
                     answered 503, reconnecting on the next batch"
                );
                metrics::set_database_up(false);
                health::fail(
                    Reason::StandbyUnconfirmed,
                    format!(
                        "the last write was cancelled before the synchronous standby confirmed \
                         it (waited up to {} ms)",
                        DB_WRITE_WAIT_MAX.as_millis()
                    ),
                );
                // A fresh connection: a cancel must not reach whatever runs next on this one.
                self.connection = None;
                Err(Error::Unavailable)
            }
            Ok(value) => {
                health::committed();
                Ok(value)
            }
            Err(error) => {
                self.lose_connection(&error, cancelled);
                Err(Error::Unavailable)
            }
        }
    }

    /// `cancelled`: the watchdog ended the round trip, which the server reports as a
    /// cancelled statement; `/readyz` says it took too long instead.
    fn lose_connection(&mut self, error: &postgres::Error, cancelled: bool) {
        warn!(
            "database write failed, reconnecting on the next batch: {}",
            crate::db_error::describe(error, &self.config)
        );
        metrics::set_database_up(false);
        let cause = if cancelled {
            format!(
                "the last write did not finish within {} ms and was cancelled",
                DB_WRITE_WAIT_MAX.as_millis()
            )
        } else {
            crate::db_error::located(error, &self.config)
        };
        health::fail(Reason::WriteFailed, cause);
        // The connection may be fine (a statement timeout), but after an error mid-transaction
        // a fresh one is the simplest state to reason about.
        self.connection = None;
    }
}

/// A statement's result, and whether the watchdog cancelled it (its outcome is then unknown).
struct RoundTrip<T> {
    result: Result<T, postgres::Error>,
    cancelled: bool,
}

/// How a batch's try with `INSERT_NEW` ended, short of an error.
enum NewOnly {
    /// Every row is committed.
    Inserted,
    /// One id was stored already; nothing is committed.
    MetDuplicate,
}

impl Batch {
    fn push(&mut self, job: Job) {
        match job.insert {
            Some((buffer, row)) => self.inserts.push((buffer, row, job.reply)),
            None => self.pings.push(job.reply),
        }
    }

    fn len(&self) -> usize {
        self.inserts.len() + self.pings.len()
    }
}

/// The batch as parameter arrays, one entry per distinct event id, borrowing the job buffers.
struct Columns<'a> {
    ids: Vec<&'a str>,
    event_types: Vec<&'a str>,
    categories: Vec<&'a str>,
    actions: Vec<&'a str>,
    object_ids: Vec<&'a str>,
    amount_cents: Vec<i64>,
    currencies: Vec<&'a str>,
    amounts: Vec<&'a str>,
    metadata: Vec<&'a str>,
    provider_ts: Vec<i64>,
    sources: Vec<&'static str>,
    /// Per job: its event id, and whether it is the first job of the batch with that id.
    jobs: Vec<(&'a str, bool)>,
}

impl<'a> Columns<'a> {
    fn gather(inserts: &'a [(Vec<u8>, Pending, ReplySender)]) -> Columns<'a> {
        let n = inserts.len();
        let mut columns = Columns {
            ids: Vec::with_capacity(n),
            event_types: Vec::with_capacity(n),
            categories: Vec::with_capacity(n),
            actions: Vec::with_capacity(n),
            object_ids: Vec::with_capacity(n),
            amount_cents: Vec::with_capacity(n),
            currencies: Vec::with_capacity(n),
            amounts: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            provider_ts: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
            jobs: Vec::with_capacity(n),
        };
        let mut seen: HashSet<&str> = HashSet::with_capacity(n);
        let mut firsts: Vec<(&str, &Vec<u8>, &Pending)> = Vec::with_capacity(n);
        for (buffer, row, _) in inserts {
            let id = resolve(&row.event_id, buffer);
            // A redelivery inside one batch is sent once; the later copies answer duplicate.
            let first = seen.insert(id);
            columns.jobs.push((id, first));
            if first {
                firsts.push((id, buffer, row));
            }
        }
        // Rows go in in id order, so two transactions inserting overlapping ids (two writers,
        // or two instances) take the index locks in the same order and cannot deadlock.
        firsts.sort_unstable_by_key(|(id, _, _)| *id);
        for (id, buffer, row) in firsts {
            columns.ids.push(id);
            columns.event_types.push(resolve(&row.event_type, buffer));
            columns.categories.push(resolve(&row.category, buffer));
            columns.actions.push(resolve(&row.action, buffer));
            columns.object_ids.push(resolve(&row.object_id, buffer));
            columns.amount_cents.push(row.amount_cents);
            let currency = std::str::from_utf8(&row.currency);
            // `Pending::new` asserted ASCII, so this cannot fail.
            assert!(currency.is_ok(), "currency bytes {:?}", row.currency);
            columns.currencies.push(currency.unwrap_or_default());
            columns.amounts.push(row.amount.as_str());
            columns.metadata.push(resolve(&row.metadata, buffer));
            columns.provider_ts.push(row.provider_ts);
            columns.sources.push(row.source.name());
        }
        columns
    }

    fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 11] {
        [
            &self.ids,
            &self.event_types,
            &self.categories,
            &self.actions,
            &self.object_ids,
            &self.amount_cents,
            &self.currencies,
            &self.amounts,
            &self.metadata,
            &self.provider_ts,
            &self.sources,
        ]
    }

    /// Accepted for the first job of each id the INSERT stored (`inserted`); duplicate for the
    /// rest.
    fn outcomes(&self, inserted: impl Fn(&str) -> bool) -> Vec<Result<Stored, Error>> {
        self.jobs
            .iter()
            .map(|(id, first)| {
                if *first && inserted(id) {
                    Ok(Stored::Accepted)
                } else {
                    Ok(Stored::Duplicate)
                }
            })
            .collect()
    }
}

/// `host:port` of the server `client` is connected to, as the server sees itself.
fn server_address(client: &mut Client) -> Result<String, postgres::Error> {
    let row = client.query_one(
        "SELECT coalesce(host(inet_server_addr()), 'local socket'), \
         coalesce(inet_server_port(), 0)",
        &[],
    )?;
    let host: String = row.try_get(0)?;
    let port: i32 = row.try_get(1)?;
    Ok(format!("{host}:{port}"))
}

fn apply_migrations(client: &mut Client) -> Result<usize, postgres::Error> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS hooksink_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let done = client.query_opt(
            "SELECT 1 FROM hooksink_migrations WHERE version = $1",
            &[version],
        )?;
        if done.is_some() {
            continue;
        }
        let mut transaction = client.transaction()?;
        transaction.batch_execute(sql)?;
        transaction.execute(
            "INSERT INTO hooksink_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        transaction.commit()?;
        info!("applied migration {name}");
        applied += 1;
    }
    Ok(applied)
}

/// Migrations in `sql/` not applied to the database yet.
pub fn pending_migrations(client: &mut Client) -> Result<usize, postgres::Error> {
    let exists = client.query_one("SELECT to_regclass('hooksink_migrations') IS NOT NULL", &[])?;
    if !exists.try_get::<_, bool>(0)? {
        return Ok(MIGRATIONS.len());
    }
    let mut pending = 0;
    for (version, _, _) in MIGRATIONS {
        let done = client.query_opt(
            "SELECT 1 FROM hooksink_migrations WHERE version = $1",
            &[version],
        )?;
        pending += usize::from(done.is_none());
    }
    Ok(pending)
}

/// The writers' end of a `Store` made by `Store::stalled`: nothing answers until a test does.
#[cfg(test)]
pub(crate) struct Stalled(mpmc::Receiver<Job>);

#[cfg(test)]
impl Store {
    /// A store whose jobs stay queued until the test answers them, like writers that hang.
    pub(crate) fn stalled() -> (Store, Stalled) {
        let (jobs, receiver) = mpmc::channel();
        let store = Store {
            jobs,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        (store, Stalled(receiver))
    }
}

#[cfg(test)]
impl Stalled {
    /// Waits for the next job, which must be a ping, and answers it with `pong`.
    pub(crate) fn answer_ping(&self, pong: Result<Pong, Error>) {
        let job = self.0.recv().expect("the store is alive");
        assert!(job.insert.is_none(), "a ping was expected");
        job.reply.send(Reply::Ping(pong));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload, transform};

    /// A job as a request would hand it over: the body is the whole buffer.
    fn job(id: &str, object_id: &str) -> (Vec<u8>, Pending, ReplySender) {
        let body = format!(
            r#"{{"event_type":"payment.succeeded","object_id":"{object_id}","amount_cents":5,"currency":"bhd"}}"#
        );
        let buffer = format!("{id}{body}").into_bytes();
        let id_text = std::str::from_utf8(&buffer[..id.len()]).unwrap();
        let webhook = payload::parse(&buffer[id.len()..]).unwrap();
        let event = payload::validate(&webhook).unwrap();
        let row = transform::transform(id_text, 1_700_000_000, &event);
        let pending = Pending::new(&row, &buffer, Scheme::Standard);
        (buffer, pending, oneshot::unheard())
    }

    #[test]
    fn rows_point_into_the_buffer_unless_decoded() {
        let (buffer, pending, _) = job("evt_1", r"pi_\/1");
        assert!(matches!(pending.event_id, Text::Span(_)));
        assert!(matches!(pending.event_type, Text::Span(_)));
        assert!(
            matches!(pending.object_id, Text::Owned(_)),
            "escaped text is decoded"
        );
        assert!(
            matches!(pending.metadata, Text::Owned(_)),
            "absent metadata is the default"
        );
        assert_eq!(resolve(&pending.event_id, &buffer), "evt_1");
        assert_eq!(resolve(&pending.object_id, &buffer), "pi_/1");
        assert_eq!(resolve(&pending.category, &buffer), "payment");
        assert_eq!(resolve(&pending.metadata, &buffer), "{}");
        assert_eq!(pending.amount.as_str(), "0.005");
        assert_eq!(&pending.currency, b"BHD");
    }

    #[test]
    fn batches_dedupe_sort_and_answer_each_job() {
        let inserts = [job("c", "1"), job("a", "2"), job("c", "3"), job("b", "4")];
        let columns = Columns::gather(&inserts);
        assert_eq!(columns.ids, ["a", "b", "c"], "distinct ids, in lock order");
        assert_eq!(
            columns.object_ids,
            ["2", "4", "1"],
            "the first copy of an id wins"
        );
        let inserted: HashSet<&str> = ["a", "c"].into_iter().collect();
        assert_eq!(
            columns.outcomes(|id| inserted.contains(id)),
            [
                Ok(Stored::Accepted),
                Ok(Stored::Accepted),
                Ok(Stored::Duplicate),
                Ok(Stored::Duplicate),
            ],
            "c: first accepted, second a duplicate; b was already stored"
        );
    }

    #[test]
    fn reconnect_pauses_double_up_to_the_bound_with_a_little_jitter() {
        let mut backoff = Backoff::new();
        let start = Instant::now();
        assert!(
            backoff.may_try(start),
            "the first attempt waits for nothing"
        );
        let mut expected = DB_RECONNECT_DELAY_MIN;
        for _ in 0..12 {
            backoff.failed(start);
            let pause = backoff.next_attempt.unwrap() - start;
            let jitter = expected / DB_RECONNECT_JITTER_DIVISOR;
            assert!(
                pause >= expected && pause <= expected + jitter,
                "{pause:?} outside {expected:?} + {jitter:?}"
            );
            assert!(!backoff.may_try(start));
            assert!(backoff.may_try(start + pause));
            expected = (expected * 2).min(DB_RECONNECT_DELAY_MAX);
        }
        assert_eq!(backoff.delay, DB_RECONNECT_DELAY_MAX);
        backoff.succeeded();
        assert!(backoff.may_try(start));
        assert_eq!(backoff.delay, DB_RECONNECT_DELAY_MIN);
    }

    #[test]
    fn only_the_replication_cancel_warning_marks_a_commit_unreplicated() {
        assert!(!says_unreplicated("there is no transaction in progress"));
        assert!(says_unreplicated(
            "canceling wait for synchronous replication due to user request"
        ));
        assert!(says_unreplicated(
            "canceling wait for synchronous replication due to administrator command"
        ));
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_returns_the_buffer() {
        // No writer drains this channel: every accepted job stays queued.
        let (jobs, _receiver) = mpmc::channel();
        let store = Store {
            jobs,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        for _ in 0..QUEUE_LEN_MAX {
            let (buffer, row, reply) = job("evt", "1");
            assert!(store.submit(buffer, row, reply).is_ok());
        }
        let (buffer, row, reply) = job("evt_last", "1");
        let (error, returned) = store.submit(buffer, row, reply).unwrap_err();
        assert_eq!(error, Error::QueueFull);
        assert!(
            returned.starts_with(b"evt_last"),
            "the request keeps its buffer"
        );
        assert_eq!(store.ping(oneshot::unheard()), Err(Error::QueueFull));
        assert_eq!(store.queued(), QUEUE_LEN_MAX);
    }
}
