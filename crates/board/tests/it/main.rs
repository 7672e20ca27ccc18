//! Board files: the shipped boards load, and every mistake is reported with file, line and field.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::path::{Path, PathBuf};

use board::{Board, BusKind, JournalOutput};

fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards")
}

const MINIMAL: &str = r#"
[board]
name = "test"
target = "x86_64-unknown-linux-gnu"

[[bus]]
name = "i2c1"
kind = "i2c"
mock = true

[[device]]
name = "ambient"
bus = "i2c1"
driver = "bme280"
address = 0x76
"#;

/// Parses `text` and expects an error at `line` for `field` whose message contains `needle`.
#[track_caller]
fn check_error(text: &str, line: usize, field: &str, needle: &str) {
    let error = Board::parse(text, Path::new("boards/x.toml")).unwrap_err();
    assert_eq!((error.line, error.field.as_str()), (line, field), "{error}");
    assert!(error.message.contains(needle), "{error} does not contain {needle:?}");
    assert!(error.to_string().starts_with(&format!("boards/x.toml:{line}: {field}: ")), "{error}");
}

#[test]
fn every_shipped_board_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(boards_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let board = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(Some(board.name.as_str()), path.file_stem().and_then(|s| s.to_str()), "file name = board name");
            count += 1;
        }
    }
    assert!(count >= 2, "sim and at least one real board");
}

#[test]
fn sim_board_is_mocked_on_loopback() {
    let board = Board::load(&boards_dir().join("sim.toml")).unwrap();
    assert!(board.buses.iter().all(|bus| bus.mock));
    assert!(board.broker.listeners.iter().all(|l| l.address.ip().is_loopback()));
    assert_eq!(board.gateway.broker.to_string(), "127.0.0.1:1883");
    assert_eq!(board.gateway_kinds(), vec![BusKind::I2c, BusKind::Spi, BusKind::Can]);
    assert_eq!(board.devices_on("i2c1").count(), 3);
    let supply = board.devices.iter().find(|d| d.name == "supply").unwrap();
    assert_eq!(supply.options.float_or("shunt_ohms", 0.0), Ok(0.1));
}

#[test]
fn rpi4_board_uses_the_real_bus() {
    let board = Board::load(&boards_dir().join("rpi4.toml")).unwrap();
    assert_eq!(board.target, "aarch64-unknown-linux-gnu");
    assert_eq!(board.buses[0].path.as_deref(), Some(Path::new("/dev/i2c-1")));
    assert!(!board.buses[0].mock);
    assert!(matches!(board.broker.journal.output, JournalOutput::File { .. }));
    assert_eq!(board.deploy.as_ref().unwrap().host, "pi@raspberrypi.local");
    assert_eq!(board.deploy.as_ref().unwrap().linker, None);
}

#[test]
fn deploy_section_may_name_a_linker() {
    let text = format!("{MINIMAL}\n[deploy]\nhost = \"root@board\"\nlinker = \"clang-aarch64\"\n");
    let board = Board::parse(&text, Path::new("x.toml")).unwrap();
    let deploy = board.deploy.unwrap();
    assert_eq!((deploy.prefix.as_str(), deploy.linker.as_deref()), ("/opt/busgate", Some("clang-aarch64")));
}

#[test]
fn defaults_are_safe() {
    let board = Board::parse(MINIMAL, Path::new("x.toml")).unwrap();
    assert_eq!(board.broker.listeners[0].address.to_string(), "127.0.0.1:1883");
    assert!(board.broker.limits.segment_bytes * board.broker.limits.max_segments <= 4 * 1024 * 1024);
    assert!(!board.broker.journal.enabled);
    assert_eq!(board.devices[0].poll_ms, 1000);
}

#[test]
fn force_mock_switches_every_bus() {
    let text = MINIMAL.replace("mock = true", "path = \"/dev/i2c-1\"");
    let mut board = Board::parse(&text, Path::new("x.toml")).unwrap();
    assert!(!board.buses[0].mock);
    board.force_mock();
    assert!(board.buses[0].mock);
}

#[test]
fn syntax_error_names_the_line() {
    check_error("[board]\nname = \"a\"\ntarget = \n", 3, "(syntax)", "");
}

#[test]
fn unknown_field_is_rejected() {
    check_error(&MINIMAL.replace("address = 0x76", "adress = 0x76"), 15, "(syntax)", "unknown field `adress`");
}

#[test]
fn address_outside_7_bit_range() {
    check_error(
        &MINIMAL.replace("0x76", "0x95"),
        15,
        "device[0].address",
        "0x95 is outside the usable 7-bit I2C range",
    );
}

#[test]
fn missing_address() {
    check_error(&MINIMAL.replace("address = 0x76", ""), 12, "device[0].address", "needs an address");
}

#[test]
fn duplicate_address_on_one_bus() {
    let text =
        format!("{MINIMAL}\n[[device]]\nname = \"other\"\nbus = \"i2c1\"\ndriver = \"bme280\"\naddress = 0x76\n");
    check_error(&text, 21, "device[1].address", "already used by device \"ambient\"");
}

#[test]
fn unknown_bus() {
    check_error(
        &MINIMAL.replace("bus = \"i2c1\"", "bus = \"i2c9\""),
        13,
        "device[0].bus",
        "no bus named \"i2c9\"; buses: i2c1",
    );
}

#[test]
fn names_must_be_topic_safe() {
    check_error(
        &MINIMAL.replace("name = \"ambient\"", "name = \"Amb/ient\""),
        12,
        "device[0].name",
        "must start with a lowercase letter",
    );
    check_error(&MINIMAL.replace("name = \"ambient\"", "name = \"amb+ient\""), 12, "device[0].name", "contains '+'");
}

#[test]
fn real_bus_needs_a_path() {
    check_error(&MINIMAL.replace("mock = true", ""), 7, "bus[0].path", "needs a device file");
}

#[test]
fn remote_listener_must_be_explicit() {
    let text = format!("{MINIMAL}\n[broker.listeners.lan]\naddress = \"0.0.0.0:1883\"\n");
    check_error(&text, 18, "broker.listeners.lan.address", "reachable from other machines");
    let allowed = format!("{MINIMAL}\n[broker.listeners.lan]\naddress = \"0.0.0.0:1884\"\nallow_remote = true\n");
    let board = Board::parse(&allowed, Path::new("x.toml")).unwrap();
    // The gateways reach a wildcard listener over loopback.
    assert_eq!(board.gateway.broker.to_string(), "127.0.0.1:1884");
    let both = format!("{allowed}\n[broker.listeners.local]\naddress = \"127.0.0.1:1883\"\n");
    let board = Board::parse(&both, Path::new("x.toml")).unwrap();
    assert_eq!(board.gateway.broker.to_string(), "127.0.0.1:1883", "loopback listener preferred");
}

#[test]
fn limits_are_range_checked() {
    let text = format!("{MINIMAL}\n[broker.limits]\nmax_connections = 0\n");
    check_error(&text, 18, "broker.limits.max_connections", "0 is out of range; allowed 1 to 10000");
}

#[test]
fn bad_listen_address() {
    let text = format!("{MINIMAL}\n[broker.listeners.local]\naddress = \"localhost\"\n");
    check_error(&text, 18, "broker.listeners.local.address", "is not an IP address and port");
}

#[test]
fn unknown_bus_kind_lists_the_known_ones() {
    check_error(&MINIMAL.replace("kind = \"i2c\"", "kind = \"usb\""), 8, "(syntax)", "unknown variant `usb`");
}

#[test]
fn errors_can_point_at_driver_lines() {
    let board = Board::parse(MINIMAL, Path::new("boards/x.toml")).unwrap();
    let device = &board.devices[0];
    let error = board.error_at(device.driver_span.clone(), "device[0].driver", "unknown driver");
    assert_eq!(error.to_string(), "boards/x.toml:14: device[0].driver: unknown driver");
}

const SPI: &str = r#"
[board]
name = "test"
target = "x86_64-unknown-linux-gnu"

[[bus]]
name = "spi0"
kind = "spi"
path = "/dev/spidev0"

[[device]]
name = "adc"
bus = "spi0"
driver = "mcp3008"
chip_select = 0
mode = 0
max_speed_hz = 1000000
raw = true
"#;

#[test]
fn spi_devices_have_chip_select_and_settings() {
    let board = Board::parse(SPI, Path::new("x.toml")).unwrap();
    let spi = board.devices[0].spi.unwrap();
    assert_eq!((spi.chip_select, spi.mode, spi.max_speed_hz, spi.bits_per_word, spi.raw), (0, 0, 1_000_000, 8, true));
    assert_eq!(board.devices[0].address, None);
    assert_eq!(board.gateway_kinds(), vec![BusKind::Spi]);
}

#[test]
fn spi_device_needs_a_chip_select() {
    check_error(&SPI.replace("chip_select = 0\n", ""), 12, "device[0].chip_select", "needs a chip_select");
}

#[test]
fn spi_mode_is_range_checked() {
    check_error(&SPI.replace("mode = 0", "mode = 4"), 16, "device[0].mode", "4 is out of range; allowed 0 to 3");
}

#[test]
fn chip_select_used_twice() {
    let text = format!("{SPI}\n[[device]]\nname = \"tc\"\nbus = \"spi0\"\ndriver = \"max31855\"\nchip_select = 0\n");
    check_error(&text, 24, "device[1].chip_select", "chip select 0 is already used by device \"adc\"");
}

#[test]
fn settings_of_the_other_bus_kind_are_refused() {
    check_error(
        &SPI.replace("chip_select = 0", "chip_select = 0\naddress = 0x40"),
        16,
        "device[0].address",
        "SPI devices have a chip_select",
    );
    check_error(
        &MINIMAL.replace("address = 0x76", "address = 0x76\nchip_select = 1"),
        16,
        "device[0].chip_select",
        "is an SPI setting",
    );
}

const CAN: &str = r#"
[board]
name = "test"
target = "x86_64-unknown-linux-gnu"

[[bus]]
name = "can0"
kind = "can"
mock = true
dbc = ["dbc/a.dbc", "/abs/b.dbc"]
filters = [{ id = 0x100, mask = 0x700 }, { id = 0x18FEF100 }]
[bus.publish]
mode = "on_change"
heartbeat_ms = 2000
[bus.messages.Engine]
min_interval_ms = 100
[bus.messages.Engine.signals.Counter]
mode = "ignore"
"#;

#[test]
fn can_buses_have_dbc_files_filters_and_policies() {
    use board::can::{Mode, RawFrames};
    let board = Board::parse(CAN, Path::new("boards/x.toml")).unwrap();
    assert_eq!(board.gateway_kinds(), vec![BusKind::Can], "a CAN bus needs no [[device]]");
    let can = board.buses[0].can.as_ref().unwrap();
    assert_eq!(can.interface, "can0", "the bus name by default");
    assert_eq!(can.dbc, [Path::new("boards/dbc/a.dbc"), Path::new("/abs/b.dbc")], "relative to the board file");
    assert_eq!((can.filters[0].mask, can.filters[0].extended), (0x700, false));
    assert!(can.filters[1].extended, "ids above 0x7FF are 29-bit");
    assert_eq!(can.raw, RawFrames::Unknown);
    // Policies inherit: bus -> message -> signal.
    let engine = can.policy("Engine", "Speed");
    assert_eq!((engine.mode, engine.min_interval_ms, engine.heartbeat_ms), (Mode::OnChange, 100, 2000));
    let counter = can.policy("Engine", "Counter");
    assert_eq!((counter.mode, counter.min_interval_ms), (Mode::Ignore, 100));
    assert_eq!(can.policy("Other", "X").min_interval_ms, 0);
}

#[test]
fn can_settings_are_checked() {
    let bus =
        "[board]\nname = \"t\"\ntarget = \"x86_64-unknown-linux-gnu\"\n[[bus]]\nname = \"can0\"\nkind = \"can\"\n";
    check_error(&format!("{bus}mock = true\ndata_bitrate = 2000000\n"), 8, "bus[0].data_bitrate", "needs fd = true");
    check_error(&format!("{bus}mock = true\nbitrate = 5000000\n"), 8, "bus[0].bitrate", "outside 10000 to 1000000");
    check_error(&format!("{bus}replay = \"x.log\"\n"), 7, "bus[0].replay", "needs a mock bus");
    check_error(
        &format!("{bus}mock = true\nfilters = [{{ id = 0x800, extended = false }}]\n"),
        8,
        "bus[0].filters[0].id",
        "not a 11-bit identifier",
    );
    check_error(&format!("{bus}mock = true\n[bus.publish]\nmode = \"sometimes\"\n"), 9, "(syntax)", "unknown variant");
    check_error(&format!("{bus}path = \"/dev/can0\"\n"), 5, "bus[0].path", "interface");
    let i2c = MINIMAL.replace("mock = true", "mock = true\ndbc = [\"a.dbc\"]");
    check_error(&i2c, 10, "bus[0].dbc", "CAN setting");
    let device = format!("{bus}mock = true\n[[device]]\nname = \"x\"\nbus = \"can0\"\ndriver = \"bme280\"\n");
    check_error(&device, 10, "device[0].bus", "DBC files");
}

#[test]
fn uplink_takes_a_host_name_and_tls() {
    let uplink = |address: &str, tls: &str| {
        format!(
            "{MINIMAL}[broker.uplink]\naddress = \"{address}\"\nclient_id = \"b\"\nqueue_path = \"/var/lib/q\"\n{tls}"
        )
    };
    let text = uplink("mqtt.example.com:8883", "tls = { cert = \"c.pem\", key = \"c.key\" }\n");
    let board = Board::parse(&text, Path::new("x.toml")).unwrap();
    let up = board.broker.uplink.unwrap();
    assert_eq!((up.host.as_str(), up.port), ("mqtt.example.com", 8883));
    let tls = up.tls.unwrap();
    assert_eq!(tls.ca, Path::new("/etc/ssl/certs/ca-certificates.crt"), "the system bundle by default");
    assert_eq!(tls.client_cert, Some(("c.pem".into(), "c.key".into())));

    let up = Board::parse(&uplink("[::1]:1883", ""), Path::new("x.toml")).unwrap().broker.uplink.unwrap();
    assert_eq!((up.host.as_str(), up.port, up.tls), ("::1", 1883, None));

    let line = MINIMAL.lines().count() + 2;
    for bad in ["mqtt.example.com", "host:0", "bad host:1883", ":1883", "[nope]:1"] {
        check_error(&uplink(bad, ""), line, "broker.uplink.address", "is not a host and port");
    }
    check_error(
        &uplink("h:1", "tls = { cert = \"c.pem\" }\n"),
        line + 3,
        "broker.uplink.tls",
        "needs both cert and key",
    );
}

#[test]
fn sockets_and_sessions_are_checked() {
    let socket = |mode: &str, peers: &str| {
        format!("{MINIMAL}\n[broker.sockets.ipc]\npath = \"/run/b.sock\"\nmode = \"{mode}\"\npeers = {{ {peers} }}\n")
    };
    let board = Board::parse(&socket("640", "\"1001\" = \"app\""), Path::new("x.toml")).unwrap();
    let ipc = &board.broker.sockets[0];
    assert_eq!((ipc.name.as_str(), ipc.mode, ipc.peers.clone()), ("ipc", 0o640, vec![(1001, "app".to_owned())]));
    check_error(&socket("69x", ""), 19, "broker.sockets.ipc.mode", "octal file mode");
    check_error(&socket("660", "\"root\" = \"app\""), 20, "broker.sockets.ipc.peers", "\"root\" is not a numeric uid");

    let sessions = Board::parse(MINIMAL, Path::new("x.toml")).unwrap().broker.sessions;
    assert_eq!((sessions.max_sessions, sessions.expiry_s, sessions.max_queued), (64, 86_400, 1000));
    check_error(&format!("{MINIMAL}\n[broker.sessions]\nexpiry_s = 0\n"), 18, "broker.sessions.expiry_s", "0");
}

/// Access rules are checked as schema::acl checks topic filters, so the board accepts no rule
/// that the broker would refuse as a filter. Regression: a rule longer than MQTT's 65535 bytes
/// was accepted by the board's own copy of the check.
#[test]
fn access_rules_are_checked_as_topic_filters() {
    let rule = |pattern: &str| {
        format!("{MINIMAL}[broker.users.app]\npassword_hash = \"$argon2id$x\"\npublish = [\"{pattern}\"]\n")
    };
    let line = MINIMAL.lines().count() + 3;
    let field = "broker.users.app.publish[0]";
    Board::parse(&rule("busgate/%c/+/#"), Path::new("x.toml")).unwrap();
    check_error(&rule("busgate/a+/b"), line, field, "uses a wildcard that is not a whole level");
    check_error(&rule("busgate/#/b"), line, field, "uses a wildcard that is not a whole level");
    check_error(&rule(""), line, field, "is empty");
    check_error(&rule(&"a".repeat(65_536)), line, field, "is longer than 65535 bytes");
}

#[test]
fn the_gateways_broker_socket_must_be_one_the_broker_serves() {
    let text = format!("{MINIMAL}\n[gateway]\nbroker_socket = \"/run/other.sock\"\n");
    check_error(&text, 18, "gateway.broker_socket", "/run/other.sock is none of the broker's [broker.sockets.*] paths");
    let text = format!("{text}[broker.sockets.ipc]\npath = \"/run/other.sock\"\n");
    let board = Board::parse(&text, Path::new("x.toml")).unwrap();
    assert_eq!(board.gateway.broker_socket.as_deref(), Some(Path::new("/run/other.sock")));
}
