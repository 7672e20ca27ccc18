//! The adapter against its simulated chip on the mock I2C bus.

use buses::MockI2cBus;
use buses::mock_i2c::Injected;
use device::{Args, BusFault, Device, DeviceError, Kind, Options, ParamKind, Sample, Value};

use crate::{duty, options, set_duty, value};

const ADDRESS: u8 = 0x42;

fn board(options: &Options) -> (MockI2cBus, Box<dyn Device>) {
    let bus = MockI2cBus::new();
    bus.attach_boxed(ADDRESS, drv_pca9685::simulated(ADDRESS, options));
    let adapter = drv_pca9685::device(bus.handle(), ADDRESS, options).unwrap();
    (bus, adapter)
}

fn ready_board() -> (MockI2cBus, Box<dyn Device>) {
    let (bus, mut adapter) = board(&Options::default());
    adapter.init().unwrap();
    (bus, adapter)
}

#[test]
fn init_programs_the_prescale_and_wakes_the_chip() {
    let (bus, _adapter) = ready_board();
    assert_eq!(bus.inspect(ADDRESS, "prescale"), Some(5.0));
    assert_eq!(bus.inspect(ADDRESS, "mode1"), Some(f64::from(0x21)));
}

#[test]
fn frequency_option_sets_the_prescale() {
    let (bus, mut adapter) = board(&options(&[("frequency_hz", Value::Int(50))]));
    adapter.init().unwrap();
    assert_eq!(bus.inspect(ADDRESS, "prescale"), Some(121.0));
    let frequency = bus.inspect(ADDRESS, "frequency_hz").unwrap();
    assert!((frequency - 50.0).abs() < 0.5, "{frequency} Hz");
}

#[test]
fn set_duty_reaches_the_chip_and_the_next_poll() {
    let (bus, mut adapter) = ready_board();
    let outcome = adapter.command("set_duty", &set_duty(3, 0.5)).unwrap();
    assert_eq!(outcome.values, [Sample::new("ch3", 0.5)]);
    assert_eq!(outcome.note, None);
    assert_eq!(bus.inspect(ADDRESS, "ch3"), Some(0.5));

    let samples = adapter.poll().unwrap();
    assert_eq!(value(&samples, "ch3"), 0.5);
    for (channel, sample) in samples.iter().enumerate().filter(|&(channel, _)| channel != 3) {
        assert_eq!(sample.value, Value::Float(0.0), "ch{channel} is untouched");
    }
}

#[test]
fn set_duty_notes_quantisation() {
    let (bus, mut adapter) = ready_board();
    let outcome = adapter.command("set_duty", &set_duty(15, 0.3)).unwrap();
    assert_eq!(outcome.values, [Sample::new("ch15", 1229.0 / 4096.0)]);
    assert!(outcome.note.unwrap().contains("1229/4096"));
    assert_eq!(bus.inspect(ADDRESS, "ch15"), Some(1229.0 / 4096.0));
}

#[test]
fn set_duty_covers_full_on_and_full_off() {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_duty", &set_duty(0, 1.0)).unwrap();
    assert_eq!(bus.inspect(ADDRESS, "ch0"), Some(1.0));
    adapter.command("set_duty", &set_duty(0, 0.75)).unwrap();
    assert_eq!(bus.inspect(ADDRESS, "ch0"), Some(0.75));
    adapter.command("set_duty", &set_duty(0, 0.0)).unwrap();
    assert_eq!(bus.inspect(ADDRESS, "ch0"), Some(0.0));
    adapter.command("set_duty", &set_duty(0, 1.0)).unwrap();
    assert_eq!(value(&adapter.poll().unwrap(), "ch0"), 1.0);
}

#[test]
fn set_all_and_off_change_every_channel() {
    let (bus, mut adapter) = ready_board();
    let outcome = adapter.command("set_all", &duty(0.25)).unwrap();
    assert_eq!(outcome.values.len(), 16);
    for channel in 0..16 {
        assert_eq!(bus.inspect(ADDRESS, &format!("ch{channel}")), Some(0.25));
    }
    let outcome = adapter.command("off", &Args::default()).unwrap();
    assert!(outcome.values.iter().all(|sample| sample.value == Value::Float(0.0)));
    assert!(adapter.poll().unwrap().iter().all(|sample| sample.value == Value::Float(0.0)));
}

#[test]
fn reinit_keeps_running_outputs() {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_duty", &set_duty(3, 0.5)).unwrap();
    // Sleeping with ch3 running sets RESTART; init() writes it, which restarts and clears it.
    adapter.init().unwrap();
    assert_eq!(bus.inspect(ADDRESS, "mode1"), Some(f64::from(0x21)));
    assert_eq!(value(&adapter.poll().unwrap(), "ch3"), 0.5);
}

#[test]
fn removed_chip_is_a_bus_error_until_it_is_back() {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_duty", &set_duty(3, 0.5)).unwrap();
    assert!(bus.inject(ADDRESS, Some(Injected::Removed)));
    let error = adapter.poll().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");
    assert!(error.takes_device_offline());
    let error = adapter.command("set_duty", &set_duty(3, 0.1)).unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");
    let error = adapter.init().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");

    assert!(bus.inject(ADDRESS, None));
    adapter.init().unwrap();
    assert_eq!(value(&adapter.poll().unwrap(), "ch3"), 0.5);
    adapter.command("set_duty", &set_duty(3, 0.125)).unwrap();
    assert_eq!(bus.inspect(ADDRESS, "ch3"), Some(0.125));
}

#[test]
fn bus_error_is_reported_as_such() {
    let (bus, mut adapter) = ready_board();
    assert!(bus.inject(ADDRESS, Some(Injected::BusError)));
    let error = adapter.poll().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::Bus, .. }), "{error}");
}

#[test]
fn out_of_range_arguments_are_refused_without_writing() {
    let (bus, mut adapter) = ready_board();
    let error = adapter.command("set_duty", &set_duty(16, 0.5)).unwrap_err();
    assert!(matches!(&error, DeviceError::Config(message) if message.contains("got 16")), "{error}");
    let error = adapter.command("set_all", &duty(1.5)).unwrap_err();
    assert!(matches!(&error, DeviceError::Config(message) if message.contains("got 1.5")), "{error}");
    let error = adapter.command("set_duty", &duty(0.5)).unwrap_err();
    assert_eq!(error, DeviceError::MissingArgument("channel".to_owned()));
    assert!((0..16).all(|channel| bus.inspect(ADDRESS, &format!("ch{channel}")) == Some(0.0)));
}

#[test]
fn unknown_action_is_unsupported() {
    let (_bus, mut adapter) = ready_board();
    let error = adapter.command("blink", &Args::default()).unwrap_err();
    assert_eq!(error, DeviceError::UnsupportedAction("blink".to_owned()));
}

#[test]
fn describe_lists_sixteen_ratios_and_three_commands() {
    let (_bus, adapter) = board(&Options::default());
    let description = adapter.describe();
    assert_eq!(description.model, "PCA9685");
    let names: Vec<_> = description.quantities.iter().map(|quantity| quantity.name).collect();
    assert_eq!(names, (0..16).map(|channel| format!("ch{channel}")).collect::<Vec<_>>());
    assert!(description.quantities.iter().all(|quantity| quantity.kind == Kind::Ratio && quantity.unit.is_none()));

    let set_duty = description.command("set_duty").unwrap();
    let params: Vec<_> = set_duty.params.iter().map(|param| (param.name, param.kind.clone(), param.required)).collect();
    assert_eq!(
        params,
        [
            ("channel", ParamKind::Int { min: 0, max: 15 }, true),
            ("duty", ParamKind::Float { min: 0.0, max: 1.0 }, true),
        ]
    );
    assert_eq!(description.command("set_all").unwrap().params.len(), 1);
    assert!(description.command("off").unwrap().params.is_empty());
}
