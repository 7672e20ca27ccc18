//! The adapter against embedded-hal-mock scripts: the exact bus traffic of init and poll, and
//! how bus and chip faults come out.

use device::{BusFault, Device, DeviceError, Sample};
use drv_bme280::Bme280Device;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

use crate::value;

const ADDRESS: u8 = 0x76;

/// 0x88–0xA1 as the chip stores them (datasheet table 16): the constants of Bosch's worked
/// compensation example, 16-bit words little-endian, then 0xA0 unused and dig_H1 = 75.
const CALIBRATION_1: [u8; 26] = [
    0x70, 0x6B, 0x43, 0x67, 0x18, 0xFC, 0x7D, 0x8E, 0x43, 0xD6, 0xD0, 0x0B, 0x27, 0x0B, 0x8C, 0x00, 0xF9, 0xFF, 0x8C,
    0x3C, 0xF8, 0xC6, 0x70, 0x17, 0x00, 0x4B,
];
/// 0xE1–0xE7: dig_H2 = 362, dig_H3 = 0, dig_H4 = 313 and dig_H5 = 50 sharing 0xE5, dig_H6 = 30.
const CALIBRATION_2: [u8; 7] = [0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E];

/// The worked example's raw values: adc_P 415148, adc_T 519888, and adc_H 30000.
const EXAMPLE_DATA: [u8; 8] = [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x75, 0x30];

/// ctrl_meas as the adapter configures it: osrs_t 1x (001), osrs_p 1x (001), sleep (00).
const CONFIGURED: u8 = 0b0010_0100;
const FORCED: u8 = 0b01;
const MEASURING: u8 = 0b1000;

const NACK: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);

fn read(register: u8, response: &[u8]) -> Transaction {
    Transaction::write_read(ADDRESS, vec![register], response.to_vec())
}

fn write(register: u8, value: u8) -> Transaction {
    Transaction::write(ADDRESS, vec![register, value])
}

/// What init() sends: the adapter's id check, then the community driver's init.
fn init_script() -> Vec<Transaction> {
    vec![
        read(0xD0, &[0x60]),
        read(0xD0, &[0x60]),
        // Soft reset, then the 2 ms start-up time.
        write(0xE0, 0xB6),
        read(0x88, &CALIBRATION_1),
        read(0xE1, &CALIBRATION_2),
        // The driver resets again unless the chip is asleep.
        read(0xF4, &[0x00]),
        write(0xF2, 0b001),
        read(0xF4, &[0x00]),
        write(0xF4, CONFIGURED),
        // IIR filter off.
        read(0xF5, &[0x00]),
        write(0xF5, 0x00),
    ]
}

/// What poll() sends up to the conversion wait: the driver checks the mode twice and starts
/// a forced conversion.
fn trigger_script(ctrl_meas: u8) -> Vec<Transaction> {
    vec![read(0xF4, &[ctrl_meas]), read(0xF4, &[ctrl_meas]), write(0xF4, ctrl_meas | FORCED)]
}

/// The adapter's look at status and ctrl_meas, in one read.
fn status(status: u8, ctrl_meas: u8) -> Transaction {
    read(0xF3, &[status, ctrl_meas])
}

/// What one poll returned.
type Poll = Result<Vec<Sample>, DeviceError>;

/// Runs `script` through a fresh adapter: init(), then `polls` polls; returns every result.
fn run(script: &[Transaction], polls: usize) -> (Result<(), DeviceError>, Vec<Poll>) {
    let mut bus = Mock::new(script);
    let mut device = Bme280Device::new(bus.clone(), ADDRESS);
    let init = device.init();
    let results = (0..polls).map(|_| device.poll()).collect();
    bus.done();
    (init, results)
}

#[test]
fn init_and_poll_give_the_worked_example() {
    let mut script = init_script();
    script.extend(trigger_script(CONFIGURED));
    script.push(status(0x00, CONFIGURED));
    script.push(read(0xF7, &EXAMPLE_DATA));
    let (init, polls) = run(&script, 1);
    init.unwrap();
    let samples = polls[0].clone().unwrap();
    let names: Vec<_> = samples.iter().map(|s| s.name).collect();
    assert_eq!(names, ["temperature", "humidity", "pressure"]);
    // 25.08 °C and 100653.27 Pa are the datasheet's; 55.00 % follows from section 8.1.
    assert_eq!(value(&samples, "temperature"), 25.08);
    assert_eq!(value(&samples, "humidity"), 55.0);
    assert_eq!(value(&samples, "pressure"), 1006.53);
}

#[test]
fn poll_waits_while_the_chip_measures() {
    let mut script = init_script();
    script.extend(trigger_script(CONFIGURED));
    // Just after the trigger, still in forced mode; then measuring; then done.
    script.push(status(0x00, CONFIGURED | FORCED));
    script.push(status(MEASURING, CONFIGURED | FORCED));
    script.push(status(0x00, CONFIGURED));
    script.push(read(0xF7, &EXAMPLE_DATA));
    let (init, polls) = run(&script, 1);
    init.unwrap();
    assert_eq!(value(polls[0].as_ref().unwrap(), "temperature"), 25.08);
}

#[track_caller]
fn check_wrong_chip(id: u8, expected: &str) {
    let (init, _) = run(&[read(0xD0, &[id])], 0);
    assert_eq!(init, Err(DeviceError::Chip(expected.to_owned())));
}

#[test]
fn other_chips_are_refused_by_id() {
    check_wrong_chip(0x58, "chip id 0x58 is a BMP280, which has no humidity sensor, not a BME280 (0x60)");
    check_wrong_chip(0x00, "chip id 0x00 is not a BME280 (0x60)");
    check_wrong_chip(0xFF, "chip id 0xff is not a BME280 (0x60)");
}

#[test]
fn absent_chip_is_a_bus_error() {
    let (init, _) = run(&[read(0xD0, &[0x00]).with_error(NACK)], 0);
    assert!(matches!(init, Err(DeviceError::Bus { fault: BusFault::NoAcknowledge, .. })), "{init:?}");
}

#[test]
fn chip_gone_during_poll_is_a_bus_error() {
    let mut script = init_script();
    script.push(read(0xF4, &[0x00]).with_error(NACK));
    let (init, polls) = run(&script, 1);
    init.unwrap();
    assert!(matches!(polls[0], Err(DeviceError::Bus { fault: BusFault::NoAcknowledge, .. })), "{polls:?}");
}

#[test]
fn bus_error_while_waiting_is_reported() {
    let mut script = init_script();
    script.extend(trigger_script(CONFIGURED));
    script.push(status(0x00, CONFIGURED).with_error(ErrorKind::Bus));
    // The driver goes on to read the data regardless; the adapter reports the first failure.
    script.push(read(0xF7, &EXAMPLE_DATA));
    let (init, polls) = run(&script, 1);
    init.unwrap();
    assert!(matches!(polls[0], Err(DeviceError::Bus { fault: BusFault::Bus, .. })), "{polls:?}");
}

#[test]
fn chip_reset_behind_the_adapters_back_is_a_chip_error() {
    let mut script = init_script();
    // After a brown-out ctrl_meas is 0x00: every measurement skipped, data at reset values.
    script.extend(trigger_script(0x00));
    script.push(status(0x00, 0x00));
    script.push(read(0xF7, &[0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00]));
    let (init, polls) = run(&script, 1);
    init.unwrap();
    assert_eq!(
        polls[0],
        Err(DeviceError::Chip(
            "chip lost its configuration (ctrl_meas 0x00, expected oversampling 0x24); it was probably reset"
                .to_owned()
        ))
    );
}
