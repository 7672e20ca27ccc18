//! Integration tests of the PCA9685 adapter: exact bus traffic, the simulated chip, options.

// Tests assert on known-good values; a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod options;
mod script;
mod simulated;

use device::{Args, Options, Sample, Value};

/// Options from (name, value) pairs.
fn options(pairs: &[(&str, Value)]) -> Options {
    Options(pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect())
}

/// Command arguments from (name, value) pairs.
fn args(pairs: &[(&str, Value)]) -> Args {
    Args(pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect())
}

fn set_duty(channel: i64, duty: f64) -> Args {
    args(&[("channel", Value::Int(channel)), ("duty", Value::Float(duty))])
}

fn duty(duty: f64) -> Args {
    args(&[("duty", Value::Float(duty))])
}

/// The value of one named sample as a float.
#[track_caller]
fn value(samples: &[Sample], name: &str) -> f64 {
    let sample = samples.iter().find(|sample| sample.name == name).unwrap_or_else(|| panic!("no sample {name:?}"));
    sample.value.as_f64().unwrap()
}
