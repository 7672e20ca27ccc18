//! The adapter against its simulated chip on the mock I2C bus.

use buses::MockI2cBus;
use buses::mock_i2c::Injected;
use device::{BusFault, Device, DeviceError, Kind, Options, Value};
use embedded_hal::i2c::I2c;

use crate::{assert_near, options, value};

const ADDRESS: u8 = 0x41;

fn board(options: &Options) -> (MockI2cBus, Box<dyn Device>) {
    let bus = MockI2cBus::new();
    bus.attach_boxed(ADDRESS, drv_ina219::simulated(ADDRESS, options));
    let adapter = drv_ina219::device(bus.handle(), ADDRESS, options).unwrap();
    (bus, adapter)
}

#[track_caller]
fn check_readings(options: &Options, bus_voltage: f64, current: f64) {
    let (bus, mut adapter) = board(options);
    adapter.init().unwrap();
    assert!(bus.set_input(ADDRESS, "bus_voltage", bus_voltage));
    assert!(bus.set_input(ADDRESS, "current", current));
    let samples = adapter.poll().unwrap();
    let shunt_ohms = options.float_or("shunt_ohms", 0.1).unwrap();
    // Resolution: 4 mV on the bus, 10 µV on the shunt (plus the current LSB on top).
    assert_near(value(&samples, "bus_voltage"), bus_voltage, 0.002);
    assert_near(value(&samples, "shunt_voltage"), current * shunt_ohms * 1e3, 0.005);
    let current_resolution =
        10e-6 / shunt_ohms + 2.0 * 0.04096 / (bus.inspect(ADDRESS, "calibration").unwrap() * shunt_ohms);
    assert_near(value(&samples, "current"), current, current_resolution);
    assert_near(value(&samples, "power"), (bus_voltage * current).abs(), bus_voltage * current_resolution + 0.01);
}

#[test]
fn poll_reports_the_simulated_inputs() {
    check_readings(&Options::default(), 12.0, 0.5);
    check_readings(&Options::default(), 5.0, 1.25);
    check_readings(&Options::default(), 24.5, 3.1);
}

#[test]
fn poll_reports_reverse_current() {
    check_readings(&Options::default(), 3.3, -0.75);
}

#[test]
fn poll_follows_other_shunts_and_ranges() {
    // 10 mΩ, 4 A: 40 mV full scale, PGA ÷1.
    check_readings(&options(&[("shunt_ohms", Value::Float(0.01)), ("max_current_a", Value::Int(4))]), 12.0, 2.5);
    // 1 Ω, 100 mA: 100 mV full scale, PGA ÷4.
    check_readings(&options(&[("shunt_ohms", Value::Int(1)), ("max_current_a", Value::Float(0.1))]), 5.0, 0.042);
}

#[test]
fn init_writes_the_calibration_the_options_give() {
    let (bus, mut adapter) = board(&Options::default());
    assert_eq!(bus.inspect(ADDRESS, "calibration"), Some(0.0));
    adapter.init().unwrap();
    assert_eq!(bus.inspect(ADDRESS, "calibration"), Some(4194.0));
    assert_eq!(bus.inspect(ADDRESS, "configuration"), Some(f64::from(0x399F)));
}

#[test]
fn current_and_power_read_zero_until_init_calibrates() {
    let (_bus, mut adapter) = board(&Options::default());
    let samples = adapter.poll().unwrap();
    assert_near(value(&samples, "bus_voltage"), 12.0, 0.002);
    assert_eq!(value(&samples, "current"), 0.0);
    assert_eq!(value(&samples, "power"), 0.0);
}

#[test]
fn overflowing_calibration_is_reported() {
    let (bus, mut adapter) = board(&Options::default());
    adapter.init().unwrap();
    // Something else on the bus writes the largest calibration: 5000 × 65534 / 4096 overflows.
    bus.handle().write(ADDRESS, &[0x05, 0xFF, 0xFE]).unwrap();
    let error = adapter.poll().unwrap_err();
    assert!(matches!(&error, DeviceError::Chip(message) if message.starts_with("math overflow: ")), "{error}");
}

#[test]
fn removed_chip_is_a_bus_error_until_it_is_back() {
    let (bus, mut adapter) = board(&Options::default());
    adapter.init().unwrap();
    assert!(bus.inject(ADDRESS, Some(Injected::Removed)));
    let error = adapter.poll().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");
    assert!(error.takes_device_offline());
    let error = adapter.init().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");

    assert!(bus.inject(ADDRESS, None));
    adapter.init().unwrap();
    assert_near(value(&adapter.poll().unwrap(), "current"), 0.5, 0.0003);
}

#[test]
fn bus_error_is_reported_as_such() {
    let (bus, mut adapter) = board(&Options::default());
    assert!(bus.inject(ADDRESS, Some(Injected::BusError)));
    let error = adapter.init().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::Bus, .. }), "{error}");
}

#[test]
fn describe_lists_the_four_quantities_and_no_commands() {
    let (_bus, adapter) = board(&Options::default());
    let description = adapter.describe();
    assert_eq!(description.model, "INA219");
    let quantities: Vec<_> =
        description.quantities.iter().map(|quantity| (quantity.name, quantity.unit, quantity.kind)).collect();
    assert_eq!(
        quantities,
        [
            ("bus_voltage", Some("V"), Kind::Voltage),
            ("shunt_voltage", Some("mV"), Kind::Voltage),
            ("current", Some("A"), Kind::Current),
            ("power", Some("W"), Kind::Power),
        ]
    );
    assert!(description.commands.is_empty());
}

#[test]
fn commands_are_unsupported() {
    let (_bus, mut adapter) = board(&Options::default());
    let error = adapter.command("reset", &device::Args::default()).unwrap_err();
    assert_eq!(error, DeviceError::UnsupportedAction("reset".to_owned()));
}
