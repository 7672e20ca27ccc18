//! The gateway runtime shared by every bus gateway.
//!
//! A gateway program builds its devices from the board file and calls [`run`]; this crate does
//! the rest: one thread per bus polls the devices and runs commands, and one async loop keeps
//! the MQTT session (reconnect with backoff, last will, resubscribe and republish after every
//! connect, a bounded outbox while disconnected) and publishes readings, replies,
//! availability and health through the schema crate.

pub mod backoff;
pub mod bus;
pub mod cli;
mod gateway;
pub mod link;
pub mod outbox;
pub mod registry;
mod session;
pub mod sim;

pub use bus::{Hosted, RetryPolicy, SimControl};
pub use gateway::{Bus, Counters, RuntimeError, Settings, run};
