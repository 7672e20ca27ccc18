//! Building the gateway from a board file: drivers are checked with the line, and every
//! device gets the raw transfer action.

use std::path::Path;

use crate::board_text;

#[test]
fn unknown_driver_names_the_line_and_the_known_drivers() {
    let text =
        board_text("127.0.0.1:1883".parse().unwrap()).replacen("driver = \"max31855\"", "driver = \"max6675\"", 1);
    let board = board::Board::parse(&text, Path::new("boards/x.toml")).unwrap();
    let error = spi_gateway::plan(&board, true).unwrap_err().to_string();
    assert_eq!(
        error,
        "boards/x.toml:33: device[1].driver: unknown SPI driver \"max6675\"; known drivers: mcp3008, mcp3208, max31855, mcp23s17"
    );
}

#[test]
fn every_device_gets_the_raw_transfer_action() {
    let board = board::Board::parse(&board_text("127.0.0.1:1883".parse().unwrap()), Path::new("x.toml")).unwrap();
    let plan = spi_gateway::plan(&board, true).unwrap();
    for hosted in &plan.buses[0].devices {
        assert!(hosted.device.describe().command(spi_gateway::raw::RAW_TRANSFER).is_some(), "{}", hosted.name);
    }
}
