//! The gateway runtime shared by every bus gateway.
//!
//! The shell (`shell.rs`) does what every gateway does around its own loop: the MQTT session
//! (reconnect with backoff, last will, resubscribe and republish after every connect, a
//! bounded outbox while disconnected, in `link.rs`), health, systemd readiness and watchdog,
//! shutdown and refused commands. The I2C and SPI gateways build their devices from the board
//! file and call [`run`]: one thread per bus polls the devices and runs commands, and the poll
//! loop (`poll.rs`) publishes readings, replies and availability through the schema crate.
//! The CAN gateway brings a loop of its own.

pub mod bus;
pub mod cli;
pub mod link;
pub mod outbox;
mod poll;
pub mod registry;
mod session;
pub mod settings;
pub mod shell;
pub mod sim;

pub use bus::{Hosted, RetryPolicy, SimControl};
pub use poll::{Bus, PollLoop, run};
pub use settings::{Counters, RuntimeError, Settings};
