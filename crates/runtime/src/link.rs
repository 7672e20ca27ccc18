//! The gateway's side of MQTT, shared by every gateway loop: one session with the broker that
//! publishes with QoS 1, keeps a bounded outbox while the broker is unreachable, subscribes
//! again and republishes every retained topic after each connect, and says goodbye cleanly.
//!
//! A gateway loop owns a [`Link`], calls [`Link::publish`] for what it has to say, and awaits
//! [`Link::recv`] (cancel-safe, so it fits in `tokio::select!`) for the commands it receives.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backoff::Backoff;
use bytes::Bytes;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use schema::payload::Payload;
use schema::topic::GatewayTopics;
use schema::{Health, Online, Status, Version};
use tokio::sync::mpsc;

use crate::outbox::{Message, Outbox};
use crate::session::{self, SessionEvent};
use crate::settings::{RuntimeError, Settings};

/// Capacity of rumqttc's request queue. Messages beyond it wait in the outbox.
const REQUEST_QUEUE: usize = 512;

/// The latest payload of a retained topic, republished after a reconnect because the broker
/// may have restarted and lost it.
struct Retained {
    payload: Bytes,
    /// Not yet sent to the broker of the current connection.
    pending: bool,
}

/// What a gateway adds to the link's own figures on its health topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthFigures {
    pub commands_in: u64,
    pub errors: u64,
    /// Devices (or CAN buses) online, and in all.
    pub devices_online: u64,
    pub devices_total: u64,
}

/// The MQTT session of one gateway.
pub struct Link {
    gateway: String,
    version: String,
    topics: GatewayTopics,
    client: AsyncClient,
    session: tokio::task::JoinHandle<()>,
    events: mpsc::Receiver<SessionEvent>,
    connected: bool,
    /// Messages waiting for the broker; bounded, drops the oldest.
    outbox: Outbox,
    retained: HashMap<String, Retained>,
    /// Set after a connect until every pending retained topic has been republished.
    republish: bool,
    /// What to subscribe to after every connect.
    filters: Vec<String>,
    /// Filters not yet subscribed on the current connection (retried until rumqttc takes them).
    unsubscribed: Vec<String>,
    /// Set when rumqttc's request queue was full, so the session task wakes us on progress.
    wake_on_progress: Arc<AtomicBool>,
    messages_out: u64,
    connects: u64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("gateway", &self.gateway).field("connected", &self.connected).finish()
    }
}

impl Link {
    /// Starts connecting to the settings' broker; `filters` are subscribed after every connect.
    /// Must be called inside a tokio runtime.
    pub fn start(settings: &Settings, filters: Vec<String>) -> Result<Link, RuntimeError> {
        let topics = GatewayTopics::new(&settings.board, &settings.gateway);
        let mut options = mqtt_options(settings, &topics);
        if let Some(path) = &settings.password_file {
            options.set_credentials(settings.gateway.clone(), read_password(path)?);
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let (session_tx, events) = mpsc::channel(256);
        let wake_on_progress = Arc::new(AtomicBool::new(false));
        let session = tokio::spawn(session::drive(
            eventloop,
            session_tx,
            Backoff::new(settings.reconnect_min, settings.reconnect_max),
            wake_on_progress.clone(),
        ));
        Ok(Link {
            gateway: settings.gateway.clone(),
            version: settings.version.clone(),
            topics,
            client,
            session,
            events,
            connected: false,
            outbox: Outbox::new(settings.outbox_capacity),
            retained: HashMap::new(),
            republish: false,
            filters,
            unsubscribed: Vec::new(),
            wake_on_progress,
            messages_out: 0,
            connects: 0,
        })
    }

    /// The gateway's status and health topics.
    pub fn topics(&self) -> &GatewayTopics {
        &self.topics
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Waits for the next message on a subscribed topic, handling connects, disconnects and
    /// queue progress meanwhile. Cancel-safe. `None` once the session has ended.
    pub async fn recv(&mut self) -> Option<rumqttc::Publish> {
        loop {
            let event = self.events.recv().await?;
            if let Some(publish) = self.on_session_event(event) {
                return Some(publish);
            }
        }
    }

    fn on_session_event(&mut self, event: SessionEvent) -> Option<rumqttc::Publish> {
        match event {
            SessionEvent::Connected { session_present } => {
                if self.connects > 0 {
                    tracing::info!("reconnected to the broker");
                }
                self.connected = true;
                self.connects += 1;
                if !session_present {
                    self.unsubscribed = self.filters.clone();
                }
                let status = Status {
                    v: Version,
                    ts: schema::now(),
                    state: Online::Online,
                    gateway: self.gateway.clone(),
                    version: self.version.clone(),
                    reason: None,
                };
                let topic = self.topics.status();
                self.retained.insert(topic.clone(), Retained { payload: status.to_json().into(), pending: true });
                // The broker may have restarted empty: every retained topic goes out again.
                for retained in self.retained.values_mut() {
                    retained.pending = true;
                }
                self.republish = true;
                // Status goes first, ahead of the outbox, so consumers know the gateway is back.
                self.hand_over_retained(&topic);
                self.drain();
                None
            }
            SessionEvent::Disconnected { error, unsent } => {
                if self.connected {
                    tracing::warn!(%error, requeued = unsent.len(), "lost the broker; keeping messages in the outbox");
                }
                self.connected = false;
                self.outbox.requeue(unsent.into_iter());
                None
            }
            SessionEvent::Incoming(publish) => Some(publish),
            SessionEvent::Progress => {
                self.drain();
                None
            }
        }
    }

    /// Publishes with QoS 1 now if possible, else keeps the message in the outbox. A retained
    /// message is also remembered and republished after every reconnect.
    pub fn publish(&mut self, topic: String, payload: impl Into<Bytes>, retain: bool) {
        let payload = payload.into();
        if retain {
            // Pending until handed over: if the outbox drops it, the next drain republishes it.
            // An update keeps its key, so publishing a known topic costs no allocation here.
            match self.retained.get_mut(&topic) {
                Some(retained) => *retained = Retained { payload: payload.clone(), pending: true },
                None => {
                    self.retained.insert(topic.clone(), Retained { payload: payload.clone(), pending: true });
                }
            }
            self.republish = true;
        }
        let message = Message { topic, payload, qos: QoS::AtLeastOnce, retain };
        if self.connected && self.outbox.is_empty() {
            if let Err(message) = self.hand_over(message) {
                self.outbox.push(message);
            }
        } else {
            self.outbox.push(message);
        }
    }

    /// Registers a retained topic that is published on every connect, e.g. a discovery config.
    pub fn set_retained(&mut self, topic: String, payload: impl Into<Bytes>) {
        self.retained.insert(topic, Retained { payload: payload.into(), pending: true });
        self.republish = true;
        self.drain();
    }

    /// Publishes a retained snapshot (e.g. health) with QoS 0 if it can go at once; a snapshot
    /// that cannot go is simply superseded by the next one.
    pub fn publish_snapshot(&mut self, topic: String, payload: impl Into<Bytes>) {
        if self.connected {
            let message = Message { topic, payload: payload.into(), qos: QoS::AtMostOnce, retain: true };
            let _ = self.hand_over(message);
        }
    }

    /// Publishes the gateway's health (retained, QoS 0) if connected.
    pub fn publish_health(&mut self, started: std::time::Instant, figures: HealthFigures) {
        if !self.connected {
            return;
        }
        let health = Health {
            v: Version,
            ts: schema::now(),
            gateway: self.gateway.clone(),
            uptime_s: started.elapsed().as_secs(),
            messages_out: self.messages_out,
            commands_in: figures.commands_in,
            errors: figures.errors,
            dropped: self.dropped(),
            outbox_len: self.outbox.len() as u64,
            reconnects: self.reconnects(),
            devices_online: figures.devices_online,
            devices_total: figures.devices_total,
        };
        self.publish_snapshot(self.topics.health(), health.to_json());
    }

    /// Clears a retained topic (an empty retained payload), e.g. a stale discovery config.
    pub fn clear_retained(&mut self, topic: String) {
        self.retained.remove(&topic);
        let message = Message { topic, payload: Bytes::new(), qos: QoS::AtLeastOnce, retain: true };
        if let Err(message) = self.hand_over(message) {
            self.outbox.push(message);
        }
    }

    /// Messages given to rumqttc so far.
    pub fn messages_out(&self) -> u64 {
        self.messages_out
    }

    /// Successful connects after the first one.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Messages the full outbox dropped.
    pub fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }

    /// Gives a message to rumqttc; returns it if rumqttc's queue is full.
    fn hand_over(&mut self, message: Message) -> Result<(), Message> {
        match self.client.try_publish(message.topic.as_str(), message.qos, message.retain, message.payload.clone()) {
            Ok(()) => {
                self.messages_out += 1;
                if message.retain
                    && let Some(retained) = self.retained.get_mut(&message.topic)
                    && retained.payload == message.payload
                {
                    retained.pending = false;
                }
                Ok(())
            }
            Err(_) => {
                self.wake_on_progress.store(true, Ordering::Release);
                Err(message)
            }
        }
    }

    fn hand_over_retained(&mut self, topic: &str) -> bool {
        let Some(retained) = self.retained.get(topic) else { return true };
        let message =
            Message { topic: topic.to_owned(), payload: retained.payload.clone(), qos: QoS::AtLeastOnce, retain: true };
        self.hand_over(message).is_ok()
    }

    /// Subscribes, sends the outbox, then republishes retained topics the broker has not had
    /// since connect.
    fn drain(&mut self) {
        while self.connected {
            let Some(filter) = self.unsubscribed.first() else { break };
            if self.client.try_subscribe(filter.clone(), QoS::AtLeastOnce).is_err() {
                self.wake_on_progress.store(true, Ordering::Release);
                return;
            }
            self.unsubscribed.remove(0);
        }
        while self.connected {
            let Some(message) = self.outbox.pop() else { break };
            if let Err(message) = self.hand_over(message) {
                self.outbox.unpop(message);
                return;
            }
        }
        if self.connected && self.republish {
            let pending: Vec<String> =
                self.retained.iter().filter(|(_, r)| r.pending).map(|(t, _)| t.clone()).collect();
            for topic in pending {
                if !self.hand_over_retained(&topic) {
                    return;
                }
            }
            self.republish = false;
        }
    }

    /// Says goodbye: retained offline status, then a clean disconnect (so the broker does not
    /// send the last will).
    pub async fn stop(mut self) {
        if self.connected {
            self.drain();
            let status = Status {
                v: Version,
                ts: schema::now(),
                state: Online::Offline,
                gateway: self.gateway.clone(),
                version: self.version.clone(),
                reason: Some("stopped".into()),
            };
            let message = Message {
                topic: self.topics.status(),
                payload: status.to_json().into(),
                qos: QoS::AtLeastOnce,
                retain: true,
            };
            let _ = self.hand_over(message);
            let _ = self.client.try_disconnect();
        }
        let session = self.session;
        if !self.connected {
            // Nothing to say goodbye to: the broker is unreachable.
            session.abort();
            return;
        }
        let events = &mut self.events;
        let abort = session.abort_handle();
        // Keep reading the session's events meanwhile, so it never blocks on a full channel
        // before it has sent the DISCONNECT.
        let closed = async {
            tokio::pin!(session);
            loop {
                tokio::select! {
                    _ = &mut session => return,
                    event = events.recv() => if event.is_none() {
                        let _ = (&mut session).await;
                        return;
                    },
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), closed).await.is_err() {
            tracing::warn!(connected = self.connected, "the MQTT connection did not close in time");
            abort.abort();
        }
    }
}

/// The gateway's broker password, from a file only its owner can read (made at install time by
/// `broker gen-password`).
fn read_password(path: &std::path::Path) -> Result<String, RuntimeError> {
    use std::os::unix::fs::PermissionsExt as _;
    let error = |message: String| RuntimeError::Credentials { path: path.to_owned(), message };
    let mode = std::fs::metadata(path).map_err(|e| error(e.to_string()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(error(format!("mode {:o} lets others read it; chmod 600", mode & 0o777)));
    }
    let password = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    Ok(password.trim_end().to_owned())
}

fn mqtt_options(settings: &Settings, topics: &GatewayTopics) -> MqttOptions {
    let mut options = match &settings.broker_socket {
        Some(path) => {
            let mut options = MqttOptions::new(settings.client_id.clone(), path.to_string_lossy(), 0);
            options.set_transport(rumqttc::Transport::unix());
            options
        }
        None => MqttOptions::new(settings.client_id.clone(), settings.broker.ip().to_string(), settings.broker.port()),
    };
    options.set_keep_alive(settings.keep_alive);
    // Every connect is a new session: the gateway subscribes and republishes after each
    // CONNACK, and keeps unacknowledged messages itself (see session.rs).
    options.set_clean_session(true);
    options.set_inflight(100);
    // Commands are small and refused above 4 KiB, but a large publish on a command topic must
    // not break the connection: accept up to the broker's largest payload.
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let will = Status {
        v: Version,
        ts: schema::now(),
        state: Online::Offline,
        gateway: settings.gateway.clone(),
        version: settings.version.clone(),
        reason: Some("connection lost".into()),
    };
    options.set_last_will(LastWill::new(topics.status(), will.to_json(), QoS::AtLeastOnce, true));
    options
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("busgate-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("i2c-gateway.password");
        std::fs::write(&path, "secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&path).unwrap(), "secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_password(&path).unwrap_err().to_string();
        assert!(error.contains("mode 644 lets others read it"), "{error}");
        let error = read_password(&dir.join("missing")).unwrap_err().to_string();
        assert!(error.starts_with("password file "), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
