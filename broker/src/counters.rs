//! Counters shared by all connections, for the broker's health topic.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Clients connected now.
    pub live: AtomicUsize,
    /// Logins accepted since start.
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub violations: AtomicU64,
    pub denied_publish: AtomicU64,
    pub denied_subscribe: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    /// Messages dropped for sessions whose queue was full (slow or absent clients).
    pub dropped: AtomicU64,
    /// Persistent sessions resumed, and expired or evicted.
    pub sessions_resumed: AtomicU64,
    pub sessions_expired: AtomicU64,
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
