#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside `#[test]` functions are linted too, and in a test a panic is the report.
#![allow(clippy::panic, clippy::indexing_slicing)]
//! The integration tests: one binary, one module per concern. Tests start the real `hooksink`
//! binary against a database of their own on a PostgreSQL cluster the harness runs, send raw
//! HTTP, and check the exact answer and the stored row.

mod support;
// What the hostile-input modules (caps, framing, json_abuse, keep_alive, timeouts) share.
mod attack;

mod answers;
mod caps;
mod cli;
mod diagnostics;
mod durability;
mod faults;
mod framing;
mod json_abuse;
mod keep_alive;
mod localdb;
mod memory;
mod monitoring;
mod private_cli;
mod readme;
mod replication;
mod scale;
mod selfheal;
mod standby;
mod stripe;
mod timeouts;
mod tree;
