//! SocketCAN on a real kernel: the test boots a qemu VM (see `test_support::vm`) with a vcan
//! interface and runs itself in there, since CI containers have no CAN. Without qemu and a
//! kernel it says so and passes, unless BUSGATE_REQUIRE_VM is set, as in CI.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::time::Instant;

use socketcan::{
    CanAnyFrame, CanDataFrame, CanFdFrame, CanFdSocket, CanFilter, CanSocket, EmbeddedFrame, Frame, Socket,
    SocketOptions, StandardId,
};
use test_support::TIMEOUT;
use test_support::vm::{self, VmSetup};

fn id(raw: u16) -> StandardId {
    StandardId::new(raw).unwrap()
}

/// Opens an FD socket on `interface` whose reads give up after [`TIMEOUT`].
fn fd_socket(interface: &str) -> CanFdSocket {
    let socket = CanFdSocket::open(interface).unwrap_or_else(|e| panic!("opening {interface}: {e}"));
    socket.set_read_timeout(TIMEOUT).unwrap();
    socket
}

#[test]
fn vcan_frames_filters_and_removal() {
    let setup = VmSetup { vcan: &["vcan0"], vcan_fd: true, ..VmSetup::default() };
    vm::run_self_test("vcan_frames_filters_and_removal", &setup, || {
        let sender = fd_socket("vcan0");
        let receiver = fd_socket("vcan0");
        let filtered = CanSocket::open("vcan0").unwrap();
        filtered.set_read_timeout(TIMEOUT).unwrap();
        filtered.set_filters(&[CanFilter::new(0x200, 0x7ff)]).unwrap();

        // A classic frame goes from one socket to the other.
        let classic = CanDataFrame::new(id(0x123), &[1, 2, 3]).unwrap();
        sender.write_frame(&classic).unwrap();
        match receiver.read_frame().unwrap() {
            CanAnyFrame::Normal(frame) => {
                assert_eq!((frame.raw_id(), frame.data()), (0x123, &[1, 2, 3][..]));
            }
            other => panic!("expected the classic frame, got {other:?}"),
        }

        // So does an FD frame with more than 8 bytes (the interface has the FD MTU).
        let payload: Vec<u8> = (0..48).collect();
        let fd = CanFdFrame::new(id(0x124), &payload).unwrap();
        sender.write_frame(&fd).unwrap();
        match receiver.read_frame().unwrap() {
            CanAnyFrame::Fd(frame) => assert_eq!((frame.raw_id(), frame.data()), (0x124, &payload[..])),
            other => panic!("expected the FD frame, got {other:?}"),
        }

        // The kernel filter lets only 0x200 through: frames are delivered in order, so had
        // 0x201 passed (or the earlier frames), it would be read first.
        sender.write_frame(&CanDataFrame::new(id(0x201), &[1]).unwrap()).unwrap();
        sender.write_frame(&CanDataFrame::new(id(0x200), &[2]).unwrap()).unwrap();
        let passed = filtered.read_frame().unwrap();
        assert_eq!((passed.raw_id(), passed.data()), (0x200, &[2][..]));

        // A read blocked on an interface that goes away fails instead of hanging: the kernel
        // reports ENETDOWN (the interface went down first) or ENODEV (it was unregistered).
        // The socket is opened after the last frame was sent, so nothing is queued for it.
        let idle = fd_socket("vcan0");
        let reader = std::thread::spawn(move || {
            let started = Instant::now();
            (idle.read_frame().map(|frame| format!("{frame:?}")), started.elapsed())
        });
        vm::guest_command(&["ip", "link", "del", "vcan0"]);
        let (read, waited) = reader.join().unwrap();
        let error = read.expect_err("reading from a removed interface must fail, not return a frame");
        assert!(matches!(error.raw_os_error(), Some(libc_errno::ENETDOWN | libc_errno::ENODEV)), "{error:?}");
        assert!(waited < TIMEOUT, "the read waited for its timeout ({waited:?}) instead of failing");
        // Writing fails too.
        assert!(sender.write_frame(&classic).is_err(), "writing to a removed interface must fail");
    });
}

/// Linux error numbers (the same on every architecture busgate targets).
mod libc_errno {
    pub const ENODEV: i32 = 19;
    pub const ENETDOWN: i32 = 100;
}
