//! hooksink: receives signed payment webhooks and stores them in PostgreSQL.
//!
//! The binary in `main.rs` only wires these modules together; tests and tools reuse them.
//! Request path: `server` (sockets) → `http` (heads, answers) → `service` (routing) →
//! `signature` → `payload` → `transform` → `store` (PostgreSQL) → answer.

pub mod admission;
pub mod cli;
pub mod config;
pub mod connection;
pub mod currency;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod jsonb;
pub mod limits;
pub mod localdb;
pub mod logging;
pub mod metrics;
pub mod payload;
pub mod server;
pub mod service;
pub mod signature;
pub mod store;
pub mod transform;
