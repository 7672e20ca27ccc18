//! One task per CAN interface: opens it, passes what happens on the bus to the gateway loop,
//! sends frames on command and reports each result, and reopens the interface with backoff when
//! it goes down or away. The gateway never dies with its interface.

use std::time::Duration;

use backoff::Backoff;
use buses::can::{Bitrates, CanError, CanEvent, CanFilter, CanFrame, CanPort, LinuxCan, MockCanBus, MockCanNode};
use tokio::sync::mpsc;

/// How to (re)open an interface.
#[derive(Debug, Clone)]
pub enum Opener {
    Linux { interface: String, fd: bool, filters: Vec<CanFilter>, bitrates: Option<Bitrates> },
    Mock { bus: MockCanBus, filters: Vec<CanFilter> },
}

/// An open interface.
#[derive(Debug)]
enum Port {
    Linux(LinuxCan),
    Mock(MockCanNode),
}

impl Opener {
    fn open(&self) -> Result<Port, CanError> {
        match self {
            Opener::Linux { interface, fd, filters, .. } => LinuxCan::open(interface, *fd, filters).map(Port::Linux),
            Opener::Mock { bus, filters } => bus.open(filters).map(Port::Mock),
        }
    }
}

impl Port {
    async fn recv(&mut self) -> Result<CanEvent, CanError> {
        match self {
            Port::Linux(port) => port.recv().await,
            Port::Mock(port) => port.recv().await,
        }
    }
    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanError> {
        match self {
            Port::Linux(port) => port.send(frame).await,
            Port::Mock(port) => port.send(frame).await,
        }
    }
}

/// A frame to send, with what the gateway needs to answer the command.
#[derive(Debug)]
pub struct SendJob<T> {
    pub frame: CanFrame,
    pub context: T,
}

/// What the port task reports to the gateway loop.
#[derive(Debug)]
pub enum PortEvent<T> {
    Opened,
    /// The interface could not be opened or stopped working; it is retried.
    Closed(CanError),
    Can(CanEvent),
    Sent {
        job: SendJob<T>,
        result: Result<(), CanError>,
    },
}

/// Runs the interface until the gateway loop goes away.
pub async fn run<T: Send + 'static>(
    index: usize,
    opener: Opener,
    events: mpsc::Sender<(usize, PortEvent<T>)>,
    mut jobs: mpsc::Receiver<SendJob<T>>,
    min: Duration,
    max: Duration,
) {
    let mut backoff = Backoff::new(min, max);
    let mut configure_warned = false;
    loop {
        if let Opener::Linux { interface, bitrates: Some(bitrates), .. } = &opener {
            match buses::can::linux::configure(interface, *bitrates) {
                Ok(true) => tracing::info!(interface, ?bitrates, "bitrates set"),
                Ok(false) => {}
                // Not fatal: the interface may be configured by the system (ip link, networkd).
                Err(error) if !configure_warned => {
                    tracing::warn!(%error, "running with the interface's own bitrates");
                    configure_warned = true;
                }
                Err(_) => {}
            }
        }
        let error = match opener.open() {
            Ok(mut port) => {
                if events.send((index, PortEvent::Opened)).await.is_err() {
                    return;
                }
                backoff.reset();
                loop {
                    tokio::select! {
                        event = port.recv() => match event {
                            Ok(event) => {
                                if events.send((index, PortEvent::Can(event))).await.is_err() {
                                    return;
                                }
                            }
                            Err(error) => break error,
                        },
                        job = jobs.recv() => {
                            let Some(job) = job else { return };
                            let result = port.send(&job.frame).await;
                            if events.send((index, PortEvent::Sent { job, result })).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Err(error) => error,
        };
        if events.send((index, PortEvent::Closed(error))).await.is_err() {
            return;
        }
        // Closed: commands fail at once until the interface is back.
        let retry = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = &mut retry => break,
                job = jobs.recv() => {
                    let Some(job) = job else { return };
                    let result = Err(match &opener {
                        Opener::Linux { interface, .. } => CanError::Down(interface.clone()),
                        Opener::Mock { bus, .. } => CanError::Down(bus.name().to_owned()),
                    });
                    if events.send((index, PortEvent::Sent { job, result })).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
