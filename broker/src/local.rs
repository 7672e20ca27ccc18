//! The broker's own client: a router link without a socket that publishes the broker's health.
//!
//! It passes neither the access rules nor the journal: what it publishes is the broker's own
//! doing. Its router client id is one of the engine's (see [`crate::hub`]), which no client
//! can take: clients never reach the router under their own ids.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttd::local::LinkRx;
use schema::broker::BrokerHealth;
use schema::payload::{Payload as _, Version};

use crate::counters::Counters;
use crate::hub::{Hub, Message, RouterTx};

/// The broker's connection to its own router.
pub struct Internal {
    hub: Arc<Hub>,
    tx: RouterTx,
    /// Kept so that the router keeps the link; nothing is subscribed, so nothing arrives.
    _rx: LinkRx,
}

impl Internal {
    pub async fn connect(hub: Arc<Hub>) -> Result<Internal, String> {
        let (tx, rx) = hub.link().await.map_err(|error| error.to_string())?;
        Ok(Internal { hub, tx, _rx: rx })
    }

    /// Publishes a retained message as if a client had published it at `qos`.
    pub fn publish_retained(&mut self, topic: &str, qos: u8, payload: Bytes) -> Result<(), String> {
        let message = Message { topic: Bytes::copy_from_slice(topic.as_bytes()), payload, qos, retain: true };
        self.hub.publish(&mut self.tx, &message).map_err(|error| error.to_string())
    }
}

/// What the health payload is made of, besides the connections' counters.
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
        if let Err(error) = internal.publish_retained(&topic, 1, payload) {
            tracing::warn!(%error, "cannot publish the broker's health");
        }
    }
}
