#![allow(clippy::unwrap_used, clippy::expect_used)]
// Helpers outside `#[test]` functions are linted too, and in a test a panic is the report.
#![allow(clippy::panic, clippy::indexing_slicing)]
//! The integration tests: one binary, one module per concern. Tests start the real `hooksink`
//! binary against a database of their own on a PostgreSQL cluster the harness runs, send raw
//! HTTP, and check the exact answer and the stored row.

mod support;

mod answers;
mod cli;
mod durability;
mod faults;
mod hostile;
mod localdb;
mod replication;
mod scale;
mod standby;
