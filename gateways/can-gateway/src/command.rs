//! Commands to a CAN bus: messages sent by signal name (encoded with the DBC), raw frames,
//! both queued to the interface task and acknowledged once it took the frame, and the
//! simulation controls of a mock bus. Every command gets a reply.

use buses::can::{CanError, CanFrame};
use device::{CommandSpec, Param, ParamKind, Value};
use runtime::shell::Shell;
use schema::can::SignalArg;
use schema::payload::Payload;
use schema::topic::{DeviceLeaf, Parsed};
use schema::{Command, CommandError, ErrorKind, Measurement, Reply, ReplyError, Version, WireValue};
use tokio::sync::mpsc;

use crate::gateway::CanLoop;
use crate::port::SendJob;
use crate::sim;

/// How a send command is answered.
#[derive(Debug)]
pub struct ReplyContext {
    topic: String,
    device: String,
    id: Option<String>,
    action: String,
    note: Option<String>,
}

impl CanLoop {
    pub(crate) fn on_command(&mut self, publish: &rumqttc::Publish, shell: &mut Shell) {
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
        let Some(&message) = bus.by_name.get(name) else {
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

    pub(crate) fn on_sent(
        &mut self,
        index: usize,
        job: SendJob<ReplyContext>,
        result: Result<(), CanError>,
        shell: &mut Shell,
    ) {
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
