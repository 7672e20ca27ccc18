//! Integration tests of the MCP23S17 adapter: exact bus traffic, the simulated chip, options.

// Tests assert on known-good values; a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod options;
mod script;
mod simulated;

use device::{Args, DeviceError, Options, Sample, Value};

/// Options from (name, value) pairs.
fn options(pairs: &[(&str, Value)]) -> Options {
    Options(pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect())
}

/// The `outputs` option alone.
fn outputs(mask: i64) -> Options {
    options(&[("outputs", Value::Int(mask))])
}

fn set_pin(pin: &str, level: bool) -> Args {
    Args([("pin".to_owned(), Value::from(pin)), ("level".to_owned(), Value::Bool(level))].into_iter().collect())
}

fn set_port(port: &str, value: i64) -> Args {
    Args([("port".to_owned(), Value::from(port)), ("value".to_owned(), Value::Int(value))].into_iter().collect())
}

/// The level of one named pin sample.
#[track_caller]
fn level(samples: &[Sample], name: &str) -> bool {
    let sample = samples.iter().find(|sample| sample.name == name).unwrap_or_else(|| panic!("no sample {name:?}"));
    sample.value.as_bool().unwrap()
}

/// The pins of a poll or outcome as a 16-bit mask, bit n for the nth sample name gpa0..gpb7.
#[track_caller]
fn mask(samples: &[Sample]) -> u16 {
    samples.iter().filter(|sample| sample.value.as_bool().unwrap()).fold(0, |mask, sample| {
        let port = if sample.name.starts_with("gpa") { 0 } else { 8 };
        let bit: u16 = sample.name[3..].parse().unwrap();
        mask | 1 << (port + bit)
    })
}

/// The message of a [`DeviceError::Chip`], failing on any other result.
#[track_caller]
fn chip_error<T: std::fmt::Debug>(result: Result<T, DeviceError>) -> String {
    match result {
        Err(DeviceError::Chip(message)) => message,
        other => panic!("expected a chip error, got {other:?}"),
    }
}

/// The message of a [`DeviceError::Config`], failing on any other result.
#[track_caller]
fn config_error<T: std::fmt::Debug>(result: Result<T, DeviceError>) -> String {
    match result {
        Err(DeviceError::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
