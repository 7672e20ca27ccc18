//! An in-process CAN bus with any number of nodes, behaving like SocketCAN's loopback: a frame
//! one node sends reaches every other node (not the sender), each node applies its own
//! acceptance filters, and a node that falls behind loses the oldest frames and is told how
//! many (as `CanEvent::Overflow`).
//!
//! Faults for tests and the simulation: bus-off and error-passive (`set_state`), the interface
//! going down and coming back, and a full transmit queue.
//!
//! Nodes implement the project's [`CanPort`] (classic and FD frames) and embedded-can's
//! non-blocking `Can` trait (classic frames), so embedded-can code can drive a simulated ECU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};

use super::{BusState, CanError, CanEvent, CanFilter, CanFrame, CanPort, passes};

/// Frames a node can fall behind before it loses the oldest; about a socket's receive buffer.
pub const DEFAULT_CAPACITY: usize = 8192;

#[derive(Debug, Clone)]
struct Delivery {
    from: u64,
    frame: CanFrame,
    at: SystemTime,
}

#[derive(Debug)]
struct Shared {
    name: String,
    fd: bool,
    frames: broadcast::Sender<Delivery>,
    state: watch::Sender<BusState>,
    next_node: AtomicU64,
    transmit_full: AtomicBool,
    frames_sent: AtomicU64,
}

/// A simulated CAN bus; clones share the bus.
#[derive(Debug, Clone)]
pub struct MockCanBus {
    shared: Arc<Shared>,
}

impl MockCanBus {
    /// A bus named like its interface (`can0`); `fd` allows FD frames on it.
    pub fn new(name: &str, fd: bool) -> MockCanBus {
        MockCanBus::with_capacity(name, fd, DEFAULT_CAPACITY)
    }

    /// A bus whose nodes can fall `capacity` frames behind before losing frames.
    pub fn with_capacity(name: &str, fd: bool, capacity: usize) -> MockCanBus {
        let (frames, _) = broadcast::channel(capacity.max(1));
        let (state, _) = watch::channel(BusState::ErrorActive);
        let shared = Shared {
            name: name.to_owned(),
            fd,
            frames,
            state,
            next_node: AtomicU64::new(0),
            transmit_full: AtomicBool::new(false),
            frames_sent: AtomicU64::new(0),
        };
        MockCanBus { shared: Arc::new(shared) }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn is_fd(&self) -> bool {
        self.shared.fd
    }

    /// Connects a node, like opening a socket on the interface; fails while the interface is
    /// down.
    pub fn open(&self, filters: &[CanFilter]) -> Result<MockCanNode, CanError> {
        if *self.shared.state.borrow() == BusState::Down {
            return Err(CanError::Down(self.shared.name.clone()));
        }
        let mut state = self.shared.state.subscribe();
        state.mark_unchanged();
        Ok(MockCanNode {
            id: self.shared.next_node.fetch_add(1, Ordering::Relaxed),
            shared: self.shared.clone(),
            frames: self.shared.frames.subscribe(),
            state,
            filters: filters.to_vec(),
            local: None,
        })
    }

    /// Sets the bus state seen by every node: `BusOff` makes sends fail, `Down` closes every
    /// node and makes `open` fail, `ErrorActive` recovers.
    pub fn set_state(&self, state: BusState) {
        self.shared.state.send_replace(state);
    }

    pub fn state(&self) -> BusState {
        *self.shared.state.borrow()
    }

    /// Makes sends fail with "no buffer space" while set.
    pub fn set_transmit_full(&self, full: bool) {
        self.shared.transmit_full.store(full, Ordering::Relaxed);
    }

    /// Frames sent on the bus so far, by every node.
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::Relaxed)
    }
}

/// One node on a [`MockCanBus`].
#[derive(Debug)]
pub struct MockCanNode {
    id: u64,
    shared: Arc<Shared>,
    frames: broadcast::Receiver<Delivery>,
    state: watch::Receiver<BusState>,
    filters: Vec<CanFilter>,
    /// A frame taken by `try_recv` while looking for the next one (embedded-can path).
    local: Option<CanEvent>,
}

impl MockCanNode {
    /// Sends a frame to every other node.
    pub fn send_now(&self, frame: &CanFrame) -> Result<(), CanError> {
        self.send_at(frame, SystemTime::now())
    }

    /// Sends a frame that receivers see with reception time `at` (a replayed log keeps its
    /// timestamps).
    pub fn send_at(&self, frame: &CanFrame, at: SystemTime) -> Result<(), CanError> {
        match *self.state.borrow() {
            BusState::Down => return Err(CanError::Down(self.shared.name.clone())),
            BusState::BusOff => return Err(CanError::BusOff),
            _ => {}
        }
        if frame.is_fd() && !self.shared.fd {
            return Err(CanError::FdNotEnabled);
        }
        if self.shared.transmit_full.load(Ordering::Relaxed) {
            return Err(CanError::NoBufferSpace);
        }
        self.shared.frames_sent.fetch_add(1, Ordering::Relaxed);
        // No other node: the frame is simply unacknowledged, as on an empty bus.
        let _ = self.shared.frames.send(Delivery { from: self.id, frame: *frame, at });
        Ok(())
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<CanEvent>, CanError> {
        if let Some(event) = self.local.take() {
            return Ok(Some(event));
        }
        if self.state.has_changed().unwrap_or(true) {
            return self.state_event().map(Some);
        }
        loop {
            match self.frames.try_recv() {
                Ok(delivery) => {
                    if let Some(event) = self.accept(delivery) {
                        return Ok(Some(event));
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(lost)) => return Ok(Some(CanEvent::Overflow { lost })),
                Err(broadcast::error::TryRecvError::Closed) => return Err(CanError::Down(self.shared.name.clone())),
            }
        }
    }

    fn state_event(&mut self) -> Result<CanEvent, CanError> {
        let state = *self.state.borrow_and_update();
        if state == BusState::Down {
            return Err(CanError::Down(self.shared.name.clone()));
        }
        Ok(CanEvent::State(state))
    }

    fn accept(&self, delivery: Delivery) -> Option<CanEvent> {
        let up = self.state.borrow().is_up();
        (delivery.from != self.id && up && passes(&self.filters, &delivery.frame))
            .then_some(CanEvent::Frame { frame: delivery.frame, at: delivery.at })
    }
}

impl CanPort for MockCanNode {
    async fn recv(&mut self) -> Result<CanEvent, CanError> {
        if let Some(event) = self.local.take() {
            return Ok(event);
        }
        loop {
            if self.state.has_changed().unwrap_or(true) {
                return self.state_event();
            }
            tokio::select! {
                biased;
                changed = self.state.changed() => {
                    // `changed` marks the value seen: report it now.
                    return match changed {
                        Ok(()) => self.state_event(),
                        Err(_) => Err(CanError::Down(self.shared.name.clone())),
                    };
                }
                delivery = self.frames.recv() => match delivery {
                    Ok(delivery) => {
                        if let Some(event) = self.accept(delivery) {
                            return Ok(event);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(lost)) => return Ok(CanEvent::Overflow { lost }),
                    Err(broadcast::error::RecvError::Closed) => return Err(CanError::Down(self.shared.name.clone())),
                },
            }
        }
    }

    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanError> {
        self.send_now(frame)
    }
}

impl embedded_can::nb::Can for MockCanNode {
    type Frame = CanFrame;
    type Error = CanError;

    fn transmit(&mut self, frame: &CanFrame) -> nb::Result<Option<CanFrame>, CanError> {
        match self.send_now(frame) {
            Ok(()) => Ok(None),
            Err(CanError::NoBufferSpace) => Err(nb::Error::WouldBlock),
            Err(error) => Err(nb::Error::Other(error)),
        }
    }

    /// Returns the next classic frame; other events (state changes, overflows) are skipped.
    fn receive(&mut self) -> nb::Result<CanFrame, CanError> {
        loop {
            match self.try_recv() {
                Ok(Some(CanEvent::Frame { frame, .. })) => return Ok(frame),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(nb::Error::WouldBlock),
                Err(error) => return Err(nb::Error::Other(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32) -> CanFrame {
        CanFrame::classic(id, false, &[id as u8]).unwrap()
    }

    #[tokio::test]
    async fn frames_reach_every_other_node_but_not_the_sender() {
        let bus = MockCanBus::new("can0", false);
        let mut a = bus.open(&[]).unwrap();
        let mut b = bus.open(&[]).unwrap();
        let mut c = bus.open(&[CanFilter::exact(0x200, false)]).unwrap();
        a.send(&frame(0x100)).await.unwrap();
        a.send(&frame(0x200)).await.unwrap();
        let CanEvent::Frame { frame: got, .. } = b.recv().await.unwrap() else { panic!() };
        assert_eq!(got.id(), 0x100);
        let CanEvent::Frame { frame: got, .. } = c.recv().await.unwrap() else { panic!() };
        assert_eq!(got.id(), 0x200, "the filter drops 0x100");
        assert!(a.try_recv().unwrap().is_none(), "no echo to the sender");
    }

    #[tokio::test]
    async fn bus_off_and_interface_down_are_reported() {
        let bus = MockCanBus::new("can0", false);
        let mut a = bus.open(&[]).unwrap();
        let mut b = bus.open(&[]).unwrap();
        bus.set_state(BusState::BusOff);
        assert_eq!(b.recv().await.unwrap(), CanEvent::State(BusState::BusOff));
        assert!(matches!(a.send(&frame(1)).await, Err(CanError::BusOff)));
        // A change while a node is waiting wakes it.
        let waiting = tokio::spawn(async move {
            let event = b.recv().await.unwrap();
            (b, event)
        });
        tokio::task::yield_now().await;
        bus.set_state(BusState::ErrorPassive);
        let (mut b, event) = waiting.await.unwrap();
        assert_eq!(event, CanEvent::State(BusState::ErrorPassive));
        bus.set_state(BusState::ErrorActive);
        assert_eq!(b.recv().await.unwrap(), CanEvent::State(BusState::ErrorActive));
        a.send(&frame(1)).await.unwrap();
        assert!(matches!(b.recv().await.unwrap(), CanEvent::Frame { .. }));
        bus.set_state(BusState::Down);
        assert!(matches!(b.recv().await, Err(CanError::Down(name)) if name == "can0"));
        assert!(matches!(bus.open(&[]), Err(CanError::Down(_))));
        bus.set_state(BusState::ErrorActive);
        assert!(bus.open(&[]).is_ok());
    }

    #[tokio::test]
    async fn a_slow_node_loses_the_oldest_frames_and_is_told() {
        let bus = MockCanBus::with_capacity("can0", false, 4);
        let a = bus.open(&[]).unwrap();
        let mut b = bus.open(&[]).unwrap();
        for id in 0..10 {
            a.send_now(&frame(id)).unwrap();
        }
        assert_eq!(b.recv().await.unwrap(), CanEvent::Overflow { lost: 6 });
        let CanEvent::Frame { frame: got, .. } = b.recv().await.unwrap() else { panic!() };
        assert_eq!(got.id(), 6);
    }

    #[test]
    fn fd_frames_need_an_fd_bus_and_a_full_queue_is_reported() {
        let classic = MockCanBus::new("can0", false);
        let node = classic.open(&[]).unwrap();
        let fd = CanFrame::fd(1, false, false, &[0; 16]).unwrap();
        assert!(matches!(node.send_now(&fd), Err(CanError::FdNotEnabled)));
        classic.set_transmit_full(true);
        assert!(matches!(node.send_now(&frame(1)), Err(CanError::NoBufferSpace)));
        let fd_bus = MockCanBus::new("can1", true);
        assert!(fd_bus.open(&[]).unwrap().send_now(&fd).is_ok());
    }

    #[test]
    fn embedded_can_nodes_exchange_classic_frames() {
        use embedded_can::nb::Can;
        let bus = MockCanBus::new("can0", false);
        let mut a = bus.open(&[]).unwrap();
        let mut b = bus.open(&[]).unwrap();
        assert!(matches!(b.receive(), Err(nb::Error::WouldBlock)));
        a.transmit(&frame(0x55)).unwrap();
        assert_eq!(b.receive().unwrap().id(), 0x55);
    }
}
