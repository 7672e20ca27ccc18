//! The broker's own topic and payload: its counters, retained on `busgate/{board}/broker/stats`.
//!
//! Kept apart from the gateway topic list in [`crate::topic`]. Tools pick a payload's schema by
//! the topic's last level, so the leaf is `stats`, not a gateway's `health`; and no gateway is
//! named `broker` (a gateway's name ends in `-gateway`), so the topic cannot collide with one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::payload::{Payload, Version};
use crate::topic::ROOT;

/// The broker's counters topic, retained.
pub fn stats_topic(board: &str) -> String {
    format!("{ROOT}/{board}/broker/stats")
}

/// The broker's counters since it started, and what it holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerHealth {
    pub v: Version,
    pub ts: String,
    pub uptime_s: u64,
    /// Clients connected now.
    pub connections: u64,
    /// Logins accepted since start.
    pub logins: u64,
    /// Logins refused (bad credentials, not authorized, limits).
    pub refused: u64,
    /// Connections closed for a protocol violation.
    pub violations: u64,
    /// PUBLISH packets accepted from clients.
    pub messages_in: u64,
    /// PUBLISH packets written to clients.
    pub messages_out: u64,
    /// PUBLISHes and SUBSCRIBE filters refused by access rules.
    pub denied: u64,
    /// Messages dropped: journal behind, retained store full, uplink queue over its bound.
    pub dropped: u64,
    /// Messages waiting for the upstream broker now (0 without an uplink).
    pub uplink_queue: u64,
    /// Whether the uplink is connected to the upstream broker (false without an uplink).
    pub uplink_connected: bool,
}

impl Payload for BrokerHealth {}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn stats_topic_and_payload() {
        assert_eq!(stats_topic("sim"), "busgate/sim/broker/stats");
        assert_eq!(crate::topic::parse(&stats_topic("sim")), None, "not a gateway or device topic");
        let health = BrokerHealth {
            v: Version,
            ts: "2026-01-01T00:00:00.000Z".into(),
            uptime_s: 1,
            connections: 2,
            logins: 3,
            refused: 4,
            violations: 5,
            messages_in: 6,
            messages_out: 7,
            denied: 8,
            dropped: 9,
            uplink_queue: 10,
            uplink_connected: true,
        };
        let parsed: BrokerHealth = crate::payload::parse(&health.to_json()).unwrap();
        assert_eq!(parsed, health);
    }
}
