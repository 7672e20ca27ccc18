//! Integration tests of the MCP3008/MCP3208 driver: exact bus traffic, the simulated chip, options.

// Tests assert on known-good values; a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod options;
mod script;
mod simulated;

use device::{Options, Sample, Value};

/// Options from (name, value) pairs.
fn options(pairs: &[(&str, Value)]) -> Options {
    Options(pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect())
}

/// The value of one named sample as a float.
#[track_caller]
fn value(samples: &[Sample], name: &str) -> f64 {
    let sample = samples.iter().find(|sample| sample.name == name).unwrap_or_else(|| panic!("no sample {name:?}"));
    sample.value.as_f64().unwrap()
}

/// The names of the samples, in order.
fn names(samples: &[Sample]) -> Vec<&'static str> {
    samples.iter().map(|sample| sample.name).collect()
}

/// Asserts `actual` is within `tolerance` of `expected`.
#[track_caller]
fn assert_near(actual: f64, expected: f64, tolerance: f64) {
    assert!((actual - expected).abs() <= tolerance, "{actual} is not within {tolerance} of {expected}");
}
