//! Validation of the board-file options, before any bus traffic.

use device::{DeviceError, Options, Value};
use drv_mcp3x08::{InputMode, Mcp3x08Device, Model};
use embedded_hal_mock::eh1::spi::Mock;

use crate::options;

/// Builds the adapter on a bus that expects no traffic at all, and returns the error.
#[track_caller]
fn config_error(model: Model, options: &Options) -> String {
    let mut spi = Mock::<u8>::new(&[]);
    let result = Mcp3x08Device::new(spi.clone(), model, options);
    spi.done();
    match result {
        Err(DeviceError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, got an adapter"),
    }
}

#[track_caller]
fn check(pairs: &[(&str, Value)], expected_fragments: &[&str]) {
    for model in [Model::Mcp3008, Model::Mcp3208] {
        let message = config_error(model, &options(pairs));
        for fragment in expected_fragments {
            assert!(message.contains(fragment), "{message:?} does not mention {fragment:?}");
        }
    }
}

#[test]
fn registry_constants() {
    assert_eq!(drv_mcp3x08::MCP3008, "mcp3008");
    assert_eq!(drv_mcp3x08::MCP3208, "mcp3208");
    assert_eq!(drv_mcp3x08::OPTIONS, ["vref", "inputs"]);
}

#[test]
fn valid_options_do_not_touch_the_bus() {
    let cases = [
        vec![],
        vec![("vref", Value::Int(5))],
        vec![("vref", Value::Float(5.5)), ("inputs", Value::Text("differential".into()))],
        vec![("vref", Value::Float(0.25)), ("inputs", Value::Text("single".into()))],
    ];
    for pairs in cases {
        let mut spi = Mock::<u8>::new(&[]);
        assert!(drv_mcp3x08::mcp3008(spi.clone(), &options(&pairs)).is_ok(), "{pairs:?}");
        assert!(drv_mcp3x08::mcp3208(spi.clone(), &options(&pairs)).is_ok(), "{pairs:?}");
        spi.done();
    }
}

#[test]
fn defaults_are_3v3_and_single_ended() {
    let adapter = Mcp3x08Device::new(Mock::<u8>::new(&[]), Model::Mcp3208, &Options::default()).unwrap();
    assert_eq!((adapter.model(), adapter.vref(), adapter.inputs()), (Model::Mcp3208, 3.3, InputMode::Single));
    adapter.destroy().done();
}

#[test]
fn options_are_applied() {
    let pairs = [("vref", Value::Float(4.096)), ("inputs", Value::Text("differential".into()))];
    let adapter = Mcp3x08Device::new(Mock::<u8>::new(&[]), Model::Mcp3008, &options(&pairs)).unwrap();
    assert_eq!((adapter.vref(), adapter.inputs()), (4.096, InputMode::Differential));
    adapter.destroy().done();
}

#[test]
fn unknown_options_are_named_with_the_accepted_ones() {
    check(&[("vrf", Value::Float(3.3)), ("gain", Value::Int(2))], &["\"gain\"", "\"vrf\"", "accepts vref, inputs"]);
    assert!(config_error(Model::Mcp3008, &options(&[("gain", Value::Int(2))])).contains("driver \"mcp3008\""));
    assert!(config_error(Model::Mcp3208, &options(&[("gain", Value::Int(2))])).contains("driver \"mcp3208\""));
}

#[test]
fn vref_must_be_a_number() {
    check(&[("vref", Value::Text("3V3".into()))], &["\"vref\"", "number", "\"3V3\""]);
}

#[test]
fn vref_must_be_positive_and_at_most_5v5() {
    for (vref, shown) in [(Value::Int(0), "0"), (Value::Float(-3.3), "-3.3"), (Value::Float(5.6), "5.6")] {
        check(&[("vref", vref)], &[&format!("\"vref\" = {shown}"), "more than 0 V and at most 5.5 V"]);
    }
    check(&[("vref", Value::Float(f64::NAN))], &["\"vref\" = NaN"]);
    check(&[("vref", Value::Float(f64::INFINITY))], &["\"vref\" = inf"]);
}

#[test]
fn inputs_must_be_single_or_differential() {
    check(&[("inputs", Value::Text("diff".into()))], &["\"inputs\" = \"diff\"", "\"single\"", "\"differential\""]);
    check(&[("inputs", Value::Bool(true))], &["\"inputs\"", "string", "true"]);
}
