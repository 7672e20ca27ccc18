//! SocketCAN interfaces through the socketcan crate's tokio sockets.
//!
//! The socket is always opened in FD mode (classic frames arrive unchanged); FD frames are only
//! sent when the board says the interface is in FD mode. Kernel filters are built from the
//! configured identifiers, and error frames are enabled and decoded into bus state changes
//! (error-warning, error-passive, bus-off, restarted), controller overflows and bus errors.
//!
//! Frames are read with `recvmsg` (through nix) rather than socketcan's reader, to get the
//! ancillary data with them: the kernel's reception time (`SO_TIMESTAMPNS`) and the socket's
//! drop counter (`SO_RXQ_OVFL`), which says how many frames the kernel dropped because this
//! socket's receive queue was full. Overflows the controller reports in error frames are
//! counted too.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::libc;

use socketcan::errors::{ControllerProblems, ErrorCause};
use socketcan::{Socket, SocketOptions};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{BusState, CanError, CanEvent, CanFilter, CanFrame, CanPort};

const CAN_EFF_FLAG: u32 = 0x8000_0000;

/// An open SocketCAN interface, e.g. `can0`.
///
/// The socket is registered with tokio for readability *and* errors: when the interface goes
/// down the kernel only flags an error on the socket (ENETDOWN), which a reader waiting for
/// readability alone never sees (socketcan's own tokio socket waits like that).
pub struct LinuxCan {
    interface: String,
    socket: AsyncFd<socketcan::CanFdSocket>,
    fd: bool,
    /// Events decoded from one error frame that have not been returned yet.
    pending: VecDeque<CanEvent>,
    /// The socket's drop counter at the last read.
    dropped: u32,
}

impl std::fmt::Debug for LinuxCan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxCan").field("interface", &self.interface).field("fd", &self.fd).finish()
    }
}

/// The bit timing a board asks of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitrates {
    pub bitrate: u32,
    /// FD data phase; `None` for classic CAN.
    pub data_bitrate: Option<u32>,
}

/// Sets the interface's bitrates over netlink when they differ from what it runs at (taking it
/// down and up again); returns whether it changed anything. Needs `CAP_NET_ADMIN`; virtual
/// interfaces (vcan) have no bit timing and are left alone.
pub fn configure(interface: &str, wanted: Bitrates) -> Result<bool, CanError> {
    use socketcan::{CanCtrlMode, CanInterface};
    let failed = |what: &str, error: socketcan::Error| CanError::Configure {
        interface: interface.to_owned(),
        message: format!("{what}: {error}"),
    };
    let iface = CanInterface::open(interface).map_err(|e| failed("opening over netlink", e))?;
    let current = iface.bit_rate().map_err(|e| failed("reading the bitrate", e))?;
    let Some(current) = current else { return Ok(false) };
    let current_data = iface.data_bit_timing().ok().flatten().map(|t| t.bitrate).filter(|&b| b > 0);
    if current == wanted.bitrate && (wanted.data_bitrate.is_none() || current_data == wanted.data_bitrate) {
        return Ok(false);
    }
    iface.bring_down().map_err(|e| failed("taking the interface down", e))?;
    iface.set_bitrate(wanted.bitrate, None).map_err(|e| failed("setting the bitrate", e))?;
    if let Some(data) = wanted.data_bitrate {
        iface.set_ctrlmode(CanCtrlMode::Fd, true).map_err(|e| failed("enabling FD", e))?;
        iface.set_data_bitrate(data, None).map_err(|e| failed("setting the data bitrate", e))?;
    }
    iface.bring_up().map_err(|e| failed("bringing the interface up", e))?;
    Ok(true)
}

impl LinuxCan {
    /// Opens `interface`; only frames passing `filters` are received (all when empty).
    /// Must be called inside a tokio runtime.
    pub fn open(interface: &str, fd: bool, filters: &[CanFilter]) -> Result<LinuxCan, CanError> {
        let open_error = |source: io::Error| {
            if is_down(&source) {
                CanError::Down(interface.to_owned())
            } else {
                CanError::Open { interface: interface.to_owned(), source }
            }
        };
        let socket = socketcan::CanFdSocket::open(interface).map_err(open_error)?;
        socket.set_nonblocking(true).map_err(open_error)?;
        if !filters.is_empty() {
            let kernel: Vec<socketcan::CanFilter> = filters.iter().map(kernel_filter).collect();
            socket.set_filters(&kernel).map_err(open_error)?;
        }
        socket.set_error_filter_accept_all().map_err(open_error)?;
        // Reception times come from the kernel (SO_TIMESTAMPNS), as candump's do.
        socket.set_recv_timestamp(true).map_err(open_error)?;
        socket.set_socket_option_int(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).map_err(open_error)?;
        // Binding to an interface that is down succeeds but flags ENETDOWN on the socket: the
        // interface is not usable yet.
        let pending = nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::SocketError)
            .map_err(|errno| open_error(io::Error::from(errno)))?;
        if pending != 0 {
            return Err(open_error(io::Error::from_raw_os_error(pending)));
        }
        // Deprecated in tokio 1.54 because an arbitrary `AsRawFd` might hand out a file
        // descriptor it does not own; the socket owns its descriptor for its whole life, and the
        // sound replacement is an `unsafe fn`, which this workspace does not allow.
        #[allow(deprecated)]
        let socket = AsyncFd::with_interest(socket, Interest::READABLE | Interest::ERROR).map_err(open_error)?;
        Ok(LinuxCan { interface: interface.to_owned(), socket, fd, pending: VecDeque::new(), dropped: 0 })
    }

    fn io_error(&self, error: io::Error) -> CanError {
        if is_down(&error) { CanError::Down(self.interface.clone()) } else { CanError::Io(error) }
    }
}

/// The kernel filter for one configured filter: the EFF flag is part of id and mask, so an
/// 11-bit filter never passes a 29-bit frame and the reverse; remote frames pass too.
fn kernel_filter(filter: &CanFilter) -> socketcan::CanFilter {
    let flag = if filter.extended { CAN_EFF_FLAG } else { 0 };
    socketcan::CanFilter::new(filter.id | flag, filter.mask | CAN_EFF_FLAG)
}

fn is_down(error: &io::Error) -> bool {
    // ENETDOWN 100, ENODEV 19, ENXIO 6: the interface is down or has gone away.
    matches!(error.raw_os_error(), Some(100 | 19 | 6))
}

const CAN_EFF_MASK: u32 = 0x1FFF_FFFF;
const CAN_SFF_MASK: u32 = 0x7FF;
const CAN_ERR_FLAG: u32 = 0x2000_0000;
const CAN_RTR_FLAG: u32 = 0x4000_0000;
/// `sizeof(struct canfd_frame)`: a read of this size is an FD frame, of 16 a classic one.
const CANFD_MTU: usize = 72;
const CANFD_BRS: u8 = 0x01;
const CANFD_ESI: u8 = 0x02;

/// One read from the socket: the bytes of a `can_frame` or `canfd_frame` and the ancillary data.
struct Read {
    bytes: [u8; CANFD_MTU],
    len: usize,
    at: Option<SystemTime>,
    dropped: Option<u32>,
}

fn read(fd: std::os::fd::RawFd) -> io::Result<Read> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut bytes = [0u8; CANFD_MTU];
    let mut iov = [io::IoSliceMut::new(&mut bytes)];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec, u32);
    let message = recvmsg::<()>(fd, &mut iov, Some(&mut control), MsgFlags::empty()).map_err(io::Error::from)?;
    let len = message.bytes;
    let (mut at, mut dropped) = (None, None);
    for control in message.cmsgs().map_err(io::Error::from)? {
        match control {
            ControlMessageOwned::ScmTimestampns(time) => {
                let since_epoch = Duration::new(time.tv_sec().max(0) as u64, time.tv_nsec().max(0) as u32);
                at = Some(UNIX_EPOCH + since_epoch);
            }
            ControlMessageOwned::RxqOvfl(count) => dropped = Some(count),
            _ => {}
        }
    }
    Ok(Read { bytes, len, at, dropped })
}

/// Decodes the bytes of a `can_frame` (16 bytes) or `canfd_frame` (72): a frame, or the events
/// of an error frame.
fn decode(bytes: &[u8; CANFD_MTU], len: usize) -> Result<CanFrame, Vec<CanEvent>> {
    let can_id = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let length = usize::from(bytes[4]);
    if can_id & CAN_ERR_FLAG != 0 {
        return match socketcan::CanErrorFrame::new_error(can_id, &bytes[8..16]) {
            Ok(frame) => Err(error_events(&frame.into_error())),
            Err(error) => Err(vec![CanEvent::BusError(format!("unreadable error frame: {error}"))]),
        };
    }
    let extended = can_id & CAN_EFF_FLAG != 0;
    let id = can_id & if extended { CAN_EFF_MASK } else { CAN_SFF_MASK };
    let built = if len == CANFD_MTU {
        let flags = bytes[5];
        CanFrame::fd(id, extended, flags & CANFD_BRS != 0, &bytes[8..8 + length.min(64)]).map(|mut frame| {
            frame.set_esi(flags & CANFD_ESI != 0);
            frame
        })
    } else if can_id & CAN_RTR_FLAG != 0 {
        CanFrame::remote(id, extended, length.min(8) as u8)
    } else {
        CanFrame::classic(id, extended, &bytes[8..8 + length.min(8)])
    };
    // The kernel only hands out well-formed frames.
    built.map_err(|error| vec![CanEvent::BusError(format!("malformed frame from the kernel: {error}"))])
}

/// What an error frame says, as events: state changes first, then overflows and bus errors.
fn error_events(error: &socketcan::errors::CanError) -> Vec<CanEvent> {
    let mut events = Vec::new();
    for cause in error.causes() {
        match cause {
            ErrorCause::BusOff => events.push(CanEvent::State(BusState::BusOff)),
            ErrorCause::Restarted => events.push(CanEvent::State(BusState::ErrorActive)),
            ErrorCause::Controller(problems) => {
                if problems.intersects(ControllerProblems::RX_PASSIVE | ControllerProblems::TX_PASSIVE) {
                    events.push(CanEvent::State(BusState::ErrorPassive));
                } else if problems.intersects(ControllerProblems::RX_WARNING | ControllerProblems::TX_WARNING) {
                    events.push(CanEvent::State(BusState::ErrorWarning));
                } else if problems.contains(ControllerProblems::ACTIVE) {
                    events.push(CanEvent::State(BusState::ErrorActive));
                }
                if problems.contains(ControllerProblems::RX_OVERFLOW) {
                    events.push(CanEvent::Overflow { lost: 1 });
                }
                if problems.contains(ControllerProblems::TX_OVERFLOW) {
                    events.push(CanEvent::BusError("controller transmit buffer overflow".into()));
                }
            }
            other => events.push(CanEvent::BusError(other.to_string())),
        }
    }
    events
}

impl CanPort for LinuxCan {
    async fn recv(&mut self) -> Result<CanEvent, CanError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let result = loop {
                let mut ready = match self.socket.ready(Interest::READABLE | Interest::ERROR).await {
                    Ok(ready) => ready,
                    Err(error) => return Err(self.io_error(error)),
                };
                // An error flagged on the socket (interface down) is what the read returns.
                match ready.try_io(|socket| read(socket.get_ref().as_raw_fd())) {
                    Ok(result) => break result,
                    Err(_would_block) => continue,
                }
            };
            let read = match result {
                Ok(read) => read,
                Err(error) => return Err(self.io_error(error)),
            };
            if let Some(dropped) = read.dropped
                && dropped != self.dropped
            {
                let lost = dropped.wrapping_sub(self.dropped);
                self.dropped = dropped;
                self.pending.push_back(CanEvent::Overflow { lost: u64::from(lost) });
            }
            match decode(&read.bytes, read.len) {
                Ok(frame) => {
                    let event = CanEvent::Frame { frame, at: read.at.unwrap_or_else(SystemTime::now) };
                    // A loss is reported before the frame that follows it.
                    if self.pending.is_empty() {
                        return Ok(event);
                    }
                    self.pending.push_back(event);
                }
                Err(events) => self.pending.extend(events),
            }
        }
    }

    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanError> {
        if frame.is_fd() && !self.fd {
            return Err(CanError::FdNotEnabled);
        }
        let frame = super::log::to_socketcan(frame)
            .ok_or_else(|| CanError::Io(io::Error::other("frame rejected by socketcan")))?;
        match self.socket.get_ref().write_frame(&frame) {
            Ok(()) => Ok(()),
            // ENOBUFS 105: the interface's transmit queue is full.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock || error.raw_os_error() == Some(105) => {
                Err(CanError::NoBufferSpace)
            }
            Err(error) => Err(self.io_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_become_state_changes_and_overflows() {
        let passive = socketcan::errors::CanError::new(ErrorCause::Controller(
            ControllerProblems::RX_PASSIVE | ControllerProblems::RX_OVERFLOW,
        ));
        assert_eq!(
            error_events(&passive),
            vec![CanEvent::State(BusState::ErrorPassive), CanEvent::Overflow { lost: 1 }]
        );
        let off = socketcan::errors::CanError::new(ErrorCause::BusOff);
        assert_eq!(error_events(&off), vec![CanEvent::State(BusState::BusOff)]);
        let restarted = socketcan::errors::CanError::new(ErrorCause::Restarted);
        assert_eq!(error_events(&restarted), vec![CanEvent::State(BusState::ErrorActive)]);
        let noack = socketcan::errors::CanError::new(ErrorCause::NoAck);
        assert!(matches!(&error_events(&noack)[..], [CanEvent::BusError(_)]));
    }

    fn raw(can_id: u32, len: u8, flags: u8, data: &[u8]) -> [u8; CANFD_MTU] {
        let mut bytes = [0u8; CANFD_MTU];
        bytes[..4].copy_from_slice(&can_id.to_ne_bytes());
        bytes[4] = len;
        bytes[5] = flags;
        bytes[8..8 + data.len()].copy_from_slice(data);
        bytes
    }

    #[test]
    fn kernel_frames_decode() {
        let classic = decode(&raw(0x123, 2, 0, &[1, 2]), 16).unwrap();
        assert_eq!(classic, CanFrame::classic(0x123, false, &[1, 2]).unwrap());
        let extended = decode(&raw(0x1234_5678 | CAN_EFF_FLAG, 0, 0, &[]), 16).unwrap();
        assert_eq!(extended, CanFrame::classic(0x1234_5678, true, &[]).unwrap());
        let remote = decode(&raw(0x7FF | CAN_RTR_FLAG, 3, 0, &[]), 16).unwrap();
        assert_eq!(remote, CanFrame::remote(0x7FF, false, 3).unwrap());
        let fd = decode(&raw(0x10, 12, CANFD_BRS | CANFD_ESI, &[9; 12]), CANFD_MTU).unwrap();
        assert!(fd.is_fd() && fd.brs() && fd.esi() && fd.data() == [9; 12]);
        // An error frame: controller problem byte 1 = RX passive (0x10).
        let error = decode(&raw(CAN_ERR_FLAG | 0x04, 8, 0, &[0, 0x10, 0, 0, 0, 0, 0, 0]), 16).unwrap_err();
        assert_eq!(error, vec![CanEvent::State(BusState::ErrorPassive)]);
    }

    #[test]
    fn a_missing_interface_is_reported_by_name() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = runtime.enter();
        let error = LinuxCan::open("nosuchcan9", false, &[]).unwrap_err().to_string();
        assert!(error.contains("nosuchcan9"), "{error}");
    }
}
