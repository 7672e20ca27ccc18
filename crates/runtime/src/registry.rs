//! Looking up a board file's `driver = "..."` in a gateway's driver registry.

use board::{Board, BoardError, Device};

/// What the board file needs to know of a registry entry.
pub trait DriverEntry {
    /// The name board files use in `driver = "..."`.
    fn name(&self) -> &'static str;
    /// Options the driver accepts in `[device.options]`.
    fn options(&self) -> &'static [&'static str];
}

/// The registry entry a device names, with its options checked; errors point at the line.
/// `bus_kind` is for messages (`I2C`, `SPI`).
pub fn find<'r, D: DriverEntry>(
    board: &Board,
    device: &Device,
    bus_kind: &str,
    drivers: &'r [D],
) -> Result<&'r D, BoardError> {
    let field = |f: &str| format!("device[{}].{f}", device.index);
    let Some(driver) = drivers.iter().find(|driver| driver.name() == device.driver) else {
        let names: Vec<&str> = drivers.iter().map(DriverEntry::name).collect();
        return Err(board.error_at(
            device.driver_span.clone(),
            field("driver"),
            format!("unknown {bus_kind} driver {:?}; known drivers: {}", device.driver, names.join(", ")),
        ));
    };
    if let Some(unknown) = device.options.unknown(driver.options()).next() {
        return Err(board.error_at(
            device.options_span.clone(),
            field("options"),
            format!("driver {} has no option {unknown:?}; its options: {}", driver.name(), driver.options().join(", ")),
        ));
    }
    Ok(driver)
}
