//! CAN backends: SocketCAN interfaces through the socketcan crate ([`linux`]), and an
//! in-process mock bus with several nodes ([`mock`]) that can replay candump logs ([`replay`];
//! the log format is in [`log`]).
//!
//! Both carry classic and FD frames as one [`CanFrame`] type and report what happens on the bus
//! as [`CanEvent`]s: frames, bus state changes (error-active, error-passive, bus-off), bus errors
//! and lost frames. A gateway talks to either through the [`CanPort`] trait.

use std::fmt;
use std::future::Future;
use std::time::SystemTime;

pub mod linux;
pub mod log;
pub mod mock;
pub mod replay;

pub use linux::{Bitrates, LinuxCan};
pub use mock::{MockCanBus, MockCanNode};

/// The largest 11-bit identifier.
pub const MAX_STANDARD_ID: u32 = 0x7FF;
/// The largest 29-bit identifier.
pub const MAX_EXTENDED_ID: u32 = 0x1FFF_FFFF;
/// The data lengths a CAN FD frame can have.
pub const FD_LENGTHS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

/// A classic or FD data frame, or a classic remote frame. Copyable: 72 bytes, no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CanFrame {
    id: u32,
    extended: bool,
    rtr: bool,
    fd: bool,
    brs: bool,
    esi: bool,
    len: u8,
    data: [u8; 64],
}

/// Why a frame cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("identifier {id:#x} does not fit in {bits} bits; the largest is {max:#x}")]
    IdTooLarge { id: u32, bits: u8, max: u32 },
    #[error("a classic CAN frame carries at most 8 data bytes, got {0}")]
    ClassicTooLong(usize),
    #[error("a CAN FD frame carries 0 to 8, 12, 16, 20, 24, 32, 48 or 64 data bytes, got {0}")]
    FdLength(usize),
}

impl CanFrame {
    /// A classic data frame of up to 8 bytes.
    pub fn classic(id: u32, extended: bool, data: &[u8]) -> Result<CanFrame, FrameError> {
        check_id(id, extended)?;
        if data.len() > 8 {
            return Err(FrameError::ClassicTooLong(data.len()));
        }
        Ok(CanFrame::build(id, extended, false, false, data))
    }

    /// An FD data frame; `brs` switches to the data bitrate for the data phase.
    pub fn fd(id: u32, extended: bool, brs: bool, data: &[u8]) -> Result<CanFrame, FrameError> {
        check_id(id, extended)?;
        if !FD_LENGTHS.contains(&data.len()) {
            return Err(FrameError::FdLength(data.len()));
        }
        let mut frame = CanFrame::build(id, extended, false, true, data);
        frame.brs = brs;
        Ok(frame)
    }

    /// A classic remote frame asking for `dlc` bytes.
    pub fn remote(id: u32, extended: bool, dlc: u8) -> Result<CanFrame, FrameError> {
        check_id(id, extended)?;
        if dlc > 8 {
            return Err(FrameError::ClassicTooLong(usize::from(dlc)));
        }
        let mut frame = CanFrame::build(id, extended, true, false, &[]);
        frame.len = dlc;
        Ok(frame)
    }

    fn build(id: u32, extended: bool, rtr: bool, fd: bool, data: &[u8]) -> CanFrame {
        let mut bytes = [0; 64];
        bytes[..data.len()].copy_from_slice(data);
        CanFrame { id, extended, rtr, fd, brs: false, esi: false, len: data.len() as u8, data: bytes }
    }

    /// The identifier, without flags.
    pub fn id(&self) -> u32 {
        self.id
    }
    pub fn is_extended(&self) -> bool {
        self.extended
    }
    pub fn is_remote(&self) -> bool {
        self.rtr
    }
    pub fn is_fd(&self) -> bool {
        self.fd
    }
    /// Bit rate switch (FD only).
    pub fn brs(&self) -> bool {
        self.brs
    }
    /// Error state indicator of the sender (FD only).
    pub fn esi(&self) -> bool {
        self.esi
    }
    pub(crate) fn set_esi(&mut self, esi: bool) {
        self.esi = esi;
    }
    /// The data bytes (empty for a remote frame).
    pub fn data(&self) -> &[u8] {
        if self.rtr { &[] } else { &self.data[..usize::from(self.len)] }
    }
    /// The data length code: the byte count for classic frames (the requested count for remote
    /// frames), the 4-bit code for FD frames.
    pub fn dlc(&self) -> u8 {
        if self.fd { FD_LENGTHS.iter().position(|&l| l == usize::from(self.len)).unwrap_or(15) as u8 } else { self.len }
    }
}

fn check_id(id: u32, extended: bool) -> Result<(), FrameError> {
    let (bits, max) = if extended { (29, MAX_EXTENDED_ID) } else { (11, MAX_STANDARD_ID) };
    if id > max {
        return Err(FrameError::IdTooLarge { id, bits, max });
    }
    Ok(())
}

impl fmt::Debug for CanFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // candump's notation: 123#DEADBEEF, 12345678##5AA, 123#R2
        match log::to_socketcan(self) {
            Some(frame) => write!(f, "{frame:X}"),
            None => write!(f, "{:X}#{:02X?}", self.id, self.data()),
        }
    }
}

impl embedded_can::Frame for CanFrame {
    fn new(id: impl Into<embedded_can::Id>, data: &[u8]) -> Option<Self> {
        let (id, extended) = split_id(id.into());
        CanFrame::classic(id, extended, data).ok()
    }
    fn new_remote(id: impl Into<embedded_can::Id>, dlc: usize) -> Option<Self> {
        let (id, extended) = split_id(id.into());
        CanFrame::remote(id, extended, u8::try_from(dlc).ok()?).ok()
    }
    fn is_extended(&self) -> bool {
        self.extended
    }
    fn is_remote_frame(&self) -> bool {
        self.rtr
    }
    fn id(&self) -> embedded_can::Id {
        if self.extended {
            embedded_can::ExtendedId::new(self.id)
                .map_or(embedded_can::Id::Standard(embedded_can::StandardId::ZERO), Into::into)
        } else {
            embedded_can::StandardId::new(self.id as u16)
                .map_or(embedded_can::Id::Standard(embedded_can::StandardId::ZERO), Into::into)
        }
    }
    fn dlc(&self) -> usize {
        usize::from(self.len)
    }
    fn data(&self) -> &[u8] {
        CanFrame::data(self)
    }
}

fn split_id(id: embedded_can::Id) -> (u32, bool) {
    match id {
        embedded_can::Id::Standard(id) => (u32::from(id.as_raw()), false),
        embedded_can::Id::Extended(id) => (id.as_raw(), true),
    }
}

/// The fault confinement state of the interface, plus "down" for an interface that is down or
/// gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusState {
    /// Normal operation.
    ErrorActive,
    /// Error counters above 96: still active, a warning sign.
    ErrorWarning,
    /// Error counters above 127: the controller may only send passive error flags.
    ErrorPassive,
    /// Transmit error counter above 255: the controller has left the bus.
    BusOff,
    /// The interface is down or does not exist.
    Down,
}

impl BusState {
    /// The name used on the wire, e.g. `error_passive`.
    pub fn as_str(self) -> &'static str {
        match self {
            BusState::ErrorActive => "error_active",
            BusState::ErrorWarning => "error_warning",
            BusState::ErrorPassive => "error_passive",
            BusState::BusOff => "bus_off",
            BusState::Down => "down",
        }
    }

    /// Whether frames can be sent and received in this state.
    pub fn is_up(self) -> bool {
        matches!(self, BusState::ErrorActive | BusState::ErrorWarning | BusState::ErrorPassive)
    }
}

/// Something that happened on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum CanEvent {
    /// A frame from another node, with its reception time.
    Frame { frame: CanFrame, at: SystemTime },
    /// The bus state changed (from an error frame, or the controller restarted).
    State(BusState),
    /// A bus error the controller reported (no ACK, protocol violation, lost arbitration...),
    /// described for logs and counters.
    BusError(String),
    /// Frames were lost because the receiver fell behind.
    Overflow { lost: u64 },
}

/// A CAN operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CanError {
    #[error("cannot open CAN interface {interface:?}: {source}")]
    Open { interface: String, source: std::io::Error },
    #[error("CAN interface {0:?} is down or gone")]
    Down(String),
    #[error("the controller is bus-off")]
    BusOff,
    #[error("no buffer space: the transmit queue is full")]
    NoBufferSpace,
    #[error("CAN FD frames need an interface in FD mode")]
    FdNotEnabled,
    #[error("CAN I/O error: {0}")]
    Io(std::io::Error),
    #[error("cannot configure CAN interface {interface:?}: {message}")]
    Configure { interface: String, message: String },
}

impl embedded_can::Error for CanError {
    fn kind(&self) -> embedded_can::ErrorKind {
        match self {
            CanError::NoBufferSpace => embedded_can::ErrorKind::Overrun,
            _ => embedded_can::ErrorKind::Other,
        }
    }
}

/// A kernel-style acceptance filter: a frame passes when `frame_id & mask == id & mask` and
/// its identifier kind (11 or 29 bits) matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanFilter {
    pub id: u32,
    pub mask: u32,
    pub extended: bool,
}

impl CanFilter {
    /// Passes exactly one identifier.
    pub fn exact(id: u32, extended: bool) -> CanFilter {
        CanFilter { id, mask: if extended { MAX_EXTENDED_ID } else { MAX_STANDARD_ID }, extended }
    }

    pub fn matches(&self, frame: &CanFrame) -> bool {
        frame.extended == self.extended && frame.id & self.mask == self.id & self.mask
    }
}

/// Passes a frame when no filters are set or any filter matches.
pub(crate) fn passes(filters: &[CanFilter], frame: &CanFrame) -> bool {
    filters.is_empty() || filters.iter().any(|filter| filter.matches(frame))
}

/// An open CAN interface: the project's own trait, because embedded-can's traits carry classic
/// frames only. Both futures are cancel-safe, so a gateway can select over them.
pub trait CanPort: Send {
    /// Waits for the next event. An error means the interface is unusable (down, gone) and
    /// should be reopened.
    fn recv(&mut self) -> impl Future<Output = Result<CanEvent, CanError>> + Send;
    /// Queues a frame for transmission; fails at once when the queue is full or the
    /// controller is bus-off.
    fn send(&mut self, frame: &CanFrame) -> impl Future<Output = Result<(), CanError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_check_their_identifier_and_length() {
        assert!(CanFrame::classic(0x7FF, false, &[1, 2]).is_ok());
        assert_eq!(
            CanFrame::classic(0x800, false, &[]).unwrap_err().to_string(),
            "identifier 0x800 does not fit in 11 bits; the largest is 0x7ff"
        );
        assert!(CanFrame::classic(0x1FFF_FFFF, true, &[]).is_ok());
        assert_eq!(CanFrame::classic(1, false, &[0; 9]).unwrap_err(), FrameError::ClassicTooLong(9));
        assert_eq!(CanFrame::fd(1, false, true, &[0; 9]).unwrap_err(), FrameError::FdLength(9));
        let fd = CanFrame::fd(1, false, true, &[7; 64]).unwrap();
        assert_eq!((fd.dlc(), fd.data().len(), fd.brs()), (15, 64, true));
        let remote = CanFrame::remote(0x123, false, 4).unwrap();
        assert_eq!((remote.dlc(), remote.data()), (4, &[][..]));
    }

    #[test]
    fn frames_round_trip_through_candump_lines() {
        for frame in [
            CanFrame::classic(0x123, false, &[0xde, 0xad]).unwrap(),
            CanFrame::classic(0x1234_5678, true, &[]).unwrap(),
            CanFrame::fd(0x10, false, true, &[1; 12]).unwrap(),
            CanFrame::remote(0x7ff, false, 3).unwrap(),
        ] {
            let mut line = Vec::new();
            log::write_line(&mut line, 1_000_000, "can0", &frame).unwrap();
            let parsed = log::parse_line(std::str::from_utf8(&line).unwrap(), 1).unwrap();
            assert_eq!(parsed.frame(), Some(&frame), "{frame:?}");
        }
        assert_eq!(format!("{:?}", CanFrame::classic(0x123, false, &[0xde, 0xad]).unwrap()), "123#DEAD");
    }

    #[test]
    fn filters_match_like_the_kernel() {
        let frame = CanFrame::classic(0x123, false, &[]).unwrap();
        assert!(CanFilter::exact(0x123, false).matches(&frame));
        assert!(!CanFilter::exact(0x123, true).matches(&frame));
        assert!(CanFilter { id: 0x100, mask: 0x700, extended: false }.matches(&frame));
        assert!(!CanFilter { id: 0x200, mask: 0x700, extended: false }.matches(&frame));
        assert!(passes(&[], &frame));
    }

    #[test]
    fn embedded_can_frames_are_classic() {
        let id = embedded_can::StandardId::new(0x42).unwrap();
        let frame = <CanFrame as embedded_can::Frame>::new(id, &[1, 2, 3]).unwrap();
        assert_eq!(embedded_can::Frame::id(&frame), embedded_can::Id::from(id));
        assert_eq!((embedded_can::Frame::dlc(&frame), embedded_can::Frame::data(&frame)), (3, &[1, 2, 3][..]));
        assert!(<CanFrame as embedded_can::Frame>::new(id, &[0; 12]).is_none());
    }
}
