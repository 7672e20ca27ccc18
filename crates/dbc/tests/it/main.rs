//! Integration tests of the dbc crate: decoding against cantools' expected values, encoding, warnings.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod codec;
mod expected;
mod fixtures;
mod json;
mod model;
mod reference;
mod robustness;
mod warnings;
