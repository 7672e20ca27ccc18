//! An MQTT session as the client sees it: its subscriptions with their granted QoS, the
//! messages queued for it, the QoS 1 and 2 exchanges in flight in both directions, and its
//! packet ids. The engine owns all of it; the router only fans messages out to the session's
//! link ([`crate::hub`]).
//!
//! The state is plain data behind one mutex, written to by two tasks: the hub's dispatcher,
//! which queues every message that matches one of the session's subscriptions, and the
//! connection that has the session, which sends from the queue and takes the client's
//! acknowledgements, in any order the protocol allows. A persistent session (clean session 0)
//! outlives its connection: QoS 1 and 2 messages are queued for it while the client is away,
//! and the next connection with the same client id resumes it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::codec::{self, PUBREL};
use crate::counters::Counters;
use crate::hub::{self, Hub, Message, RouterTx};

/// Bounds that every session has.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// Messages waiting to be sent; beyond it the oldest is dropped and counted.
    pub queued: usize,
    /// Topic and payload bytes waiting to be sent, bounded the same way: a slow subscriber of
    /// large messages costs this much memory at most.
    pub queued_bytes: usize,
}

/// One session. See the module documentation.
pub struct Session {
    hub: Arc<Hub>,
    pub client_id: String,
    pub persistent: bool,
    /// The session's link into the router, for its publishes.
    pub router: Mutex<RouterTx>,
    /// Kept so that the router keeps the link; nothing is subscribed on it, so nothing arrives.
    _rx: rumqttd::local::LinkRx,
    state: Mutex<State>,
    /// Wakes the connection that has the session when something is queued for it.
    pub wake: Notify,
    /// The connection that has the session (see [`crate::registry`]); a connection that was
    /// taken over sees another number here and sends nothing more from the session.
    pub owner: AtomicU64,
    counters: Arc<Counters>,
    bounds: Bounds,
}

/// A subscription as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Numbers the session's subscriptions in the order they were made.
    pub id: usize,
    pub qos: u8,
}

/// A message for the client, at the QoS it is delivered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: Message,
    /// min(published, granted).
    pub qos: u8,
    /// The RETAIN flag on the wire: set only for retained messages sent because of a SUBSCRIBE.
    pub retain: bool,
}

impl Delivery {
    /// What it costs in a queue.
    pub fn size(&self) -> usize {
        self.message.topic.len() + self.message.payload.len()
    }
}

/// A QoS 1 or 2 message sent to the client and not yet completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflight {
    pub pkid: u16,
    pub delivery: Delivery,
    /// QoS 2 only: PUBREC received and PUBREL sent, waiting for PUBCOMP.
    pub released: bool,
}

/// The session's state. Public fields so that the session file can write and read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    pub subscriptions: HashMap<String, Subscription>,
    pub next_subscription_id: usize,
    pub queue: VecDeque<Delivery>,
    /// Topic and payload bytes in `queue`.
    pub queued_bytes: usize,
    /// In the order sent, which is the order to resend in.
    pub inflight: VecDeque<Inflight>,
    pub last_pkid: u16,
    /// QoS 2 packet ids from the client that were PUBRECed and not yet released: a
    /// retransmitted PUBLISH with one of them is not delivered again.
    pub incoming_qos2: HashSet<u16>,
    /// Whether a connection has the session now.
    pub attached: bool,
    /// When the last connection left (persistent sessions).
    pub detached_at: Option<Instant>,
    /// Messages dropped for this session because its queue was full.
    pub dropped: u64,
    /// Whether the queue is dropping messages, so that the log says it once, not per message.
    pub overflowing: bool,
}

/// What the client sent that breaks the protocol, in a few words for the log.
pub type Violation = &'static str;

impl Session {
    /// A new session with its own router link, registered with the hub's dispatcher.
    pub async fn open(
        hub: &Arc<Hub>,
        client_id: String,
        persistent: bool,
        counters: Arc<Counters>,
        bounds: Bounds,
        state: State,
    ) -> Result<Arc<Session>, rumqttd::local::LinkError> {
        let (tx, rx) = hub.link().await?;
        let shared: Vec<(String, String, u8)> = state
            .subscriptions
            .iter()
            .filter_map(|(filter, subscription)| {
                hub::shared_filter(filter)
                    .map(|(group, filter)| (group.to_owned(), filter.to_owned(), subscription.qos))
            })
            .collect();
        let session = Arc::new(Session {
            hub: hub.clone(),
            client_id,
            persistent,
            router: Mutex::new(tx),
            _rx: rx,
            state: Mutex::new(state),
            wake: Notify::new(),
            owner: AtomicU64::new(0),
            counters,
            bounds,
        });
        hub.register(&session);
        for (group, filter, qos) in shared {
            hub.join(&group, &filter, &session, qos);
        }
        Ok(session)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn router(&self) -> std::sync::MutexGuard<'_, RouterTx> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message for the client, dropping the oldest beyond the bound.
    pub fn enqueue(&self, delivery: Delivery) {
        let mut state = self.lock();
        // A client away from its session gets the QoS 1 and 2 messages when it is back; QoS 0
        // is not kept for it (as Mosquitto does by default).
        if !state.attached && delivery.qos == 0 {
            return;
        }
        state.queued_bytes += delivery.size();
        state.queue.push_back(delivery);
        let mut dropped = 0;
        while state.queue.len() > self.bounds.queued || state.queued_bytes > self.bounds.queued_bytes {
            let Some(oldest) = state.queue.pop_front() else { break };
            state.queued_bytes -= oldest.size();
            dropped += 1;
        }
        if dropped > 0 {
            if !state.overflowing {
                tracing::info!(
                    client_id = self.client_id,
                    attached = state.attached,
                    "the client's queue is full; its oldest messages are dropped"
                );
            }
            state.dropped += dropped;
            self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        state.overflowing = dropped > 0 || (state.overflowing && state.queue.len() * 2 > self.bounds.queued);
        drop(state);
        self.wake.notify_one();
    }

    /// Queues `message` once for each of the session's subscriptions it matches, each copy at
    /// min(published, granted) (as Mosquitto does with `allow_duplicate_messages`, its 2.1
    /// default; MQTT 3.1.1 section 3.3.5 allows either).
    pub fn offer(&self, message: &Message) {
        let Ok(topic) = std::str::from_utf8(&message.topic) else { return };
        let granted: Vec<u8> = {
            let state = self.lock();
            state
                .subscriptions
                .iter()
                .filter(|(filter, _)| !filter.starts_with("$share/") && schema::acl::matches(filter, topic))
                .map(|(_, subscription)| subscription.qos)
                .collect()
        };
        for granted in granted {
            self.enqueue(Delivery { message: message.clone(), qos: message.qos.min(granted), retain: false });
        }
    }
}

impl Drop for Session {
    /// Leaves the shared subscriptions, whose groups otherwise learn of it only at their next
    /// message.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for filter in state.subscriptions.keys() {
            if let Some((group, filter)) = hub::shared_filter(filter) {
                self.hub.leave_gone(group, filter);
            }
        }
    }
}

impl State {
    /// Writes queued messages into `out` while the in-flight window has room, until `out`
    /// holds about `max_bytes`. Returns how many PUBLISH packets it wrote.
    pub fn send_queued(&mut self, out: &mut BytesMut, bounds: Bounds, max_bytes: usize) -> u64 {
        let mut sent = 0;
        while out.len() < max_bytes {
            let Some(front) = self.queue.front() else { break };
            if front.qos > 0 && self.inflight.len() >= bounds.inflight {
                break;
            }
            let Some(delivery) = self.queue.pop_front() else { break };
            self.queued_bytes -= delivery.size();
            let message = &delivery.message;
            if delivery.qos == 0 {
                codec::publish(out, &message.topic, &message.payload, 0, delivery.retain, false, 0);
            } else {
                let pkid = self.next_pkid();
                codec::publish(out, &message.topic, &message.payload, delivery.qos, delivery.retain, false, pkid);
                self.inflight.push_back(Inflight { pkid, delivery, released: false });
            }
            sent += 1;
        }
        sent
    }

    /// The next packet id not in flight (MQTT 3.1.1 section 2.3.1: an id may be reused only
    /// once its exchange is complete).
    fn next_pkid(&mut self) -> u16 {
        loop {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            let pkid = self.last_pkid;
            if !self.inflight.iter().any(|inflight| inflight.pkid == pkid) {
                return pkid;
            }
        }
    }

    /// What a resumed session sends first: every unacknowledged PUBLISH again, with DUP, and
    /// PUBREL for every released QoS 2 message (MQTT 3.1.1 section 4.4).
    pub fn resend(&self, out: &mut BytesMut) {
        for inflight in &self.inflight {
            if inflight.released {
                codec::ack(out, PUBREL, inflight.pkid);
            } else {
                let delivery = &inflight.delivery;
                let message = &delivery.message;
                codec::publish(
                    out,
                    &message.topic,
                    &message.payload,
                    delivery.qos,
                    delivery.retain,
                    true,
                    inflight.pkid,
                );
            }
        }
    }

    fn position(&self, pkid: u16) -> Option<usize> {
        self.inflight.iter().position(|inflight| inflight.pkid == pkid)
    }

    pub fn puback(&mut self, pkid: u16) -> Result<(), Violation> {
        match self.position(pkid) {
            Some(at) if self.inflight[at].delivery.qos == 1 => {
                self.inflight.remove(at);
                Ok(())
            }
            Some(_) => Err("PUBACK for a QoS 2 message"),
            // Acknowledged already, or never sent: nothing to do (as Mosquitto does).
            None => Ok(()),
        }
    }

    /// Returns whether to answer with PUBREL.
    pub fn pubrec(&mut self, pkid: u16) -> Result<bool, Violation> {
        match self.position(pkid) {
            Some(at) if self.inflight[at].delivery.qos == 2 => {
                self.inflight[at].released = true;
                Ok(true)
            }
            Some(_) => Err("PUBREC for a QoS 1 message"),
            // Released and completed already: release again, so the client can finish.
            None => Ok(true),
        }
    }

    pub fn pubcomp(&mut self, pkid: u16) -> Result<(), Violation> {
        match self.position(pkid) {
            Some(at) if self.inflight[at].released => {
                self.inflight.remove(at);
                Ok(())
            }
            Some(_) => Err("PUBCOMP before PUBREC"),
            None => Ok(()),
        }
    }

    /// Drops what only a connected client can get (QoS 0 messages) when the connection ends.
    pub fn detach(&mut self) {
        self.attached = false;
        self.detached_at = Some(Instant::now());
        self.queue.retain(|delivery| delivery.qos > 0);
        self.queued_bytes = self.queue.iter().map(Delivery::size).sum();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use bytes::Bytes;

    use super::*;

    const BOUNDS: Bounds = Bounds { inflight: 2, queued: 4, queued_bytes: 1 << 20 };

    fn delivery(n: u8, qos: u8) -> Delivery {
        let message = Message { topic: Bytes::from("t"), payload: Bytes::from(vec![n]), qos, retain: false };
        Delivery { message, qos, retain: false }
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_qos_0_passes_it() {
        let mut state = queued([delivery(1, 1), delivery(2, 2), delivery(3, 1), delivery(4, 0)]);
        let mut out = BytesMut::new();
        assert_eq!(state.send_queued(&mut out, BOUNDS, 1 << 20), 2);
        assert_eq!(state.inflight.iter().map(|i| i.pkid).collect::<Vec<_>>(), [1, 2]);
        // Acknowledged out of order: the QoS 2 one first, then the QoS 1 one.
        assert_eq!(state.pubrec(2), Ok(true));
        assert_eq!(state.puback(1), Ok(()));
        assert_eq!(state.send_queued(&mut out, BOUNDS, 1 << 20), 2);
        assert_eq!(state.pubcomp(2), Ok(()));
        assert_eq!(state.inflight.iter().map(|i| i.pkid).collect::<Vec<_>>(), [3]);
        assert!(state.queue.is_empty());
    }

    fn queued(deliveries: impl IntoIterator<Item = Delivery>) -> State {
        let mut state = State::default();
        for delivery in deliveries {
            state.queued_bytes += delivery.size();
            state.queue.push_back(delivery);
        }
        state
    }

    #[test]
    fn wrong_acknowledgements_are_violations_and_unknown_ones_are_ignored() {
        let mut state = queued([delivery(1, 1), delivery(2, 2)]);
        state.send_queued(&mut BytesMut::new(), BOUNDS, 1 << 20);
        assert!(state.pubrec(1).is_err());
        assert!(state.puback(2).is_err());
        assert!(state.pubcomp(2).is_err());
        assert_eq!(state.puback(9), Ok(()));
        assert_eq!(state.pubcomp(9), Ok(()));
        assert_eq!(state.pubrec(9), Ok(true));
    }

    #[test]
    fn packet_ids_in_flight_are_never_reused() {
        let mut state = State { last_pkid: u16::MAX - 1, ..State::default() };
        state.inflight.push_back(Inflight { pkid: 1, delivery: delivery(0, 1), released: false });
        assert_eq!(state.next_pkid(), u16::MAX);
        // Wraps past 0 (never used) and skips 1, still in flight.
        assert_eq!(state.next_pkid(), 2);
    }

    #[test]
    fn a_resumed_session_resends_with_dup_and_releases_again() {
        let mut state = queued([delivery(1, 1), delivery(2, 2)]);
        state.send_queued(&mut BytesMut::new(), BOUNDS, 1 << 20);
        state.pubrec(2).unwrap();
        let mut out = BytesMut::new();
        state.resend(&mut out);
        // PUBLISH QoS 1 with DUP (0x3a), then PUBREL for id 2.
        assert_eq!(&out[..], &[0x3a, 6, 0, 1, b't', 0, 1, 1, 0x62, 2, 0, 2]);
    }

    #[test]
    fn a_detached_session_keeps_only_qos_1_and_2() {
        let mut state = queued([delivery(1, 0), delivery(2, 1)]);
        state.attached = true;
        state.detach();
        assert_eq!(state.queue, [delivery(2, 1)]);
        assert_eq!(state.queued_bytes, delivery(2, 1).size());
    }
}
