//! The engine's side of rumqttd's router: links into it, the mark every message carries
//! through it, and the retained messages, which the engine keeps itself.
//!
//! Every session publishes through a router link of its own at QoS 0, so the router never waits
//! for an acknowledgement and its strict acknowledgement queues are never used; the engine runs
//! each client's QoS 1 and 2 exchanges itself ([`crate::session`]). The router carries every
//! message, in each publisher's order, to one dispatch link subscribed to everything, and the
//! dispatcher hands it to each session whose subscriptions match, and to one member of each
//! matching shared subscription. Clients' filters never reach the router: rumqttd keeps a
//! commit log for every filter it has ever seen and never frees one, so client-chosen filters
//! (a reply topic per request, say) would grow its memory without bound.
//!
//! The QoS and retain flag a message was published with travel with it as a user property
//! whose name holds U+0000 ([`MARK`]), which MQTT forbids in every string a client sends (the
//! frame check refuses it), so no client can set or see it: the engine takes it off again.
//! The router tags what it forwards with the subscription identifier of the filter it matched,
//! which the uplink's links use.
//!
//! Every topic and filter the router sees starts with the level [`LEVEL`]: rumqttd's topic
//! matching slices a topic's first byte as text and panics (killing the router, and with it
//! every connection) on a topic that starts with a multi-byte character, which MQTT allows.
//!
//! Retained messages live here, not in the router: rumqttd clears a topic's retained message on
//! any empty publish, retained or not, while MQTT clears it only for a retained one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::{
    Disconnect, DisconnectReasonCode, Filter, Packet, Publish, PublishProperties, QoS, RetainForwardRule, Subscribe,
    SubscribeProperties, Unsubscribe,
};
use rumqttd::{Forward, Notification};

use crate::retained::RetainedSender;
use crate::session::{Delivery, Session};

/// The level put in front of every topic and filter the router sees (see the module docs).
pub const LEVEL: &[u8] = b"b/";

/// `topic` as the router sees it.
fn routed(topic: &[u8]) -> Bytes {
    let mut routed = Vec::with_capacity(LEVEL.len() + topic.len());
    routed.extend_from_slice(LEVEL);
    routed.extend_from_slice(topic);
    Bytes::from(routed)
}

/// The name of the user property that carries a message's published QoS and retain flag.
pub const MARK: &str = "\u{0}busgate";

/// A message as it travels between sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Bytes,
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: u8,
    /// The retain flag it was published with.
    pub retain: bool,
}

/// A retained message, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub qos: u8,
    pub payload: Bytes,
}

/// Makes router links: rumqttd does not export the type of its router channel, so the channel
/// is kept inside this closure.
pub type LinkFactory = Arc<dyn for<'a> Fn(&'a str) -> LinkBuilder<'a> + Send + Sync>;

/// What every connection shares on the router side.
pub struct Hub {
    factory: LinkFactory,
    /// Numbers of the router client ids in use (`busgate-link-N`). The router keeps a record
    /// of every client id it has seen, so ids are reused, lowest first: the router's memory is
    /// bounded by the most links ever open at once, not by the connections ever made.
    slots: Mutex<BTreeSet<usize>>,
    retained: RwLock<BTreeMap<String, Retained>>,
    /// Where retained messages are kept across restarts, when they are.
    store: Option<RetainedSender>,
    /// Shared subscriptions (`$share/GROUP/FILTER`), by group and filter: the engine's own, so
    /// rumqttd's shared-subscription code (which panics on a state clients can reach) is never
    /// used.
    shared: Mutex<HashMap<(String, String), Arc<SharedGroup>>>,
    /// Every session, for the dispatcher.
    sessions: Mutex<Vec<Weak<Session>>>,
    /// The dispatch link's sending half, for [`Hub::flush`]'s marker.
    dispatch_tx: tokio::sync::Mutex<Option<RouterTx>>,
    /// Waiting for the dispatcher to see the flush marker.
    flushes: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

/// The topic of [`Hub::flush`]'s marker: a `$` topic, which no client may publish to.
const FLUSH: &[u8] = b"$busgate/flush";

impl Hub {
    pub fn new(factory: LinkFactory, retained: BTreeMap<String, Retained>, store: Option<RetainedSender>) -> Hub {
        Hub {
            factory,
            slots: Mutex::new(BTreeSet::new()),
            retained: RwLock::new(retained),
            store,
            shared: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Vec::new()),
            dispatch_tx: tokio::sync::Mutex::new(None),
            flushes: Mutex::new(Vec::new()),
        }
    }

    /// Opens a link into the router (off the async threads: building one blocks until the
    /// router answers).
    pub async fn link(self: &Arc<Hub>) -> Result<(RouterTx, LinkRx), LinkError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = (0..).find(|n| !slots.contains(n)).unwrap_or(usize::MAX);
            slots.insert(slot);
            slot
        };
        let factory = self.factory.clone();
        let built = tokio::task::spawn_blocking(move || {
            let client_id = format!("busgate-link-{slot}");
            factory(&client_id).clean_session(true).build()
        })
        .await;
        let built = match built {
            Ok(built) => built,
            Err(error) => Err(LinkError::ConnectionAck(error.to_string())),
        };
        match built {
            Ok((tx, rx, _)) => Ok((RouterTx { tx, slot, hub: self.clone(), closed: AtomicBool::new(false) }, rx)),
            Err(error) => {
                self.release(slot);
                Err(error)
            }
        }
    }

    fn release(&self, slot: usize) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).remove(&slot);
    }

    /// Router links open now.
    pub fn links(&self) -> usize {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Hands a message to the router for every subscriber, keeping it first if it is retained.
    pub fn publish(&self, tx: &mut RouterTx, message: &Message) -> Result<(), LinkError> {
        if message.retain {
            self.retain(message);
        }
        let publish = Publish::new(routed(&message.topic), message.payload.clone(), false);
        let properties = PublishProperties {
            user_properties: vec![(MARK.to_owned(), mark_value(message.qos, message.retain).to_owned())],
            ..Default::default()
        };
        tx.send(Packet::Publish(publish, Some(properties)))
    }

    /// A retained publish: an empty payload clears the topic (MQTT 3.1.1 section 3.3.1.3).
    fn retain(&self, message: &Message) {
        let Ok(topic) = std::str::from_utf8(&message.topic) else { return };
        let mut retained = self.retained.write().unwrap_or_else(PoisonError::into_inner);
        if message.payload.is_empty() {
            retained.remove(topic);
        } else {
            retained.insert(topic.to_owned(), Retained { qos: message.qos, payload: message.payload.clone() });
        }
        if let Some(store) = &self.store {
            store.record(topic, message.qos, &message.payload);
        }
    }

    /// The retained messages whose topics match `filter`.
    pub fn retained_for(&self, filter: &str) -> Vec<Message> {
        let retained = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        retained
            .iter()
            .filter(|(topic, _)| schema::acl::matches(filter, topic))
            .map(|(topic, kept)| Message {
                topic: Bytes::copy_from_slice(topic.as_bytes()),
                payload: kept.payload.clone(),
                qos: kept.qos,
                retain: true,
            })
            .collect()
    }
}

impl Hub {
    /// Opens the dispatch link and starts the dispatcher (see the module documentation).
    pub async fn start_dispatch(self: &Arc<Hub>) -> Result<(), LinkError> {
        let (mut tx, rx) = self.link().await?;
        tx.subscribe("#", 1)?;
        *self.dispatch_tx.lock().await = Some(tx);
        tokio::spawn(dispatch(Arc::downgrade(self), rx));
        Ok(())
    }

    /// Waits until the dispatcher has handed on every message the router had before this call
    /// (at most `limit`): the router keeps the order of what reaches it, so a marker sent now
    /// arrives after all of them. At shutdown, so that no acknowledged message is missing from
    /// the session file.
    pub async fn flush(&self, limit: std::time::Duration) -> bool {
        let (done, seen) = tokio::sync::oneshot::channel();
        self.flushes.lock().unwrap_or_else(PoisonError::into_inner).push(done);
        let marker = Message { topic: Bytes::from_static(FLUSH), payload: Bytes::new(), qos: 0, retain: false };
        {
            let mut tx = self.dispatch_tx.lock().await;
            let Some(tx) = tx.as_mut() else { return false };
            if self.publish(tx, &marker).is_err() {
                return false;
            }
        }
        matches!(tokio::time::timeout(limit, seen).await, Ok(Ok(())))
    }

    /// Makes `session` one the dispatcher hands messages to.
    pub fn register(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|session| session.strong_count() > 0);
        sessions.push(Arc::downgrade(session));
    }

    /// Hands `message` to every session whose subscriptions match it, and to one member of each
    /// matching shared subscription.
    fn fan_out(&self, message: &Message) {
        let sessions: Vec<Arc<Session>> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.retain(|session| session.strong_count() > 0);
            sessions.iter().filter_map(Weak::upgrade).collect()
        };
        for session in &sessions {
            session.offer(message);
        }
        let Ok(topic) = std::str::from_utf8(&message.topic) else { return };
        let groups: Vec<Arc<SharedGroup>> = {
            let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            shared
                .iter()
                .filter(|((_, filter), _)| schema::acl::matches(filter, topic))
                .map(|(_, group)| group.clone())
                .collect()
        };
        for group in groups {
            if let Some((member, granted)) = group.pick() {
                member.enqueue(Delivery { message: message.clone(), qos: message.qos.min(granted), retain: false });
            }
        }
    }

    /// Adds `session` to the shared subscription `group`/`filter` at `qos` (again: a new QoS).
    pub fn join(&self, group: &str, filter: &str, session: &Arc<Session>, qos: u8) {
        let key = (group.to_owned(), filter.to_owned());
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let group = shared
            .entry(key)
            .or_insert_with(|| Arc::new(SharedGroup { members: Mutex::new(Vec::new()), next: AtomicUsize::new(0) }));
        let mut members = group.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|(member, _)| member.upgrade().is_some_and(|member| !Arc::ptr_eq(&member, session)));
        members.push((Arc::downgrade(session), qos));
    }

    /// Takes `session` out of a shared subscription.
    pub fn leave(&self, group: &str, filter: &str, session: &Arc<Session>) {
        let key = (group.to_owned(), filter.to_owned());
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(found) = shared.get(&key) else { return };
        let empty = {
            let mut members = found.members.lock().unwrap_or_else(PoisonError::into_inner);
            members.retain(|(member, _)| member.upgrade().is_some_and(|member| !Arc::ptr_eq(&member, session)));
            members.is_empty()
        };
        if empty {
            shared.remove(&key);
        }
    }
}

impl Hub {
    /// Prunes members that are gone from a shared subscription, and the group if it is empty.
    pub fn leave_gone(&self, group: &str, filter: &str) {
        let key = (group.to_owned(), filter.to_owned());
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(found) = shared.get(&key) else { return };
        let empty = {
            let mut members = found.members.lock().unwrap_or_else(PoisonError::into_inner);
            // The session being dropped has no strong references left.
            members.retain(|(member, _)| member.strong_count() > 0);
            members.is_empty()
        };
        if empty {
            shared.remove(&key);
        }
    }
}

/// `$share/GROUP/FILTER` split into group and filter; `None` if it is not a well-formed shared
/// subscription (MQTT 5 section 4.8.2: the group is one non-empty level without wildcards).
pub fn shared_filter(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (group, filter) = rest.split_once('/')?;
    (!group.is_empty() && !group.contains(['+', '#']) && !filter.is_empty()).then_some((group, filter))
}

/// One shared subscription: its members.
pub struct SharedGroup {
    /// Each member session with the QoS it was granted.
    members: Mutex<Vec<(Weak<Session>, u8)>>,
    /// Round robin over the members.
    next: AtomicUsize,
}

impl SharedGroup {
    /// The member to give the next message to, with its granted QoS; members that are gone are
    /// removed on the way.
    fn pick(&self) -> Option<(Arc<Session>, u8)> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|(member, _)| member.strong_count() > 0);
        if members.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let (member, qos) = &members[start % members.len()];
        member.upgrade().map(|member| (member, *qos))
    }
}

/// Hands every message the router forwards to the sessions, until the hub is gone.
async fn dispatch(hub: Weak<Hub>, mut rx: LinkRx) {
    loop {
        let received = match receive(&mut rx).await {
            Ok(received) => received,
            Err(error) => {
                tracing::error!(%error, "the dispatcher lost its router link; no message is delivered");
                return;
            }
        };
        match received {
            Received::Message(message, _) => match hub.upgrade() {
                Some(hub) if message.topic == FLUSH => {
                    for done in hub.flushes.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                        let _ = done.send(());
                    }
                }
                Some(hub) => hub.fan_out(&message),
                None => return,
            },
            Received::Paused => {
                if rx.wake().await.is_err() {
                    return;
                }
            }
            Received::Nothing => {}
        }
    }
}

/// `MARK`'s value: the QoS, plus 4 when retained.
fn mark_value(qos: u8, retain: bool) -> &'static str {
    match (qos, retain) {
        (0, false) => "0",
        (1, false) => "1",
        (2, false) => "2",
        (0, true) => "4",
        (1, true) => "5",
        _ if retain => "6",
        _ => "2",
    }
}

/// A message forwarded by the router: the message as published and the identifier of the
/// subscription it was forwarded for. `None` for a forward without the engine's marks, which
/// only a router change could produce.
pub fn unmark(forward: Forward) -> Option<(Message, usize)> {
    let mut properties = forward.properties?;
    let subscription = properties.subscription_identifiers.pop()?;
    let index = properties.user_properties.iter().position(|(name, _)| name == MARK)?;
    let (_, value) = properties.user_properties.swap_remove(index);
    let value = value.as_bytes().first().copied()?.checked_sub(b'0')?;
    let topic = forward.publish.topic;
    let message = Message {
        topic: topic.get(LEVEL.len()..).map_or_else(Bytes::new, |_| topic.slice(LEVEL.len()..)),
        payload: forward.publish.payload,
        qos: (value & 0b11).min(2),
        retain: value & 0b100 != 0,
    };
    Some((message, subscription))
}

/// The sending half of a router link. Dropping it takes the link out of the router.
pub struct RouterTx {
    tx: LinkTx,
    slot: usize,
    hub: Arc<Hub>,
    closed: AtomicBool,
}

impl RouterTx {
    /// Hands a packet to the router. `LinkTx::send` is async in name only: it pushes into the
    /// link's buffer and wakes the router through a bounded channel, so it completes at its
    /// first poll (waiting on the thread only while the router's channel is full).
    pub fn send(&mut self, packet: Packet) -> Result<(), LinkError> {
        let mut future = std::pin::pin!(self.tx.send(packet));
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result.map(|_| ()),
            Poll::Pending => Err(LinkError::ConnectionAck("the router link did not take a packet".into())),
        }
    }

    /// Subscribes at QoS 0 with the engine's subscription identifier (see the module docs).
    pub fn subscribe(&mut self, filter: &str, id: usize) -> Result<(), LinkError> {
        let filter = Filter {
            path: format!("b/{filter}"),
            qos: QoS::AtMostOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::Never,
        };
        let properties = SubscribeProperties { id: Some(id), user_properties: Vec::new() };
        self.send(Packet::Subscribe(Subscribe { pkid: 1, filters: vec![filter] }, Some(properties)))
    }

    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), LinkError> {
        self.send(Packet::Unsubscribe(Unsubscribe { pkid: 1, filters: vec![format!("b/{filter}")] }, None))
    }
}

impl Drop for RouterTx {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            let disconnect = Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection };
            let _ = self.send(Packet::Disconnect(disconnect, None));
        }
        self.hub.release(self.slot);
    }
}

/// What a router link's receiving half yields that the engine cares about.
pub enum Received {
    Message(Message, usize),
    /// The router paused this link until it is woken (its buffer was full).
    Paused,
    /// Acknowledgements of the link's own packets, and anything else: nothing to do.
    Nothing,
}

/// Waits for the router's next notification.
pub async fn receive(rx: &mut LinkRx) -> Result<Received, LinkError> {
    Ok(match rx.next().await? {
        Some(Notification::Forward(forward)) => match unmark(forward) {
            Some((message, subscription)) => Received::Message(message, subscription),
            None => {
                tracing::warn!("the router forwarded a message without the engine's marks; dropped");
                Received::Nothing
            }
        },
        Some(Notification::Unschedule) => Received::Paused,
        _ => Received::Nothing,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn the_mark_round_trips_every_qos_and_retain_flag() {
        for qos in 0..=2 {
            for retain in [false, true] {
                let properties = PublishProperties {
                    user_properties: vec![("app".into(), "x".into()), (MARK.into(), mark_value(qos, retain).into())],
                    subscription_identifiers: vec![7],
                    ..Default::default()
                };
                let forward = Forward {
                    cursor: None,
                    size: 0,
                    publish: Publish::new("b/t", "p", false),
                    properties: Some(properties),
                };
                let (message, subscription) = unmark(forward).unwrap();
                assert_eq!((message.qos, message.retain, subscription), (qos, retain, 7));
                assert_eq!(message.topic, "t");
            }
        }
    }

    /// A hub on a real router, as the broker makes it.
    fn hub() -> Arc<Hub> {
        let config = rumqttd::RouterConfig {
            max_connections: 16,
            max_outgoing_packet_count: 200,
            max_segment_size: 1 << 20,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = rumqttd::Router::new(0, config).spawn();
        let factory: LinkFactory = Arc::new(move |client_id| LinkBuilder::new(client_id, router_tx.clone()));
        Arc::new(Hub::new(factory, BTreeMap::new(), None))
    }

    fn message(n: u32, qos: u8, retain: bool) -> Message {
        Message { topic: Bytes::from("t/a"), payload: Bytes::from(n.to_be_bytes().to_vec()), qos, retain }
    }

    /// The next message, skipping acknowledgements of the link's own packets.
    async fn next_message(rx: &mut LinkRx) -> Received {
        loop {
            let received = tokio::time::timeout(std::time::Duration::from_secs(5), receive(rx)).await.unwrap().unwrap();
            if !matches!(received, Received::Nothing) {
                return received;
            }
        }
    }

    // The router contract the engine relies on (see the module docs), pinned here so that a
    // rumqttd upgrade that changes it fails loudly: a QoS 0 subscription forwards every message
    // with the publisher's user properties and the subscription's identifier; a link that does
    // not take its messages is paused at 200 and loses nothing when woken; one forward per
    // matching filter; unsubscribing stops them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_router_keeps_the_contract_the_engine_relies_on() {
        let hub = hub();
        let (mut subscriber, mut rx) = hub.link().await.unwrap();
        let (mut publisher, _publisher_rx) = hub.link().await.unwrap();
        subscriber.subscribe("t/#", 7).unwrap();
        subscriber.subscribe("t/a", 8).unwrap();
        hub.publish(&mut publisher, &message(0, 2, true)).unwrap();
        let mut tags = Vec::new();
        for _ in 0..2 {
            let Received::Message(received, id) = next_message(&mut rx).await else { panic!("expected a message") };
            assert_eq!(received, message(0, 2, true));
            tags.push(id);
        }
        tags.sort();
        assert_eq!(tags, [7, 8], "one forward per matching filter, each with its identifier");
        subscriber.unsubscribe("t/a").unwrap();

        // Regression (found by the fuzz target): rumqttd's router panicked on a topic starting
        // with a multi-byte character; the engine's level in front keeps it from seeing one.
        subscriber.subscribe("ٌhar/#", 10).unwrap();
        let odd = Message { topic: Bytes::from("ٌhar/x"), ..message(0, 0, false) };
        hub.publish(&mut publisher, &odd).unwrap();
        let Received::Message(received, 10) = next_message(&mut rx).await else { panic!("expected the odd topic") };
        assert_eq!(received.topic, odd.topic);

        // 2000 messages while the subscriber takes none: the router hands a link at most 200 at
        // a time and pauses it until woken, and loses none.
        for n in 1..=2000 {
            hub.publish(&mut publisher, &message(n, 1, false)).unwrap();
        }
        let mut received = Vec::new();
        let mut pauses = 0;
        while received.len() < 2000 {
            match next_message(&mut rx).await {
                Received::Message(message, id) => {
                    assert_eq!(id, 7);
                    received.push(u32::from_be_bytes(message.payload[..].try_into().unwrap()));
                }
                Received::Paused => {
                    pauses += 1;
                    rx.wake().await.unwrap();
                }
                Received::Nothing => {}
            }
        }
        assert_eq!(received, (1..=2000).collect::<Vec<_>>(), "in order, none lost, none twice");
        assert!(pauses >= 1, "the router pauses a link at 200 messages ({pauses} pauses)");
    }

    #[test]
    fn a_forward_without_the_mark_is_refused() {
        let forward = Forward { cursor: None, size: 0, publish: Publish::new("t", "p", false), properties: None };
        assert!(unmark(forward).is_none());
    }
}
