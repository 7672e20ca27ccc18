//! The adapter against an exact script of I2C transactions (embedded-hal-mock).

use device::{Args, BusFault, Device, DeviceError, Options, Sample};
use drv_pca9685::Pca9685Device;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

use crate::{duty, set_duty, value};

const ADDRESS: u8 = 0x40;

/// init() at the default 1000 Hz (prescale 5): sleep, prescale, wake, restart with
/// auto-increment, then read MODE1 and PRE_SCALE back.
fn init_script() -> Vec<Transaction> {
    vec![
        Transaction::write(ADDRESS, vec![0x00, 0x11]),
        Transaction::write(ADDRESS, vec![0xFE, 0x05]),
        Transaction::write(ADDRESS, vec![0x00, 0x01]),
        Transaction::write(ADDRESS, vec![0x00, 0xA1]),
        Transaction::transaction_start(ADDRESS),
        Transaction::write(ADDRESS, vec![0x00]),
        Transaction::read(ADDRESS, vec![0x21]),
        Transaction::write(ADDRESS, vec![0xFE]),
        Transaction::read(ADDRESS, vec![0x05]),
        Transaction::transaction_end(ADDRESS),
    ]
}

/// The driver's first channel write after init() sets AI in MODE1 again: its cache does not
/// know that init() already did.
fn first_channel_write() -> Transaction {
    Transaction::write(ADDRESS, vec![0x00, 0x21])
}

/// Reading all 64 channel registers from LED0_ON_L, every channel at `registers`.
fn read_all(registers: [u8; 4]) -> Transaction {
    Transaction::write_read(ADDRESS, vec![0x06], registers.repeat(16))
}

/// Runs `test` on an adapter whose bus expects exactly `script`.
fn with_script(script: &[Transaction], test: impl FnOnce(&mut dyn Device)) {
    let mut bus = Mock::new(script);
    let mut adapter = Pca9685Device::new(bus.clone(), ADDRESS, &Options::default()).unwrap().with_delay(NoopDelay);
    test(&mut adapter);
    bus.done();
}

fn after_init(commands: &[Transaction]) -> Vec<Transaction> {
    let mut script = init_script();
    script.extend_from_slice(commands);
    script
}

#[test]
fn init_sets_prescale_while_asleep_then_wakes_with_auto_increment() {
    with_script(&init_script(), |adapter| adapter.init().unwrap());
}

#[test]
fn poll_reads_all_channels_in_one_transfer() {
    let mut registers = [0x00, 0x00, 0x00, 0x10].repeat(16);
    // ch1: 0x000 to 0x400 = 25 %; ch2 full on; ch5: on at 0xE65, off at 0xCCB (wraps) = 3686/4096.
    registers[4..8].copy_from_slice(&[0x00, 0x00, 0x00, 0x04]);
    registers[8..12].copy_from_slice(&[0x00, 0x10, 0x00, 0x00]);
    registers[20..24].copy_from_slice(&[0x65, 0x0E, 0xCB, 0x0C]);
    with_script(&[Transaction::write_read(ADDRESS, vec![0x06], registers)], |adapter| {
        let samples = adapter.poll().unwrap();
        let names: Vec<_> = samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names, (0..16).map(|channel| format!("ch{channel}")).collect::<Vec<_>>());
        assert_eq!(value(&samples, "ch0"), 0.0);
        assert_eq!(value(&samples, "ch1"), 0.25);
        assert_eq!(value(&samples, "ch2"), 1.0);
        assert_eq!(value(&samples, "ch5"), 3686.0 / 4096.0);
    });
}

#[test]
fn set_duty_writes_one_channel_and_reads_it_back() {
    let script = after_init(&[
        first_channel_write(),
        Transaction::write(ADDRESS, vec![0x12, 0x00, 0x00, 0x00, 0x08]),
        Transaction::write_read(ADDRESS, vec![0x12], vec![0x00, 0x00, 0x00, 0x08]),
        // The second command finds AI already set in the driver's cache.
        Transaction::write(ADDRESS, vec![0x12, 0x00, 0x00, 0x00, 0x04]),
        Transaction::write_read(ADDRESS, vec![0x12], vec![0x00, 0x00, 0x00, 0x04]),
    ]);
    with_script(&script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_duty", &set_duty(3, 0.5)).unwrap();
        assert_eq!(outcome.values, [Sample::new("ch3", 0.5)]);
        assert_eq!(outcome.note, None);
        let outcome = adapter.command("set_duty", &set_duty(3, 0.25)).unwrap();
        assert_eq!(outcome.values, [Sample::new("ch3", 0.25)]);
    });
}

#[test]
fn set_duty_to_one_sets_full_on_and_clears_full_off() {
    let script = after_init(&[
        first_channel_write(),
        Transaction::write(ADDRESS, vec![0x2A, 0x00, 0x10]),
        Transaction::write(ADDRESS, vec![0x2C, 0x00, 0x00]),
        Transaction::write_read(ADDRESS, vec![0x2A], vec![0x00, 0x10, 0x00, 0x00]),
    ]);
    with_script(&script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_duty", &set_duty(9, 1.0)).unwrap();
        assert_eq!(outcome.values, [Sample::new("ch9", 1.0)]);
    });
}

#[test]
fn set_all_writes_the_all_led_registers_and_notes_quantisation() {
    // 0.3 × 4096 = 1228.8 → 1229 = 0x4CD.
    let script = after_init(&[
        first_channel_write(),
        Transaction::write(ADDRESS, vec![0xFA, 0x00, 0x00, 0xCD, 0x04]),
        read_all([0x00, 0x00, 0xCD, 0x04]),
    ]);
    with_script(&script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_all", &duty(0.3)).unwrap();
        assert_eq!(outcome.values.len(), 16);
        assert!(outcome.values.iter().all(|sample| sample.value.as_f64() == Some(1229.0 / 4096.0)));
        assert_eq!(outcome.note.as_deref(), Some("duty 0.3 quantised to 1229/4096 = 0.300048828125 (12-bit PWM)"));
    });
}

#[test]
fn off_sets_the_full_off_bit_of_every_channel() {
    let script = after_init(&[
        first_channel_write(),
        Transaction::write(ADDRESS, vec![0xFC, 0x00, 0x10]),
        read_all([0x00, 0x00, 0x00, 0x10]),
    ]);
    with_script(&script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("off", &Args::default()).unwrap();
        assert!(outcome.values.iter().all(|sample| sample.value.as_f64() == Some(0.0)));
    });
}

#[test]
fn commands_before_init_touch_nothing() {
    with_script(&[], |adapter| {
        let error = adapter.command("off", &Args::default()).unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.contains("not initialised")), "{error}");
    });
}

#[test]
fn chip_that_stays_asleep_is_rejected() {
    let mut script = init_script();
    script[6] = Transaction::read(ADDRESS, vec![0x31]);
    with_script(&script, |adapter| {
        let error = adapter.init().unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.contains("0x31")), "{error}");
        // A failed init leaves commands refused.
        assert!(adapter.command("off", &Args::default()).is_err());
    });
}

#[test]
fn absent_chip_is_a_bus_error() {
    let script = [Transaction::write(ADDRESS, vec![0x00, 0x11])
        .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))];
    with_script(&script, |adapter| {
        let error = adapter.init().unwrap_err();
        assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");
    });
}
