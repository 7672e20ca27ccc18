//! Integration tests of the MAX31855 adapter: exact bus traffic, the simulated chip, options.

// Tests assert on known-good values; a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod options;
mod script;
mod simulated;

use device::{DeviceError, Sample};

/// The value of one named sample as a float.
#[track_caller]
fn value(samples: &[Sample], name: &str) -> f64 {
    let sample = samples.iter().find(|sample| sample.name == name).unwrap_or_else(|| panic!("no sample {name:?}"));
    sample.value.as_f64().unwrap()
}

/// The message of a [`DeviceError::Chip`], failing on any other result.
#[track_caller]
fn chip_error<T: std::fmt::Debug>(result: Result<T, DeviceError>) -> String {
    match result {
        Err(DeviceError::Chip(message)) => message,
        other => panic!("expected a chip error, got {other:?}"),
    }
}
