//! The SocketCAN backend on a real kernel: each test runs itself in a qemu VM booting Debian's
//! kernel with vcan interfaces (see `test_support::vm`); skipped without qemu unless
//! BUSGATE_REQUIRE_VM is set, as in CI.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::future::Future;
use std::time::{Duration, SystemTime};

use buses::can::{CanError, CanEvent, CanFilter, CanFrame, CanPort, LinuxCan};
use test_support::TIMEOUT;
use test_support::vm::{self, VmSetup};

/// Runs `body` in a tokio runtime inside a VM where vcan0 is up in FD mode.
fn on_vcan<F: Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    let setup = VmSetup { vcan: &["vcan0"], vcan_fd: true, ..VmSetup::default() };
    vm::run_self_test(name, &setup, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { tokio::time::timeout(TIMEOUT, body()).await.expect("the test timed out") });
    });
}

async fn next_frame(port: &mut LinuxCan) -> (CanFrame, SystemTime) {
    loop {
        if let CanEvent::Frame { frame, at } = port.recv().await.unwrap() {
            return (frame, at);
        }
    }
}

#[test]
fn socketcan_frames_filters_timestamps_and_a_vanishing_interface() {
    on_vcan("socketcan_frames_filters_timestamps_and_a_vanishing_interface", || async {
        // vcan has no bit timing: the board's bitrates leave it alone.
        let bitrates = buses::can::Bitrates { bitrate: 500_000, data_bitrate: Some(2_000_000) };
        assert!(!buses::can::linux::configure("vcan0", bitrates).unwrap());
        assert!(buses::can::linux::configure("nosuch0", bitrates).unwrap_err().to_string().contains("nosuch0"));

        let mut all = LinuxCan::open("vcan0", true, &[]).unwrap();
        let mut filtered = LinuxCan::open("vcan0", true, &[CanFilter::exact(0x200, false)]).unwrap();
        let mut sender = LinuxCan::open("vcan0", true, &[]).unwrap();
        let classic = CanFrame::classic(0x201, false, &[1, 2, 3]).unwrap();
        let extended = CanFrame::classic(0x1234_5678, true, &[]).unwrap();
        let fd = CanFrame::fd(0x200, false, true, &[7; 48]).unwrap();
        let remote = CanFrame::remote(0x123, false, 4).unwrap();
        let before = SystemTime::now() - Duration::from_secs(1);
        for frame in [&classic, &extended, &fd, &remote] {
            sender.send(frame).await.unwrap();
        }
        for expected in [classic, extended, fd, remote] {
            let (got, at) = next_frame(&mut all).await;
            assert_eq!(got, expected);
            assert!(at > before, "kernel reception time");
        }
        // The kernel filter: only 0x200 (the FD frame) passes, not the 29-bit frame.
        assert_eq!(next_frame(&mut filtered).await.0, fd);

        // A classic-only port refuses FD frames itself.
        let mut classic_only = LinuxCan::open("vcan0", false, &[]).unwrap();
        assert!(matches!(classic_only.send(&fd).await, Err(CanError::FdNotEnabled)));

        // Down: the kernel only flags an error on the socket; a waiting reader must see it.
        vm::guest_command(&["ip", "link", "set", "vcan0", "down"]);
        assert!(matches!(all.recv().await, Err(CanError::Down(_))), "an interface going down is reported");
        // An interface that is down cannot be opened.
        assert!(matches!(LinuxCan::open("vcan0", true, &[]), Err(CanError::Down(_))));
        vm::guest_command(&["ip", "link", "set", "vcan0", "up"]);
        let mut all = LinuxCan::open("vcan0", true, &[]).unwrap();
        vm::guest_command(&["ip", "link", "del", "vcan0"]);
        assert!(matches!(all.recv().await, Err(CanError::Down(_))), "a removed interface is down");
        assert!(matches!(LinuxCan::open("vcan0", true, &[]), Err(CanError::Down(_) | CanError::Open { .. })));
    });
}

#[test]
fn socketcan_counts_frames_the_kernel_dropped_for_a_slow_reader() {
    on_vcan("socketcan_counts_frames_the_kernel_dropped_for_a_slow_reader", || async {
        let mut slow = LinuxCan::open("vcan0", false, &[]).unwrap();
        let mut sender = LinuxCan::open("vcan0", false, &[]).unwrap();
        const SENT: u32 = 5_000;
        for i in 0..SENT {
            let frame = CanFrame::classic(0x100, false, &i.to_le_bytes()).unwrap();
            // The sender's own queue may fill up: wait a moment and go on.
            while let Err(CanError::NoBufferSpace) = sender.send(&frame).await {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Nothing read meanwhile: the receive queue overflowed and the kernel counted the drops.
        // The count arrives with the next frame queued, so a marker frame follows once the
        // queue has been read empty.
        let (mut received, mut lost) = (0u64, 0u64);
        let count = |event: CanEvent, received: &mut u64, lost: &mut u64| match event {
            CanEvent::Frame { frame, .. } => *received += u64::from(frame.id() == 0x100),
            CanEvent::Overflow { lost: n } => *lost += n,
            other => panic!("unexpected {other:?}"),
        };
        while let Ok(event) = tokio::time::timeout(Duration::from_millis(500), slow.recv()).await {
            count(event.unwrap(), &mut received, &mut lost);
        }
        sender.send(&CanFrame::classic(0x101, false, &[]).unwrap()).await.unwrap();
        loop {
            let event = slow.recv().await.unwrap();
            let marker = matches!(&event, CanEvent::Frame { frame, .. } if frame.id() == 0x101);
            count(event, &mut received, &mut lost);
            if marker {
                break;
            }
        }
        assert!(lost > 0, "received {received}, lost {lost}");
        assert_eq!(received + lost, u64::from(SENT));
    });
}
