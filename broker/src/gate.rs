//! The gate: rumqttd's MQTT codec, wrapped per connection to enforce the protocol, logins and
//! access rules before rumqttd sees a packet, and to answer the client where rumqttd would not.
//!
//! rumqttd clones a server's codec for each connection, and every packet in either direction
//! goes through it: `read_mut` for what the client sends, `write` for what rumqttd answers. The
//! gate uses that to be a small per-connection state machine:
//!
//! - Every frame is first checked strictly ([`crate::frame`]); a violation closes the
//!   connection. So does a second CONNECT, or anything before the first.
//! - CONNECT is authenticated against the board's identities. A refused login is handed to
//!   rumqttd rewritten as a connect rumqttd refuses by itself (an empty client id with
//!   `clean_session = false`, no will), so rumqttd writes a refusing CONNACK and closes; the gate
//!   rewrites that CONNACK's code to the real reason (4: bad user name or password; 5: not
//!   authorized; 1: protocol level; 2: keepalive over the limit). The refused connection never
//!   reaches the router, so it cannot take over a session or leave a will.
//! - Keepalive 0 (legal, "no keepalive") becomes the board's maximum, which rumqttd accepts.
//! - Client ids with `+`, `#`, `/` or `$` are refused (code 2): rumqttd's router drops such a
//!   connection without a CONNACK, and its server then panics (poisoning a lock every later
//!   connection needs) when a client connects again with that id.
//! - A denied PUBLISH or an all-denied SUBSCRIBE is not passed on; rumqttd gets a PINGREQ in
//!   its place, and the gate turns rumqttd's PINGRESP into the answer the client expects
//!   (PUBACK or PUBREC for a denied QoS 1 or 2 publish, a SUBACK with failure codes, or
//!   nothing). rumqttd answers packets in order, so a queue of what each PINGRESP stands for is
//!   exact. A partly denied SUBSCRIBE passes on the allowed filters and the SUBACK is patched.
//! - UNSUBSCRIBE is always answered with one UNSUBACK (rumqttd sends one per removed filter,
//!   and none when nothing was subscribed), by the same PINGREQ substitution.
//!
//! - Acknowledgements are checked against what is in flight to the client: a PUBREC for a
//!   QoS 1 message or a PUBACK for a QoS 2 one closes the connection, and acknowledgements for
//!   nothing are ignored or answered as Mosquitto does (rumqttd would disconnect).
//! - Delivered QoS is min(published, granted). rumqttd sends every message at the
//!   subscription's QoS, so the gate marks each publish with its QoS (in the MQTT 5
//!   `payload_format_indicator` property, which rumqttd keeps with the message, retained ones
//!   included, and the MQTT 3.1.1 encoder never writes) and writes a QoS 0 message as QoS 0;
//!   rumqttd still waits for its acknowledgement, which the gate makes up and hands it on the
//!   connection's next read (rumqttd reads again right after every write). A QoS 1 message to a
//!   QoS 2 subscriber still goes out as QoS 2.
//!
//! The gate sits inside the journal's tap, so a denied message is not journaled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use rumqttd::protocol::{
    self, ConnAck, Connect, ConnectReturnCode, Packet, PingReq, Protocol, PubAck, PubAckReason, PubComp, PubCompReason,
    PubRec, PubRecReason, PubRel, PubRelReason, Publish, PublishProperties, SubAck, SubscribeReasonCode, UnsubAck,
    UnsubAckReason,
};

use crate::frame::{self, Frame};
use crate::policy::{Bound, Policy, Refusal};
use crate::retained::RetainedSender;

/// Counters shared by all connections, for the health topic and the log.
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
    /// Client ids of the connections alive now, with how many hold each.
    clients: Mutex<HashMap<String, usize>>,
    /// Numbers the ids handed to rumqttd in place of a client id still in use.
    stand_ins: AtomicU64,
}

impl Counters {
    /// Takes `client_id` for a new connection and returns the id to hand to rumqttd.
    ///
    /// A client that reconnects before rumqttd has finished with its previous connection
    /// (whose socket has closed, but whose gate, dropped last, still holds the id) hits a race
    /// in rumqttd: the old connection's late disconnect can hit the new one, which then fails
    /// without a CONNACK, and rumqttd's server panics at the next connection with that id. A
    /// clean session has no state to take over, so rumqttd gets a stand-in id instead; the
    /// old connection is not closed early but ends by itself (its socket is gone, or its
    /// keepalive runs out). Persistent sessions keep their id, so they can be resumed.
    fn claim(&self, client_id: &str, clean_session: bool) -> String {
        if client_id.is_empty() {
            return String::new();
        }
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let holders = clients.entry(client_id.to_owned()).or_insert(0);
        *holders += 1;
        if *holders > 1 && clean_session {
            let n = self.stand_ins.fetch_add(1, Ordering::Relaxed);
            return format!("{client_id}~{n}");
        }
        client_id.to_owned()
    }

    fn release(&self, client_id: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(holders) = clients.get_mut(client_id) {
            *holders -= 1;
            if *holders == 0 {
                clients.remove(client_id);
            }
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What one listener admits.
#[derive(Clone)]
pub struct Admission {
    pub listener: String,
    pub anonymous: bool,
    pub max_keepalive_s: u16,
    /// Connected clients allowed at once, over all listeners; more are refused with CONNACK
    /// code 3 (rumqttd would leave them waiting for a CONNACK that never comes).
    pub max_connections: usize,
    pub policy: Arc<Policy>,
    pub counters: Arc<Counters>,
    /// Where retained messages are kept across restarts, when they are.
    pub retained: Option<RetainedSender>,
    /// The secret the front sends first on every connection it relays (see [`crate::front`]);
    /// a connection that does not start with it is closed. `None` only in tests.
    pub preamble: Option<crate::front::Preamble>,
}

/// A gated codec. See the module documentation.
pub struct Gate<P> {
    inner: P,
    admission: Admission,
    /// Read and written from both directions; `read_mut` has `&mut self` and takes it without
    /// locking, `write` locks it (uncontended: one connection is one task).
    state: Mutex<State>,
}

impl<P: Clone> Clone for Gate<P> {
    /// A fresh gate for a new connection.
    fn clone(&self) -> Self {
        Gate::new(self.inner.clone(), self.admission.clone())
    }
}

impl<P> Gate<P> {
    pub fn new(inner: P, admission: Admission) -> Gate<P> {
        Gate { inner, admission, state: Mutex::new(State::default()) }
    }
}

#[derive(Default)]
struct State {
    phase: Phase,
    /// Packets for rumqttd made up by the gate, handed over before reading the next frame.
    pending: VecDeque<Packet>,
    /// What each PINGREQ handed to rumqttd stands for, oldest first.
    pings: VecDeque<Ping>,
    /// SUBSCRIBEs passed on with some filters removed: packet id and which were allowed.
    partial_subscribes: Vec<(u16, Vec<bool>)>,
    /// Packet ids of denied QoS 2 publishes, whose PUBREL the gate answers.
    denied_qos2: HashSet<u16>,
    /// Packet ids of QoS 2 publishes passed to rumqttd and not released yet.
    incoming_qos2: HashSet<u16>,
    /// Messages in flight to the client, by packet id.
    outgoing: HashMap<u16, Outgoing>,
    /// Messages in flight to the client in the order they were written, until their first
    /// acknowledgement: rumqttd wants acknowledgements in that order, so an acknowledgement the
    /// gate makes up waits here behind the client's own for earlier messages.
    order: VecDeque<Flight>,
    /// Whether the session is persistent: then rumqttd may know of packet ids from an earlier
    /// connection that the gate does not, and decides about them itself.
    persistent: bool,
    /// Whether this connection counts in `Counters::live`.
    counted: bool,
    /// Whether the preamble (if the listener wants one) has been read.
    introduced: bool,
    /// The client id this connection holds in `Counters::clients`.
    client_id: Option<String>,
}

enum Flight {
    /// Acknowledged by the client.
    Client(u16),
    /// Acknowledged by the gate, with this packet.
    Gate(Box<Packet>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    QoS1,
    /// QoS 2 sent, waiting for PUBREC.
    QoS2,
    /// QoS 2 released (PUBREL sent), waiting for PUBCOMP.
    Released,
}

/// `payload_format_indicator` values marking a publish with its QoS as published (see the
/// module documentation); real values of that property are 0 and 1.
const QOS_MARK: u8 = 0xb0;

pub(crate) fn mark(qos: u8, properties: Option<PublishProperties>) -> Option<PublishProperties> {
    let mut properties = properties.unwrap_or(PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
        subscription_identifiers: Vec::new(),
        content_type: None,
    });
    properties.payload_format_indicator = Some(QOS_MARK | qos);
    Some(properties)
}

/// QoS and packet id of the PUBLISH encoded at the front of `bytes`.
fn encoded_publish(bytes: &[u8]) -> Option<(u8, u16)> {
    let qos = (bytes.first()? >> 1) & 0b11;
    let mut at = 1;
    while bytes.get(at)? & 0x80 != 0 {
        at += 1;
    }
    let topic_length = usize::from(u16::from_be_bytes([*bytes.get(at + 1)?, *bytes.get(at + 2)?]));
    let pkid_at = at + 3 + topic_length;
    let pkid = if qos == 0 { 0 } else { u16::from_be_bytes([*bytes.get(pkid_at)?, *bytes.get(pkid_at + 1)?]) };
    Some((qos, pkid))
}

#[derive(Default)]
enum Phase {
    #[default]
    Connecting,
    Refused(ConnectReturnCode),
    /// Logged in; `None` rules: no restriction.
    Connected(Option<Bound>),
}

enum Ping {
    /// The client's own PINGREQ.
    Client,
    /// Write nothing (a denied QoS 0 publish).
    Swallow,
    /// Write this instead.
    Answer(Box<Packet>),
}

fn violation(reason: impl std::fmt::Display, counters: &Counters) -> protocol::Error {
    bump(&counters.violations);
    tracing::debug!("closing a connection: {reason}");
    protocol::Error::MalformedPacket
}

impl<P: Protocol> Protocol for Gate<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, protocol::Error> {
        let admission = &self.admission;
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(packet) = state.pending.pop_front() {
            return Ok(packet);
        }
        if let Phase::Refused(_) = state.phase {
            return Err(protocol::Error::MalformedPacket);
        }
        if let (Some(preamble), false) = (&admission.preamble, state.introduced) {
            let have = stream.len().min(preamble.len());
            if stream[..have] != preamble[..have] {
                return Err(violation("a connection to an internal port, not from the front", &admission.counters));
            }
            if have < preamble.len() {
                return Err(protocol::Error::InsufficientBytes(preamble.len() - have));
            }
            let _ = stream.split_to(have);
            state.introduced = true;
        }
        let (frame, size) = match frame::check(stream, max_size) {
            Ok(Some(found)) => found,
            // Let rumqttd's codec say how many bytes it needs.
            Ok(None) => return self.inner.read_mut(stream, max_size),
            Err(reason) => return Err(violation(reason, &admission.counters)),
        };
        let connecting = matches!(state.phase, Phase::Connecting);
        match (&frame, connecting) {
            (Frame::Connect | Frame::OtherLevel(_), false) => {
                return Err(violation("a second CONNECT", &admission.counters));
            }
            (Frame::Connect | Frame::OtherLevel(_), true) => {}
            (_, true) => return Err(violation("a packet before CONNECT", &admission.counters)),
            (_, false) => {}
        }
        if let Frame::OtherLevel(level) = frame {
            let _ = stream.split_to(size);
            tracing::debug!(level, "refusing a connection with an unsupported protocol level");
            return Ok(refuse(state, admission, ConnectReturnCode::RefusedProtocolVersion));
        }

        let packet = self.inner.read_mut(stream, max_size)?;
        match packet {
            Packet::Connect(connect, properties, will, will_properties, login) => {
                let rules = match &login {
                    Some(login) => admission.policy.login(&login.username, login.password.as_bytes()),
                    None if admission.anonymous => Ok(admission.policy.anonymous()),
                    None => Err(Refusal::NotAuthorized),
                };
                let rules = match rules {
                    Ok(rules) => rules,
                    Err(refusal) => {
                        let user = login.as_ref().map(|login| login.username.as_str());
                        tracing::info!(
                            listener = admission.listener,
                            client_id = connect.client_id,
                            user,
                            "login refused"
                        );
                        let code = match refusal {
                            Refusal::BadUserNamePassword => ConnectReturnCode::BadUserNamePassword,
                            Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
                        };
                        return Ok(refuse(state, admission, code));
                    }
                };
                // rumqttd's router silently drops a connection whose client id holds one of
                // these, and its server then panics on the next connection with that id.
                if connect.client_id == crate::local::CLIENT_ID
                    || connect.client_id == crate::uplink::CLIENT_ID
                    || connect.client_id.contains(['+', '#', '/', '$'])
                {
                    return Ok(refuse(state, admission, ConnectReturnCode::ClientIdentifierNotValid));
                }
                if connect.keep_alive > admission.max_keepalive_s {
                    tracing::info!(
                        client_id = connect.client_id,
                        keep_alive = connect.keep_alive,
                        "keepalive too long"
                    );
                    return Ok(refuse(state, admission, ConnectReturnCode::ClientIdentifierNotValid));
                }
                let bound = rules.bind(&connect.client_id, login.as_ref().map(|login| login.username.as_str()));
                if let (Some(will), Some(bound)) = (&will, &bound)
                    && !bound.may_publish(&String::from_utf8_lossy(&will.topic))
                {
                    tracing::info!(client_id = connect.client_id, "will topic not allowed");
                    return Ok(refuse(state, admission, ConnectReturnCode::NotAuthorized));
                }
                let live = admission.counters.live.fetch_add(1, Ordering::Relaxed);
                state.counted = true;
                if live >= admission.max_connections {
                    tracing::warn!(limit = admission.max_connections, "refusing a connection: too many clients");
                    return Ok(refuse(state, admission, ConnectReturnCode::ServiceUnavailable));
                }
                state.phase = Phase::Connected(bound);
                state.persistent = !connect.clean_session;
                let keep_alive = if connect.keep_alive == 0 { admission.max_keepalive_s } else { connect.keep_alive };
                let client_id = admission.counters.claim(&connect.client_id, connect.clean_session);
                state.client_id = Some(connect.client_id.clone());
                let connect = Connect { keep_alive, client_id, ..connect };
                Ok(Packet::Connect(connect, properties, will, will_properties, None))
            }
            Packet::Publish(publish, properties) => {
                let Frame::Publish { qos, pkid } = frame else { return Ok(Packet::Publish(publish, properties)) };
                let allowed = match &state.phase {
                    // The frame check made sure the topic is UTF-8.
                    Phase::Connected(Some(bound)) => {
                        bound.may_publish(std::str::from_utf8(&publish.topic).unwrap_or_default())
                    }
                    _ => true,
                };
                if allowed {
                    bump(&admission.counters.messages_in);
                    if let (true, Some(retained)) = (publish.retain, &admission.retained) {
                        retained.record(std::str::from_utf8(&publish.topic).unwrap_or_default(), qos, &publish.payload);
                    }
                    if qos == 2 {
                        state.incoming_qos2.insert(pkid);
                    }
                    return Ok(Packet::Publish(publish, mark(qos, properties)));
                }
                let topic = String::from_utf8_lossy(&publish.topic);
                bump(&admission.counters.denied_publish);
                tracing::info!(listener = admission.listener, %topic, "publish denied");
                let answer = match qos {
                    0 => Ping::Swallow,
                    1 => Ping::Answer(Box::new(Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None))),
                    _ => {
                        state.denied_qos2.insert(pkid);
                        Ping::Answer(Box::new(Packet::PubRec(PubRec { pkid, reason: PubRecReason::Success }, None)))
                    }
                };
                state.pings.push_back(answer);
                Ok(Packet::PingReq(PingReq))
            }
            Packet::PubRel(pubrel, properties) => {
                let pkid = pubrel.pkid;
                if state.incoming_qos2.remove(&pkid) || (state.persistent && !state.denied_qos2.contains(&pkid)) {
                    return Ok(Packet::PubRel(pubrel, properties));
                }
                // Denied, or released twice: the message is gone either way (MQTT-4.3.3-2).
                state.denied_qos2.remove(&pkid);
                let pubcomp = PubComp { pkid, reason: PubCompReason::Success };
                Ok(answer(state, Packet::PubComp(pubcomp, None)))
            }
            Packet::PubAck(puback, properties) => match state.outgoing.get(&puback.pkid) {
                Some(Outgoing::QoS1) => {
                    state.outgoing.remove(&puback.pkid);
                    acknowledged(state, puback.pkid);
                    Ok(Packet::PubAck(puback, properties))
                }
                Some(_) => Err(violation("PUBACK for a QoS 2 message", &admission.counters)),
                None if state.persistent => Ok(Packet::PubAck(puback, properties)),
                None => Ok(swallow(state)),
            },
            Packet::PubRec(pubrec, properties) => match state.outgoing.get(&pubrec.pkid) {
                Some(Outgoing::QoS2) => {
                    state.outgoing.insert(pubrec.pkid, Outgoing::Released);
                    acknowledged(state, pubrec.pkid);
                    Ok(Packet::PubRec(pubrec, properties))
                }
                Some(Outgoing::QoS1) => Err(violation("PUBREC for a QoS 1 message", &admission.counters)),
                None if state.persistent => Ok(Packet::PubRec(pubrec, properties)),
                // Released already, or unknown: release (again).
                Some(Outgoing::Released) | None => {
                    let pubrel = PubRel { pkid: pubrec.pkid, reason: PubRelReason::Success };
                    Ok(answer(state, Packet::PubRel(pubrel, None)))
                }
            },
            Packet::PubComp(pubcomp, properties) => match state.outgoing.get(&pubcomp.pkid) {
                Some(Outgoing::Released) => {
                    state.outgoing.remove(&pubcomp.pkid);
                    Ok(Packet::PubComp(pubcomp, properties))
                }
                Some(_) => Err(violation("PUBCOMP before PUBREC", &admission.counters)),
                None if state.persistent => Ok(Packet::PubComp(pubcomp, properties)),
                None => Ok(swallow(state)),
            },
            Packet::Subscribe(mut subscribe, properties) => {
                let Phase::Connected(Some(bound)) = &state.phase else {
                    return Ok(Packet::Subscribe(subscribe, properties));
                };
                let allowed: Vec<bool> = subscribe.filters.iter().map(|f| bound.may_subscribe(&f.path)).collect();
                if allowed.iter().all(|&a| a) {
                    return Ok(Packet::Subscribe(subscribe, properties));
                }
                for (filter, _) in subscribe.filters.iter().zip(&allowed).filter(|(_, allowed)| !**allowed) {
                    bump(&admission.counters.denied_subscribe);
                    tracing::info!(listener = admission.listener, filter = filter.path, "subscribe denied");
                }
                if allowed.iter().all(|&a| !a) {
                    let return_codes = vec![SubscribeReasonCode::Failure; allowed.len()];
                    let suback = SubAck { pkid: subscribe.pkid, return_codes };
                    state.pings.push_back(Ping::Answer(Box::new(Packet::SubAck(suback, None))));
                    return Ok(Packet::PingReq(PingReq));
                }
                let mut keep = allowed.iter();
                subscribe.filters.retain(|_| keep.next().copied().unwrap_or(false));
                state.partial_subscribes.push((subscribe.pkid, allowed));
                Ok(Packet::Subscribe(subscribe, properties))
            }
            Packet::Unsubscribe(unsubscribe, properties) => {
                let reasons = vec![UnsubAckReason::Success; unsubscribe.filters.len()];
                let unsuback = UnsubAck { pkid: unsubscribe.pkid, reasons };
                state.pings.push_back(Ping::Answer(Box::new(Packet::UnsubAck(unsuback, None))));
                state.pending.push_back(Packet::PingReq(PingReq));
                Ok(Packet::Unsubscribe(unsubscribe, properties))
            }
            Packet::PingReq(ping) => {
                state.pings.push_back(Ping::Client);
                Ok(Packet::PingReq(ping))
            }
            other => Ok(other),
        }
    }

    fn write(&self, packet: Packet, buffer: &mut BytesMut) -> Result<usize, protocol::Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let packet = match packet {
            Packet::ConnAck(ack, properties) => match state.phase {
                Phase::Refused(code) => Packet::ConnAck(ConnAck { session_present: false, code }, properties),
                _ => {
                    if ack.code == ConnectReturnCode::Success {
                        bump(&self.admission.counters.connections);
                    }
                    Packet::ConnAck(ack, properties)
                }
            },
            Packet::PingResp(pingresp) => match state.pings.pop_front() {
                Some(Ping::Client) | None => Packet::PingResp(pingresp),
                Some(Ping::Swallow) => return Ok(0),
                Some(Ping::Answer(answer)) => *answer,
            },
            Packet::SubAck(mut suback, properties) => {
                if let Some(index) = state.partial_subscribes.iter().position(|(pkid, _)| *pkid == suback.pkid) {
                    let (_, allowed) = state.partial_subscribes.remove(index);
                    let mut granted = suback.return_codes.into_iter();
                    suback.return_codes = allowed
                        .iter()
                        .map(|&ok| {
                            if ok {
                                granted.next().unwrap_or(SubscribeReasonCode::Failure)
                            } else {
                                SubscribeReasonCode::Failure
                            }
                        })
                        .collect();
                }
                Packet::SubAck(suback, properties)
            }
            // The gate sends exactly one per UNSUBSCRIBE itself.
            Packet::UnsubAck(..) => return Ok(0),
            Packet::Publish(publish, properties) => {
                bump(&self.admission.counters.messages_out);
                return self.write_publish(&mut state, publish, properties, buffer);
            }
            // rumqttd releasing a QoS 2 message the gate delivered as QoS 0.
            Packet::PubRel(pubrel, _) if !state.outgoing.contains_key(&pubrel.pkid) && !state.persistent => {
                let pubcomp = PubComp { pkid: pubrel.pkid, reason: PubCompReason::Success };
                state.pending.push_back(Packet::PubComp(pubcomp, None));
                return Ok(0);
            }
            other => other,
        };
        drop(state);
        self.inner.write(packet, buffer)
    }
}

impl<P> Drop for Gate<P> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.counted {
            self.admission.counters.live.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(client_id) = state.client_id.take() {
            self.admission.counters.release(&client_id);
        }
    }
}

impl<P: Protocol> Gate<P> {
    /// Writes a message to the client at min(published, granted) QoS, and notes what is in
    /// flight.
    fn write_publish(
        &self,
        state: &mut State,
        publish: Publish,
        properties: Option<PublishProperties>,
        buffer: &mut BytesMut,
    ) -> Result<usize, protocol::Error> {
        let published = properties
            .as_ref()
            .and_then(|p| p.payload_format_indicator)
            .and_then(|mark| (mark & !0b11 == QOS_MARK).then_some(mark & 0b11));
        let start = buffer.len();
        let (topic, payload, retain) = (publish.topic.clone(), publish.payload.clone(), publish.retain);
        let written = self.inner.write(Packet::Publish(publish, None), buffer)?;
        let Some((granted, pkid)) = encoded_publish(&buffer[start..]) else { return Ok(written) };
        if granted == 0 {
            return Ok(written);
        }
        if published == Some(0) {
            // Take it back and send it as QoS 0; rumqttd gets the acknowledgement it waits for.
            buffer.truncate(start);
            let acknowledgement = if granted == 1 {
                Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None)
            } else {
                Packet::PubRec(PubRec { pkid, reason: PubRecReason::Success }, None)
            };
            if state.order.is_empty() {
                state.pending.push_back(acknowledgement);
            } else {
                state.order.push_back(Flight::Gate(Box::new(acknowledgement)));
            }
            return self.inner.write(Packet::Publish(Publish::new(topic, payload, retain), None), buffer);
        }
        let flight = if granted == 1 { Outgoing::QoS1 } else { Outgoing::QoS2 };
        state.outgoing.insert(pkid, flight);
        state.order.push_back(Flight::Client(pkid));
        Ok(written)
    }
}

/// The client acknowledged `pkid` (PUBACK or PUBREC): the gate's own acknowledgements that
/// waited behind it follow it to rumqttd.
fn acknowledged(state: &mut State, pkid: u16) {
    if let Some(index) = state.order.iter().position(|flight| matches!(flight, Flight::Client(id) if *id == pkid)) {
        state.order.remove(index);
    }
    while let Some(Flight::Gate(_)) = state.order.front() {
        if let Some(Flight::Gate(packet)) = state.order.pop_front() {
            state.pending.push_back(*packet);
        }
    }
}

/// Hands rumqttd a PINGREQ whose PINGRESP becomes `packet`.
fn answer(state: &mut State, packet: Packet) -> Packet {
    state.pings.push_back(Ping::Answer(Box::new(packet)));
    Packet::PingReq(PingReq)
}

/// Hands rumqttd a PINGREQ whose PINGRESP is not written.
fn swallow(state: &mut State) -> Packet {
    state.pings.push_back(Ping::Swallow);
    Packet::PingReq(PingReq)
}

/// Hands rumqttd a connect it refuses by itself, remembering the code the client should get.
fn refuse(state: &mut State, admission: &Admission, code: ConnectReturnCode) -> Packet {
    bump(&admission.counters.refused);
    state.phase = Phase::Refused(code);
    let connect = Connect { keep_alive: 1, client_id: String::new(), clean_session: false };
    Packet::Connect(connect, None, None, None, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use rumqttd::protocol::PingResp;
    use rumqttd::protocol::v4::V4;

    use super::*;

    fn gate() -> Gate<V4> {
        gate_with(None)
    }

    fn gate_with(preamble: Option<crate::front::Preamble>) -> Gate<V4> {
        let text = "[board]\nname = \"t\"\ntarget = \"x86_64-unknown-linux-gnu\"\n";
        let board = board::Board::parse(text, std::path::Path::new("t.toml")).unwrap();
        let admission = Admission {
            listener: "local".into(),
            anonymous: true,
            max_keepalive_s: 600,
            max_connections: 8,
            policy: Arc::new(Policy::from_board(&board).unwrap()),
            counters: Arc::new(Counters::default()),
            retained: None,
            preamble,
        };
        Gate::new(V4, admission)
    }

    /// Feeds `bytes` as one connection's input, answering CONNECT and PINGREQ as rumqttd would.
    fn run(bytes: &[u8]) {
        let mut gate = gate();
        let mut stream = BytesMut::from(bytes);
        let mut out = BytesMut::new();
        for _ in 0..1000 {
            match gate.read_mut(&mut stream, 4096) {
                Ok(Packet::Connect(..)) => {
                    let ack = ConnAck { session_present: false, code: ConnectReturnCode::Success };
                    gate.write(Packet::ConnAck(ack, None), &mut out).unwrap();
                }
                Ok(Packet::PingReq(_)) => {
                    gate.write(Packet::PingResp(PingResp), &mut out).unwrap();
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    // The fuzz target (broker/fuzz) in small, on stable: random and mutated packet streams
    // never panic the gate or the decoder behind it.
    #[test]
    fn arbitrary_input_never_panics() {
        let connect = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00];
        let valid: Vec<u8> = connect
            .iter()
            .chain(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x01])
            .chain(&[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x02, b'x'])
            .chain(&[0x34, 0x06, 0x00, 0x01, b'a', 0x00, 0x03, b'x', 0x62, 0x02, 0x00, 0x03])
            .chain(&[0xa2, 0x05, 0x00, 0x04, 0x00, 0x01, b'a', 0xc0, 0x00, 0xe0, 0x00])
            .copied()
            .collect();
        run(&valid);
        let mut rng = fastrand::Rng::with_seed(6);
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            run(&bytes);
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            run(&[&connect[..], &noise].concat());
        }
    }

    const CONNECT: [u8; 14] = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00];

    #[test]
    fn a_tls_listeners_internal_server_wants_the_preamble_first() {
        let preamble: crate::front::Preamble = Arc::from(&b"0123456789abcdef"[..]);
        let mut gate = gate_with(Some(preamble.clone()));
        let mut stream = BytesMut::from(&CONNECT[..]);
        assert!(!matches!(gate.read_mut(&mut stream, 4096), Ok(_) | Err(protocol::Error::InsufficientBytes(_))));

        let mut gate = gate_with(Some(preamble.clone()));
        // In pieces, as TCP may deliver it.
        let mut stream = BytesMut::from(&preamble[..5]);
        assert!(matches!(gate.read_mut(&mut stream, 4096), Err(protocol::Error::InsufficientBytes(11))));
        stream.extend_from_slice(&preamble[5..]);
        stream.extend_from_slice(&CONNECT);
        assert!(matches!(gate.read_mut(&mut stream, 4096), Ok(Packet::Connect(..))));
    }
}
