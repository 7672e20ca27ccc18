//! Integration tests of the BME280 driver: registry functions, exact bus traffic against a
//! script, and the adapter running the simulated chip on the mock bus.

// Tests fail loudly on the first unexpected error.
#![allow(clippy::unwrap_used)]

mod registry;
mod scripted;
mod simulated;

use device::Sample;

/// The value of the sample called `name`.
#[track_caller]
fn value(samples: &[Sample], name: &str) -> f64 {
    let sample = samples.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} in {samples:?}"));
    sample.value.as_f64().unwrap()
}
