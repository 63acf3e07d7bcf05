#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests: the real binary, over real HTTP, against a real PostgreSQL.

mod cli;
