//! The gateway loop: turns bus events into MQTT messages and MQTT commands into bus jobs.
//!
//! One task owns all gateway state and handles a closed set of events (bus event, MQTT event,
//! health tick, shutdown), so there is no locking; bus I/O happens on the bus threads and the
//! network I/O in the session task.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use device::Description;
use schema::payload::{Payload, measurements};
use schema::topic::DeviceTopics;
use schema::{Availability, Command, CommandError, ErrorKind, Online, Reading, Reply, ReplyError, Version};
use tokio::sync::mpsc;

use crate::bus::{BusEvent, BusWorker, CommandFailure, DeviceId, Hosted, Job, RetryPolicy, SimControl};
use crate::link::{HealthFigures, Link};

/// What a gateway needs to know besides its devices; usually built with [`Settings::from_board`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub board: String,
    /// The gateway program, e.g. `i2c-gateway`: a topic level and the MQTT client id's suffix.
    pub gateway: String,
    /// The bus kind's topic level, e.g. `i2c`.
    pub bus_kind: String,
    /// busgate version the gateway reports in its status.
    pub version: String,
    pub broker: SocketAddr,
    pub client_id: String,
    pub keep_alive: Duration,
    pub outbox_capacity: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub retry: RetryPolicy,
    pub health_interval: Duration,
    /// Home Assistant discovery prefix, when discovery configs are published.
    pub homeassistant: Option<String>,
    /// The file holding the broker password of the user named after the gateway program, when
    /// the board gives a credentials directory; otherwise the gateway connects anonymously.
    pub password_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// `version` is the gateway program's version, reported in its status.
    pub fn from_board(board: &board::Board, kind: board::BusKind, version: &str) -> Self {
        let g = &board.gateway;
        let ms = Duration::from_millis;
        Settings {
            board: board.name.clone(),
            gateway: kind.gateway().to_owned(),
            bus_kind: kind.as_str().to_owned(),
            version: version.to_owned(),
            broker: g.broker,
            client_id: format!("{}-{}", board.name, kind.gateway()),
            keep_alive: Duration::from_secs(g.keep_alive_s),
            outbox_capacity: g.outbox_capacity,
            reconnect_min: ms(g.reconnect_min_ms),
            reconnect_max: ms(g.reconnect_max_ms),
            retry: RetryPolicy { min: ms(g.retry_min_ms), max: ms(g.retry_max_ms) },
            health_interval: Duration::from_secs(g.health_interval_s),
            homeassistant: board.homeassistant.clone(),
            password_file: g.credentials_dir.as_ref().map(|dir| dir.join(format!("{}.password", kind.gateway()))),
        }
    }
}

/// One bus and the devices on it.
#[derive(Debug)]
pub struct Bus {
    pub name: String,
    pub devices: Vec<Hosted>,
}

/// Why a gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("starting the thread for bus {bus:?}: {source}")]
    Thread { bus: String, source: std::io::Error },
    #[error("password file {}: {message}", path.display())]
    Credentials { path: std::path::PathBuf, message: String },
}

/// Counters reported on the health topic and returned when the gateway stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_out: u64,
    pub commands_in: u64,
    pub errors: u64,
    pub dropped: u64,
    pub reconnects: u64,
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

struct Gateway {
    settings: Settings,
    devices: Vec<Vec<Entry>>,
    by_set_topic: HashMap<String, DeviceId>,
    by_sim_topic: HashMap<String, DeviceId>,
    jobs: Vec<std_mpsc::SyncSender<Job>>,
    link: Link,
    /// Home Assistant discovery topics this gateway publishes (empty when discovery is off);
    /// other configs in its namespace belong to removed devices and are cleared.
    discovery: std::collections::HashSet<String>,
    counters: Counters,
    started: Instant,
}

/// Runs a gateway until `shutdown` completes; returns its counters.
pub async fn run(
    settings: Settings,
    buses: Vec<Bus>,
    shutdown: impl Future<Output = ()>,
) -> Result<Counters, RuntimeError> {
    let (bus_events_tx, mut bus_events) = mpsc::channel(1024);
    let mut devices = Vec::new();
    let mut by_set_topic = HashMap::new();
    let mut by_sim_topic = HashMap::new();
    let mut discovery = Vec::new();
    let mut jobs = Vec::new();
    let mut threads = Vec::new();
    for (bus_index, mut bus) in buses.into_iter().enumerate() {
        let mut entries = Vec::new();
        for (device_index, hosted) in bus.devices.iter_mut().enumerate() {
            let t = DeviceTopics::new(&settings.board, &settings.bus_kind, &bus.name, &hosted.name);
            let id = DeviceId { bus: bus_index, device: device_index };
            by_set_topic.insert(t.set(), id);
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
                discovery.extend(schema::homeassistant::configs(target, &description, &hosted.device.outputs()));
            }
            let sim = hosted.sim.take().map(|sim| {
                by_sim_topic.insert(t.sim(), id);
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
        devices.push(entries);
        let worker = BusWorker::new(bus_index, bus.devices, settings.retry, bus_events_tx.clone());
        let (job_tx, thread) =
            worker.spawn(&bus.name).map_err(|source| RuntimeError::Thread { bus: bus.name.clone(), source })?;
        jobs.push(job_tx);
        threads.push(thread);
    }
    drop(bus_events_tx);

    let mut filters = vec![schema::topic::command_filter(&settings.board, &settings.bus_kind)];
    if !by_sim_topic.is_empty() {
        filters.push(schema::topic::sim_filter(&settings.board, &settings.bus_kind));
    }
    if let Some(prefix) = &settings.homeassistant {
        // To clear the discovery configs of removed devices.
        filters.push(schema::homeassistant::config_filter(prefix));
    }
    let mut link = Link::start(&settings, filters)?;
    // Discovery configs are retained topics like any other: published on every connect.
    for (topic, payload) in &discovery {
        link.set_retained(topic.clone(), payload.clone());
    }
    let mut gateway = Gateway {
        discovery: discovery.into_iter().map(|(topic, _)| topic).collect(),
        devices,
        by_set_topic,
        by_sim_topic,
        jobs,
        link,
        counters: Counters::default(),
        started: Instant::now(),
        settings,
    };
    tracing::info!(broker = %gateway.settings.broker, devices = gateway.by_set_topic.len(), "gateway starting");

    let mut health = tokio::time::interval(gateway.settings.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = bus_events.recv() => gateway.on_bus_event(event),
            Some(publish) = gateway.link.recv() => gateway.on_command(&publish),
            _ = health.tick() => gateway.publish_health(),
        }
    }

    tracing::info!("gateway stopping");
    for jobs in &gateway.jobs {
        // A full queue means the thread is busy; closing the event channel below stops it too.
        let _ = jobs.try_send(Job::Stop);
    }
    // Nobody reads bus events any more: closing the channel also frees a bus thread blocked on
    // a full channel, which would otherwise never see its Stop job.
    drop(bus_events);
    // The bus threads finish their current transfer; wait for them off the async threads.
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    let counters = gateway.final_counters();
    gateway.link.stop().await;
    Ok(counters)
}

impl Gateway {
    fn entry(&mut self, id: DeviceId) -> &mut Entry {
        &mut self.devices[id.bus][id.device]
    }

    fn on_bus_event(&mut self, event: BusEvent) {
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
                let topic = entry.state.clone();
                self.send(topic, reading.to_json(), true);
            }
            BusEvent::Online { id } => self.availability(id, true, None),
            BusEvent::Offline { id, reason } => self.availability(id, false, Some(reason)),
            BusEvent::Failed { .. } => self.counters.errors += 1,
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
                let topic = entry.reply.clone();
                self.send(topic, reply.to_json(), false);
            }
        }
    }

    fn availability(&mut self, id: DeviceId, online: bool, reason: Option<String>) {
        let entry = self.entry(id);
        entry.online = online;
        tracing::info!(device = %entry.name, online, reason = reason.as_deref().unwrap_or(""), "availability");
        let payload = Availability {
            v: Version,
            ts: schema::now(),
            state: if online { Online::Online } else { Online::Offline },
            reason,
        };
        let topic = entry.availability.clone();
        self.send(topic, payload.to_json(), true);
    }

    /// Clears a discovery config in this gateway's namespace that it no longer publishes: the
    /// device was removed from the board file.
    fn on_discovery_config(&mut self, publish: &rumqttc::Publish) {
        let Some(prefix) = &self.settings.homeassistant else { return };
        let ours =
            schema::homeassistant::is_ours(prefix, &self.settings.board, &self.settings.bus_kind, &publish.topic);
        if ours && !publish.payload.is_empty() && !self.discovery.contains(&publish.topic) {
            tracing::info!(topic = %publish.topic, "clearing the discovery config of a removed device");
            self.link.clear_retained(publish.topic.clone());
        }
    }

    fn on_command(&mut self, publish: &rumqttc::Publish) {
        if let Some(&id) = self.by_sim_topic.get(&publish.topic) {
            self.counters.commands_in += 1;
            self.on_sim_command(id, publish);
            return;
        }
        let Some(&id) = self.by_set_topic.get(&publish.topic) else {
            // Not a command topic: a discovery config (or a device this gateway does not host).
            self.on_discovery_config(publish);
            return;
        };
        self.counters.commands_in += 1;
        let entry = &self.devices[id.bus][id.device];
        let parsed = Command::parse(&publish.payload).and_then(|command| {
            let args = command.args_for(&entry.description)?;
            Ok((command, args))
        });
        let parsed = parsed.and_then(|(command, args)| {
            CommandError::check_not_retained(&command, publish.retain)?;
            Ok((command, args))
        });
        match parsed {
            Ok((command, args)) => {
                let job = Job::Command { device: id.device, id: command.id, action: command.action, args };
                if let Err(refused) = self.jobs[id.bus].try_send(job) {
                    let (job, message) = match refused {
                        std_mpsc::TrySendError::Full(job) => {
                            (job, format!("the bus is busy: {} commands are waiting", crate::bus::JOB_QUEUE))
                        }
                        std_mpsc::TrySendError::Disconnected(job) => (job, "the bus thread has stopped".to_owned()),
                    };
                    let Job::Command { id: request, action, .. } = job else { return };
                    let error = CommandError {
                        kind: ErrorKind::Unavailable,
                        message,
                        field: None,
                        expected: None,
                        got: None,
                        id: request,
                        action: Some(action),
                    };
                    self.refuse(id, &error);
                }
            }
            Err(error) => {
                tracing::info!(device = %entry.name, %error, "command refused");
                self.refuse(id, &error);
            }
        }
    }

    /// Runs a simulation control at once: it only touches the mock bus's chip state.
    fn on_sim_command(&mut self, id: DeviceId, publish: &rumqttc::Publish) {
        let entry = &mut self.devices[id.bus][id.device];
        let Some((sim, description)) = &mut entry.sim else { return };
        let parsed = Command::parse(&publish.payload).and_then(|command| {
            let args = command.args_for(description)?;
            CommandError::check_not_retained(&command, publish.retain)?;
            Ok((command, args))
        });
        let (command, args) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return self.refuse(id, &error),
        };
        tracing::info!(device = %entry.name, action = %command.action, "simulation control");
        let result = sim.command(&command.action, &args).map_err(CommandFailure::Device);
        let event = BusEvent::Reply { id, request: command.id, action: command.action, result };
        self.on_bus_event(event);
    }

    fn refuse(&mut self, id: DeviceId, error: &CommandError) {
        self.counters.errors += 1;
        let entry = &self.devices[id.bus][id.device];
        let reply = Reply {
            v: Version,
            ts: schema::now(),
            id: error.id.clone(),
            device: entry.name.clone(),
            action: error.action.clone(),
            ok: false,
            values: Default::default(),
            note: None,
            error: Some(error.to_reply_error()),
        };
        let topic = entry.reply.clone();
        self.send(topic, reply.to_json(), false);
    }

    fn send(&mut self, topic: String, payload: Vec<u8>, retain: bool) {
        self.link.publish(topic, payload, retain);
    }

    fn final_counters(&self) -> Counters {
        Counters {
            messages_out: self.link.messages_out(),
            dropped: self.link.dropped(),
            reconnects: self.link.connects(),
            ..self.counters.clone()
        }
    }

    fn publish_health(&mut self) {
        let online = self.devices.iter().flatten().filter(|e| e.online).count();
        let figures = HealthFigures {
            commands_in: self.counters.commands_in,
            errors: self.counters.errors,
            devices_online: online as u64,
            devices_total: self.by_set_topic.len() as u64,
        };
        self.link.publish_health(self.started, figures);
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
