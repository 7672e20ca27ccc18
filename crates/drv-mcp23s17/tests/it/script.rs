//! The adapter against exact SPI transactions (embedded-hal-mock): control byte, register
//! address and data inside one chip-select period each.

use device::{Args, Device, Options, Sample};
use drv_mcp23s17::Mcp23s17Device;
use embedded_hal_mock::eh1::spi::{Mock, Transaction};

use crate::{chip_error, config_error, options, outputs, set_pin, set_port};

/// One write command in one chip-select period.
fn write(bytes: &[u8]) -> Vec<Transaction<u8>> {
    vec![Transaction::transaction_start(), Transaction::write_vec(bytes.to_vec()), Transaction::transaction_end()]
}

/// Reading registers 0x00 to 0x15 from the chip at `address`: the control byte and IODIRA,
/// then 22 bytes.
fn read_all(address: u8, registers: Vec<u8>) -> Vec<Transaction<u8>> {
    vec![
        Transaction::transaction_start(),
        Transaction::write_vec(vec![0x40 | address << 1 | 1, 0x00]),
        Transaction::read_vec(registers),
        Transaction::transaction_end(),
    ]
}

/// A register file as a configured chip returns it (Table 3-5 order).
fn registers(iodir: u16, olat: u16, gpio: u16) -> Vec<u8> {
    let mut bytes = vec![0x00; 0x16];
    bytes[0x00..0x02].copy_from_slice(&iodir.to_le_bytes());
    // IOCON at 0x0A and 0x0B: HAEN.
    bytes[0x0A] = 0x08;
    bytes[0x0B] = 0x08;
    bytes[0x12..0x14].copy_from_slice(&gpio.to_le_bytes());
    bytes[0x14..0x16].copy_from_slice(&olat.to_le_bytes());
    bytes
}

/// init() at address 0 with `outputs`: HAEN, then IODIR and IPOL, then the read-back.
fn init_script(outputs: u16, olat: u16) -> Vec<Transaction<u8>> {
    let [iodir_a, iodir_b] = (!outputs).to_le_bytes();
    [
        write(&[0x40, 0x0A, 0x08]),
        write(&[0x40, 0x00, iodir_a, iodir_b, 0x00, 0x00]),
        read_all(0, registers(!outputs, olat, olat & outputs)),
    ]
    .concat()
}

/// Runs `test` on an adapter with `options` whose bus expects exactly `script`.
fn with_script(options: &Options, script: &[Transaction<u8>], test: impl FnOnce(&mut dyn Device)) {
    let mut bus = Mock::new(script);
    let mut adapter = Mcp23s17Device::new(bus.clone(), options).unwrap();
    test(&mut adapter);
    bus.done();
}

#[test]
fn init_enables_the_address_pins_sets_directions_and_reads_back() {
    with_script(&outputs(0x00FF), &init_script(0x00FF, 0), |adapter| adapter.init().unwrap());
}

#[test]
fn init_at_another_address_sets_haen_at_address_0_and_at_its_own() {
    let pairs = [("hardware_address", device::Value::Int(5)), ("outputs", device::Value::Int(0x8001))];
    let script = [
        write(&[0x40, 0x0A, 0x08]),
        write(&[0x4A, 0x0A, 0x08]),
        write(&[0x4A, 0x00, 0xFE, 0x7F, 0x00, 0x00]),
        read_all(5, registers(0x7FFE, 0, 0)),
    ]
    .concat();
    with_script(&options(&pairs), &script, |adapter| adapter.init().unwrap());
}

#[test]
fn poll_reads_the_register_file_once_and_reports_sixteen_pins() {
    let script = read_all(0, registers(0xFFFF, 0, 0b1000_0100_0000_0101));
    with_script(&Options::default(), &script, |adapter| {
        let samples = adapter.poll().unwrap();
        let names: Vec<_> = samples.iter().map(|sample| sample.name).collect();
        let expected: Vec<_> =
            (0..8).map(|pin| format!("gpa{pin}")).chain((0..8).map(|pin| format!("gpb{pin}"))).collect();
        assert_eq!(names, expected);
        let high: Vec<_> = samples.iter().filter(|sample| sample.value.as_bool() == Some(true)).collect();
        assert_eq!(
            high,
            [
                &Sample::new("gpa0", true),
                &Sample::new("gpa2", true),
                &Sample::new("gpb2", true),
                &Sample::new("gpb7", true)
            ]
        );
    });
}

#[test]
fn set_pin_changes_one_latch_bit_and_reads_the_pins_back() {
    let script = [
        init_script(0x00FF, 0x0001),
        read_all(0, registers(0xFF00, 0x0001, 0x0001)),
        write(&[0x40, 0x14, 0b0000_1001]),
        read_all(0, registers(0xFF00, 0x0009, 0x0009)),
    ]
    .concat();
    with_script(&outputs(0x00FF), &script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_pin", &set_pin("gpa3", true)).unwrap();
        assert_eq!(outcome.values, [Sample::new("gpa3", true)]);
        assert_eq!(outcome.note, None);
    });
}

#[test]
fn set_pin_on_port_b_writes_olatb() {
    let script = [
        init_script(0xFFFF, 0x0300),
        read_all(0, registers(0x0000, 0x0300, 0x0300)),
        write(&[0x40, 0x15, 0b0000_0001]),
        read_all(0, registers(0x0000, 0x0100, 0x0100)),
    ]
    .concat();
    with_script(&outputs(0xFFFF), &script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_pin", &set_pin("gpb1", false)).unwrap();
        assert_eq!(outcome.values, [Sample::new("gpb1", false)]);
    });
}

#[test]
fn set_port_writes_only_the_output_pins_and_notes_the_rest() {
    // Port A: gpa0..gpa3 outputs, gpa4..gpa7 inputs (one of them high outside).
    let script = [
        init_script(0x0F0F, 0x0000),
        read_all(0, registers(0xF0F0, 0x0000, 0x0040)),
        write(&[0x40, 0x14, 0b0000_0101]),
        read_all(0, registers(0xF0F0, 0x0005, 0x0045)),
    ]
    .concat();
    with_script(&outputs(0x0F0F), &script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_port", &set_port("a", 0b1010_0101)).unwrap();
        let levels: Vec<_> =
            outcome.values.iter().map(|sample| (sample.name, sample.value.as_bool().unwrap())).collect();
        assert_eq!(
            levels,
            [
                ("gpa0", true),
                ("gpa1", false),
                ("gpa2", true),
                ("gpa3", false),
                ("gpa4", false),
                ("gpa5", false),
                ("gpa6", true),
                ("gpa7", false)
            ]
        );
        assert_eq!(
            outcome.note.as_deref(),
            Some("bits for input pins gpa5, gpa7 ignored (board option outputs = 0x0F0F)")
        );
    });
}

#[test]
fn outputs_that_do_not_read_back_are_noted() {
    let script = [
        init_script(0x00FF, 0),
        read_all(0, registers(0xFF00, 0, 0)),
        write(&[0x40, 0x14, 0b0001_0000]),
        // gpa4 stays low: shorted to ground.
        read_all(0, registers(0xFF00, 0x0010, 0x0000)),
    ]
    .concat();
    with_script(&outputs(0x00FF), &script, |adapter| {
        adapter.init().unwrap();
        let outcome = adapter.command("set_pin", &set_pin("gpa4", true)).unwrap();
        assert_eq!(outcome.values, [Sample::new("gpa4", false)]);
        assert_eq!(
            outcome.note.as_deref(),
            Some("output pins gpa4 do not read back the level written: shorted or overloaded?")
        );
    });
}

#[test]
fn input_pins_and_ports_without_outputs_are_refused_without_traffic() {
    with_script(&outputs(0x00FF), &init_script(0x00FF, 0), |adapter| {
        adapter.init().unwrap();
        let message = config_error(adapter.command("set_pin", &set_pin("gpb3", true)));
        assert_eq!(message, "pin gpb3 is an input (board option outputs = 0x00FF)");
        let message = config_error(adapter.command("set_port", &set_port("b", 1)));
        assert_eq!(message, "port b has no output pins (board option outputs = 0x00FF)");
        let message = config_error(adapter.command("set_pin", &set_pin("gpc0", true)));
        assert!(message.contains("got \"gpc0\""), "{message}");
        let message = config_error(adapter.command("set_port", &set_port("a", 256)));
        assert!(message.contains("got 256"), "{message}");
        let error = adapter.command("set_port", &Args::default()).unwrap_err();
        assert_eq!(error, device::DeviceError::MissingArgument("port".to_owned()));
        let error = adapter.command("blink", &Args::default()).unwrap_err();
        assert_eq!(error, device::DeviceError::UnsupportedAction("blink".to_owned()));
    });
}

#[test]
fn commands_before_init_touch_nothing() {
    with_script(&outputs(0xFFFF), &[], |adapter| {
        let message = chip_error(adapter.command("set_pin", &set_pin("gpa0", true)));
        assert!(message.contains("not initialised"), "{message}");
    });
}

#[track_caller]
fn check_init_error(registers: Vec<u8>, expected: &str) {
    let mut script = init_script(0x00FF, 0);
    script.truncate(script.len() - 4);
    script.extend(read_all(0, registers));
    with_script(&outputs(0x00FF), &script, |adapter| {
        assert_eq!(chip_error(adapter.init()), expected);
        // A failed init leaves commands refused.
        assert!(chip_error(adapter.command("set_pin", &set_pin("gpa0", true))).contains("not initialised"));
    });
}

#[test]
fn absent_chip_fails_init() {
    check_init_error(
        vec![0xFF; 0x16],
        "no response: reads all 1s (chip absent, or its A2..A0 pins are not hardware_address 0?)",
    );
    check_init_error(vec![0x00; 0x16], "no response: reads all 0s (chip absent?)");
}

#[test]
fn configuration_that_does_not_stick_fails_init() {
    // IOCON without HAEN, IODIR at its power-on value: the writes did not reach the chip.
    let mut file = registers(0xFFFF, 0, 0);
    file[0x0A] = 0x00;
    file[0x0B] = 0x00;
    check_init_error(
        file,
        "configuration reads back IOCON 0x00, IODIR 0xFFFF, IPOL 0x0000 instead of 0x08, 0xFF00, 0x0000: the chip was \
         reset, or is not an MCP23S17",
    );
}

#[test]
fn poll_notices_a_reset_chip_and_commands_wait_for_init() {
    let mut reset = vec![0x00; 0x16];
    reset[0x00] = 0xFF;
    reset[0x01] = 0xFF;
    let script = [init_script(0x00FF, 0), read_all(0, reset)].concat();
    with_script(&outputs(0x00FF), &script, |adapter| {
        adapter.init().unwrap();
        let message = chip_error(adapter.poll());
        assert!(message.starts_with("configuration reads back IOCON 0x00, IODIR 0xFFFF"), "{message}");
        assert!(chip_error(adapter.command("set_pin", &set_pin("gpa0", true))).contains("not initialised"));
    });
}

#[test]
fn destroy_gives_the_bus_back() {
    let mut bus = Mock::new(&write(&[0x40, 0x0A, 0x08]));
    let adapter = Mcp23s17Device::new(bus.clone(), &Options::default()).unwrap();
    let mut spi = adapter.destroy();
    embedded_hal::spi::SpiDevice::write(&mut spi, &[0x40, 0x0A, 0x08]).unwrap();
    bus.done();
}
