//! The driver against an exact script of SPI transactions (embedded-hal-mock): chip select
//! frames each conversion, and the bytes are those of §6.1, Figure 6-1 of each datasheet.

use device::{Args, Device, DeviceError, Options, Value};
use drv_mcp3x08::{InputMode, Mcp3x08Device, Model};
use embedded_hal_mock::eh1::spi::{Mock, Transaction};

use crate::{assert_near, names, options, value};

/// One conversion: one transaction holding one 3-byte full-duplex transfer.
fn conversion(request: [u8; 3], response: [u8; 3]) -> Vec<Transaction<u8>> {
    vec![
        Transaction::transaction_start(),
        Transaction::transfer_in_place(request.to_vec(), response.to_vec()),
        Transaction::transaction_end(),
    ]
}

/// Runs `test` on an adapter whose bus expects exactly `script`.
fn with_script(
    model: Model,
    options: &Options,
    script: &[Transaction<u8>],
    test: impl FnOnce(&mut Mcp3x08Device<Mock<u8>>),
) {
    let mut spi = Mock::new(script);
    let mut adapter = Mcp3x08Device::new(spi.clone(), model, options).unwrap();
    test(&mut adapter);
    spi.done();
}

fn differential() -> Options {
    options(&[("inputs", Value::Text("differential".into()))])
}

fn read_args(channel: i64, differential: Option<bool>) -> Args {
    let mut args = Args::default();
    args.0.insert("channel".to_owned(), Value::Int(channel));
    if let Some(differential) = differential {
        args.0.insert("differential".to_owned(), Value::Bool(differential));
    }
    args
}

// MCP3008: seven leading zeros and the start bit, then SGL/DIFF D2 D1 D0; the answer is
// `? ? ? ? ? 0 B9 B8`, `B7..B0`. Here the Hi-Z bits read 1, as with a pull-up on MISO.
const MCP3008_CH3: [u8; 3] = [0b0000_0001, 0b1011_0000, 0b0000_0000];
/// 602 = 0b10_0101_1010.
const MCP3008_602: [u8; 3] = [0b1111_1111, 0b1111_1010, 0b0101_1010];

#[test]
fn mcp3008_single_ended_conversion() {
    with_script(Model::Mcp3008, &Options::default(), &conversion(MCP3008_CH3, MCP3008_602), |adapter| {
        assert_eq!(adapter.read_raw(3, InputMode::Single).unwrap(), 602);
    });
}

#[test]
fn mcp3008_differential_conversion() {
    // CH5-CH4: SGL/DIFF 0, D2..D0 101. 465 = 0b01_1101_0001.
    let script = conversion([0b0000_0001, 0b0101_0000, 0], [0b1111_1111, 0b1111_1001, 0b1101_0001]);
    with_script(Model::Mcp3008, &Options::default(), &script, |adapter| {
        // 465 × 3.3 / 1024 = 1.49853515… V.
        assert_eq!(adapter.read_volts(5, InputMode::Differential).unwrap(), 1.498535);
    });
}

#[test]
fn mcp3208_single_ended_conversion() {
    // MCP3208: five leading zeros, the start bit, SGL/DIFF D2 | D1 D0; the answer is
    // `? ? ? 0 B11 B10 B9 B8`, `B7..B0`. CH5 = 1 101; 0xABC = 2748.
    let script = conversion([0b0000_0111, 0b0100_0000, 0], [0b1111_1111, 0b1110_1010, 0b1011_1100]);
    with_script(Model::Mcp3208, &options(&[("vref", Value::Float(4.096))]), &script, |adapter| {
        assert_eq!(adapter.read_raw(5, InputMode::Single).unwrap(), 0xABC);
    });
}

#[test]
fn mcp3208_differential_conversion() {
    // CH6-CH7 = 0 110. Here the Hi-Z bits read 0, as with a pull-down: they are masked.
    let script = conversion([0b0000_0101, 0b1000_0000, 0], [0b0000_0000, 0b0000_0111, 0b1111_1111]);
    with_script(Model::Mcp3208, &Options::default(), &script, |adapter| {
        assert_eq!(adapter.read_raw(6, InputMode::Differential).unwrap(), 2047);
    });
}

#[test]
fn hi_z_bits_are_masked_whatever_they_read() {
    // Noise in the Hi-Z bits, null bit 0: still 602.
    let script = conversion(MCP3008_CH3, [0b1010_0101, 0b1010_1010, 0b0101_1010]);
    with_script(Model::Mcp3008, &Options::default(), &script, |adapter| {
        assert_eq!(adapter.read_raw(3, InputMode::Single).unwrap(), 602);
    });
}

#[test]
fn init_is_one_conversion_of_the_first_input() {
    let script = conversion([0b0000_0001, 0b1000_0000, 0], [0xFF, 0b1111_1000, 0x00]);
    with_script(Model::Mcp3008, &Options::default(), &script, |adapter| adapter.init().unwrap());
    // In differential mode, of the first pair, CH0-CH1.
    let script = conversion([0b0000_0100, 0b0000_0000, 0], [0xFF, 0b1110_0000, 0x00]);
    with_script(Model::Mcp3208, &differential(), &script, |adapter| adapter.init().unwrap());
}

#[test]
fn poll_converts_each_input_in_its_own_transaction() {
    // Single-ended CH0 to CH7: SGL/DIFF 1, D2..D0 the channel; codes 0, 100, …, 700.
    let requests =
        [0b1000_0000, 0b1001_0000, 0b1010_0000, 0b1011_0000, 0b1100_0000, 0b1101_0000, 0b1110_0000, 0b1111_0000];
    let script: Vec<_> = requests
        .iter()
        .zip(0u16..)
        .flat_map(|(&request, channel)| {
            let [high, low] = (channel * 100).to_be_bytes();
            conversion([0b0000_0001, request, 0], [0xFF, 0b1111_1000 | high, low])
        })
        .collect();
    with_script(Model::Mcp3008, &options(&[("vref", Value::Float(5.12))]), &script, |adapter| {
        let samples = adapter.poll().unwrap();
        assert_eq!(
            names(&samples),
            [
                "ch0", "ch0_raw", "ch1", "ch1_raw", "ch2", "ch2_raw", "ch3", "ch3_raw", "ch4", "ch4_raw", "ch5",
                "ch5_raw", "ch6", "ch6_raw", "ch7", "ch7_raw"
            ]
        );
        for channel in 0..8 {
            // 5.12 V / 1024 = 5 mV per code.
            assert_eq!(value(&samples, &format!("ch{channel}_raw")), f64::from(channel * 100));
            assert_near(value(&samples, &format!("ch{channel}")), f64::from(channel) * 0.5, 1e-12);
        }
        assert_eq!(samples[1].value, Value::Int(0), "raw codes are integers");
    });
}

#[test]
fn differential_poll_converts_the_eight_pairs() {
    // MCP3208, SGL/DIFF 0: byte 0 ends with 1 0 D2, byte 1 starts with D1 D0.
    let requests = [
        [0b0000_0100, 0b0000_0000],
        [0b0000_0100, 0b0100_0000],
        [0b0000_0100, 0b1000_0000],
        [0b0000_0100, 0b1100_0000],
        [0b0000_0101, 0b0000_0000],
        [0b0000_0101, 0b0100_0000],
        [0b0000_0101, 0b1000_0000],
        [0b0000_0101, 0b1100_0000],
    ];
    let script: Vec<_> = requests
        .iter()
        .zip(0u16..)
        .flat_map(|(&[first, second], pair)| {
            let [high, low] = (pair * 500).to_be_bytes();
            conversion([first, second, 0], [0xFF, 0b1110_0000 | high, low])
        })
        .collect();
    with_script(
        Model::Mcp3208,
        &options(&[("inputs", Value::Text("differential".into())), ("vref", Value::Float(4.096))]),
        &script,
        |adapter| {
            let samples = adapter.poll().unwrap();
            let volts: Vec<_> = names(&samples).into_iter().step_by(2).collect();
            assert_eq!(volts, ["ch0_ch1", "ch1_ch0", "ch2_ch3", "ch3_ch2", "ch4_ch5", "ch5_ch4", "ch6_ch7", "ch7_ch6"]);
            assert_eq!(value(&samples, "ch7_ch6_raw"), 3500.0);
            assert_near(value(&samples, "ch7_ch6"), 3.5, 1e-12);
        },
    );
}

#[test]
fn read_command_returns_one_conversion_under_the_poll_names() {
    with_script(Model::Mcp3008, &Options::default(), &conversion(MCP3008_CH3, MCP3008_602), |adapter| {
        let outcome = adapter.command("read", &read_args(3, None)).unwrap();
        assert_eq!(names(&outcome.values), ["ch3", "ch3_raw"]);
        assert_eq!(value(&outcome.values, "ch3"), 1.940039);
        assert_eq!(outcome.values[1].value, Value::Int(602));
        assert_eq!(outcome.note, None);
    });
    with_script(Model::Mcp3008, &Options::default(), &conversion(MCP3008_CH3, MCP3008_602), |adapter| {
        let outcome = adapter.command("read", &read_args(3, Some(false))).unwrap();
        assert_eq!(names(&outcome.values), ["ch3", "ch3_raw"]);
    });
    // CH2-CH3 = 0 010, from a device polling single-ended inputs.
    let script = conversion([0b0000_0001, 0b0010_0000, 0], MCP3008_602);
    with_script(Model::Mcp3008, &Options::default(), &script, |adapter| {
        let outcome = adapter.command("read", &read_args(2, Some(true))).unwrap();
        assert_eq!(names(&outcome.values), ["ch2_ch3", "ch2_ch3_raw"]);
        assert_eq!(value(&outcome.values, "ch2_ch3_raw"), 602.0);
    });
}

#[test]
fn read_command_rejects_channels_beyond_ch7_without_bus_traffic() {
    with_script(Model::Mcp3208, &Options::default(), &[], |adapter| {
        for channel in [8, -1, 300] {
            let error = adapter.command("read", &read_args(channel, None)).unwrap_err();
            assert!(
                matches!(&error, DeviceError::Config(message) if message.contains(&format!("channel {channel} "))),
                "{error}"
            );
            assert!(!error.takes_device_offline());
        }
        let error = adapter.read_raw(8, InputMode::Differential).unwrap_err();
        assert!(error.to_string().contains("channels 0 to 7"), "{error}");
    });
}

#[test]
fn read_command_needs_a_channel() {
    with_script(Model::Mcp3008, &Options::default(), &[], |adapter| {
        let error = adapter.command("read", &Args::default()).unwrap_err();
        assert_eq!(error, DeviceError::MissingArgument("channel".to_owned()));
    });
}

#[test]
fn other_actions_are_unsupported() {
    with_script(Model::Mcp3008, &Options::default(), &[], |adapter| {
        let error = adapter.command("write", &Args::default()).unwrap_err();
        assert_eq!(error, DeviceError::UnsupportedAction("write".to_owned()));
    });
}

#[test]
fn miso_reading_all_ones_is_no_response() {
    for (model, request) in [(Model::Mcp3008, [0b0000_0001, 0b1000_0000, 0]), (Model::Mcp3208, [0b0000_0110, 0, 0])] {
        with_script(model, &Options::default(), &conversion(request, [0xFF; 3]), |adapter| {
            let error = adapter.init().unwrap_err();
            let DeviceError::Chip(message) = &error else { panic!("expected a chip error, got {error:?}") };
            assert!(message.starts_with("no response: MISO reads all 1s"), "{message}");
            assert!(message.contains("does not answer"), "{message}");
            assert!(error.takes_device_offline());
        });
    }
}

#[test]
fn null_bit_reading_one_fails_the_poll() {
    // CH0 answers; CH1's answer has the null bit set, as a MISO stuck high during it would.
    let mut script = conversion([0b0000_0001, 0b1000_0000, 0], [0xFF, 0b1111_1000, 0x00]);
    script.extend(conversion([0b0000_0001, 0b1001_0000, 0], [0xFF, 0b1111_1110, 0x00]));
    with_script(Model::Mcp3008, &Options::default(), &script, |adapter| {
        let error = adapter.poll().unwrap_err();
        let DeviceError::Chip(message) = &error else { panic!("expected a chip error, got {error:?}") };
        assert!(message.contains("null bit") && message.contains("0xFF 0xFE 0x00"), "{message}");
    });
}

#[test]
fn miso_reading_all_zeros_is_a_legal_reading() {
    // Documented limit: a MISO held low cannot be told from a chip converting 0 V.
    let script = conversion([0b0000_0110, 0, 0], [0; 3]);
    with_script(Model::Mcp3208, &Options::default(), &script, |adapter| adapter.init().unwrap());
}

#[test]
fn destroy_gives_the_bus_back() {
    let adapter = Mcp3x08Device::new(Mock::<u8>::new(&[]), Model::Mcp3008, &Options::default()).unwrap();
    adapter.destroy().done();
}
