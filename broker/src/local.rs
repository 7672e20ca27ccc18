//! The broker's own client: a local link into rumqttd's router, which restores retained
//! messages at start and publishes the broker's health.
//!
//! A local link is a connection without a socket, so it passes neither the gate nor the
//! journal: what it publishes is the broker's own doing. Its client id is reserved (the gate
//! refuses clients that use it), so nobody can take its session over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttd::Notification;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish};
use schema::broker::BrokerHealth;
use schema::payload::{Payload as _, Version};

use crate::gate::{Counters, mark};
use crate::retained::Message;

/// The local link's client id, refused to clients.
pub const CLIENT_ID: &str = "busgate-broker-internal";

/// The broker's connection to its own router.
pub struct Internal {
    tx: LinkTx,
    /// Kept so that the router keeps the link; nothing is subscribed, so nothing arrives.
    _rx: LinkRx,
}

impl Internal {
    /// Connects to the router (blocking until it answers, so off the async threads). The
    /// builder comes from `LinkBuilder::new(CLIENT_ID, router_tx)`: rumqttd does not export the
    /// type of its router channel, so it cannot be named here.
    pub async fn connect(builder: LinkBuilder<'static>) -> Result<Internal, String> {
        let built = tokio::task::spawn_blocking(move || builder.clean_session(true).build())
            .await
            .map_err(|error| error.to_string())?;
        let (tx, rx, notification) = built.map_err(|error| error.to_string())?;
        match notification {
            Notification::DeviceAck(_) => Ok(Internal { tx, _rx: rx }),
            other => Err(format!("the router answered the broker's own link with {other:?}")),
        }
    }

    /// Publishes a retained message as if a client had published it at `qos`.
    pub async fn publish_retained(&mut self, topic: &str, message: &Message) -> Result<(), String> {
        let publish = Publish::new(Bytes::copy_from_slice(topic.as_bytes()), message.payload.clone(), true);
        self.tx.send(Packet::Publish(publish, mark(message.qos, None))).await.map_err(|error| error.to_string())?;
        Ok(())
    }
}

/// What the health payload is made of, besides the gate's counters.
pub struct HealthSources {
    pub board: String,
    pub counters: Arc<Counters>,
    /// Other drop counters (journal, retained store, uplink queue), added up.
    pub dropped: Vec<Box<dyn Fn() -> u64 + Send + Sync>>,
    /// Messages waiting for the upstream broker.
    pub uplink_queue: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Whether the uplink is connected to the upstream broker (never without an uplink).
    pub uplink_connected: Arc<std::sync::atomic::AtomicBool>,
}

impl HealthSources {
    pub fn health(&self, started: Instant) -> BrokerHealth {
        let c = &self.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        BrokerHealth {
            v: Version,
            ts: schema::now(),
            uptime_s: started.elapsed().as_secs(),
            connections: c.live.load(Ordering::Relaxed) as u64,
            logins: get(&c.connections),
            refused: get(&c.refused),
            violations: get(&c.violations),
            messages_in: get(&c.messages_in),
            messages_out: get(&c.messages_out),
            denied: get(&c.denied_publish) + get(&c.denied_subscribe),
            dropped: self.dropped.iter().map(|source| source()).sum(),
            uplink_queue: (self.uplink_queue)(),
            uplink_connected: self.uplink_connected.load(Ordering::Relaxed),
        }
    }
}

/// Publishes the broker's health, retained, every `interval`, until the task is dropped.
pub async fn publish_health(mut internal: Internal, sources: HealthSources, interval: Duration) {
    let started = Instant::now();
    let topic = schema::broker::stats_topic(&sources.board);
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let payload = Bytes::from(sources.health(started).to_json());
        if let Err(error) = internal.publish_retained(&topic, &Message { qos: 1, payload }).await {
            tracing::warn!(%error, "cannot publish the broker's health");
        }
    }
}
