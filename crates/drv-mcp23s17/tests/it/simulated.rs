//! The adapter against its simulated chip on the mock SPI bus.

use buses::MockSpiBus;
use buses::mock_spi::Injected;
use device::{Device, DeviceError, Kind, Options, ParamKind, Value};
use drv_mcp23s17::Mcp23s17Sim;

use crate::{chip_error, config_error, level, mask, options, outputs, set_pin, set_port};

const CHIP_SELECT: u8 = 0;

fn board(options: &Options) -> (MockSpiBus, Box<dyn Device>) {
    let bus = MockSpiBus::new();
    bus.attach_boxed(CHIP_SELECT, drv_mcp23s17::simulated(options));
    let adapter = drv_mcp23s17::device(bus.device(CHIP_SELECT), options).unwrap();
    (bus, adapter)
}

/// Port A outputs, port B inputs, initialised.
fn ready_board() -> (MockSpiBus, Box<dyn Device>) {
    let (bus, mut adapter) = board(&outputs(0x00FF));
    adapter.init().unwrap();
    (bus, adapter)
}

#[test]
fn init_configures_directions_and_address_pins() {
    let (bus, _adapter) = ready_board();
    assert_eq!(bus.inspect(CHIP_SELECT, "iodira"), Some(0.0));
    assert_eq!(bus.inspect(CHIP_SELECT, "iodirb"), Some(255.0));
    assert_eq!(bus.inspect(CHIP_SELECT, "iocon"), Some(8.0), "HAEN");
}

#[test]
fn set_pin_reaches_the_chip_and_the_next_poll() {
    let (bus, mut adapter) = ready_board();
    let outcome = adapter.command("set_pin", &set_pin("gpa3", true)).unwrap();
    assert_eq!(outcome.values, [device::Sample::new("gpa3", true)]);
    assert_eq!(outcome.note, None);
    assert_eq!(bus.inspect(CHIP_SELECT, "gpa3"), Some(1.0));
    assert_eq!(bus.inspect(CHIP_SELECT, "olata"), Some(8.0));
    assert_eq!(mask(&adapter.poll().unwrap()), 0b0000_1000);

    adapter.command("set_pin", &set_pin("gpa0", true)).unwrap();
    adapter.command("set_pin", &set_pin("gpa3", false)).unwrap();
    assert_eq!(bus.inspect(CHIP_SELECT, "gpa3"), Some(0.0));
    assert_eq!(mask(&adapter.poll().unwrap()), 0b0000_0001, "gpa0 kept its level");
}

#[test]
fn inputs_reach_the_poll() {
    let (bus, mut adapter) = ready_board();
    assert!(bus.set_input(CHIP_SELECT, "gpb2", 1.0));
    assert!(bus.set_input(CHIP_SELECT, "gpb7", 1.0));
    let samples = adapter.poll().unwrap();
    assert!(level(&samples, "gpb2") && level(&samples, "gpb7"));
    assert_eq!(mask(&samples), 0b1000_0100 << 8);
    // An outside level on an output pin does not show: the chip drives it.
    assert!(bus.set_input(CHIP_SELECT, "gpa1", 1.0));
    assert!(!level(&adapter.poll().unwrap(), "gpa1"));
}

#[test]
fn input_pins_refuse_writes() {
    let (bus, mut adapter) = ready_board();
    let message = config_error(adapter.command("set_pin", &set_pin("gpb3", true)));
    assert_eq!(message, "pin gpb3 is an input (board option outputs = 0x00FF)");
    let message = config_error(adapter.command("set_port", &set_port("b", 0xFF)));
    assert_eq!(message, "port b has no output pins (board option outputs = 0x00FF)");
    assert_eq!(bus.inspect(CHIP_SELECT, "olatb"), Some(0.0));
    assert_eq!(bus.inspect(CHIP_SELECT, "gpb3"), Some(0.0));
}

#[test]
fn set_port_drives_only_the_output_pins() {
    let (bus, mut adapter) = board(&outputs(0x0F0F));
    adapter.init().unwrap();
    let outcome = adapter.command("set_port", &set_port("b", 0xFF)).unwrap();
    assert_eq!(mask(&outcome.values), 0x0F00);
    assert!(outcome.note.unwrap().contains("gpb4, gpb5, gpb6, gpb7 ignored"));
    assert_eq!(bus.inspect(CHIP_SELECT, "olatb"), Some(15.0));
    assert_eq!(bus.inspect(CHIP_SELECT, "gpb7"), Some(0.0));
    adapter.command("set_port", &set_port("b", 0b0000_0110)).unwrap();
    assert_eq!(mask(&adapter.poll().unwrap()), 0x0600);
}

#[test]
fn reinit_keeps_running_outputs() {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_port", &set_port("a", 0xA5)).unwrap();
    adapter.init().unwrap();
    assert_eq!(bus.inspect(CHIP_SELECT, "olata"), Some(f64::from(0xA5)));
    assert_eq!(mask(&adapter.poll().unwrap()), 0x00A5);
}

#[test]
fn a_reset_chip_is_noticed_and_configured_again() {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_pin", &set_pin("gpa0", true)).unwrap();
    // A brown-out: the chip is back at its power-on values.
    bus.attach(CHIP_SELECT, Mcp23s17Sim::new(0));
    let error = adapter.poll().unwrap_err();
    assert!(error.takes_device_offline(), "{error}");
    assert!(chip_error::<()>(Err(error)).contains("the chip was reset"));
    assert!(chip_error(adapter.command("set_pin", &set_pin("gpa0", true))).contains("not initialised"));
    adapter.init().unwrap();
    assert_eq!(mask(&adapter.poll().unwrap()), 0, "outputs come back low after a reset");
    adapter.command("set_pin", &set_pin("gpa0", true)).unwrap();
    assert_eq!(bus.inspect(CHIP_SELECT, "gpa0"), Some(1.0));
}

#[track_caller]
fn check_absent(level: u8, expected: &str) {
    let (bus, mut adapter) = ready_board();
    adapter.command("set_pin", &set_pin("gpa6", true)).unwrap();
    assert!(bus.inject(CHIP_SELECT, Some(Injected::Absent(level))));
    assert_eq!(chip_error(adapter.init()), expected);
    assert_eq!(chip_error(adapter.poll()), expected);
    assert!(bus.inject(CHIP_SELECT, None));
    adapter.init().unwrap();
    assert!(level_of(&mut *adapter, "gpa6"));
}

fn level_of(adapter: &mut dyn Device, pin: &str) -> bool {
    level(&adapter.poll().unwrap(), pin)
}

#[test]
fn absent_chip_fails_init_until_it_is_back() {
    check_absent(0xFF, "no response: reads all 1s (chip absent, or its A2..A0 pins are not hardware_address 0?)");
    check_absent(0x00, "no response: reads all 0s (chip absent?)");
}

#[test]
fn transfer_error_is_a_bus_error_until_cleared() {
    let (bus, mut adapter) = ready_board();
    assert!(bus.inject(CHIP_SELECT, Some(Injected::TransferError)));
    assert!(matches!(adapter.init(), Err(DeviceError::Bus { .. })));
    assert!(matches!(adapter.poll(), Err(DeviceError::Bus { .. })));
    assert!(bus.inject(CHIP_SELECT, None));
    adapter.init().unwrap();
    adapter.command("set_pin", &set_pin("gpa2", true)).unwrap();
    assert!(level_of(&mut *adapter, "gpa2"));
}

#[test]
fn hardware_address_reaches_a_chip_strapped_to_it() {
    let pairs = [("hardware_address", Value::Int(5)), ("outputs", Value::Int(0xFFFF))];
    let (bus, mut adapter) = board(&options(&pairs));
    adapter.init().unwrap();
    adapter.command("set_pin", &set_pin("gpb0", true)).unwrap();
    assert_eq!(bus.inspect(CHIP_SELECT, "gpb0"), Some(1.0));
    // A second init finds HAEN already set: the chip no longer hears address 0.
    adapter.init().unwrap();
    assert_eq!(mask(&adapter.poll().unwrap()), 0x0100);
}

#[test]
fn hardware_address_that_does_not_match_the_pins_reads_all_1s() {
    let bus = MockSpiBus::new();
    bus.attach(CHIP_SELECT, Mcp23s17Sim::new(3));
    let mut adapter =
        drv_mcp23s17::device(bus.device(CHIP_SELECT), &options(&[("hardware_address", Value::Int(5))])).unwrap();
    assert_eq!(
        chip_error(adapter.init()),
        "no response: reads all 1s (chip absent, or its A2..A0 pins are not hardware_address 5?)"
    );
}

#[test]
fn describe_lists_sixteen_states_and_two_commands() {
    let (_bus, adapter) = board(&outputs(0x00FF));
    let description = adapter.describe();
    assert_eq!(description.model, "MCP23S17");
    let names: Vec<_> = description.quantities.iter().map(|quantity| quantity.name).collect();
    assert_eq!(names.len(), 16);
    assert_eq!((names[0], names[8], names[15]), ("gpa0", "gpb0", "gpb7"));
    assert!(description.quantities.iter().all(|quantity| quantity.kind == Kind::State && quantity.unit.is_none()));
    assert!(description.quantity("gpa0").unwrap().description.starts_with("output"));
    assert!(description.quantity("gpb0").unwrap().description.starts_with("input"));

    let set_pin = description.command("set_pin").unwrap();
    let ParamKind::Choice(pins) = &set_pin.params[0].kind else { panic!("pin is a choice") };
    assert_eq!(pins.len(), 16);
    assert_eq!((set_pin.params[1].name, &set_pin.params[1].kind), ("level", &ParamKind::Bool));
    assert!(set_pin.params.iter().all(|param| param.required));
    let set_port = description.command("set_port").unwrap();
    let kinds: Vec<_> = set_port.params.iter().map(|param| (param.name, param.kind.clone())).collect();
    assert_eq!(kinds, [("port", ParamKind::Choice(&["a", "b"])), ("value", ParamKind::Int { min: 0, max: 255 })]);
}
