//! The adapter against exact SPI transactions (embedded-hal-mock): one 4-byte read inside one
//! chip-select period per reading, nothing written.

use device::{Args, Device, Options};
use drv_max31855::Max31855Device;
use embedded_hal_mock::eh1::spi::{Mock, Transaction};

use crate::{chip_error, value};

/// One reading: chip select, 32 clocks, chip select released.
fn frame(frame: u32) -> Vec<Transaction<u8>> {
    vec![
        Transaction::transaction_start(),
        Transaction::read_vec(frame.to_be_bytes().to_vec()),
        Transaction::transaction_end(),
    ]
}

/// Runs `test` on an adapter whose bus expects exactly these frames, one per reading.
fn with_frames(frames: &[u32], test: impl FnOnce(&mut dyn Device)) {
    let script: Vec<_> = frames.iter().flat_map(|&f| frame(f)).collect();
    let mut bus = Mock::new(&script);
    let mut adapter = Max31855Device::new(bus.clone(), &Options::default()).unwrap();
    test(&mut adapter);
    bus.done();
}

/// Table 4 and 5 patterns: +100.75 °C (printed 0000 0110 0100 11) and +25 °C (0001 1001 0000).
const HOT_100_75_COLD_25: u32 = 0b00_0001_1001_0011 << 18 | 0b0001_1001_0000 << 4;
/// -250 °C (1111 0000 0110 00) and -20 °C (1110 1100 0000).
const HOT_MINUS_250_COLD_MINUS_20: u32 = 0b11_1100_0001_1000 << 18 | 0b1110_1100_0000 << 4;

#[test]
fn init_reads_one_frame() {
    with_frames(&[HOT_100_75_COLD_25], |adapter| adapter.init().unwrap());
}

#[test]
fn poll_decodes_both_temperatures() {
    with_frames(&[HOT_100_75_COLD_25, HOT_MINUS_250_COLD_MINUS_20], |adapter| {
        let samples = adapter.poll().unwrap();
        let names: Vec<_> = samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names, ["thermocouple", "cold_junction"]);
        assert_eq!(value(&samples, "thermocouple"), 100.75);
        assert_eq!(value(&samples, "cold_junction"), 25.0);
        let samples = adapter.poll().unwrap();
        assert_eq!(value(&samples, "thermocouple"), -250.0);
        assert_eq!(value(&samples, "cold_junction"), -20.0);
    });
}

#[track_caller]
fn check_poll_error(frame: u32, expected: &str) {
    with_frames(&[frame], |adapter| {
        let message = chip_error(adapter.poll());
        assert!(message.starts_with(expected), "{message:?} is not {expected:?}");
    });
}

#[track_caller]
fn check_init_error(frame: u32, expected: &str) {
    with_frames(&[frame], |adapter| {
        let message = chip_error(adapter.init());
        assert!(message.starts_with(expected), "{message:?} is not {expected:?}");
    });
}

#[test]
fn faults_are_chip_errors_with_the_reason() {
    // D16 set with D0, D1 or D2 (Table 2); the cold junction still reads 25 °C.
    let cold = 0b0001_1001_0000 << 4;
    let fault = 0b1_0000_0000_0000_0000;
    check_poll_error(cold | fault | 0b001, "thermocouple open circuit");
    check_poll_error(cold | fault | 0b010, "thermocouple shorted to GND");
    check_poll_error(cold | fault | 0b100, "thermocouple shorted to VCC");
    check_init_error(cold | fault | 0b001, "thermocouple open circuit");
}

#[test]
fn absent_chip_fails_init_and_poll() {
    check_init_error(0xFFFF_FFFF, "no response: reads all 1s (chip absent?)");
    check_init_error(0x0000_0000, "no response: reads all 0s (chip absent?)");
    check_poll_error(0xFFFF_FFFF, "no response: reads all 1s (chip absent?)");
    check_poll_error(0x0000_0000, "no response: reads all 0s (chip absent?)");
}

#[test]
fn reserved_bits_fail_init_and_poll() {
    check_init_error(HOT_100_75_COLD_25 | 0b10_0000_0000_0000_0000, "reserved bits set: not a MAX31855 or a bus fault");
    check_poll_error(HOT_100_75_COLD_25 | 0b1000, "reserved bits set: not a MAX31855 or a bus fault");
}

#[test]
fn there_are_no_commands() {
    with_frames(&[], |adapter| {
        assert!(adapter.describe().commands.is_empty());
        let error = adapter.command("reset", &Args::default()).unwrap_err();
        assert_eq!(error, device::DeviceError::UnsupportedAction("reset".to_owned()));
    });
}

#[test]
fn destroy_gives_the_bus_back() {
    let mut bus = Mock::new(&frame(HOT_100_75_COLD_25));
    let adapter = Max31855Device::new(bus.clone(), &Options::default()).unwrap();
    let mut spi = adapter.destroy();
    let mut bytes = [0; 4];
    embedded_hal::spi::SpiDevice::read(&mut spi, &mut bytes).unwrap();
    assert_eq!(u32::from_be_bytes(bytes), HOT_100_75_COLD_25);
    bus.done();
}
