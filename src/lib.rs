//! hooksink: receives signed payment webhooks and stores them in PostgreSQL.
//!
//! The binary in `main.rs` only wires these modules together; tests and tools reuse them.
//!
//! Layout, in request order:
//! - shell (sockets, threads): `server` (accept loop) → `connection` (one coroutine per
//!   connection: buffer, framing, deadlines) under `admission` (connection slots, byte budget,
//!   shutdown) and `deadline` (the read deadlines' slot table and sweeper thread);
//! - protocol: `http` (request heads), `answer` (every success and rejection, and its bytes);
//! - pipeline: `service` (routing, `Session`) → `signature` → `payload` or `stripe_event`
//!   (+ `jsonb` scans) → `transform` (+ `currency`), all pure; `text` (spans of the buffer);
//! - storage: `store` (the only SQL; writer threads, group commit), `health` (what the
//!   writers publish for `/readyz`);
//! - operation: `config` (the variables table), `limits` (every bound), `metrics`, `logging`,
//!   `cli`, `localdb` (private cluster), `trim` (returns a burst's memory to the system),
//!   `tunables` (glibc's per-thread cache off);
//!   `oneshot` (a writer's reply to a connection's job), `thread_stack` (gives a writer's
//!   stack pages back after a connect).

pub mod admission;
pub mod answer;
pub mod cli;
pub mod config;
pub mod connection;
pub mod currency;
pub mod db_error;
pub mod deadline;
#[cfg(test)]
mod fuzz;
pub mod health;
pub mod http;
pub mod jsonb;
pub mod limits;
pub mod localdb;
pub mod logging;
pub mod metrics;
pub mod oneshot;
pub mod parking;
pub mod payload;
pub mod secret;
pub mod server;
pub mod service;
pub mod signature;
pub mod store;
pub mod stripe_event;
pub mod text;
pub mod thread_stack;
pub mod transform;
pub mod trim;
pub mod tunables;
