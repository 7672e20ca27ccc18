//! The bus thread: one per bus, hosting that bus's devices.
//!
//! linux-embedded-hal is blocking, so all I/O on a bus runs on its own thread and never blocks
//! the MQTT loop. The thread polls each device on its schedule, runs commands between polls,
//! and keeps each device's availability: a failing device goes offline with the reason and is
//! retried with backoff while the other devices on the bus keep running.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use backoff::Backoff;
use device::{Args, CommandSpec, Device, DeviceError, Outcome, Sample};
use tokio::sync::mpsc as async_mpsc;

/// Identifies a device: its bus's index and its index on that bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId {
    pub bus: usize,
    pub device: usize,
}

/// A device the gateway hosts, as built from the board file.
pub struct Hosted {
    pub name: String,
    pub poll_interval: Duration,
    pub device: Box<dyn Device>,
    /// Controls of the simulated chip, for a device on a mock bus; `None` on real hardware,
    /// so the `sim` topic exists only in mock mode.
    pub sim: Option<Box<dyn SimControl>>,
}

/// Fault injection and simulated inputs for one device on a mock bus, reached through the
/// device's `sim` topic. It acts on the mock bus directly (no bus I/O), so it runs on the
/// MQTT side.
pub trait SimControl: Send {
    /// The actions it accepts, validated like device commands.
    fn commands(&self) -> Vec<CommandSpec>;
    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError>;
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted").field("name", &self.name).field("poll_interval", &self.poll_interval).finish()
    }
}

/// Commands waiting for one bus thread; beyond this they are refused as `unavailable`.
pub const JOB_QUEUE: usize = 64;

/// Work for a bus thread from the MQTT side.
#[derive(Debug)]
pub enum Job {
    Command { device: usize, id: Option<String>, action: String, args: Args },
    Stop,
}

/// What a bus thread reports.
#[derive(Debug)]
pub enum BusEvent {
    Reading {
        id: DeviceId,
        samples: Vec<Sample>,
        at: SystemTime,
    },
    Online {
        id: DeviceId,
    },
    Offline {
        id: DeviceId,
        reason: String,
    },
    /// A poll or command failed (counted in health).
    Failed {
        id: DeviceId,
    },
    Reply {
        id: DeviceId,
        request: Option<String>,
        action: String,
        result: Result<Outcome, CommandFailure>,
    },
}

/// Why a command that reached the bus thread failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandFailure {
    Offline(String),
    Device(DeviceError),
}

/// Retry policy for offline devices.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min: Duration,
    pub max: Duration,
}

#[derive(Debug, PartialEq)]
enum Health {
    /// Never initialised yet.
    Starting,
    Online,
    Offline(String),
}

struct Slot {
    hosted: Hosted,
    health: Health,
    next_due: Instant,
    retry: Backoff,
}

/// The devices of one bus and their schedule. Separate from the thread so that it can be
/// driven step by step.
pub(crate) struct BusWorker {
    bus: usize,
    slots: Vec<Slot>,
    events: async_mpsc::Sender<BusEvent>,
}

impl BusWorker {
    pub(crate) fn new(
        bus: usize,
        devices: Vec<Hosted>,
        retry: RetryPolicy,
        events: async_mpsc::Sender<BusEvent>,
    ) -> Self {
        let now = Instant::now();
        let slots = devices
            .into_iter()
            .map(|hosted| Slot {
                hosted,
                health: Health::Starting,
                next_due: now,
                retry: Backoff::new(retry.min, retry.max),
            })
            .collect();
        Self { bus, slots, events }
    }

    /// Runs the thread's loop until `Job::Stop` or until the MQTT side goes away.
    pub(crate) fn spawn(mut self, name: &str) -> std::io::Result<(mpsc::SyncSender<Job>, thread::JoinHandle<()>)> {
        // Bounded, so a flood of commands faster than the bus is refused instead of queued
        // without limit.
        let (jobs, inbox) = mpsc::sync_channel(JOB_QUEUE);
        let handle = thread::Builder::new().name(format!("bus-{name}")).spawn(move || self.run(&inbox))?;
        Ok((jobs, handle))
    }

    fn run(&mut self, inbox: &mpsc::Receiver<Job>) {
        loop {
            let now = Instant::now();
            if !self.poll_due(now) {
                return;
            }
            let next = self.slots.iter().map(|s| s.next_due).min();
            let job = match next {
                Some(next) => match inbox.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match inbox.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            match job {
                Job::Stop => return,
                Job::Command { device, id, action, args } => {
                    if !self.command(device, id, action, &args) {
                        return;
                    }
                }
            }
        }
    }

    /// Sends an event; false when the MQTT side has gone away and the thread should stop.
    fn emit(&self, event: BusEvent) -> bool {
        self.events.blocking_send(event).is_ok()
    }

    /// Polls (or retries) every device that is due at `now`.
    fn poll_due(&mut self, now: Instant) -> bool {
        for index in 0..self.slots.len() {
            if self.slots[index].next_due <= now && !self.poll_one(index, now) {
                return false;
            }
        }
        true
    }

    fn poll_one(&mut self, index: usize, now: Instant) -> bool {
        let id = DeviceId { bus: self.bus, device: index };
        let slot = &mut self.slots[index];
        let result = if slot.health == Health::Online {
            slot.hosted.device.poll()
        } else {
            slot.hosted.device.init().and_then(|()| slot.hosted.device.poll())
        };
        match result {
            Ok(samples) => {
                let came_online = slot.health != Health::Online;
                slot.health = Health::Online;
                slot.retry.reset();
                // Fixed rate; after a stall, skip the missed polls instead of bursting.
                slot.next_due += slot.hosted.poll_interval;
                if slot.next_due <= now {
                    slot.next_due = now + slot.hosted.poll_interval;
                }
                if came_online && !self.emit(BusEvent::Online { id }) {
                    return false;
                }
                self.emit(BusEvent::Reading { id, samples, at: SystemTime::now() })
            }
            Err(error) => self.fail(index, &error, now),
        }
    }

    /// Marks a device offline after an error (if the error says so) and schedules its retry.
    fn fail(&mut self, index: usize, error: &DeviceError, now: Instant) -> bool {
        let id = DeviceId { bus: self.bus, device: index };
        let slot = &mut self.slots[index];
        tracing::warn!(device = %slot.hosted.name, %error, "device failed");
        if !self.emit_failed(id) {
            return false;
        }
        let slot = &mut self.slots[index];
        if !error.takes_device_offline() && slot.health == Health::Online {
            // Try again at the next poll, but never later than already scheduled.
            slot.next_due = slot.next_due.min(now + slot.hosted.poll_interval);
            return true;
        }
        let reason = error.to_string();
        let changed = slot.health != Health::Offline(reason.clone());
        slot.health = Health::Offline(reason.clone());
        slot.next_due = now + slot.retry.next_delay();
        if changed {
            return self.emit(BusEvent::Offline { id, reason });
        }
        true
    }

    fn emit_failed(&self, id: DeviceId) -> bool {
        self.emit(BusEvent::Failed { id })
    }

    fn command(&mut self, index: usize, request: Option<String>, action: String, args: &Args) -> bool {
        let id = DeviceId { bus: self.bus, device: index };
        let Some(slot) = self.slots.get_mut(index) else {
            return true;
        };
        let result = match &slot.health {
            Health::Offline(reason) => Err(CommandFailure::Offline(reason.clone())),
            Health::Starting => Err(CommandFailure::Offline("not initialised yet".into())),
            Health::Online => slot.hosted.device.command(&action, args).map_err(CommandFailure::Device),
        };
        let carried_on = match &result {
            // A bus or chip fault takes the device offline, as a failed poll would.
            Err(CommandFailure::Device(error)) if error.takes_device_offline() => {
                let error = error.clone();
                self.fail(index, &error, Instant::now())
            }
            // A refused command (not allowed, bad configuration) says nothing about the
            // device's health and must not disturb its polling; it is only counted.
            Err(CommandFailure::Device(_)) => self.emit_failed(id),
            _ => true,
        };
        carried_on && self.emit(BusEvent::Reply { id, request, action, result })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use device::{BusFault, Description, Kind, Quantity};

    use super::*;

    /// A device whose poll results a test scripts.
    struct Scripted {
        results: Arc<Mutex<Vec<Result<f64, DeviceError>>>>,
        inits: Arc<Mutex<u32>>,
    }

    impl Device for Scripted {
        fn describe(&self) -> Description {
            Description {
                model: "X",
                quantities: vec![Quantity { name: "x", unit: None, kind: Kind::Other, description: "" }],
                commands: vec![],
            }
        }
        fn init(&mut self) -> Result<(), DeviceError> {
            *self.inits.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            Ok(())
        }
        fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
            let next = self.results.lock().unwrap_or_else(|e| e.into_inner()).remove(0);
            next.map(|x| vec![Sample::new("x", x)])
        }
        fn command(&mut self, action: &str, _: &Args) -> Result<Outcome, DeviceError> {
            Err(DeviceError::UnsupportedAction(action.into()))
        }
    }

    fn nack() -> DeviceError {
        DeviceError::Bus { fault: BusFault::NoAcknowledge, detail: "nack".into() }
    }

    fn worker(results: Vec<Result<f64, DeviceError>>) -> (BusWorker, async_mpsc::Receiver<BusEvent>, Arc<Mutex<u32>>) {
        let (tx, rx) = async_mpsc::channel(100);
        let inits = Arc::new(Mutex::new(0));
        let device = Scripted { results: Arc::new(Mutex::new(results)), inits: inits.clone() };
        let hosted =
            Hosted { name: "d".into(), poll_interval: Duration::from_millis(100), device: Box::new(device), sim: None };
        let policy = RetryPolicy { min: Duration::from_millis(50), max: Duration::from_millis(400) };
        (BusWorker::new(0, vec![hosted], policy, tx), rx, inits)
    }

    fn kinds(rx: &mut async_mpsc::Receiver<BusEvent>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e {
                BusEvent::Reading { samples, .. } => format!("reading {}", samples[0].value),
                BusEvent::Online { .. } => "online".into(),
                BusEvent::Offline { reason, .. } => format!("offline {reason}"),
                BusEvent::Failed { .. } => "failed".into(),
                BusEvent::Reply { .. } => "reply".into(),
            })
            .collect()
    }

    #[test]
    fn device_goes_offline_and_comes_back() {
        let (mut worker, mut rx, inits) = worker(vec![Ok(1.0), Err(nack()), Err(nack()), Ok(2.0)]);
        let t0 = Instant::now();
        assert!(worker.poll_due(t0));
        assert_eq!(kinds(&mut rx), ["online", "reading 1"]);
        let t1 = t0 + Duration::from_millis(100);
        assert!(worker.poll_due(t1));
        assert_eq!(kinds(&mut rx), ["failed", "offline no acknowledge from the device address: nack"]);
        // Retried after the backoff (50 ms plus jitter), with init first.
        let retry_at = worker.slots[0].next_due;
        assert!(retry_at >= t1 + Duration::from_millis(50) && retry_at <= t1 + Duration::from_millis(63));
        assert!(worker.poll_due(retry_at));
        assert_eq!(kinds(&mut rx), ["failed"], "same reason: no second offline event");
        // The backoff doubles.
        let second = worker.slots[0].next_due;
        assert!(second >= retry_at + Duration::from_millis(100));
        assert!(worker.poll_due(second));
        assert_eq!(kinds(&mut rx), ["online", "reading 2"]);
        assert_eq!(*inits.lock().unwrap_or_else(|e| e.into_inner()), 3);
    }

    #[test]
    fn polls_at_a_fixed_rate_and_skips_missed_polls() {
        let (mut worker, mut rx, _) = worker(vec![Ok(1.0), Ok(2.0), Ok(3.0)]);
        let t0 = Instant::now();
        worker.slots[0].next_due = t0;
        assert!(worker.poll_due(t0));
        assert_eq!(worker.slots[0].next_due, t0 + Duration::from_millis(100));
        // Nothing is due before then.
        assert!(worker.poll_due(t0 + Duration::from_millis(99)));
        assert_eq!(kinds(&mut rx), ["online", "reading 1"]);
        // A long stall: one poll, then the schedule restarts from now.
        let late = t0 + Duration::from_millis(1000);
        assert!(worker.poll_due(late));
        assert_eq!(kinds(&mut rx), ["reading 2"]);
        assert_eq!(worker.slots[0].next_due, late + Duration::from_millis(100));
    }

    #[test]
    fn commands_to_an_offline_device_are_refused_without_bus_access() {
        let (mut worker, mut rx, _) = worker(vec![Err(nack())]);
        assert!(worker.poll_due(Instant::now()));
        kinds(&mut rx);
        assert!(worker.command(0, Some("r1".into()), "anything".into(), &Args::default()));
        match rx.try_recv() {
            Ok(BusEvent::Reply { request, result: Err(CommandFailure::Offline(reason)), .. }) => {
                assert_eq!(request.as_deref(), Some("r1"));
                assert!(reason.contains("no acknowledge"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Regression: refused commands used to push the next poll back, so a client sending them
    /// faster than the poll period stopped the device's readings.
    #[test]
    fn refused_commands_do_not_delay_polling() {
        let (mut worker, mut rx, _) = worker(vec![Ok(1.0), Ok(2.0)]);
        let t0 = Instant::now();
        assert!(worker.poll_due(t0));
        let due = worker.slots[0].next_due;
        assert!(worker.command(0, None, "nothing".into(), &Args::default()));
        assert_eq!(worker.slots[0].next_due, due);
        assert_eq!(kinds(&mut rx), ["online", "reading 1", "failed", "reply"]);
        assert_eq!(worker.slots[0].health, Health::Online);
    }

    #[test]
    fn thread_stops_when_the_mqtt_side_is_gone() {
        let (worker, rx, _) = worker(vec![Ok(1.0), Ok(2.0)]);
        drop(rx);
        let (_jobs, handle) = worker.spawn("t").unwrap_or_else(|e| panic!("{e}"));
        handle.join().unwrap_or_else(|_| panic!("bus thread panicked"));
    }
}
