//! hooksink: receives signed payment webhooks and stores them in PostgreSQL.
//!
//! The binary in `main.rs` only wires these modules together; tests and tools reuse them.

pub mod limits;
