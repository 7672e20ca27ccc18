//! The CAN gateway loop, driven by the runtime's shell: it owns every bus's state, takes what
//! the interface tasks (`port.rs`) report (frames, bus state, lost frames, send results) and
//! publishes each bus's availability and counters. Frames go on to `publish.rs`, commands to
//! `command.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::SystemTime;

use board::can::CanBus;
use buses::can::replay::Recorder;
use buses::can::{BusState, CanEvent, CanFrame, MockCanBus};
use bytes::Bytes;
use runtime::Settings;
use runtime::shell::{Devices, Loop, Shell};
use schema::can::{BusStateName, CanBusState, CanTopics};
use schema::payload::Payload;
use schema::topic::DeviceTopics;
use schema::{Availability, Online, Version};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::ReplyContext;
use crate::decoder::Decoder;
use crate::policy::Tracker;
use crate::port::{self, Opener, PortEvent, SendJob};
use crate::publish::{Key, Publisher, Slot};
use crate::sim;

/// One CAN bus, ready to run.
#[derive(Debug)]
pub struct BusPlan {
    pub name: String,
    pub can: CanBus,
    pub decoder: Decoder,
    pub opener: Opener,
    /// The mock bus, for the simulation controls.
    pub mock: Option<MockCanBus>,
}

/// Run-time options from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Write every received frame to a candump log (one file per bus: `{path}` for one bus,
    /// `{stem}-{bus}.log` beside it for several).
    pub record: Option<PathBuf>,
    /// Simulated ECUs hold their values still (counters still count), so tests can assert
    /// exact values.
    pub still: bool,
}

/// One bus's state in the loop.
pub(crate) struct Bus {
    pub name: String,
    pub can: CanBus,
    pub decoder: Decoder,
    pub topics: CanTopics,
    pub bus_topics: DeviceTopics,
    /// The published slot of each DBC message, by message index.
    pub messages: Vec<Slot>,
    /// DBC message indexes by name, for commands.
    pub by_name: HashMap<String, usize>,
    /// The published slots of raw identifiers, made on their first frame.
    pub raw: HashMap<u32, Slot>,
    /// Set once the warning about too many raw identifiers was logged.
    pub raw_full_warned: bool,
    pub state: BusState,
    pub opened_before: bool,
    /// What the bus counts, kept as the payload of its `state` topic (time and state are set
    /// when it is published).
    pub counters: CanBusState,
    /// The interface task's send queue, bounded so a flood of commands is refused.
    pub jobs: mpsc::Sender<SendJob<ReplyContext>>,
    pub mock: Option<MockCanBus>,
    pub recorder: Option<Recorder<BufWriter<File>>>,
}

/// The CAN gateway's loop: every bus's decoding, publishing and command state.
pub struct CanLoop {
    board: String,
    pub(crate) buses: Vec<Bus>,
    /// What the interface tasks report, tagged with the bus index.
    events: mpsc::Receiver<(usize, PortEvent<ReplyContext>)>,
    /// The interface tasks and the simulations of mock buses, aborted at stop.
    tasks: Vec<JoinHandle<()>>,
    /// Deferred publications and the buffers reused across frames.
    publisher: Publisher,
}

/// What the CAN loop waits for besides MQTT.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "frames move by value; boxing would allocate per frame")]
pub enum Event {
    Port(usize, PortEvent<ReplyContext>),
    /// The soonest deferred publication is due.
    Deadline,
}

impl std::fmt::Debug for CanLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanLoop").field("buses", &self.buses.len()).finish()
    }
}

impl CanLoop {
    /// Starts every bus's interface task (and simulation, on a mock bus). Must be called inside
    /// a tokio runtime.
    pub fn start(settings: &Settings, plans: Vec<BusPlan>, options: &Options) -> anyhow::Result<CanLoop> {
        if plans.is_empty() {
            anyhow::bail!("the board has no CAN buses");
        }
        let (events_tx, events) = mpsc::channel(4096);
        let mut gateway = CanLoop {
            board: settings.board.clone(),
            buses: Vec::new(),
            events,
            tasks: Vec::new(),
            publisher: Publisher::default(),
        };
        let several = plans.len() > 1;
        for (index, plan) in plans.into_iter().enumerate() {
            let (jobs_tx, jobs_rx) = mpsc::channel(64);
            let retry = settings.retry;
            let port = port::run(index, plan.opener.clone(), events_tx.clone(), jobs_rx, retry.min, retry.max);
            gateway.tasks.push(tokio::spawn(port));
            if let Some(mock) = &plan.mock {
                gateway.tasks.extend(sim::start(mock, &plan.can, &plan.decoder, options.still)?);
            }
            let recorder = match &options.record {
                Some(path) => Some(open_recorder(path, &plan.name, &plan.can.interface, several)?),
                None => None,
            };
            gateway.buses.push(Bus::new(&settings.board, plan, jobs_tx, recorder));
        }
        Ok(gateway)
    }
}

impl Drop for CanLoop {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Loop for CanLoop {
    type Event = Event;

    fn filters(&self) -> Vec<String> {
        // The simulation topics of real buses too, so that a control sent to one is refused
        // rather than never answered.
        vec![
            schema::topic::command_filter(&self.board, schema::can::BUS_KIND),
            schema::topic::sim_filter(&self.board, schema::can::BUS_KIND),
        ]
    }

    fn start(&mut self, shell: &mut Shell) {
        for index in 0..self.buses.len() {
            self.publish_bus_state(index, Some("starting".into()), shell);
        }
        tracing::info!(buses = self.buses.len(), "CAN buses starting");
    }

    async fn next(&mut self) -> Option<Event> {
        let next = self.publisher.next_deadline();
        let deadline = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = self.events.recv() => event.map(|(bus, event)| Event::Port(bus, event)),
            () = deadline => Some(Event::Deadline),
        }
    }

    fn on_event(&mut self, event: Event, shell: &mut Shell) {
        match event {
            Event::Port(bus, event) => self.on_port_event(bus, event, shell),
            Event::Deadline => self.on_deadlines(shell),
        }
    }

    fn on_message(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
        self.on_command(publish, shell);
    }

    fn health(&mut self, shell: &mut Shell) -> Devices {
        for index in 0..self.buses.len() {
            if let Some(recorder) = &mut self.buses[index].recorder {
                let _ = recorder.flush();
            }
            self.publish_counters(index, shell);
        }
        let online = self.buses.iter().filter(|b| b.state.is_up()).count();
        Devices { online: online as u64, total: self.buses.len() as u64 }
    }

    async fn stop(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for bus in &mut self.buses {
            if let Some(recorder) = &mut bus.recorder {
                let _ = recorder.flush();
            }
        }
    }
}

fn open_recorder(
    path: &std::path::Path,
    bus: &str,
    interface: &str,
    several: bool,
) -> anyhow::Result<Recorder<BufWriter<File>>> {
    use anyhow::Context;
    let path = if several {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("record");
        path.with_file_name(format!("{stem}-{bus}.log"))
    } else {
        path.to_owned()
    };
    let file = File::create(&path).with_context(|| format!("creating the candump log {}", path.display()))?;
    tracing::info!(path = %path.display(), bus, "recording received frames");
    Ok(Recorder::new(BufWriter::new(file), interface))
}

impl Bus {
    pub(crate) fn new(
        board: &str,
        plan: BusPlan,
        jobs: mpsc::Sender<SendJob<ReplyContext>>,
        recorder: Option<Recorder<BufWriter<File>>>,
    ) -> Bus {
        let topics = CanTopics::new(board, &plan.name);
        let definitions = plan.decoder.messages();
        let messages = definitions
            .iter()
            .map(|m| {
                let policies = m.signals.iter().map(|s| plan.can.policy(&m.name, &s.name)).collect();
                Slot::new(topics.message(&m.name).state(), Tracker::new(policies))
            })
            .collect();
        let by_name = definitions.iter().enumerate().map(|(index, m)| (m.name.clone(), index)).collect();
        Bus {
            bus_topics: topics.bus(),
            topics,
            messages,
            by_name,
            raw: HashMap::new(),
            raw_full_warned: false,
            state: BusState::Down,
            opened_before: false,
            counters: CanBusState::new(&plan.name, &plan.can.interface, plan.can.fd),
            jobs,
            mock: plan.mock,
            recorder,
            name: plan.name,
            can: plan.can,
            decoder: plan.decoder,
        }
    }

    /// A published slot, if it exists.
    pub(crate) fn slot(&mut self, key: Key) -> Option<&mut Slot> {
        match key {
            Key::Message(message) => self.messages.get_mut(message),
            Key::Raw(raw) => self.raw.get_mut(&raw),
        }
    }
}

impl CanLoop {
    fn on_port_event(&mut self, index: usize, event: PortEvent<ReplyContext>, shell: &mut Shell) {
        match event {
            PortEvent::Opened => {
                let bus = &mut self.buses[index];
                if bus.opened_before {
                    bus.counters.reopened += 1;
                    tracing::info!(bus = %bus.name, "interface back");
                }
                bus.opened_before = true;
                bus.state = BusState::ErrorActive;
                self.publish_bus_state(index, None, shell);
            }
            PortEvent::Closed(error) => {
                let bus = &mut self.buses[index];
                let was_up = bus.state != BusState::Down;
                bus.state = BusState::Down;
                if was_up || !bus.opened_before {
                    tracing::warn!(bus = %bus.name, %error, "interface unavailable; retrying");
                    self.publish_bus_state(index, Some(error.to_string()), shell);
                }
            }
            PortEvent::Can(CanEvent::Frame { frame, at }) => self.on_frame(index, frame, at, shell),
            PortEvent::Can(CanEvent::State(state)) => {
                let bus = &mut self.buses[index];
                if bus.state != state {
                    tracing::info!(bus = %bus.name, state = state.as_str(), "bus state");
                    bus.state = state;
                    self.publish_bus_state(index, None, shell);
                }
            }
            PortEvent::Can(CanEvent::Overflow { lost }) => {
                let bus = &mut self.buses[index];
                bus.counters.lost_frames += lost;
                tracing::warn!(bus = %bus.name, lost, "frames lost: the gateway fell behind the bus");
            }
            PortEvent::Can(CanEvent::BusError(error)) => {
                let bus = &mut self.buses[index];
                bus.counters.bus_errors += 1;
                tracing::debug!(bus = %bus.name, %error, "bus error");
            }
            PortEvent::Sent { job, result } => self.on_sent(index, job, result, shell),
        }
    }

    fn on_frame(&mut self, index: usize, frame: CanFrame, at: SystemTime, shell: &mut Shell) {
        let bus = &mut self.buses[index];
        if let Some(recorder) = &mut bus.recorder
            && let Err(error) = recorder.record(&frame, at)
        {
            tracing::warn!(bus = %bus.name, %error, "cannot write the candump log; recording stops");
            bus.recorder = None;
        }
        let mut emit =
            |topic: &str, payload: &[u8]| shell.publish(topic.to_owned(), Bytes::copy_from_slice(payload), true);
        self.publisher.receive(bus, index, (&frame, at), Instant::now(), &mut emit);
    }

    fn on_deadlines(&mut self, shell: &mut Shell) {
        let mut emit =
            |topic: &str, payload: &[u8]| shell.publish(topic.to_owned(), Bytes::copy_from_slice(payload), true);
        self.publisher.on_deadlines(&mut self.buses, Instant::now(), &mut emit);
    }

    fn publish_bus_state(&mut self, index: usize, reason: Option<String>, shell: &mut Shell) {
        let bus = &self.buses[index];
        let up = bus.state.is_up();
        let reason =
            reason.or_else(|| (bus.state != BusState::ErrorActive).then(|| bus.state.as_str().replace('_', "-")));
        let availability = Availability {
            v: Version,
            ts: schema::now(),
            state: if up { Online::Online } else { Online::Offline },
            reason,
        };
        let topic = bus.bus_topics.availability();
        shell.publish(topic, availability.to_json(), true);
        self.publish_counters(index, shell);
    }

    fn publish_counters(&mut self, index: usize, shell: &mut Shell) {
        let bus = &mut self.buses[index];
        bus.counters.ts = schema::now();
        bus.counters.state = match bus.state {
            BusState::ErrorActive => BusStateName::ErrorActive,
            BusState::ErrorWarning => BusStateName::ErrorWarning,
            BusState::ErrorPassive => BusStateName::ErrorPassive,
            BusState::BusOff => BusStateName::BusOff,
            BusState::Down => BusStateName::Down,
        };
        shell.publish(bus.bus_topics.state(), bus.counters.to_json(), true);
    }
}
