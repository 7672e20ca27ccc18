//! The poll loop of the I2C and SPI gateways: turns bus events into MQTT messages and MQTT
//! commands into bus jobs.
//!
//! Bus I/O happens on the bus threads (`bus.rs`); this loop, driven by the shell
//! (`shell.rs`), owns the devices' MQTT side: topics, sequence numbers, availability, the
//! simulation controls of mock buses and the Home Assistant discovery configs.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::mpsc as std_mpsc;

use device::Description;
use schema::payload::{Payload, measurements};
use schema::topic::DeviceTopics;
use schema::{Availability, Command, CommandError, ErrorKind, Online, Reading, Reply, ReplyError, Version};
use tokio::sync::mpsc;

use crate::bus::{BusEvent, BusWorker, CommandFailure, DeviceId, Hosted, Job, SimControl};
use crate::settings::{Counters, RuntimeError, Settings};
use crate::shell::{Devices, Loop, Shell};

/// One bus and the devices on it.
#[derive(Debug)]
pub struct Bus {
    pub name: String,
    pub devices: Vec<Hosted>,
}

/// A device's topics and state on the MQTT side.
struct Entry {
    name: String,
    description: Description,
    /// The simulated chip's controls and their description (mock buses only).
    sim: Option<(Box<dyn SimControl>, Description)>,
    state: String,
    reply: String,
    availability: String,
    /// Sequence number of the next reading.
    seq: u64,
    online: bool,
}

/// The poll loop's state: every device's MQTT side, and the bus threads.
pub struct PollLoop {
    board: String,
    bus_kind: String,
    homeassistant: Option<String>,
    devices: Vec<Vec<Entry>>,
    by_set_topic: HashMap<String, DeviceId>,
    by_sim_topic: HashMap<String, DeviceId>,
    /// Each bus thread's job queue, bounded so a flood of commands is refused, not queued.
    jobs: Vec<std_mpsc::SyncSender<Job>>,
    /// What the bus threads report.
    bus_events: mpsc::Receiver<BusEvent>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Home Assistant discovery configs this gateway publishes (empty when discovery is off);
    /// other configs in its namespace belong to removed devices and are cleared.
    discovery: Vec<(String, Vec<u8>)>,
    discovery_topics: HashSet<String>,
}

/// Runs the devices of `buses` until `shutdown` completes; returns the gateway's counters.
pub async fn run(
    settings: Settings,
    buses: Vec<Bus>,
    shutdown: impl Future<Output = ()>,
) -> Result<Counters, RuntimeError> {
    let poll = PollLoop::start(&settings, buses)?;
    crate::shell::run(&settings, poll, shutdown).await
}

impl std::fmt::Debug for PollLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollLoop").field("devices", &self.by_set_topic.len()).finish()
    }
}

impl PollLoop {
    /// Starts a thread per bus; the devices are polled from then on, and their events wait for
    /// the shell.
    pub fn start(settings: &Settings, buses: Vec<Bus>) -> Result<PollLoop, RuntimeError> {
        if buses.is_empty() {
            return Err(RuntimeError::NoDevices(settings.bus_kind.to_uppercase()));
        }
        let (bus_events_tx, bus_events) = mpsc::channel(1024);
        let mut poll = PollLoop {
            board: settings.board.clone(),
            bus_kind: settings.bus_kind.clone(),
            homeassistant: settings.homeassistant.clone(),
            devices: Vec::new(),
            by_set_topic: HashMap::new(),
            by_sim_topic: HashMap::new(),
            jobs: Vec::new(),
            bus_events,
            threads: Vec::new(),
            discovery: Vec::new(),
            discovery_topics: HashSet::new(),
        };
        for (bus_index, mut bus) in buses.into_iter().enumerate() {
            let mut entries = Vec::new();
            for (device_index, hosted) in bus.devices.iter_mut().enumerate() {
                let t = DeviceTopics::new(&settings.board, &settings.bus_kind, &bus.name, &hosted.name);
                let id = DeviceId { bus: bus_index, device: device_index };
                poll.by_set_topic.insert(t.set(), id);
                let description = hosted.device.describe();
                if let Some(prefix) = &settings.homeassistant {
                    let target = schema::homeassistant::Target {
                        prefix,
                        board: &settings.board,
                        gateway: &settings.gateway,
                        bus_kind: &settings.bus_kind,
                        bus: &bus.name,
                        device: &hosted.name,
                        poll: hosted.poll_interval,
                    };
                    let configs = schema::homeassistant::configs(target, &description, &hosted.device.outputs());
                    poll.discovery.extend(configs);
                }
                // Every device's: a control sent to a device on a real bus is refused, not ignored.
                poll.by_sim_topic.insert(t.sim(), id);
                let sim = hosted.sim.take().map(|sim| {
                    let commands = sim.commands();
                    (sim, Description { model: description.model, quantities: Vec::new(), commands })
                });
                entries.push(Entry {
                    name: hosted.name.clone(),
                    description,
                    sim,
                    state: t.state(),
                    reply: t.reply(),
                    availability: t.availability(),
                    seq: 0,
                    online: false,
                });
            }
            poll.devices.push(entries);
            let worker = BusWorker::new(bus_index, bus.devices, settings.retry, bus_events_tx.clone());
            let (job_tx, thread) =
                worker.spawn(&bus.name).map_err(|source| RuntimeError::Thread { bus: bus.name.clone(), source })?;
            poll.jobs.push(job_tx);
            poll.threads.push(thread);
        }
        poll.discovery_topics = poll.discovery.iter().map(|(topic, _)| topic.clone()).collect();
        Ok(poll)
    }
}

impl Loop for PollLoop {
    type Event = BusEvent;

    fn filters(&self) -> Vec<String> {
        let mut filters = vec![
            schema::topic::command_filter(&self.board, &self.bus_kind),
            schema::topic::sim_filter(&self.board, &self.bus_kind),
        ];
        if let Some(prefix) = &self.homeassistant {
            // To clear the discovery configs of removed devices.
            filters.push(schema::homeassistant::config_filter(prefix));
        }
        filters
    }

    fn start(&mut self, shell: &mut Shell) {
        // Discovery configs are retained topics like any other: published on every connect.
        for (topic, payload) in std::mem::take(&mut self.discovery) {
            shell.link.set_retained(topic, payload);
        }
        tracing::info!(devices = self.by_set_topic.len(), "polling");
    }

    async fn next(&mut self) -> Option<BusEvent> {
        self.bus_events.recv().await
    }

    fn on_event(&mut self, event: BusEvent, shell: &mut Shell) {
        self.on_bus_event(event, shell);
    }

    fn on_message(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
        self.on_command(publish, shell);
    }

    fn health(&mut self, _shell: &mut Shell) -> Devices {
        let online = self.devices.iter().flatten().filter(|e| e.online).count();
        Devices { online: online as u64, total: self.by_set_topic.len() as u64 }
    }

    async fn stop(self) {
        let PollLoop { jobs, bus_events, threads, .. } = self;
        for jobs in &jobs {
            // A full queue means the thread is busy; closing the event channel below stops it too.
            let _ = jobs.try_send(Job::Stop);
        }
        // Nobody reads bus events any more: closing the channel also frees a bus thread blocked
        // on a full channel, which would otherwise never see its Stop job.
        drop(bus_events);
        // The bus threads finish their current transfer; wait for them off the async threads.
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    }
}
impl PollLoop {
    fn entry(&mut self, id: DeviceId) -> &mut Entry {
        &mut self.devices[id.bus][id.device]
    }

    fn on_bus_event(&mut self, event: BusEvent, shell: &mut Shell) {
        match event {
            BusEvent::Reading { id, samples, at } => {
                let entry = self.entry(id);
                let reading = Reading {
                    v: Version,
                    ts: schema::timestamp(at),
                    seq: entry.seq,
                    device: entry.name.clone(),
                    model: entry.description.model.to_owned(),
                    values: measurements(&samples, &entry.description),
                };
                entry.seq += 1;
                shell.publish(entry.state.clone(), reading.to_json(), true);
            }
            BusEvent::Online { id } => self.availability(id, true, None, shell),
            BusEvent::Offline { id, reason } => self.availability(id, false, Some(reason), shell),
            BusEvent::Failed { .. } => shell.error(),
            BusEvent::Reply { id, request, action, result } => {
                let entry = self.entry(id);
                let mut reply = Reply {
                    v: Version,
                    ts: schema::now(),
                    id: request,
                    device: entry.name.clone(),
                    action: Some(action),
                    ok: true,
                    values: Default::default(),
                    note: None,
                    error: None,
                };
                match result {
                    Ok(outcome) => {
                        reply.values = measurements(&outcome.values, &entry.description);
                        reply.note = outcome.note;
                    }
                    Err(failure) => {
                        reply.ok = false;
                        reply.error = Some(failure_to_error(failure));
                    }
                }
                shell.publish(entry.reply.clone(), reply.to_json(), false);
            }
        }
    }

    fn availability(&mut self, id: DeviceId, online: bool, reason: Option<String>, shell: &mut Shell) {
        let entry = self.entry(id);
        entry.online = online;
        tracing::info!(device = %entry.name, online, reason = reason.as_deref().unwrap_or(""), "availability");
        let payload = Availability {
            v: Version,
            ts: schema::now(),
            state: if online { Online::Online } else { Online::Offline },
            reason,
        };
        shell.publish(entry.availability.clone(), payload.to_json(), true);
    }

    /// Clears a discovery config in this gateway's namespace that it no longer publishes: the
    /// device was removed from the board file.
    fn on_discovery_config(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
        let Some(prefix) = &self.homeassistant else { return };
        let ours = schema::homeassistant::is_ours(prefix, &self.board, &self.bus_kind, &publish.topic);
        if ours && !publish.payload.is_empty() && !self.discovery_topics.contains(&publish.topic) {
            tracing::info!(topic = %publish.topic, "clearing the discovery config of a removed device");
            shell.link.clear_retained(publish.topic.clone());
        }
    }

    fn on_command(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
        if let Some(&id) = self.by_sim_topic.get(&publish.topic) {
            shell.command_in();
            self.on_sim_command(id, publish, shell);
            return;
        }
        let Some(&id) = self.by_set_topic.get(&publish.topic) else {
            // Not a command topic: a discovery config (or a device this gateway does not host).
            self.on_discovery_config(publish, shell);
            return;
        };
        shell.command_in();
        let entry = &self.devices[id.bus][id.device];
        let parsed = Command::parse(&publish.payload).and_then(|command| {
            let args = command.args_for(&entry.description)?;
            CommandError::check_not_retained(&command, publish.retain)?;
            Ok((command, args))
        });
        let (command, args) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return self.refuse(id, &error, shell),
        };
        let job = Job::Command { device: id.device, id: command.id, action: command.action, args };
        if let Err(refused) = self.jobs[id.bus].try_send(job) {
            let (job, message) = match refused {
                std_mpsc::TrySendError::Full(job) => {
                    (job, format!("the bus is busy: {} commands are waiting", crate::bus::JOB_QUEUE))
                }
                std_mpsc::TrySendError::Disconnected(job) => (job, "the bus thread has stopped".to_owned()),
            };
            let Job::Command { id: request, action, .. } = job else { return };
            self.refuse(id, &CommandError::unavailable(request, action, message), shell);
        }
    }

    /// Runs a simulation control at once: it only touches the mock bus's chip state.
    fn on_sim_command(&mut self, id: DeviceId, publish: &rumqttc::Publish, shell: &mut Shell) {
        let entry = &mut self.devices[id.bus][id.device];
        let Some((sim, description)) = &mut entry.sim else {
            let error = match Command::parse(&publish.payload) {
                Ok(command) => CommandError::about(
                    &command,
                    ErrorKind::NotAllowed,
                    format!(
                        "device {:?} is not on a mock bus: simulation controls are for mock buses only",
                        entry.name
                    ),
                ),
                Err(error) => error,
            };
            return self.refuse(id, &error, shell);
        };
        let parsed = Command::parse(&publish.payload).and_then(|command| {
            let args = command.args_for(description)?;
            CommandError::check_not_retained(&command, publish.retain)?;
            Ok((command, args))
        });
        let (command, args) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return self.refuse(id, &error, shell),
        };
        tracing::info!(device = %entry.name, action = %command.action, "simulation control");
        let result = sim.command(&command.action, &args).map_err(CommandFailure::Device);
        let event = BusEvent::Reply { id, request: command.id, action: command.action, result };
        self.on_bus_event(event, shell);
    }

    fn refuse(&mut self, id: DeviceId, error: &CommandError, shell: &mut Shell) {
        let entry = &self.devices[id.bus][id.device];
        shell.refuse(entry.reply.clone(), &entry.name, error);
    }
}

fn failure_to_error(failure: CommandFailure) -> ReplyError {
    let (kind, message) = match failure {
        CommandFailure::Offline(reason) => (ErrorKind::DeviceOffline, format!("device is offline: {reason}")),
        CommandFailure::Device(error @ device::DeviceError::Bus { .. }) => (ErrorKind::BusError, error.to_string()),
        CommandFailure::Device(error @ device::DeviceError::NotAllowed(_)) => {
            (ErrorKind::NotAllowed, error.to_string())
        }
        CommandFailure::Device(error) => (ErrorKind::DeviceError, error.to_string()),
    };
    ReplyError { kind, message, field: None, expected: None, got: None }
}
