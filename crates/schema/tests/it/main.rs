//! The wire contract: checked-in schemas and docs match the code, payloads validate, and
//! commands are parsed strictly.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod commands;
mod drift;
mod payloads;
