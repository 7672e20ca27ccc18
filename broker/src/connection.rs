//! One client connection: the CONNECT and the login, then every packet in both directions
//! until the connection ends, and the will.
//!
//! The connection task owns the socket (plain, TLS or Unix, [`crate::listen`]). Every frame
//! the client sends is checked strictly first ([`crate::frame`]): any violation closes the
//! connection and is counted. Publishes and subscriptions are checked against the identity's
//! access rules ([`crate::policy`]); what passes goes to the session ([`crate::session`]) and
//! through it to the router ([`crate::hub`]). Messages for the client come from the session's
//! queue, within its in-flight window, at min(published, granted) QoS.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use crate::codec::{self, ClientPacket, Connect, ConnectCode, PUBACK, PUBCOMP, PUBREC, PUBREL, SUBACK_FAILURE};
use crate::counters::{Counters, bump};
use crate::frame::{self, Frame};
use crate::hub::{Hub, Message};
use crate::journal::{JournalSender, Record};
use crate::policy::{Bound, Policy, Refusal};
use crate::registry::{Claim, ClaimError, Registry};
use crate::session::{Bounds, Delivery, Session};

/// Bytes of packets for the client gathered before writing; the rest waits in the session's
/// queue, which is bounded.
const HIGH_WATER: usize = 64 * 1024;

/// What the engine shares between all connections.
pub struct Engine {
    pub hub: Arc<Hub>,
    pub registry: Registry,
    /// The identities and access rules, replaced on SIGHUP.
    pub policy: watch::Receiver<Arc<Policy>>,
    pub counters: Arc<Counters>,
    pub journal: Option<JournalSender>,
    pub settings: Settings,
    /// Set, and notified, when the broker stops: every connection ends at once.
    pub closing: Closing,
}

/// The broker is stopping: connections end without their wills (the broker is going away, not
/// the clients) and hand their sessions back.
#[derive(Debug, Default)]
pub struct Closing {
    closed: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Closing {
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// The board's limits as the engine applies them.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_connections: usize,
    /// Largest remaining length of a packet from a client.
    pub max_packet_bytes: usize,
    pub connect_timeout: Duration,
    pub max_keepalive_s: u16,
    pub bounds: Bounds,
}

/// Where a connection came in.
#[derive(Debug, Clone)]
pub struct Door {
    pub listener: Arc<str>,
    pub anonymous: bool,
    /// The identity the operating system vouches for (a Unix socket peer's uid mapped in the
    /// board file): a client that sends no user name logs in as it.
    pub peer_user: Option<String>,
    /// For the log: the peer's address, or its uid.
    pub peer: String,
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// DISCONNECT: the will is discarded.
    Disconnect,
    Closed,
    Io(std::io::Error),
    Keepalive,
    TakenOver,
    Violation(String),
    /// After a reload of the identities, the login no longer passes.
    LoginRevoked,
    /// The broker is stopping.
    Shutdown,
    Router(String),
}

/// Serves one connection until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(engine: Arc<Engine>, door: Door, stream: S) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let settings = engine.settings;

    let first = timeout(settings.connect_timeout, next_frame(&mut reader, &mut input, settings.max_packet_bytes)).await;
    let frame = match first {
        Ok(Ok(frame)) => frame,
        Ok(Err(FrameError::Violation(reason))) => {
            violation(&engine.counters, &door, None, &reason);
            return;
        }
        Ok(Err(FrameError::Io(error))) => {
            tracing::debug!(listener = %door.listener, peer = door.peer, %error, "connection closed before CONNECT");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %door.listener, peer = door.peer, "no CONNECT in time; closed");
            return;
        }
    };
    let connect = match frame {
        (Frame::Connect, bytes) => match codec::decode(bytes) {
            Some(ClientPacket::Connect(connect)) => connect,
            _ => return violation(&engine.counters, &door, None, "a CONNECT that does not decode"),
        },
        (Frame::OtherLevel(level), _) => {
            tracing::info!(listener = %door.listener, peer = door.peer, level, "refusing an unsupported MQTT protocol level");
            bump(&engine.counters.refused);
            codec::connack(&mut out, false, ConnectCode::ProtocolLevel);
            let _ = writer.write_all(&out).await;
            return;
        }
        _ => return violation(&engine.counters, &door, None, "a packet before CONNECT"),
    };

    let mut live = Live::new(&engine.counters);
    let admitted = admit(&engine, &door, &connect, &mut live).await;
    let (client_id, bound, claim) = match admitted {
        Ok(admitted) => admitted,
        Err(code) => {
            bump(&engine.counters.refused);
            codec::connack(&mut out, false, code);
            let _ = writer.write_all(&out).await;
            return;
        }
    };
    codec::connack(&mut out, claim.resumed, ConnectCode::Accepted);
    bump(&engine.counters.connections);
    tracing::info!(
        listener = %door.listener,
        peer = door.peer,
        client_id,
        user = connect.username.as_deref().or(door.peer_user.as_deref()),
        clean_session = connect.clean_session,
        resumed = claim.resumed,
        "client connected"
    );
    if claim.resumed {
        claim.session.lock().resend(&mut out);
    }

    let idle = match connect.keep_alive {
        0 => Duration::from_secs(u64::from(settings.max_keepalive_s)),
        // MQTT 3.1.1 section 3.1.2.10: one and a half keepalive periods.
        seconds => Duration::from_millis(u64::from(seconds) * 1500),
    };
    let mut connection = Connection {
        engine: engine.clone(),
        session: claim.session.clone(),
        owner: claim.owner,
        bound,
        client_id: client_id.clone(),
        will: connect.will.clone(),
    };
    let mut policy = engine.policy.clone();
    policy.mark_unchanged();
    let mut deadline = Instant::now() + idle;
    // Packets that came with the CONNECT (a client need not wait for the CONNACK).
    let mut pipelined = connection.take_input(&mut input, &mut out).await.err();
    let end = loop {
        if let Some(end) = pipelined.take() {
            break end;
        }
        if engine.closing.is_closed() {
            break End::Shutdown;
        }
        if out.len() < HIGH_WATER && connection.owns_session() {
            let sent = connection.session.lock().send_queued(&mut out, settings.bounds, HIGH_WATER);
            engine.counters.messages_out.fetch_add(sent, Ordering::Relaxed);
        }
        input.reserve(8 * 1024);
        tokio::select! {
            biased;
            () = claim.kick.notified() => break End::TakenOver,
            () = engine.closing.notify.notified() => break End::Shutdown,
            read = reader.read_buf(&mut input) => match read {
                Ok(0) => break End::Closed,
                Err(error) => break End::Io(error),
                Ok(_) => {
                    deadline = Instant::now() + idle;
                    if let Err(end) = connection.take_input(&mut input, &mut out).await {
                        break end;
                    }
                }
            },
            written = writer.write_buf(&mut out), if !out.is_empty() => {
                if let Err(error) = written {
                    break End::Io(error);
                }
                if out.is_empty() && let Err(error) = writer.flush().await {
                    break End::Io(error);
                }
            }
            () = connection.session.wake.notified() => {}
            () = sleep_until(deadline) => break End::Keepalive,
            Ok(()) = policy.changed() => {
                let fresh = policy.borrow_and_update().clone();
                match relogin(&fresh, &door, &connect, &client_id).await {
                    Some(bound) => connection.bound = bound,
                    None => break End::LoginRevoked,
                }
            }
        }
    };
    // The session is handed back before the socket closes, so a client that sees the close
    // can count on it.
    connection.finish(&door, end);
    drop(live);
    // Whatever is still buffered for the client (a SUBACK, acknowledgements) goes out if it can.
    if !out.is_empty() {
        let _ = timeout(Duration::from_millis(100), writer.write_all(&out)).await;
    }
    let _ = writer.shutdown().await;
}

/// Logs in, checks the CONNECT against the limits, and takes the client's session.
async fn admit(
    engine: &Arc<Engine>,
    door: &Door,
    connect: &Connect,
    live: &mut Live<'_>,
) -> Result<(String, Option<Bound>, Claim), ConnectCode> {
    let settings = &engine.settings;
    let policy = engine.policy.borrow().clone();
    let rules = match login(&policy, door, connect).await {
        Ok(rules) => rules,
        Err(refusal) => {
            tracing::info!(
                listener = %door.listener,
                peer = door.peer,
                client_id = connect.client_id,
                user = connect.username,
                "login refused"
            );
            return Err(match refusal {
                Refusal::BadUserNamePassword => ConnectCode::BadUserNamePassword,
                Refusal::NotAuthorized => ConnectCode::NotAuthorized,
            });
        }
    };
    if connect.keep_alive > settings.max_keepalive_s {
        tracing::info!(
            client_id = connect.client_id,
            keep_alive = connect.keep_alive,
            max = settings.max_keepalive_s,
            "refused: keepalive over the board's limit"
        );
        return Err(ConnectCode::IdentifierRejected);
    }
    let client_id = match connect.client_id.as_str() {
        // MQTT 3.1.1 section 3.1.3.1: a clean session may leave the id to the server. MQTT 3.1
        // requires an id.
        "" if connect.clean_session && connect.level == 4 => generated_id(),
        "" => return Err(ConnectCode::IdentifierRejected),
        id => id.to_owned(),
    };
    let username = connect.username.as_deref().or(door.peer_user.as_deref());
    let bound = rules.bind(&client_id, username);
    if let (Some(will), Some(bound)) = (&connect.will, &bound) {
        let topic = std::str::from_utf8(&will.topic).unwrap_or("");
        if !bound.may_publish(topic) {
            bump(&engine.counters.denied_publish);
            tracing::info!(listener = %door.listener, client_id, topic, "login refused: the will's topic is not allowed");
            return Err(ConnectCode::NotAuthorized);
        }
    }
    if !live.enter(settings.max_connections) {
        tracing::info!(listener = %door.listener, client_id, max = settings.max_connections, "refused: connection limit reached");
        return Err(ConnectCode::ServerUnavailable);
    }
    match engine.registry.claim(&engine.hub, &client_id, connect.clean_session).await {
        Ok(claim) => Ok((client_id, bound, claim)),
        Err(error @ ClaimError::Full(_)) => {
            tracing::warn!(client_id, %error, "refused: no room for another persistent session");
            Err(ConnectCode::ServerUnavailable)
        }
        Err(error) => {
            tracing::error!(client_id, %error, "refused: the broker's router did not take the connection");
            Err(ConnectCode::ServerUnavailable)
        }
    }
}

/// Checks the login against `policy`, off the async threads (Argon2id takes tens of
/// milliseconds by design).
async fn login(policy: &Arc<Policy>, door: &Door, connect: &Connect) -> Result<crate::policy::Rules, Refusal> {
    match (&connect.username, &door.peer_user) {
        (Some(username), _) => {
            let (policy, username) = (policy.clone(), username.clone());
            let password = connect.password.clone().unwrap_or_default();
            tokio::task::spawn_blocking(move || policy.login(&username, &password).cloned())
                .await
                .unwrap_or(Err(Refusal::NotAuthorized))
        }
        (None, Some(peer_user)) => policy.rules_of(peer_user).cloned().ok_or(Refusal::NotAuthorized),
        (None, None) if door.anonymous => Ok(policy.anonymous().clone()),
        (None, None) => Err(Refusal::NotAuthorized),
    }
}

/// The connection's rules under reloaded identities, or `None` if its login no longer passes.
async fn relogin(policy: &Arc<Policy>, door: &Door, connect: &Connect, client_id: &str) -> Option<Option<Bound>> {
    match login(policy, door, connect).await {
        Ok(rules) => Some(rules.bind(client_id, connect.username.as_deref().or(door.peer_user.as_deref()))),
        Err(_) => None,
    }
}

fn generated_id() -> String {
    let mut bytes = [0u8; 8];
    // The id only has to be unique among this broker's clients; on the unlikely failure of the
    // system's random source, the time serves.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (nanos.as_nanos() as u64).to_be_bytes();
    }
    format!("busgate-{:016x}", u64::from_be_bytes(bytes))
}

fn violation(counters: &Counters, door: &Door, client_id: Option<&str>, reason: &str) {
    bump(&counters.violations);
    tracing::info!(listener = %door.listener, peer = door.peer, client_id, reason, "protocol violation; connection closed");
}

enum FrameError {
    Violation(String),
    Io(std::io::Error),
}

/// Reads until one whole frame is in `input`, and takes it.
async fn next_frame(
    reader: &mut (impl AsyncRead + Unpin),
    input: &mut BytesMut,
    max: usize,
) -> Result<(Frame, Bytes), FrameError> {
    loop {
        match frame::check(input, max) {
            Ok(Some((frame, size))) => return Ok((frame, input.split_to(size).freeze())),
            Ok(None) => {}
            Err(violation) => return Err(FrameError::Violation(violation.to_string())),
        }
        input.reserve(4096);
        match reader.read_buf(input).await {
            Ok(0) => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
}

/// Counts the connection in [`Counters::live`] while it is logged in.
struct Live<'a> {
    counters: &'a Counters,
    counted: bool,
}

impl<'a> Live<'a> {
    fn new(counters: &'a Counters) -> Live<'a> {
        Live { counters, counted: false }
    }

    /// Counts the connection, unless `max` are counted already.
    fn enter(&mut self, max: usize) -> bool {
        let previous = self.counters.live.fetch_add(1, Ordering::Relaxed);
        if previous >= max {
            self.counters.live.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.counted = true;
        true
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.counters.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A logged-in connection's side of the protocol.
struct Connection {
    engine: Arc<Engine>,
    session: Arc<Session>,
    owner: u64,
    /// The identity's rules for this connection; `None`: unrestricted.
    bound: Option<Bound>,
    client_id: String,
    /// Until a DISCONNECT discards it.
    will: Option<codec::Will>,
}

impl Connection {
    fn owns_session(&self) -> bool {
        self.session.owner.load(Ordering::Relaxed) == self.owner
    }

    /// Handles every whole frame in `input`.
    async fn take_input(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), End> {
        let max = self.engine.settings.max_packet_bytes;
        loop {
            let (frame, size) = match frame::check(input, max) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(()),
                Err(violation) => return Err(End::Violation(violation.to_string())),
            };
            if matches!(frame, Frame::Connect | Frame::OtherLevel(_)) {
                return Err(End::Violation("a second CONNECT".into()));
            }
            let bytes = input.split_to(size).freeze();
            let packet = codec::decode(bytes).ok_or_else(|| End::Violation("a packet that does not decode".into()))?;
            self.handle(packet, out).await?;
        }
    }

    async fn handle(&mut self, packet: ClientPacket, out: &mut BytesMut) -> Result<(), End> {
        let violation = |reason: &str| End::Violation(reason.to_owned());
        match packet {
            ClientPacket::Publish(publish) => self.publish(publish, out)?,
            ClientPacket::PubRel(pkid) => {
                self.session.lock().incoming_qos2.remove(&pkid);
                codec::ack(out, PUBCOMP, pkid);
            }
            ClientPacket::PubAck(pkid) => self.session.lock().puback(pkid).map_err(violation)?,
            ClientPacket::PubRec(pkid) => {
                if self.session.lock().pubrec(pkid).map_err(violation)? {
                    codec::ack(out, PUBREL, pkid);
                }
            }
            ClientPacket::PubComp(pkid) => self.session.lock().pubcomp(pkid).map_err(violation)?,
            ClientPacket::Subscribe { pkid, filters } => self.subscribe(pkid, filters, out).await?,
            ClientPacket::Unsubscribe { pkid, filters } => {
                for filter in &filters {
                    let removed = self.session.lock().subscriptions.remove(filter);
                    match (removed, crate::hub::shared_filter(filter)) {
                        (None, _) => {}
                        (Some(_), Some((group, filter))) => self.engine.hub.leave(group, filter, &self.session),
                        (Some(_), None) => {
                            self.session
                                .router()
                                .unsubscribe(filter)
                                .map_err(|error| End::Router(error.to_string()))?;
                        }
                    }
                }
                codec::unsuback(out, pkid);
            }
            ClientPacket::PingReq => codec::pingresp(out),
            ClientPacket::Disconnect => {
                self.will = None;
                return Err(End::Disconnect);
            }
            ClientPacket::Connect(_) => return Err(violation("a second CONNECT")),
        }
        Ok(())
    }

    fn publish(&mut self, publish: codec::Publish, out: &mut BytesMut) -> Result<(), End> {
        let engine = &self.engine;
        bump(&engine.counters.messages_in);
        let topic = publish.topic_str();
        // Topics starting with `$` are the server's (MQTT 3.1.1 section 4.7.2).
        let allowed = !topic.starts_with('$') && self.bound.as_ref().is_none_or(|bound| bound.may_publish(topic));
        let duplicate = publish.qos == 2 && !self.session.lock().incoming_qos2.insert(publish.pkid);
        if !allowed {
            bump(&engine.counters.denied_publish);
            tracing::info!(client_id = self.client_id, topic, "publish denied");
        } else if !duplicate {
            if let Some(journal) = &engine.journal {
                journal.record(Record {
                    topic: topic.to_owned(),
                    qos: publish.qos,
                    retain: publish.retain,
                    payload: publish.payload.to_vec(),
                });
            }
            let message =
                Message { topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain };
            let mut router = self.session.router();
            engine.hub.publish(&mut router, &message).map_err(|error| End::Router(error.to_string()))?;
        }
        // A denied publish is acknowledged and dropped: MQTT 3.1.1 has no refusal for it, and a
        // client that is not answered sends it again forever.
        match publish.qos {
            1 => codec::ack(out, PUBACK, publish.pkid),
            2 => codec::ack(out, PUBREC, publish.pkid),
            _ => {}
        }
        Ok(())
    }

    async fn subscribe(&mut self, pkid: u16, filters: Vec<(String, u8)>, out: &mut BytesMut) -> Result<(), End> {
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        for (filter, qos) in filters {
            let shared = crate::hub::shared_filter(&filter);
            // The rules apply to the filter a shared subscription shares.
            let checked = shared.map_or(filter.as_str(), |(_, inner)| inner);
            // Topics starting with `$` are the server's, and no client may publish to them here,
            // so such a filter could never match: refused, so that the client knows.
            if checked.starts_with('$') || (filter.starts_with("$share") && shared.is_none()) {
                tracing::info!(
                    client_id = self.client_id,
                    filter,
                    "subscribe refused: topics starting with $ are not served"
                );
                codes.push(SUBACK_FAILURE);
                continue;
            }
            if self.bound.as_ref().is_some_and(|bound| !bound.may_subscribe(checked)) {
                bump(&self.engine.counters.denied_subscribe);
                tracing::info!(client_id = self.client_id, filter, "subscribe denied");
                codes.push(SUBACK_FAILURE);
                continue;
            }
            {
                let mut state = self.session.lock();
                let next_id = state.next_subscription_id + 1;
                match state.subscriptions.get_mut(&filter) {
                    Some(subscription) => subscription.qos = qos,
                    None => {
                        state.next_subscription_id = next_id;
                        state.subscriptions.insert(filter.clone(), crate::session::Subscription { id: next_id, qos });
                    }
                }
            }
            if let Some((group, inner)) = shared {
                // Joined again on every SUBSCRIBE, which updates the granted QoS. Retained
                // messages are not sent for shared subscriptions (MQTT 5 section 4.8.2).
                self.engine.hub.join(group, inner, &self.session, qos);
                codes.push(qos);
                continue;
            }
            // Retained messages go out on every SUBSCRIBE (MQTT 3.1.1 section 3.3.1.3).
            retained.extend(self.engine.hub.retained_for(&filter).into_iter().map(|message| {
                let delivered = message.qos.min(qos);
                Delivery { message, qos: delivered, retain: true }
            }));
            codes.push(qos);
        }
        codec::suback(out, pkid, &codes);
        for delivery in retained {
            self.session.enqueue(delivery);
        }
        Ok(())
    }

    /// Publishes the will where it is due, hands the session back and logs why it ended.
    fn finish(self, door: &Door, end: End) {
        let engine = &self.engine;
        if let Some(will) = &self.will
            && !matches!(end, End::Disconnect | End::Shutdown)
        {
            let message = Message {
                topic: will.topic.clone(),
                payload: will.payload.clone(),
                qos: will.qos,
                retain: will.retain,
            };
            if let Some(journal) = &engine.journal {
                journal.record(Record {
                    topic: String::from_utf8_lossy(&will.topic).into_owned(),
                    qos: will.qos,
                    retain: will.retain,
                    payload: will.payload.to_vec(),
                });
            }
            let mut router = self.session.router();
            if let Err(error) = engine.hub.publish(&mut router, &message) {
                tracing::warn!(client_id = self.client_id, %error, "the will could not be published");
            }
        }
        engine.registry.release(&self.client_id, self.owner);
        let (listener, client_id) = (&door.listener, &self.client_id);
        match end {
            End::Disconnect | End::Closed => tracing::debug!(%listener, client_id, "client disconnected"),
            End::Shutdown => tracing::debug!(%listener, client_id, "closed: the broker is stopping"),
            End::Io(error) => tracing::debug!(%listener, client_id, %error, "connection lost"),
            End::Keepalive => tracing::info!(%listener, client_id, "client silent past its keepalive; closed"),
            End::TakenOver => tracing::info!(%listener, client_id, "a new connection with this client id took over"),
            End::Violation(reason) => violation(&engine.counters, door, Some(client_id), &reason),
            End::LoginRevoked => {
                tracing::info!(%listener, client_id, "closed: the login no longer passes after a reload")
            }
            End::Router(error) => {
                tracing::error!(%listener, client_id, %error, "the broker's router dropped the connection")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn engine() -> Arc<Engine> {
        let text = "[board]\nname = \"t\"\ntarget = \"x86_64-unknown-linux-gnu\"\n";
        let board = board::Board::parse(text, std::path::Path::new("t.toml")).unwrap();
        crate::standalone_engine(&board).unwrap()
    }

    /// Runs one connection over an in-memory stream that carries `bytes` and then closes; the
    /// connection must end (not hang) and nothing may panic.
    async fn run(engine: &Arc<Engine>, bytes: &[u8]) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let door = Door { listener: Arc::from("test"), anonymous: true, peer_user: None, peer: "test".into() };
        let serving = tokio::spawn(serve(engine.clone(), door, server));
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = timeout(Duration::from_secs(5), client.read_to_end(&mut sink)).await;
        timeout(Duration::from_secs(5), serving).await.expect("the connection ends").unwrap();
    }

    // The fuzz target (broker/fuzz) in small, on stable: random and mutated packet streams
    // through the whole connection path never panic and always end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arbitrary_input_never_panics() {
        let engine = engine();
        let connect = [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00];
        let valid: Vec<u8> = connect
            .iter()
            .chain(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x02])
            .chain(&[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x02, b'x'])
            .chain(&[0x34, 0x06, 0x00, 0x01, b'a', 0x00, 0x03, b'x', 0x62, 0x02, 0x00, 0x03])
            .chain(&[0x40, 0x02, 0x00, 0x01, 0x50, 0x02, 0x00, 0x02, 0x70, 0x02, 0x00, 0x02])
            .chain(&[0xa2, 0x05, 0x00, 0x04, 0x00, 0x01, b'a', 0xc0, 0x00, 0xe0, 0x00])
            .copied()
            .collect();
        run(&engine, &valid).await;
        let mut rng = fastrand::Rng::with_seed(6);
        for _ in 0..1500 {
            let mut bytes = valid.clone();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            run(&engine, &bytes).await;
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            run(&engine, &[&connect[..], &noise].concat()).await;
        }
        // Every connection has let go of its session and its router link: only the dispatch
        // link is left.
        assert_eq!(engine.registry.len(), 0);
        assert_eq!(engine.counters.live.load(Ordering::Relaxed), 0);
        assert_eq!(engine.hub.links(), 1);
    }
}
