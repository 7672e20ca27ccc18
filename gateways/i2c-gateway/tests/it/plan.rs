//! Building the gateway from a board file: drivers and options are checked with the line.

use std::path::Path;

use crate::board_text;

#[track_caller]
fn check_plan_error(replace: (&str, &str), needle: &str) {
    let text = board_text("127.0.0.1:1883".parse().unwrap()).replacen(replace.0, replace.1, 1);
    let board = board::Board::parse(&text, Path::new("boards/x.toml")).unwrap();
    let error = i2c_gateway::plan(&board, true).unwrap_err().to_string();
    assert!(error.contains(needle), "{error} does not contain {needle:?}");
}

#[test]
fn unknown_driver_names_the_line_and_the_known_drivers() {
    check_plan_error(
        ("driver = \"bme280\"", "driver = \"bme281\""),
        "boards/x.toml:23: device[0].driver: unknown I2C driver \"bme281\"; known drivers: bme280, ina219, pca9685",
    );
}

#[test]
fn unknown_option_is_refused() {
    check_plan_error(
        ("poll_ms = 100\n", "poll_ms = 100\noptions = { frequency = 50 }\n"),
        "device[2].options: driver pca9685 has no option \"frequency\"; its options: frequency_hz",
    );
}

#[test]
fn driver_checks_its_options() {
    check_plan_error(
        ("poll_ms = 100\n", "poll_ms = 100\noptions = { frequency_hz = 5000 }\n"),
        "device[2].options: configuration: ",
    );
}

#[test]
fn a_real_bus_builds_without_touching_the_hardware() {
    // The device file is opened on the first transfer, so planning works on any machine and a
    // missing bus only makes the devices offline (see buses::i2c).
    let text =
        board_text("127.0.0.1:1883".parse().unwrap()).replace("mock = true", "path = \"/dev/i2c-busgate-missing\"");
    let board = board::Board::parse(&text, Path::new("x.toml")).unwrap();
    let plan = i2c_gateway::plan(&board, true).unwrap();
    assert!(plan.mocks.is_empty());
    assert_eq!(plan.buses[0].devices.len(), 3);
    // Simulation controls exist only on mock buses.
    assert!(plan.buses[0].devices.iter().all(|hosted| hosted.sim.is_none()));
}
