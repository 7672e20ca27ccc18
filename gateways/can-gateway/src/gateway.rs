//! The CAN gateway loop, driven by the runtime's shell: it owns every bus's decoding and
//! publish state; each interface has its own port task (`port.rs`). Frames are decoded with the bus's
//! DBC files and published by the publish policy; unknown frames can be published raw; commands
//! encode and send frames and are answered once the interface has taken the frame.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::SystemTime;

use board::can::{CanBus, Policy, RawFrames};
use buses::can::replay::Recorder;
use buses::can::{BusState, CanError, CanEvent, CanFrame, MockCanBus};
use bytes::Bytes;
use device::{CommandSpec, Param, ParamKind, Value};
use runtime::Settings;
use runtime::shell::{Devices, Loop, Shell};
use schema::can::{BusStateName, CanBusState, CanTopics, SignalArg};
use schema::payload::Payload;
use schema::topic::{DeviceLeaf, DeviceTopics, Parsed};
use schema::{
    Availability, Command, CommandError, ErrorKind, Measurement, Online, Reply, ReplyError, Version, WireValue,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::decoder::{self, Decoder, Lookup};
use crate::policy::{Decision, Tracker};
use crate::port::{self, Opener, PortEvent, SendJob};
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

/// Raw identifiers whose publish state is kept; frames of further identifiers are counted but
/// not published raw, so a bus full of random identifiers cannot grow memory.
const MAX_RAW_IDS: usize = 1024;

/// How a send command is answered.
#[derive(Debug)]
pub struct ReplyContext {
    topic: String,
    device: String,
    id: Option<String>,
    action: String,
    note: Option<String>,
}

/// A publication waiting for the end of a minimum interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Message(usize),
    Raw(u32),
}

#[derive(Debug, Default, Clone)]
struct BusCounters {
    rx_frames: u64,
    tx_frames: u64,
    unknown_frames: u64,
    decode_errors: u64,
    published: u64,
    suppressed: u64,
    lost_frames: u64,
    bus_errors: u64,
    reopened: u64,
}

struct RawTrack {
    tracker: Tracker,
    newest: Option<(CanFrame, SystemTime)>,
}

struct Bus {
    name: String,
    can: CanBus,
    decoder: Decoder,
    topics: CanTopics,
    bus_topics: DeviceTopics,
    /// By message index: state topic, publish state, sequence number, newest deferred frame.
    state_topics: Vec<String>,
    reply_topics: HashMap<String, (usize, String)>,
    trackers: Vec<Tracker>,
    seq: Vec<u64>,
    newest: Vec<Option<(CanFrame, SystemTime)>>,
    raw: HashMap<u32, RawTrack>,
    raw_full_warned: bool,
    state: BusState,
    opened_before: bool,
    counters: BusCounters,
    jobs: mpsc::Sender<SendJob<ReplyContext>>,
    mock: Option<MockCanBus>,
    recorder: Option<Recorder<BufWriter<File>>>,
}

/// The CAN gateway's loop: every bus's decoding, publishing and command state.
pub struct CanLoop {
    board: String,
    buses: Vec<Bus>,
    /// What the interface tasks report, tagged with the bus index.
    events: mpsc::Receiver<(usize, PortEvent<ReplyContext>)>,
    /// The interface tasks and the simulations of mock buses, aborted at stop.
    tasks: Vec<JoinHandle<()>>,
    /// Deferred publications, the soonest first.
    deadlines: BinaryHeap<Reverse<(Instant, usize, Key)>>,
    /// Scratch buffer for payloads.
    out: Vec<u8>,
    /// Scratch buffer for signal values.
    values: Vec<(usize, f64)>,
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
            deadlines: BinaryHeap::new(),
            out: Vec::with_capacity(1024),
            values: Vec::with_capacity(64),
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
        let next = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
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
    fn new(
        board: &str,
        plan: BusPlan,
        jobs: mpsc::Sender<SendJob<ReplyContext>>,
        recorder: Option<Recorder<BufWriter<File>>>,
    ) -> Bus {
        let topics = CanTopics::new(board, &plan.name);
        let messages = plan.decoder.messages();
        let state_topics = messages.iter().map(|m| topics.message(&m.name).state()).collect();
        let reply_topics = messages
            .iter()
            .enumerate()
            .map(|(index, m)| (m.name.clone(), (index, topics.message(&m.name).reply())))
            .collect();
        let trackers = messages
            .iter()
            .map(|m| Tracker::new(m.signals.iter().map(|s| plan.can.policy(&m.name, &s.name)).collect()))
            .collect();
        let count = messages.len();
        Bus {
            bus_topics: topics.bus(),
            topics,
            state_topics,
            reply_topics,
            trackers,
            seq: vec![0; count],
            newest: vec![None; count],
            raw: HashMap::new(),
            raw_full_warned: false,
            state: BusState::Down,
            opened_before: false,
            counters: BusCounters::default(),
            jobs,
            mock: plan.mock,
            recorder,
            name: plan.name,
            can: plan.can,
            decoder: plan.decoder,
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
        let now = Instant::now();
        let bus = &mut self.buses[index];
        bus.counters.rx_frames += 1;
        if let Some(recorder) = &mut bus.recorder
            && let Err(error) = recorder.record(&frame, at)
        {
            tracing::warn!(bus = %bus.name, %error, "cannot write the candump log; recording stops");
            bus.recorder = None;
        }
        let known = match bus.decoder.lookup(&frame) {
            Lookup::Message { index: message, .. } => {
                self.on_message(index, message, (&frame, at), now, false, shell);
                true
            }
            Lookup::Unknown => {
                bus.counters.unknown_frames += 1;
                false
            }
        };
        let bus = &self.buses[index];
        let raw = match bus.can.raw {
            RawFrames::All => true,
            RawFrames::Unknown => !known,
            RawFrames::None => false,
        };
        if raw {
            self.on_raw(index, &frame, at, now, shell);
        }
    }

    /// Decodes a frame of a known message (received at `at`) and publishes it if the policy
    /// says so; `deferred` when a deferred publication has come due.
    fn on_message(
        &mut self,
        index: usize,
        message: usize,
        (frame, at): (&CanFrame, SystemTime),
        now: Instant,
        deferred: bool,
        shell: &mut Shell,
    ) {
        let bus = &mut self.buses[index];
        let definition = &bus.decoder.messages()[message];
        let mut decoded = Vec::with_capacity(definition.signals.len());
        if let Err(error) = definition.decode(frame.data(), &mut decoded) {
            bus.counters.decode_errors += 1;
            tracing::debug!(bus = %bus.name, %error, "frame does not match its DBC message");
            if decoded.is_empty() {
                return;
            }
        }
        self.values.clear();
        self.values.extend(decoded.iter().map(|d| (d.index, decoder::as_f64(d.physical))));
        let decision = if deferred { Decision::Publish } else { bus.trackers[message].decide(now, &self.values) };
        match decision {
            Decision::Publish => {
                decoder::write_message(
                    &mut self.out,
                    &bus.name,
                    definition,
                    &decoded,
                    at,
                    bus.seq[message],
                    frame.is_fd(),
                );
                bus.trackers[message].published(now, &self.values);
                bus.seq[message] += 1;
                bus.counters.published += 1;
                bus.newest[message] = None;
                let topic = bus.state_topics[message].clone();
                shell.publish(topic, Bytes::copy_from_slice(&self.out), true);
            }
            Decision::Defer(due) => {
                bus.counters.suppressed += 1;
                let first = bus.newest[message].is_none();
                bus.newest[message] = Some((*frame, at));
                if first {
                    self.deadlines.push(Reverse((due, index, Key::Message(message))));
                }
            }
            Decision::Suppress => {
                bus.counters.suppressed += 1;
                if bus.newest[message].is_some() {
                    // A deferred publication goes out with the newest frame.
                    bus.newest[message] = Some((*frame, at));
                }
            }
        }
    }

    fn on_raw(&mut self, index: usize, frame: &CanFrame, at: SystemTime, now: Instant, shell: &mut Shell) {
        let bus = &mut self.buses[index];
        let key = frame.id() | (u32::from(frame.is_extended()) << 31);
        if !bus.raw.contains_key(&key) && bus.raw.len() >= MAX_RAW_IDS {
            if !bus.raw_full_warned {
                tracing::warn!(bus = %bus.name, "more than {MAX_RAW_IDS} raw identifiers; frames of new ones are not published raw");
                bus.raw_full_warned = true;
            }
            return;
        }
        let policy: Policy = bus.can.publish;
        let track =
            bus.raw.entry(key).or_insert_with(|| RawTrack { tracker: Tracker::new(vec![policy]), newest: None });
        let values = [(0, data_fingerprint(frame))];
        match track.tracker.decide(now, &values) {
            Decision::Publish => {
                track.tracker.published(now, &values);
                track.newest = None;
                decoder::write_frame(&mut self.out, &bus.name, frame, at);
                let topic = bus.topics.frame(frame.id(), frame.is_extended());
                shell.publish(topic, Bytes::copy_from_slice(&self.out), true);
            }
            Decision::Defer(due) => {
                if track.newest.is_none() {
                    self.deadlines.push(Reverse((due, index, Key::Raw(key))));
                }
                track.newest = Some((*frame, at));
            }
            Decision::Suppress => {
                if track.newest.is_some() {
                    track.newest = Some((*frame, at));
                }
            }
        }
    }

    fn on_deadlines(&mut self, shell: &mut Shell) {
        let now = Instant::now();
        while let Some(Reverse((due, index, key))) = self.deadlines.peek().copied() {
            if due > now {
                break;
            }
            self.deadlines.pop();
            let bus = &mut self.buses[index];
            match key {
                Key::Message(message) => {
                    if !bus.trackers[message].take_deferred(due) {
                        continue;
                    }
                    if let Some((frame, at)) = bus.newest[message].take() {
                        self.on_message(index, message, (&frame, at), now, true, shell);
                    }
                }
                Key::Raw(key) => {
                    let Some(track) = bus.raw.get_mut(&key) else { continue };
                    if !track.tracker.take_deferred(due) {
                        continue;
                    }
                    if let Some((frame, at)) = track.newest.take() {
                        let values = [(0, data_fingerprint(&frame))];
                        track.tracker.published(now, &values);
                        decoder::write_frame(&mut self.out, &bus.name, &frame, at);
                        let topic = bus.topics.frame(frame.id(), frame.is_extended());
                        shell.publish(topic, Bytes::copy_from_slice(&self.out), true);
                    }
                }
            }
        }
    }

    fn on_command(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
        let Some(Parsed::Device { bus, device, leaf, .. }) = schema::topic::parse(&publish.topic) else { return };
        let Some(index) = self.buses.iter().position(|b| b.name == bus) else { return };
        shell.command_in();
        let device = device.to_owned();
        let reply_topic = if device == schema::can::BUS_DEVICE {
            self.buses[index].bus_topics.reply()
        } else {
            self.buses[index].topics.message(&device).reply()
        };
        let parsed = Command::parse(&publish.payload)
            .and_then(|command| CommandError::check_not_retained(&command, publish.retain).map(|()| command));
        let command = match parsed {
            Ok(command) => command,
            Err(error) => return shell.refuse(reply_topic, &device, &error),
        };
        let result = match (leaf, device.as_str()) {
            (DeviceLeaf::Set, schema::can::BUS_DEVICE) => self.send_raw(index, &command, &reply_topic),
            (DeviceLeaf::Sim, schema::can::BUS_DEVICE) => self.sim_command(index, &command, &reply_topic, shell),
            (DeviceLeaf::Set, message) => self.send_message(index, message, &command, &reply_topic),
            (DeviceLeaf::Sim, _) => Err(CommandError::about(
                &command,
                ErrorKind::InvalidCommand,
                format!("simulation controls are on the bus's own topic, {}", self.buses[index].bus_topics.sim()),
            )),
            _ => return,
        };
        if let Err(error) = result {
            shell.refuse(reply_topic, &device, &error);
        }
    }

    fn send_message(&mut self, index: usize, name: &str, command: &Command, reply: &str) -> Result<(), CommandError> {
        let bus = &self.buses[index];
        let error = |kind, message: String| CommandError::about(command, kind, message);
        let Some(&(message, _)) = bus.reply_topics.get(name) else {
            return Err(error(ErrorKind::InvalidCommand, format!("bus {:?} has no DBC message {name:?}", bus.name)));
        };
        if command.action != "send" {
            return Err(error(
                ErrorKind::UnknownAction,
                format!("unknown action {:?}; a message takes \"send\" with signal values as args", command.action),
            ));
        }
        let args = schema::can::signal_args(command)?;
        let values: Vec<(&str, dbc::Value<'_>)> = args
            .iter()
            .map(|(name, arg)| {
                let value = match arg {
                    SignalArg::Number(n) => dbc::Value::Number(*n),
                    SignalArg::Label(label) => dbc::Value::Label(label),
                };
                (name.as_str(), value)
            })
            .collect();
        let definition = &bus.decoder.messages()[message];
        let encoded = definition.encode(&values).map_err(|e| error(ErrorKind::InvalidArgument, e.to_string()))?;
        let fd = definition.fd || encoded.data.len() > 8;
        let frame = if fd {
            if !bus.can.fd {
                return Err(error(
                    ErrorKind::NotAllowed,
                    format!("{name} is a CAN FD message but bus {:?} is not in FD mode (fd = true)", bus.name),
                ));
            }
            CanFrame::fd(definition.id, definition.extended, bus.can.data_bitrate.is_some(), &encoded.data)
        } else {
            CanFrame::classic(definition.id, definition.extended, &encoded.data)
        }
        .map_err(|e| error(ErrorKind::InvalidArgument, e.to_string()))?;
        let note = (!encoded.defaulted.is_empty())
            .then(|| format!("signals not given took their initial values: {}", encoded.defaulted.join(", ")));
        self.queue(
            index,
            frame,
            ReplyContext {
                topic: reply.to_owned(),
                device: name.to_owned(),
                id: command.id.clone(),
                action: command.action.clone(),
                note,
            },
        )
    }

    fn send_raw(&mut self, index: usize, command: &Command, reply: &str) -> Result<(), CommandError> {
        let bus = &self.buses[index];
        let description = device::Description { model: "CAN bus", quantities: Vec::new(), commands: raw_commands() };
        let args = command.args_for(&description)?;
        if !bus.can.raw_send {
            return Err(CommandError::about(
                command,
                ErrorKind::NotAllowed,
                format!("raw sends are not allowed on bus {:?}; the board file must say raw_send = true", bus.name),
            ));
        }
        let int = |name: &str| args.get(name).and_then(Value::as_f64).map(|v| v as u32);
        let flag = |name: &str| matches!(args.get(name), Some(Value::Bool(true)));
        let id = int("id").unwrap_or(0);
        let extended =
            args.get("extended").map_or(id > buses::can::MAX_STANDARD_ID, |v| matches!(v, Value::Bool(true)));
        let data = match args.get("data") {
            Some(Value::Bytes(bytes)) => bytes.clone(),
            _ => Vec::new(),
        };
        let frame = if flag("rtr") {
            CanFrame::remote(id, extended, int("dlc").unwrap_or(data.len() as u32) as u8)
        } else if flag("fd") {
            CanFrame::fd(id, extended, flag("brs"), &data)
        } else {
            CanFrame::classic(id, extended, &data)
        };
        let frame = frame.map_err(|e| CommandError::about(command, ErrorKind::InvalidArgument, e.to_string()))?;
        if frame.is_fd() && !bus.can.fd {
            return Err(CommandError {
                kind: ErrorKind::NotAllowed,
                message: format!("bus {:?} is not in FD mode (fd = true)", bus.name),
                field: Some("args.fd".into()),
                expected: None,
                got: None,
                id: command.id.clone(),
                action: Some(command.action.clone()),
            });
        }
        self.queue(
            index,
            frame,
            ReplyContext {
                topic: reply.to_owned(),
                device: schema::can::BUS_DEVICE.to_owned(),
                id: command.id.clone(),
                action: command.action.clone(),
                note: None,
            },
        )
    }

    fn queue(&mut self, index: usize, frame: CanFrame, context: ReplyContext) -> Result<(), CommandError> {
        let bus = &self.buses[index];
        bus.jobs.try_send(SendJob { frame, context }).map_err(|refused| {
            let (job, message) = match refused {
                mpsc::error::TrySendError::Full(job) => (job, "the bus is busy: 64 sends are waiting".to_owned()),
                mpsc::error::TrySendError::Closed(job) => (job, "the interface task has stopped".to_owned()),
            };
            CommandError::unavailable(job.context.id, job.context.action, message)
        })
    }

    fn on_sent(&mut self, index: usize, job: SendJob<ReplyContext>, result: Result<(), CanError>, shell: &mut Shell) {
        let bus = &mut self.buses[index];
        let context = job.context;
        let mut reply = Reply {
            v: Version,
            ts: schema::now(),
            id: context.id,
            device: context.device,
            action: Some(context.action),
            ok: result.is_ok(),
            values: Default::default(),
            note: context.note,
            error: None,
        };
        match result {
            Ok(()) => {
                bus.counters.tx_frames += 1;
                let frame = job.frame;
                let data: String = frame.data().iter().map(|b| format!("{b:02x}")).collect();
                reply
                    .values
                    .insert("id".into(), Measurement { value: WireValue::Int(i64::from(frame.id())), unit: None });
                reply.values.insert("data".into(), Measurement { value: WireValue::Text(data), unit: None });
            }
            Err(error) => {
                let kind = match error {
                    CanError::BusOff | CanError::Io(_) | CanError::Configure { .. } => ErrorKind::BusError,
                    CanError::NoBufferSpace => ErrorKind::Unavailable,
                    CanError::Down(_) | CanError::Open { .. } => ErrorKind::DeviceOffline,
                    CanError::FdNotEnabled => ErrorKind::NotAllowed,
                };
                shell.error();
                reply.error =
                    Some(ReplyError { kind, message: error.to_string(), field: None, expected: None, got: None });
            }
        }
        shell.publish(context.topic, reply.to_json(), false);
    }

    fn sim_command(
        &mut self,
        index: usize,
        command: &Command,
        reply: &str,
        shell: &mut Shell,
    ) -> Result<(), CommandError> {
        let bus = &self.buses[index];
        let Some(mock) = bus.mock.clone() else {
            return Err(CommandError::about(
                command,
                ErrorKind::NotAllowed,
                format!("bus {:?} is not a mock bus: simulation controls are for mock buses only", bus.name),
            ));
        };
        let description = device::Description { model: "CAN bus", quantities: Vec::new(), commands: sim::commands() };
        let args = command.args_for(&description)?;
        let note = sim::control(&mock, &command.action, &args);
        tracing::info!(bus = %self.buses[index].name, action = %command.action, "simulation control");
        let answer = Reply {
            v: Version,
            ts: schema::now(),
            id: command.id.clone(),
            device: schema::can::BUS_DEVICE.to_owned(),
            action: Some(command.action.clone()),
            ok: true,
            values: Default::default(),
            note: Some(note),
            error: None,
        };
        shell.publish(reply.to_owned(), answer.to_json(), false);
        Ok(())
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
        let bus = &self.buses[index];
        let c = &bus.counters;
        let state = CanBusState {
            v: Version,
            ts: schema::now(),
            bus: bus.name.clone(),
            interface: bus.can.interface.clone(),
            state: match bus.state {
                BusState::ErrorActive => BusStateName::ErrorActive,
                BusState::ErrorWarning => BusStateName::ErrorWarning,
                BusState::ErrorPassive => BusStateName::ErrorPassive,
                BusState::BusOff => BusStateName::BusOff,
                BusState::Down => BusStateName::Down,
            },
            fd: bus.can.fd,
            rx_frames: c.rx_frames,
            tx_frames: c.tx_frames,
            unknown_frames: c.unknown_frames,
            decode_errors: c.decode_errors,
            published: c.published,
            suppressed: c.suppressed,
            lost_frames: c.lost_frames,
            bus_errors: c.bus_errors,
            reopened: c.reopened,
        };
        let topic = bus.bus_topics.state();
        shell.publish(topic, state.to_json(), true);
    }
}

/// A fingerprint of a frame's data for change detection of raw frames (FNV-1a, folded into the
/// 53 bits an f64 holds exactly).
fn data_fingerprint(frame: &CanFrame) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in frame.data() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= u64::from(frame.dlc()) << 56;
    (hash >> 11) as f64
}

/// The `send_raw` command of a bus.
fn raw_commands() -> Vec<CommandSpec> {
    let flag = |name, description| Param { name, kind: ParamKind::Bool, required: false, description };
    vec![CommandSpec {
        action: "send_raw",
        params: vec![
            Param {
                name: "id",
                kind: ParamKind::Int { min: 0, max: i64::from(buses::can::MAX_EXTENDED_ID) },
                required: true,
                description: "identifier",
            },
            flag("extended", "29-bit identifier (default: when id is above 0x7FF)"),
            flag("fd", "CAN FD frame"),
            flag("brs", "FD bit rate switch"),
            flag("rtr", "remote frame"),
            Param {
                name: "dlc",
                kind: ParamKind::Int { min: 0, max: 8 },
                required: false,
                description: "remote frame length",
            },
            Param {
                name: "data",
                kind: ParamKind::Hex { max_bytes: 64 },
                required: false,
                description: "data bytes as hex",
            },
        ],
        description: "sends a raw frame",
    }]
}
