//! Every quantity a client controls, bounded by a named constant.
//!
//! One place to read what the server will tolerate: sizes, counts and times. Relations between
//! limits are checked at compile time so a change that breaks one fails the build.

use std::time::Duration;

/// Contract: a body is at most 64 KiB unless `MAX_BODY_BYTES` says otherwise.
pub const BODY_SIZE_DEFAULT: usize = 64 * 1024;
/// Lower bound an operator may set with `MAX_BODY_BYTES`: below it a real event does not fit.
pub const BODY_SIZE_MIN: usize = 1024;
/// Upper bound an operator may set with `MAX_BODY_BYTES` (1 MiB), so one connection stays small.
pub const BODY_SIZE_MAX: usize = 1024 * 1024;
/// Request line plus headers, in bytes; more is answered 431 and the connection closed.
pub const HEAD_SIZE_MAX: usize = 8 * 1024;
/// Number of request headers; more is answered 431 and the connection closed.
pub const HEADERS_COUNT_MAX: usize = 32;
/// Bytes a connection's buffer is allocated with when a request arrives; a larger one is shrunk
/// back to this while pipelined bytes remain, and freed when none do.
pub const CONNECTION_BUFFER_IDLE: usize = 4 * 1024;

/// Contract: `webhook-id` is 1..=255 bytes of ASCII graphic characters.
pub const EVENT_ID_LEN_MAX: usize = 255;
/// Contract: `event_type` is 1..=64 bytes.
pub const EVENT_TYPE_LEN_MAX: usize = 64;
/// Contract: `object_id` is 1..=255 bytes.
pub const OBJECT_ID_LEN_MAX: usize = 255;
/// Contract: `amount_cents` is an integer in 0..=10^15.
pub const AMOUNT_CENTS_MAX: i64 = 1_000_000_000_000_000;
/// Contract: `metadata` has at most 50 top-level keys.
pub const METADATA_KEYS_MAX: usize = 50;
/// Contract: a `metadata` key is at most 40 bytes as sent.
pub const METADATA_KEY_LEN_MAX: usize = 40;
/// Contract: `metadata` is at most 8 KiB as sent.
pub const METADATA_SIZE_MAX: usize = 8 * 1024;
/// Metadata numbers with a larger exponent are refused: far inside what `jsonb` holds (about
/// 1e131071), so nothing that passes can make the INSERT fail.
pub const METADATA_EXPONENT_MAX: i64 = 1000;
/// Contract: nesting deeper than 128 is 400. serde_json does not count depth inside `RawValue`
/// or `IgnoredAny`, so `payload::parse` checks it before serde runs.
pub const JSON_DEPTH_MAX: usize = 128;
/// Top-level keys tracked for the duplicate-key rule; a body with more is 400.
pub const TOP_LEVEL_KEYS_MAX: usize = 64;
/// Entries looked at in one `webhook-signature` header.
pub const SIGNATURES_COUNT_MAX: usize = 16;
/// Secrets accepted in `WEBHOOK_SECRET` (rotation needs two; a few more cost nothing).
pub const SECRETS_COUNT_MAX: usize = 8;

/// Contract: a timestamp within 300 s of now, unless `SIGNATURE_TOLERANCE_SECS` says otherwise.
pub const TIMESTAMP_SKEW_SECS_DEFAULT: i64 = 300;
/// Upper bound for `SIGNATURE_TOLERANCE_SECS` (one day): wider windows make replays cheap.
pub const TIMESTAMP_SKEW_SECS_MAX: i64 = 86_400;

/// A request head and body must arrive within this time once its first byte has (slowloris),
/// unless `REQUEST_TIMEOUT_SECS` says otherwise.
pub const REQUEST_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Upper bound an operator may set with `REQUEST_TIMEOUT_SECS` (5 minutes): a longer one lets
/// slow clients hold connections and buffers for that long.
pub const REQUEST_READ_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// An idle keep-alive connection is closed after this time, unless `IDLE_TIMEOUT_SECS` says
/// otherwise.
pub const KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Upper bound an operator may set with `IDLE_TIMEOUT_SECS` (one hour).
pub const KEEP_ALIVE_IDLE_TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// A connection that waits this long for its next request gives up its coroutine (its stack
/// pages and reply slot) and waits in `parking` until bytes arrive: a provider's pooled
/// keep-alive connections cost a few hundred bytes each between events, while a busy one,
/// whose next request comes sooner, never pays the hand-over (two `epoll_ctl` calls and a
/// coroutine start).
pub const IDLE_PARK_AFTER: Duration = Duration::from_secs(1);
/// A read deadline fires at most this much late: the thread enforcing them sleeps this much
/// past the earliest one, so deadlines that expire together are closed in one sweep.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(10);
/// An answer that cannot be written within this time (counted from its first byte) closes the
/// connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request waits at most this long for its commit result, then answers 503.
pub const COMMIT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections unless `MAX_CONNECTIONS` says otherwise; at the cap new ones are closed at
/// once, existing ones keep working.
pub const CONNECTIONS_DEFAULT: usize = 10_000;
/// Upper bound an operator may set with `MAX_CONNECTIONS`; the file descriptor limit may lower
/// the cap further.
pub const CONNECTIONS_MAX: usize = 100_000;

/// Request bytes all connections together may hold beyond their idle buffers (heads and
/// bodies being read or waiting for a commit); past it a request that needs more room is
/// answered 503, so many slow large bodies cannot exhaust a small VM's memory.
pub const BUFFERED_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Most HTTP worker threads `WORKERS` may ask for.
pub const WORKERS_MAX: usize = 256;
/// Most writer threads (each holds one PostgreSQL connection) `DB_WRITERS` may ask for.
pub const DB_WRITERS_MAX: usize = 64;
/// Writer threads when `DB_WRITERS` is unset; chosen by measurement (loadtest/README.md,
/// issue #8, seventh round): one writer's batches are larger, its backend never waits for a
/// second one's WAL flush, and it committed 44-46k rows/s against 35k with two, at 9.2-9.5
/// against 13.8-14.1 us of hooksink CPU per request.
pub const DB_WRITERS_DEFAULT: usize = 1;

/// Events one writer commits in one transaction.
pub const BATCH_SIZE_MAX: usize = 512;
/// Events waiting for a writer; when full, requests are answered 503 at once.
pub const QUEUE_LEN_MAX: usize = 4096;
/// `Retry-After` seconds sent with every 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Connecting to PostgreSQL gives up after this time.
pub const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// PostgreSQL cancels a statement running longer than this (not the wait for a synchronous
/// standby: `DB_WRITE_WAIT_MAX` bounds that).
pub const DB_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const _: () = assert!(METADATA_SIZE_MAX < BODY_SIZE_DEFAULT);
const _: () = assert!(BODY_SIZE_MIN <= BODY_SIZE_DEFAULT && BODY_SIZE_DEFAULT <= BODY_SIZE_MAX);
const _: () = assert!(DB_WRITERS_DEFAULT <= DB_WRITERS_MAX);
const _: () = assert!(EVENT_TYPE_LEN_MAX < HEAD_SIZE_MAX);
const _: () = assert!(EVENT_ID_LEN_MAX < HEAD_SIZE_MAX);
const _: () = assert!(CONNECTION_BUFFER_IDLE <= HEAD_SIZE_MAX);
const _: () = assert!(BATCH_SIZE_MAX <= QUEUE_LEN_MAX);
const _: () = assert!(BODY_SIZE_MAX + HEAD_SIZE_MAX <= BUFFERED_BYTES_MAX);
const _: () = assert!(TIMESTAMP_SKEW_SECS_DEFAULT <= TIMESTAMP_SKEW_SECS_MAX);
const _: () = assert!(REQUEST_READ_TIMEOUT_DEFAULT.as_secs() <= REQUEST_READ_TIMEOUT_MAX.as_secs());
const _: () =
    assert!(KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT.as_secs() <= KEEP_ALIVE_IDLE_TIMEOUT_MAX.as_secs());
const _: () = assert!(CONNECTIONS_DEFAULT <= CONNECTIONS_MAX);
// The shortest timeout an operator can set is 1 s; a deadline stays within 1% of it.
const _: () = assert!(DEADLINE_SLACK.as_millis() <= 10);

/// `v1a` entries tried per request against each `whpk_` key: each try hashes the whole body,
/// so this bounds the curve work an unsigned request can cause (rotation needs two).
pub const V1A_SIGNATURES_COUNT_MAX: usize = 4;
/// Secrets accepted in `STRIPE_WEBHOOK_SECRET` (Stripe's rolling keeps two alive at once).
pub const STRIPE_SECRETS_COUNT_MAX: usize = 8;
/// Bytes of one `Stripe-Signature` header; longer is refused before it is parsed.
pub const STRIPE_SIGNATURE_LEN_MAX: usize = 2048;
/// Comma-separated entries (`t`, `v1`, `v0` and unknown ones) in one `Stripe-Signature`.
pub const STRIPE_SIGNATURE_ENTRIES_MAX: usize = 16;

const _: () = assert!(V1A_SIGNATURES_COUNT_MAX <= SIGNATURES_COUNT_MAX);
const _: () = assert!(STRIPE_SIGNATURE_LEN_MAX < HEAD_SIZE_MAX);

/// A write round trip (the one-statement batch and its commit, which includes waiting for a
/// synchronous standby) is cancelled by the writer's watchdog after this long. PostgreSQL
/// applies no timeout to the replication wait, so without it a lost standby would hold the
/// writers for good. Below `COMMIT_WAIT_TIMEOUT`, so the writer's own 503 arrives first.
pub const DB_WRITE_WAIT_MAX: Duration = Duration::from_secs(4);
/// First pause before reconnecting after a failed connect; it doubles on each failure.
pub const DB_RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
/// The longest pause between connect attempts, so a failover is noticed within about this.
pub const DB_RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// Each pause is lengthened by a random part up to this fraction (1/N) of it, so writers and
/// instances do not reconnect in lock step.
pub const DB_RECONNECT_JITTER_DIVISOR: u32 = 4;

const _: () = assert!(DB_WRITE_WAIT_MAX.as_millis() < COMMIT_WAIT_TIMEOUT.as_millis());
const _: () = assert!(DB_RECONNECT_DELAY_MIN.as_millis() <= DB_RECONNECT_DELAY_MAX.as_millis());
const _: () = assert!(DB_RECONNECT_JITTER_DIVISOR > 0);
