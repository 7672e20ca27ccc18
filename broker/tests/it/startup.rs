//! Starting and stopping: a busy port, a bad board file, signals.

use test_support::{broker_board, free_port, temp_dir};

use crate::Spawned;

#[test]
fn a_busy_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = temp_dir("broker-busy");
    let board = dir.join("test.toml");
    std::fs::write(&board, broker_board(address.port(), "")).unwrap();

    let (status, stderr) = Spawned::new(&["--board", board.to_str().unwrap(), "--journal", "off"]).wait_exit();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
    assert!(!stderr.contains(broker::READY), "{stderr}");
}

#[test]
fn a_bad_board_file_is_an_error_naming_it() {
    let dir = temp_dir("broker-bad-board");
    let board = dir.join("bad.toml");
    std::fs::write(&board, "[board]\nname = \"Bad Name\"\ntarget = \"x86_64-unknown-linux-gnu\"\n").unwrap();
    let (status, stderr) = Spawned::new(&["--board", board.to_str().unwrap()]).wait_exit();
    assert!(!status.success());
    assert!(stderr.contains("bad.toml:2: board.name"), "{stderr}");
}

#[test]
fn listen_overrides_the_board_and_sigint_stops_cleanly() {
    let dir = temp_dir("broker-listen");
    let board = dir.join("test.toml");
    // The board's own port is never used.
    std::fs::write(&board, broker_board(1, "")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut broker = Spawned::new(&["--board", board.to_str().unwrap(), "--journal", "off", "--listen", &listen]);
    assert!(broker.wait_line(&format!("{}: board=test listeners=cli@{listen} journal=off", broker::READY)));
    std::net::TcpStream::connect(&listen).unwrap();

    broker.signal("-INT");
    let (status, stderr) = broker.wait_exit();
    assert!(status.success(), "{status}\n{stderr}");
}

#[test]
fn sigterm_stops_cleanly_and_prints_ready_once() {
    let dir = temp_dir("broker-term");
    let board = dir.join("test.toml");
    std::fs::write(&board, broker_board(free_port(), "")).unwrap();
    let mut broker = Spawned::new(&["--board", board.to_str().unwrap(), "--journal", "stdout"]);
    assert!(broker.wait_line(broker::READY));
    broker.signal("-TERM");
    let (status, stderr) = broker.wait_exit();
    assert!(status.success(), "{status}\n{stderr}");
    assert_eq!(stderr.matches(broker::READY).count(), 1, "{stderr}");
}
