//! Under systemd (`Type=notify`), the gateway program says when it is ready, feeds the watchdog
//! while its loop runs, and says when it stops: the test binds the notification socket itself.

use std::os::unix::net::UnixDatagram;
use std::process::Command;

use test_support::{Broker, Process, TIMEOUT};

/// The next notification the gateway sends.
fn next(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 512];
    let length = socket.recv(&mut buffer).expect("a notification within the timeout");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[test]
fn the_gateway_tells_systemd_it_is_ready_feeds_the_watchdog_and_says_it_stops() {
    let broker = Broker::start();
    let dir = test_support::temp_dir("systemd");
    let board = dir.join("board.toml");
    std::fs::write(&board, crate::board_text(broker.address())).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_i2c-gateway"));
    command
        .args(["--mock", "--still", "--board"])
        .arg(&board)
        .env("NOTIFY_SOCKET", &socket_path)
        // A watchdog of 200 ms: fed every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "info");
    let gateway = Process::start(command, "i2c-gateway", "gateway started");
    assert_eq!(next(&socket), "READY=1\n");
    assert_eq!(next(&socket), "WATCHDOG=1\n");
    assert_eq!(next(&socket), "WATCHDOG=1\n");
    assert!(gateway.terminate().success());
    let mut last = next(&socket);
    while last == "WATCHDOG=1\n" {
        last = next(&socket);
    }
    assert_eq!(last, "STOPPING=1\n");
    std::fs::remove_dir_all(dir).unwrap();
}
