//! Process-wide counters, rendered in the Prometheus text format on `GET /metrics`.
//!
//! Plain atomics: recording is a relaxed add on the hot path, no locks, no allocation. Request
//! counters are indexed by `answer::Outcome`, whose labels are the `error` and `status` strings a
//! client sees, so a dashboard keys on the same names.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::answer::Outcome;
use crate::{admission, parking};

/// Upper bounds of the commit latency histogram, in seconds.
const COMMIT_SECONDS_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Upper bounds of the batch size histogram, in events.
const BATCH_SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

static REQUESTS: [AtomicU64; Outcome::ALL.len()] =
    [const { AtomicU64::new(0) }; Outcome::ALL.len()];
static COMMIT_SECONDS: [AtomicU64; COMMIT_SECONDS_BUCKETS.len()] =
    [const { AtomicU64::new(0) }; COMMIT_SECONDS_BUCKETS.len()];
static COMMIT_COUNT: AtomicU64 = AtomicU64::new(0);
static COMMIT_MICROS_SUM: AtomicU64 = AtomicU64::new(0);
static COMMIT_FAILURES: AtomicU64 = AtomicU64::new(0);
static BATCHES_RESENT: AtomicU64 = AtomicU64::new(0);
static BATCH_SIZE: [AtomicU64; BATCH_SIZE_BUCKETS.len()] =
    [const { AtomicU64::new(0) }; BATCH_SIZE_BUCKETS.len()];
static BATCH_EVENTS_SUM: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static DATABASE_UP: AtomicBool = AtomicBool::new(false);

/// Counts one answered request under `outcome`.
pub fn count(outcome: Outcome) {
    if let Some(counter) = REQUESTS.get(outcome as usize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Records one batch commit attempt of `events` events that took `elapsed`.
pub fn observe_commit(elapsed: Duration, events: usize, committed: bool) {
    if !committed {
        COMMIT_FAILURES.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let seconds = elapsed.as_secs_f64();
    let bucket = COMMIT_SECONDS_BUCKETS.iter().position(|le| seconds <= *le);
    if let Some(counter) = bucket.and_then(|bucket| COMMIT_SECONDS.get(bucket)) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    COMMIT_COUNT.fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    COMMIT_MICROS_SUM.fetch_add(micros, Ordering::Relaxed);
    let events = events as u64;
    let bucket = BATCH_SIZE_BUCKETS.iter().position(|le| events <= *le);
    if let Some(counter) = bucket.and_then(|bucket| BATCH_SIZE.get(bucket)) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    BATCH_EVENTS_SUM.fetch_add(events, Ordering::Relaxed);
}

/// Counts one batch sent a second time because one of its events was stored already.
pub fn count_batch_resent() {
    BATCHES_RESENT.fetch_add(1, Ordering::Relaxed);
}

/// Marks the start of a request; the returned guard marks its end when dropped.
pub fn request_started() -> InFlight {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    InFlight(())
}

/// Requests being handled now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Decrements the in-flight gauge on drop, so every exit path is counted.
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the last database operation succeeded.
pub fn database_up() -> bool {
    DATABASE_UP.load(Ordering::Relaxed)
}

/// Records whether the database answered.
pub fn set_database_up(up: bool) {
    DATABASE_UP.store(up, Ordering::Relaxed);
}

/// Renders every metric; `queued` is the writers' queue length now.
pub fn render(queued: usize) -> String {
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = render_into(&mut out, queued);
    out
}

fn render_into(out: &mut String, queued: usize) -> std::fmt::Result {
    writeln!(out, "# HELP hooksink_build_info Build information.")?;
    writeln!(out, "# TYPE hooksink_build_info gauge")?;
    writeln!(
        out,
        "hooksink_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        out,
        "# HELP hooksink_requests_total Answered requests by outcome."
    )?;
    writeln!(out, "# TYPE hooksink_requests_total counter")?;
    for (outcome, counter) in Outcome::ALL.iter().zip(REQUESTS.iter()) {
        let outcome = outcome.label();
        let value = counter.load(Ordering::Relaxed);
        writeln!(
            out,
            "hooksink_requests_total{{outcome=\"{outcome}\"}} {value}"
        )?;
    }
    writeln!(
        out,
        "# HELP hooksink_commit_duration_seconds Time to commit one batch."
    )?;
    writeln!(out, "# TYPE hooksink_commit_duration_seconds histogram")?;
    let mut cumulative = 0;
    for (le, counter) in COMMIT_SECONDS_BUCKETS.iter().zip(COMMIT_SECONDS.iter()) {
        cumulative += counter.load(Ordering::Relaxed);
        writeln!(
            out,
            "hooksink_commit_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        )?;
    }
    let count = COMMIT_COUNT.load(Ordering::Relaxed);
    let sum = COMMIT_MICROS_SUM.load(Ordering::Relaxed) as f64 / 1e6;
    writeln!(
        out,
        "hooksink_commit_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    )?;
    writeln!(out, "hooksink_commit_duration_seconds_sum {sum}")?;
    writeln!(out, "hooksink_commit_duration_seconds_count {count}")?;
    writeln!(
        out,
        "# HELP hooksink_batch_events Events committed per transaction."
    )?;
    writeln!(out, "# TYPE hooksink_batch_events histogram")?;
    let mut cumulative = 0;
    for (le, counter) in BATCH_SIZE_BUCKETS.iter().zip(BATCH_SIZE.iter()) {
        cumulative += counter.load(Ordering::Relaxed);
        writeln!(
            out,
            "hooksink_batch_events_bucket{{le=\"{le}\"}} {cumulative}"
        )?;
    }
    let events = BATCH_EVENTS_SUM.load(Ordering::Relaxed);
    writeln!(out, "hooksink_batch_events_bucket{{le=\"+Inf\"}} {count}")?;
    writeln!(out, "hooksink_batch_events_sum {events}")?;
    writeln!(out, "hooksink_batch_events_count {count}")?;
    let failures = COMMIT_FAILURES.load(Ordering::Relaxed);
    writeln!(
        out,
        "# HELP hooksink_commit_failures_total Batches answered 503."
    )?;
    writeln!(out, "# TYPE hooksink_commit_failures_total counter")?;
    writeln!(out, "hooksink_commit_failures_total {failures}")?;
    let resent = BATCHES_RESENT.load(Ordering::Relaxed);
    writeln!(
        out,
        "# HELP hooksink_batches_resent_total Batches sent again to learn which events were \
         stored already (their first INSERT met a duplicate)."
    )?;
    writeln!(out, "# TYPE hooksink_batches_resent_total counter")?;
    writeln!(out, "hooksink_batches_resent_total {resent}")?;
    gauge(
        out,
        "hooksink_in_flight_requests",
        "Requests being handled.",
        in_flight(),
    )?;
    let connections = admission::open_connections();
    gauge(
        out,
        "hooksink_open_connections",
        "Open client connections.",
        connections,
    )?;
    gauge(
        out,
        "hooksink_parked_connections",
        "Open connections quiet long enough to wait without a coroutine.",
        parking::parked(),
    )?;
    gauge(
        out,
        "hooksink_buffered_bytes",
        "Request bytes held against the request-byte budget.",
        admission::buffered_bytes(),
    )?;
    gauge(
        out,
        "hooksink_connection_buffer_bytes",
        "Bytes of connection buffers allocated (only requests being read or answered hold one).",
        admission::buffer_bytes(),
    )?;
    gauge(
        out,
        "hooksink_queued_events",
        "Events waiting for a writer.",
        queued,
    )?;
    let up = usize::from(database_up());
    gauge(
        out,
        "hooksink_database_up",
        "1 when the last database call succeeded.",
        up,
    )
}

fn gauge(out: &mut String, name: &str, help: &str, value: usize) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} gauge")?;
    writeln!(out, "{name} {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_under_their_label() {
        count(Outcome::ExpectationFailed);
        let text = render(0);
        let line = text
            .lines()
            .find(|line| line.contains("outcome=\"expectation_failed\""))
            .unwrap();
        assert_ne!(
            line,
            "hooksink_requests_total{outcome=\"expectation_failed\"} 0"
        );
    }

    #[test]
    fn render_has_every_family() {
        let text = render(7);
        for family in [
            "hooksink_build_info{version=",
            "hooksink_requests_total{outcome=\"accepted\"}",
            "hooksink_commit_duration_seconds_bucket{le=\"+Inf\"}",
            "hooksink_batch_events_count",
            "hooksink_batches_resent_total ",
            "hooksink_in_flight_requests",
            "hooksink_queued_events 7",
            "hooksink_buffered_bytes ",
            "hooksink_parked_connections ",
            "hooksink_connection_buffer_bytes",
            "hooksink_database_up",
        ] {
            assert!(text.contains(family), "{family} missing");
        }
    }
}
