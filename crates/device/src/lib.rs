//! The interface between peripheral drivers and the gateways.
//!
//! A driver crate provides three things, all written against this crate and embedded-hal only:
//! - a chip driver over an embedded-hal bus (`I2c`, `SpiDevice`), usually a community crate;
//! - an adapter implementing [`Device`]: it describes the device's values and commands, turns a
//!   poll into [`Sample`]s and runs commands;
//! - a simulated chip implementing [`I2cChip`] (a register-level model), which the mock bus hosts
//!   so that mock mode runs the real driver code unchanged.
//!
//! Nothing here knows about MQTT or JSON: the schema crate maps these plain types to the wire.

use std::collections::BTreeMap;
use std::fmt;

/// A value read from, or sent to, a device.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Raw bytes; hex on the wire.
    Bytes(Vec<u8>),
}

impl Value {
    /// The value as a float, for integers and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

/// One named value of a reading, e.g. `temperature = 21.4`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Matches the name of one of the device's [`Quantity`] descriptors.
    pub name: &'static str,
    pub value: Value,
}

impl Sample {
    pub fn new(name: &'static str, value: impl Into<Value>) -> Self {
        Self { name, value: value.into() }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

/// What kind of physical thing a value measures; consumers such as Home Assistant map it to a
/// device class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Temperature,
    Humidity,
    Pressure,
    Voltage,
    Current,
    Power,
    /// A duty cycle or ratio, 0.0 to 1.0.
    Ratio,
    /// An on/off state.
    State,
    /// Anything else.
    Other,
}

/// Describes one value the device reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub name: &'static str,
    /// Unit symbol as consumers show it (`°C`, `hPa`, `%`, `V`, `A`, `W`), if any.
    pub unit: Option<&'static str>,
    pub kind: Kind,
    pub description: &'static str,
}

/// The type and allowed range of a command parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// Bytes written as a hex string (`"9f00"`), 1 to `max_bytes` long.
    Hex {
        max_bytes: usize,
    },
    /// A name or word of 1 to `max_chars` printable characters.
    Text {
        max_chars: usize,
    },
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::Bool => write!(f, "a boolean"),
            ParamKind::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            ParamKind::Float { min, max } => write!(f, "a number from {min} to {max}"),
            ParamKind::Choice(words) => write!(f, "one of {}", words.join(", ")),
            ParamKind::Hex { max_bytes } => write!(f, "a hex string of 1 to {max_bytes} bytes"),
            ParamKind::Text { max_chars } => write!(f, "a string of 1 to {max_chars} characters"),
        }
    }
}

/// Describes one parameter of a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    /// A required parameter must be present; an optional one is simply absent from [`Args`].
    pub required: bool,
    pub description: &'static str,
}

/// Describes one command the device accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub action: &'static str,
    pub params: Vec<Param>,
    pub description: &'static str,
}

/// Everything the gateway needs to know to host a device: its values and its commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The chip, e.g. `BME280`.
    pub model: &'static str,
    pub quantities: Vec<Quantity>,
    pub commands: Vec<CommandSpec>,
}

impl Description {
    pub fn command(&self, action: &str) -> Option<&CommandSpec> {
        self.commands.iter().find(|c| c.action == action)
    }
    pub fn quantity(&self, name: &str) -> Option<&Quantity> {
        self.quantities.iter().find(|q| q.name == name)
    }
}

/// How a consumer such as Home Assistant controls an output.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// On or off; the value argument is a boolean.
    Switch,
    /// A number in a range; the value argument is a number.
    Number { min: f64, max: f64, step: f64 },
}

/// A writable output: the quantity that reports its state and the command that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The quantity whose value is the output's state, e.g. `ch3`.
    pub quantity: &'static str,
    pub control: Control,
    /// The command that sets it, e.g. `set_duty`.
    pub action: &'static str,
    /// Fixed arguments of that command, e.g. `channel = 3`.
    pub fixed: Vec<(&'static str, Value)>,
    /// The argument that carries the new value, e.g. `duty`.
    pub value: &'static str,
}

/// Validated command arguments: every parameter has the declared type and is within range
/// (the gateway checks this against the [`CommandSpec`] before the adapter sees it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(pub BTreeMap<String, Value>);

impl Args {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    /// A required integer parameter; the gateway has validated it, so absence is a driver bug
    /// reported as an error rather than a panic.
    pub fn int(&self, name: &str) -> Result<i64, DeviceError> {
        self.get(name).and_then(Value::as_i64).ok_or_else(|| DeviceError::MissingArgument(name.to_owned()))
    }
    pub fn float(&self, name: &str) -> Result<f64, DeviceError> {
        self.get(name).and_then(Value::as_f64).ok_or_else(|| DeviceError::MissingArgument(name.to_owned()))
    }
    pub fn bool(&self, name: &str) -> Result<bool, DeviceError> {
        self.get(name).and_then(Value::as_bool).ok_or_else(|| DeviceError::MissingArgument(name.to_owned()))
    }
    pub fn text(&self, name: &str) -> Result<&str, DeviceError> {
        self.get(name).and_then(Value::as_str).ok_or_else(|| DeviceError::MissingArgument(name.to_owned()))
    }
    pub fn bytes(&self, name: &str) -> Result<&[u8], DeviceError> {
        self.get(name).and_then(Value::as_bytes).ok_or_else(|| DeviceError::MissingArgument(name.to_owned()))
    }
}

/// What a successful command did: values to report back (e.g. the new output state) and an
/// optional note for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub values: Vec<Sample>,
    pub note: Option<String>,
}

/// How a bus transfer failed, independent of the bus implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusFault {
    /// No device answered at the address (I2C NACK on the address byte).
    NoAcknowledge,
    /// The device stopped acknowledging data.
    DataNotAcknowledged,
    /// Bus error, arbitration loss, overrun or an I/O error from the kernel.
    Bus,
    Other,
}

impl fmt::Display for BusFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusFault::NoAcknowledge => "no acknowledge from the device address",
            BusFault::DataNotAcknowledged => "data not acknowledged",
            BusFault::Bus => "bus error",
            BusFault::Other => "transfer failed",
        })
    }
}

impl BusFault {
    /// Classifies an embedded-hal SPI error. SPI has no acknowledge, so an absent chip is only
    /// noticed by what it reads back (see the drivers).
    pub fn from_spi<E: embedded_hal::spi::Error>(error: &E) -> Self {
        use embedded_hal::spi::ErrorKind;
        match error.kind() {
            ErrorKind::Overrun | ErrorKind::ModeFault | ErrorKind::FrameFormat | ErrorKind::ChipSelectFault => {
                BusFault::Bus
            }
            _ => BusFault::Other,
        }
    }

    /// Classifies an embedded-hal I2C error.
    pub fn from_i2c<E: embedded_hal::i2c::Error>(error: &E) -> Self {
        use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
        match error.kind() {
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data) => BusFault::DataNotAcknowledged,
            ErrorKind::NoAcknowledge(_) => BusFault::NoAcknowledge,
            ErrorKind::Bus | ErrorKind::ArbitrationLoss | ErrorKind::Overrun => BusFault::Bus,
            _ => BusFault::Other,
        }
    }
}

/// Why a device operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    /// The bus transfer failed; the gateway marks the device offline and retries it.
    #[error("{fault}: {detail}")]
    Bus { fault: BusFault, detail: String },
    /// The chip answered but something is wrong with it (wrong chip id, fault bit set).
    #[error("{0}")]
    Chip(String),
    /// The configuration in the board file does not suit this driver.
    #[error("configuration: {0}")]
    Config(String),
    /// A parameter the command spec declares as required did not reach the adapter.
    #[error("missing argument {0:?}")]
    MissingArgument(String),
    /// The board file does not allow this command on this device.
    #[error("{0}")]
    NotAllowed(String),
    /// The adapter does not know this action (the gateway checks actions before, so this is a
    /// mismatch between the description and the adapter).
    #[error("unsupported action {0:?}")]
    UnsupportedAction(String),
}

impl DeviceError {
    /// Wraps an embedded-hal SPI error.
    pub fn spi<E: embedded_hal::spi::Error + fmt::Debug>(error: E) -> Self {
        DeviceError::Bus { fault: BusFault::from_spi(&error), detail: format!("{error:?}") }
    }
    /// Wraps an embedded-hal I2C error.
    pub fn i2c<E: embedded_hal::i2c::Error + fmt::Debug>(error: E) -> Self {
        DeviceError::Bus { fault: BusFault::from_i2c(&error), detail: format!("{error:?}") }
    }
    /// True when the failure says the device is unreachable or broken, so it goes offline.
    pub fn takes_device_offline(&self) -> bool {
        matches!(self, DeviceError::Bus { .. } | DeviceError::Chip(_))
    }
}

/// Driver-specific settings from the board file's `[device.options]` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options(pub BTreeMap<String, Value>);

impl Options {
    pub fn float_or(&self, name: &str, default: f64) -> Result<f64, DeviceError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => {
                v.as_f64().ok_or_else(|| DeviceError::Config(format!("option {name:?} must be a number, got {v}")))
            }
        }
    }
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, DeviceError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => {
                v.as_i64().ok_or_else(|| DeviceError::Config(format!("option {name:?} must be an integer, got {v}")))
            }
        }
    }
    pub fn text_or<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str, DeviceError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => {
                v.as_str().ok_or_else(|| DeviceError::Config(format!("option {name:?} must be a string, got {v}")))
            }
        }
    }
    /// Refuses options the driver does not know, naming them and the accepted ones.
    pub fn check_known(&self, driver: &str, known: &[&str]) -> Result<(), DeviceError> {
        let unknown: Vec<String> = self.unknown(known).map(|name| format!("{name:?}")).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let accepted = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        Err(DeviceError::Config(format!(
            "unknown option{} {} for driver {driver:?} (it accepts {accepted})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        )))
    }

    /// Names of options this driver does not know, so the gateway can reject typos early.
    pub fn unknown<'a>(&'a self, known: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.0.keys().map(String::as_str).filter(move |k| !known.contains(k))
    }
}

/// A device as the gateway hosts it. Implementations own their bus handle; every call runs on
/// the bus's dedicated thread, so blocking I/O is fine here.
pub trait Device: Send {
    /// The device's values and commands. Called once, when the gateway starts.
    fn describe(&self) -> Description;

    /// Probes and configures the chip. Called before the first poll and again each time the
    /// gateway retries a device that went offline.
    fn init(&mut self) -> Result<(), DeviceError>;

    /// Takes one reading.
    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError>;

    /// Runs a command whose arguments were validated against [`Description::commands`].
    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError>;

    /// The device's writable outputs, for consumers that offer controls (Home Assistant
    /// switches and numbers). Most sensors have none.
    fn outputs(&self) -> Vec<Output> {
        Vec::new()
    }
}

/// A fault a simulated chip or mock bus reports for one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFault {
    /// The chip does not acknowledge (as if it were absent).
    Nack,
    /// A bus-level error (glitch, arbitration loss).
    Bus,
}

/// A register-level model of an I2C chip, hosted at an address on the mock I2C bus.
///
/// The mock bus splits an embedded-hal transaction into its operations: each `Write` calls
/// [`I2cChip::write`] and each `Read` calls [`I2cChip::read`], in order, as a real chip would
/// see them after a (repeated) start condition.
pub trait I2cChip: std::any::Any + Send {
    /// Bytes written by the controller in one write operation (usually a register pointer,
    /// optionally followed by data).
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault>;
    /// Fills `buffer` with what the chip sends back in one read operation.
    fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault>;
    /// Moves the simulated environment on to `elapsed` since the bus was created, so that
    /// values drift plausibly in the simulated board. Deterministic for a given `elapsed`.
    fn advance(&mut self, elapsed: std::time::Duration) {
        let _ = elapsed;
    }
    /// Sets a simulated physical input by quantity name (e.g. `temperature`), for tests and
    /// fault injection. Returns false if the chip has no such input.
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        let _ = (name, value);
        false
    }
    /// Reads back the chip's state by name (e.g. an output register), for tests.
    fn inspect(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
}

/// A register-level model of an SPI chip, hosted at a chip select on the mock SPI bus.
///
/// SPI is full duplex: for every byte the controller clocks out on MOSI, the chip drives one
/// byte on MISO. The mock bus calls [`SpiChip::select`] when chip select is asserted at the
/// start of an embedded-hal transaction, [`SpiChip::exchange`] for each byte of its
/// operations, and [`SpiChip::deselect`] at its end.
pub trait SpiChip: std::any::Any + Send {
    /// Chip select asserted: a new command begins.
    fn select(&mut self) {}
    /// One byte clocked: `mosi` from the controller; returns the chip's MISO byte.
    fn exchange(&mut self, mosi: u8) -> Result<u8, SimFault>;
    /// Chip select released.
    fn deselect(&mut self) {}
    /// See [`I2cChip::advance`].
    fn advance(&mut self, elapsed: std::time::Duration) {
        let _ = elapsed;
    }
    /// See [`I2cChip::set_input`].
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        let _ = (name, value);
        false
    }
    /// See [`I2cChip::inspect`].
    fn inspect(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
}

/// One I2C bus handle shared by a community driver and the adapter around it.
///
/// Community drivers take their bus by value and often never give it back, or keep state
/// (cached registers) that rebuilding them per call would lose; sharing the handle lets the
/// adapter read registers the driver does not expose. Every call runs on the bus thread, so
/// the lock is never contended.
pub struct SharedI2c<I2C>(std::sync::Arc<std::sync::Mutex<I2C>>);

impl<I2C> SharedI2c<I2C> {
    pub fn new(i2c: I2C) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(i2c)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, I2C> {
        // A panic while holding the lock can only come from the bus implementation; the
        // handle itself holds no state that could be left inconsistent.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<I2C> Clone for SharedI2c<I2C> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<I2C: embedded_hal::i2c::ErrorType> embedded_hal::i2c::ErrorType for SharedI2c<I2C> {
    type Error = I2C::Error;
}

/// Forwards every method, not just `transaction`, so the bus sees the same calls the driver
/// makes (a plain write stays a plain write).
impl<I2C: embedded_hal::i2c::I2c> embedded_hal::i2c::I2c for SharedI2c<I2C> {
    fn read(&mut self, address: u8, read: &mut [u8]) -> Result<(), Self::Error> {
        self.lock().read(address, read)
    }
    fn write(&mut self, address: u8, write: &[u8]) -> Result<(), Self::Error> {
        self.lock().write(address, write)
    }
    fn write_read(&mut self, address: u8, write: &[u8], read: &mut [u8]) -> Result<(), Self::Error> {
        self.lock().write_read(address, write, read)
    }
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.lock().transaction(address, operations)
    }
}

/// An embedded-hal delay that sleeps the calling thread. Adapters run on the bus thread, so a
/// driver that needs to wait (reset, conversion time) may block it briefly.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

impl embedded_hal::delay::DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(std::time::Duration::from_nanos(u64::from(ns)));
    }
}
