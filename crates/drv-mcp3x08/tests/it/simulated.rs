//! The adapter against its simulated chip on the mock SPI bus.

use buses::MockSpiBus;
use buses::mock_spi::Injected;
use device::{Args, BusFault, Device, DeviceError, Kind, Options, ParamKind, Value};
use drv_mcp3x08::{Mcp3x08Sim, Model};

use crate::{assert_near, names, options, value};

const CHIP_SELECT: u8 = 1;

/// A bus with the simulated chip the registry would build, and the adapter for it.
fn board(model: Model, options: &Options) -> (MockSpiBus, Box<dyn Device>) {
    let bus = MockSpiBus::new();
    let adapter = match model {
        Model::Mcp3008 => {
            bus.attach_boxed(CHIP_SELECT, drv_mcp3x08::simulated_mcp3008(options));
            drv_mcp3x08::mcp3008(bus.device(CHIP_SELECT), options)
        }
        Model::Mcp3208 => {
            bus.attach_boxed(CHIP_SELECT, drv_mcp3x08::simulated_mcp3208(options));
            drv_mcp3x08::mcp3208(bus.device(CHIP_SELECT), options)
        }
    };
    (bus, adapter.unwrap())
}

fn differential() -> Options {
    options(&[("inputs", Value::Text("differential".into()))])
}

/// Inputs spread over the range, with some pairs negative.
const INPUTS: [f64; 8] = [0.0, 0.25, 3.1, 1.2, 1.65, 1.6499, 0.8, 3.29];

/// Sets `inputs`, polls, and checks every value against the inputs within 1 LSB.
#[track_caller]
fn check_poll(model: Model, options: &Options, inputs: [f64; 8]) {
    let (bus, mut adapter) = board(model, options);
    adapter.init().unwrap();
    for (channel, volts) in inputs.iter().enumerate() {
        assert!(bus.set_input(CHIP_SELECT, &format!("ch{channel}"), *volts));
    }
    let samples = adapter.poll().unwrap();
    assert_eq!(samples.len(), 16);
    let vref = options.float_or("vref", 3.3).unwrap();
    let codes = f64::from(model.codes());
    let lsb = vref / codes;
    let differential = options.text_or("inputs", "single").unwrap() == "differential";
    for channel in 0..8 {
        let (name, expected) = if differential {
            let partner = channel ^ 1;
            (format!("ch{channel}_ch{partner}"), (inputs[channel] - inputs[partner]).max(0.0))
        } else {
            (format!("ch{channel}"), inputs[channel].min(vref))
        };
        let volts = value(&samples, &name);
        // Within 1 LSB, plus the 1 µV rounding of reported volts: full scale reads VREF − 1 LSB.
        assert_near(volts, expected, lsb + 1e-6);
        assert!(volts <= expected + 1e-6, "{name}: {volts} V for {expected} V: codes truncate");
        let raw = value(&samples, &format!("{name}_raw"));
        assert_near(raw * vref / codes, volts, 1e-6);
    }
}

#[test]
fn mcp3008_poll_reports_the_inputs() {
    check_poll(Model::Mcp3008, &Options::default(), INPUTS);
}

#[test]
fn mcp3208_poll_reports_the_inputs() {
    check_poll(Model::Mcp3208, &Options::default(), INPUTS);
}

#[test]
fn mcp3008_differential_poll_reports_the_pairs() {
    check_poll(Model::Mcp3008, &differential(), INPUTS);
}

#[test]
fn mcp3208_differential_poll_reports_the_pairs() {
    check_poll(Model::Mcp3208, &differential(), INPUTS);
}

#[test]
fn other_references_scale_the_readings() {
    let five = options(&[("vref", Value::Float(5.0))]);
    check_poll(Model::Mcp3008, &five, [4.99, 0.01, 2.5, 1.0, 3.3, 0.0, 4.2, 5.0]);
    let low = options(&[("vref", Value::Float(2.048)), ("inputs", Value::Text("differential".into()))]);
    check_poll(Model::Mcp3208, &low, [2.0, 0.5, 0.0, 2.048, 1.0, 1.0, 0.3, 0.2]);
}

#[test]
fn inputs_above_the_reference_read_full_scale() {
    let (bus, mut adapter) = board(Model::Mcp3208, &Options::default());
    assert!(bus.set_input(CHIP_SELECT, "ch4", 4.5));
    let samples = adapter.poll().unwrap();
    assert_eq!(value(&samples, "ch4_raw"), 4095.0);
    assert_eq!(value(&samples, "ch4"), 3.299194);
}

#[test]
fn each_conversion_is_one_transaction() {
    let (bus, mut adapter) = board(Model::Mcp3008, &Options::default());
    adapter.init().unwrap();
    assert_eq!((bus.transactions(), bus.inspect(CHIP_SELECT, "conversions")), (1, Some(1.0)));
    adapter.poll().unwrap();
    assert_eq!((bus.transactions(), bus.inspect(CHIP_SELECT, "conversions")), (9, Some(9.0)));
}

#[test]
fn read_command_converts_one_input() {
    let (bus, mut adapter) = board(Model::Mcp3208, &Options::default());
    bus.set_input(CHIP_SELECT, "ch6", 2.5);
    bus.set_input(CHIP_SELECT, "ch7", 1.0);
    let mut args = Args::default();
    args.0.insert("channel".to_owned(), Value::Int(6));
    let outcome = adapter.command("read", &args).unwrap();
    assert_eq!(names(&outcome.values), ["ch6", "ch6_raw"]);
    assert_near(value(&outcome.values, "ch6"), 2.5, 3.3 / 4096.0);

    args.0.insert("differential".to_owned(), Value::Bool(true));
    let outcome = adapter.command("read", &args).unwrap();
    assert_eq!(names(&outcome.values), ["ch6_ch7", "ch6_ch7_raw"]);
    assert_near(value(&outcome.values, "ch6_ch7"), 1.5, 3.3 / 4096.0);

    args.0.insert("channel".to_owned(), Value::Int(7));
    let outcome = adapter.command("read", &args).unwrap();
    assert_eq!(value(&outcome.values, "ch7_ch6_raw"), 0.0, "IN+ below IN- reads 0");
    assert_eq!(bus.inspect(CHIP_SELECT, "conversions"), Some(3.0));
}

#[test]
fn absent_chip_fails_init_and_poll_until_it_is_back() {
    for model in [Model::Mcp3008, Model::Mcp3208] {
        let (bus, mut adapter) = board(model, &Options::default());
        adapter.init().unwrap();
        assert!(bus.inject(CHIP_SELECT, Some(Injected::Absent(0xFF))));
        for error in [adapter.poll().unwrap_err(), adapter.init().unwrap_err()] {
            let DeviceError::Chip(message) = &error else { panic!("expected a chip error, got {error:?}") };
            assert!(message.contains("no response") && message.contains("does not answer"), "{message}");
            assert!(message.contains(model.name()), "{message}");
            assert!(error.takes_device_offline());
        }
        assert!(bus.inject(CHIP_SELECT, None));
        adapter.init().unwrap();
        assert_near(value(&adapter.poll().unwrap(), "ch1"), 0.66, 3.3 / f64::from(model.codes()));
    }
}

#[test]
fn empty_chip_select_is_no_response() {
    let bus = MockSpiBus::new();
    let mut adapter = drv_mcp3x08::mcp3008(bus.device(3), &Options::default()).unwrap();
    let error = adapter.init().unwrap_err();
    assert!(matches!(&error, DeviceError::Chip(message) if message.starts_with("no response")), "{error}");
}

#[test]
fn pulled_down_miso_reads_as_zero_volts() {
    // Documented limit: with MISO held low, an absent chip cannot be told from 0 V inputs.
    let (bus, mut adapter) = board(Model::Mcp3008, &Options::default());
    bus.inject(CHIP_SELECT, Some(Injected::Absent(0x00)));
    adapter.init().unwrap();
    let samples = adapter.poll().unwrap();
    assert!(samples.iter().all(|sample| sample.value.as_f64() == Some(0.0)), "{samples:?}");
}

#[test]
fn transfer_error_is_a_bus_error_until_cleared() {
    let (bus, mut adapter) = board(Model::Mcp3208, &differential());
    assert!(bus.inject(CHIP_SELECT, Some(Injected::TransferError)));
    for error in [adapter.init().unwrap_err(), adapter.poll().unwrap_err()] {
        assert!(matches!(error, DeviceError::Bus { fault: BusFault::Other, .. }), "{error}");
        assert!(error.takes_device_offline());
    }
    bus.inject(CHIP_SELECT, None);
    adapter.init().unwrap();
    // Default inputs: CH1 at 0.66 V, CH0 at 0.33 V.
    assert_near(value(&adapter.poll().unwrap(), "ch1_ch0"), 0.33, 3.3 / 4096.0);
}

#[test]
fn simulated_chip_takes_its_reference_from_the_options() {
    let (bus, _adapter) = board(Model::Mcp3208, &options(&[("vref", Value::Float(5.0))]));
    assert_eq!(bus.inspect(CHIP_SELECT, "vref"), Some(5.0));
    assert_eq!(bus.with_chip(CHIP_SELECT, |chip: &mut Mcp3x08Sim| chip.model()), Some(Model::Mcp3208));
    // An invalid vref is the driver's to report; the chip falls back to 3.3 V.
    let chip = drv_mcp3x08::simulated_mcp3008(&options(&[("vref", Value::Float(-1.0))]));
    assert_eq!(chip.inspect("vref"), Some(3.3));
}

#[test]
fn describe_single_ended() {
    let (_bus, adapter) = board(Model::Mcp3008, &Options::default());
    let description = adapter.describe();
    assert_eq!(description.model, "MCP3008");
    let quantities: Vec<_> =
        description.quantities.iter().map(|quantity| (quantity.name, quantity.unit, quantity.kind)).collect();
    assert_eq!(quantities.len(), 16);
    assert_eq!(
        quantities[..4],
        [
            ("ch0", Some("V"), Kind::Voltage),
            ("ch0_raw", None, Kind::Other),
            ("ch1", Some("V"), Kind::Voltage),
            ("ch1_raw", None, Kind::Other),
        ]
    );
    assert_eq!(quantities[15], ("ch7_raw", None, Kind::Other));
    assert!(description.quantity("ch3_raw").unwrap().description.contains("0 to 1023"));

    let read = description.command("read").unwrap();
    let params: Vec<_> = read.params.iter().map(|param| (param.name, param.kind.clone(), param.required)).collect();
    assert_eq!(
        params,
        [("channel", ParamKind::Int { min: 0, max: 7 }, true), ("differential", ParamKind::Bool, false)]
    );
    assert_eq!(description.commands.len(), 1);
}

#[test]
fn describe_differential_lists_the_pairs_of_table_5_2() {
    let (_bus, mut adapter) = board(Model::Mcp3208, &differential());
    let description = adapter.describe();
    assert_eq!(description.model, "MCP3208");
    let volts: Vec<_> = description.quantities.iter().filter(|q| q.kind == Kind::Voltage).map(|q| q.name).collect();
    assert_eq!(volts, ["ch0_ch1", "ch1_ch0", "ch2_ch3", "ch3_ch2", "ch4_ch5", "ch5_ch4", "ch6_ch7", "ch7_ch6"]);
    assert!(description.quantity("ch5_ch4_raw").unwrap().description.contains("0 to 4095"));
    // The poll reports exactly the described quantities, in order.
    let described: Vec<_> = description.quantities.iter().map(|quantity| quantity.name).collect();
    assert_eq!(names(&adapter.poll().unwrap()), described);
}
