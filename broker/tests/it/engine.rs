//! The connection engine over raw TCP: acknowledgements in legal but unusual orders, delivered
//! QoS, persistent sessions that resume mid-exchange (also across a restart), their bounds and
//! expiry, and retained messages only a retained publish clears.

use std::time::Duration;

use test_support::TIMEOUT;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Broker;

/// A raw MQTT 3.1.1 client: packets in, packets out, nothing done behind the test's back.
struct Raw {
    stream: TcpStream,
}

/// A packet from the broker: its first byte and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    first: u8,
    body: Vec<u8>,
}

impl Packet {
    fn kind(&self) -> u8 {
        self.first >> 4
    }

    fn pkid(&self) -> u16 {
        match self.kind() {
            3 => {
                let topic = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
                u16::from_be_bytes([self.body[2 + topic], self.body[3 + topic]])
            }
            _ => u16::from_be_bytes([self.body[0], self.body[1]]),
        }
    }

    /// A PUBLISH's QoS, DUP flag and payload.
    fn publish(&self) -> (u8, bool, Vec<u8>) {
        assert_eq!(self.kind(), 3, "expected a PUBLISH, got {self:?}");
        let qos = (self.first >> 1) & 0b11;
        let topic = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        let start = 2 + topic + if qos > 0 { 2 } else { 0 };
        (qos, self.first & 0b1000 != 0, self.body[start..].to_vec())
    }
}

pub(crate) fn with_length(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if length == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

fn string(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// A CONNECT of protocol `name` (`MQTT` or `MQIsdp`) at `level` with connect `flags`,
/// keepalive 60 and `client_id`; `rest` follows the client id (will, user name, password).
fn connect_bytes(name: &str, level: u8, flags: u8, client_id: &str, rest: &[&str]) -> Vec<u8> {
    let mut body = string(name);
    body.extend_from_slice(&[level, flags, 0x00, 60]);
    body.extend(string(client_id));
    for field in rest {
        body.extend(string(field));
    }
    with_length(0x10, &body)
}

/// Sends `connect` on a new connection and returns the CONNACK's four bytes.
async fn connack_for(broker: &Broker, connect: &[u8]) -> [u8; 4] {
    let mut stream = TcpStream::connect(broker.address()).await.unwrap();
    stream.write_all(connect).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut connack)).await.unwrap().unwrap();
    connack
}

impl Raw {
    /// Connects with `client_id` and returns the client and CONNACK's session-present flag.
    async fn connect(broker: &Broker, client_id: &str, clean: bool) -> (Raw, bool) {
        let stream = TcpStream::connect(broker.address()).await.unwrap();
        let mut raw = Raw { stream };
        raw.send(&connect_bytes("MQTT", 4, if clean { 0x02 } else { 0x00 }, client_id, &[])).await;
        let connack = raw.next().await;
        assert_eq!(connack.kind(), 2, "{connack:?}");
        assert_eq!(connack.body[1], 0, "CONNACK code");
        (raw, connack.body[0] == 1)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> Packet {
        tokio::time::timeout(TIMEOUT, self.read_packet())
            .await
            .expect("a packet in time")
            .expect("the connection stays open")
    }

    async fn read_packet(&mut self) -> std::io::Result<Packet> {
        let first = self.stream.read_u8().await?;
        let mut length = 0usize;
        for shift in 0..4 {
            let byte = self.stream.read_u8().await?;
            length |= usize::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Packet { first, body })
    }

    async fn subscribe(&mut self, filter: &str, qos: u8) {
        let mut body = vec![0x00, 0x01];
        body.extend(string(filter));
        body.push(qos);
        self.send(&with_length(0x82, &body)).await;
        let suback = self.next().await;
        assert_eq!((suback.kind(), suback.body.clone()), (9, vec![0, 1, qos]));
    }

    async fn publish(&mut self, topic: &str, qos: u8, retain: bool, pkid: u16, payload: &[u8]) {
        let mut body = string(topic);
        if qos > 0 {
            body.extend_from_slice(&pkid.to_be_bytes());
        }
        body.extend_from_slice(payload);
        self.send(&with_length(0x30 | qos << 1 | u8::from(retain), &body)).await;
    }

    /// Publishes and waits for the acknowledgement (completing QoS 2), so that the broker has
    /// taken the message when this returns.
    async fn publish_acked(&mut self, topic: &str, qos: u8, retain: bool, pkid: u16, payload: &[u8]) {
        self.publish(topic, qos, retain, pkid, payload).await;
        match qos {
            0 => self.ping().await,
            1 => assert_eq!(self.next().await.kind(), 4),
            _ => {
                assert_eq!(self.next().await.kind(), 5);
                self.ack(0x62, pkid).await;
                assert_eq!(self.next().await.kind(), 7);
            }
        }
    }

    /// PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70.
    async fn ack(&mut self, first: u8, pkid: u16) {
        let [high, low] = pkid.to_be_bytes();
        self.send(&[first, 0x02, high, low]).await;
    }

    /// Closes the connection and waits until the broker has let go of the session (it closes
    /// its side only after that).
    async fn leave(mut self) {
        self.stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(TIMEOUT, self.stream.read_to_end(&mut rest)).await.expect("closed in time").ok();
    }

    /// PINGREQ and its PINGRESP: everything sent before has been handled.
    async fn ping(&mut self) {
        self.send(&[0xc0, 0x00]).await;
        assert_eq!(self.next().await, Packet { first: 0xd0, body: vec![] });
    }
}

#[tokio::test]
async fn acknowledgements_in_any_legal_order_are_accepted() {
    let broker = Broker::start("");
    let (mut subscriber, _) = Raw::connect(&broker, "subscriber", true).await;
    subscriber.subscribe("q", 2).await;
    let (mut publisher, _) = Raw::connect(&broker, "publisher", true).await;
    for (n, qos) in [1u8, 2, 1, 2, 0, 2].into_iter().enumerate() {
        publisher.publish_acked("q", qos, false, n as u16 + 1, &[n as u8]).await;
    }
    let mut received = Vec::new();
    for _ in 0..6 {
        received.push(subscriber.next().await);
    }
    // Delivered at the QoS published (the subscription allows 2), in order, none a duplicate.
    let seen: Vec<(u8, bool, Vec<u8>)> = received.iter().map(Packet::publish).collect();
    let expected: Vec<(u8, bool, Vec<u8>)> =
        [1u8, 2, 1, 2, 0, 2].into_iter().enumerate().map(|(n, qos)| (qos, false, vec![n as u8])).collect();
    assert_eq!(seen, expected);
    // Acknowledged backwards: the last QoS 2 message first, a QoS 1 one between a PUBREC and
    // its PUBCOMP, and the first message last.
    let ids: Vec<u16> = received.iter().map(|packet| if packet.publish().0 > 0 { packet.pkid() } else { 0 }).collect();
    subscriber.ack(0x50, ids[5]).await;
    assert_eq!(subscriber.next().await, Packet { first: 0x62, body: ids[5].to_be_bytes().to_vec() });
    subscriber.ack(0x50, ids[3]).await;
    assert_eq!(subscriber.next().await.kind(), 6);
    subscriber.ack(0x40, ids[2]).await;
    subscriber.ack(0x70, ids[5]).await;
    subscriber.ack(0x50, ids[1]).await;
    assert_eq!(subscriber.next().await.kind(), 6);
    subscriber.ack(0x70, ids[1]).await;
    subscriber.ack(0x70, ids[3]).await;
    subscriber.ack(0x40, ids[0]).await;
    // An acknowledgement of nothing is ignored, as Mosquitto does.
    subscriber.ack(0x40, 999).await;
    subscriber.ping().await;
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_qos_2_session_resumes_mid_exchange_with_each_message_once() {
    let broker = Broker::start("");
    check_resume(&broker, &broker).await;
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_qos_2_session_resumes_mid_exchange_across_a_restart() {
    let dir = test_support::temp_dir("sessions-restart");
    let extra = format!("[broker.retained]\nenabled = true\npath = \"{}\"\n", dir.join("retained.bin").display());
    let before = Broker::start(&extra);
    let (mut subscriber, _) = Raw::connect(&before, "keeper", false).await;
    subscriber.subscribe("q", 2).await;
    let (mut publisher, _) = Raw::connect(&before, "publisher", true).await;
    publisher.publish_acked("q", 2, false, 1, b"m1").await;
    publisher.publish_acked("q", 1, false, 2, b"m2").await;
    let m1 = subscriber.next().await;
    let m2 = subscriber.next().await;
    subscriber.ack(0x50, m1.pkid()).await;
    assert_eq!(subscriber.next().await.kind(), 6, "PUBREL for m1");
    subscriber.leave().await;
    publisher.publish_acked("q", 2, false, 3, b"m3").await;
    // The publisher's QoS 2 exchange is complete, so m3 is queued for the session when the
    // broker stops and writes the session file.
    assert!(before.process.terminate().success());
    let file = dir.join("sessions.bin");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let after = Broker::start(&extra);
    let (mut subscriber, present) = Raw::connect(&after, "keeper", false).await;
    assert!(present, "the session survived the restart");
    let rel = subscriber.next().await;
    assert_eq!((rel.kind(), rel.pkid()), (6, m1.pkid()), "PUBREL again for m1, never m1 itself");
    let again = subscriber.next().await;
    assert_eq!(again.publish(), (1, true, b"m2".to_vec()), "m2 again with DUP");
    assert_eq!(again.pkid(), m2.pkid());
    let m3 = subscriber.next().await;
    assert_eq!(m3.publish(), (2, false, b"m3".to_vec()));
    subscriber.ack(0x70, m1.pkid()).await;
    subscriber.ack(0x40, m2.pkid()).await;
    subscriber.ack(0x50, m3.pkid()).await;
    assert_eq!(subscriber.next().await.kind(), 6);
    subscriber.ack(0x70, m3.pkid()).await;
    subscriber.ping().await;
    assert!(after.process.terminate().success());
}

/// A QoS 2 subscriber with a persistent session goes away with one message released but not
/// completed and one not acknowledged at all; two more arrive meanwhile. Back on `after`
/// (the same broker, or a restarted one), it gets each exactly once, DUP where it must be.
async fn check_resume(before: &Broker, after: &Broker) {
    let (mut subscriber, present) = Raw::connect(before, "keeper", false).await;
    assert!(!present);
    subscriber.subscribe("q", 2).await;
    // The dispatcher hands each message to the sessions in the order they were made: once this
    // later watcher has a message, the keeper's session has had it too.
    let (mut watcher, _) = Raw::connect(before, "watcher", true).await;
    watcher.subscribe("q", 0).await;
    let (mut publisher, _) = Raw::connect(before, "publisher", true).await;
    publisher.publish_acked("q", 2, false, 1, b"m1").await;
    publisher.publish_acked("q", 2, false, 2, b"m2").await;
    let m1 = subscriber.next().await;
    let m2 = subscriber.next().await;
    assert_eq!((m1.publish(), m2.publish()), ((2, false, b"m1".to_vec()), (2, false, b"m2".to_vec())));
    subscriber.ack(0x50, m1.pkid()).await;
    assert_eq!(subscriber.next().await.kind(), 6);
    // Gone before PUBCOMP for m1 and before PUBREC for m2.
    subscriber.leave().await;
    publisher.publish_acked("q", 1, false, 3, b"m3").await;
    publisher.publish_acked("q", 2, false, 4, b"m4").await;
    publisher.publish_acked("q", 0, false, 0, b"m5: QoS 0 is not kept for an absent client").await;
    for _ in 0..5 {
        watcher.next().await;
    }

    let (mut subscriber, present) = Raw::connect(after, "keeper", false).await;
    assert!(present);
    let rel = subscriber.next().await;
    assert_eq!((rel.kind(), rel.pkid()), (6, m1.pkid()));
    let again = subscriber.next().await;
    assert_eq!((again.publish(), again.pkid()), ((2, true, b"m2".to_vec()), m2.pkid()));
    let m3 = subscriber.next().await;
    let m4 = subscriber.next().await;
    assert_eq!((m3.publish(), m4.publish()), ((1, false, b"m3".to_vec()), (2, false, b"m4".to_vec())));
    for id in [m2.pkid(), m4.pkid()] {
        subscriber.ack(0x50, id).await;
        assert_eq!(subscriber.next().await.kind(), 6);
        subscriber.ack(0x70, id).await;
    }
    subscriber.ack(0x70, m1.pkid()).await;
    subscriber.ack(0x40, m3.pkid()).await;
    subscriber.ping().await;
    // Nothing more: every message came once.
    subscriber.leave().await;
    let (mut subscriber, present) = Raw::connect(after, "keeper", false).await;
    assert!(present);
    subscriber.ping().await;
}

#[tokio::test]
async fn a_clean_session_discards_the_persistent_one() {
    let broker = Broker::start("");
    let (mut subscriber, _) = Raw::connect(&broker, "keeper", false).await;
    subscriber.subscribe("q", 1).await;
    subscriber.leave().await;
    let (clean, present) = Raw::connect(&broker, "keeper", true).await;
    assert!(!present);
    clean.leave().await;
    let (_, present) = Raw::connect(&broker, "keeper", false).await;
    assert!(!present, "the clean session ended the persistent one");
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_session_queue_keeps_the_newest_messages_within_its_bound() {
    let broker = Broker::start("[broker.sessions]\nmax_queued = 5\n");
    let (mut subscriber, _) = Raw::connect(&broker, "keeper", false).await;
    subscriber.subscribe("q", 1).await;
    subscriber.leave().await;
    // The dispatcher hands each message to the sessions in the order they were made, so once
    // this later watcher has a message, the keeper's queue has had it too.
    let (mut watcher, _) = Raw::connect(&broker, "watcher", true).await;
    watcher.subscribe("q", 0).await;
    let (mut publisher, _) = Raw::connect(&broker, "publisher", true).await;
    // In step with the watcher, whose own queue is bounded at 5 too.
    for n in 0..10u8 {
        publisher.publish_acked("q", 1, false, u16::from(n) + 1, &[n]).await;
        assert_eq!(watcher.next().await.publish(), (0, false, vec![n]));
    }
    let (mut subscriber, present) = Raw::connect(&broker, "keeper", false).await;
    assert!(present);
    for n in 5..10u8 {
        let message = subscriber.next().await;
        assert_eq!(message.publish(), (1, false, vec![n]));
        subscriber.ack(0x40, message.pkid()).await;
    }
    subscriber.ping().await;
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn the_session_bound_makes_room_by_the_session_away_longest() {
    let mut broker = Broker::start("[broker.sessions]\nmax_sessions = 2\n");
    let (first, _) = Raw::connect(&broker, "first", false).await;
    first.leave().await;
    let (second, _) = Raw::connect(&broker, "second", false).await;
    let (third, _) = Raw::connect(&broker, "third", false).await;
    broker.process.wait_line("session removed to make room");
    // Both places are held by connected clients now: a fourth is refused, server unavailable.
    let fourth = connect_bytes("MQTT", 4, 0x00, "fourth", &[]);
    assert_eq!(connack_for(&broker, &fourth).await, [0x20, 0x02, 0x00, 0x03]);
    second.leave().await;
    third.leave().await;
    let (_, present) = Raw::connect(&broker, "first", false).await;
    assert!(!present, "the first session made room");
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_session_past_its_expiry_is_gone() {
    let mut broker = Broker::start("[broker.sessions]\nexpiry_s = 1\n");
    let (mut subscriber, _) = Raw::connect(&broker, "keeper", false).await;
    subscriber.subscribe("q", 1).await;
    subscriber.leave().await;
    broker.process.wait_line("session expired");
    let (_, present) = Raw::connect(&broker, "keeper", false).await;
    assert!(!present);
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn an_empty_publish_clears_the_retained_message_only_when_retained() {
    let broker = Broker::start("");
    let (mut publisher, _) = Raw::connect(&broker, "publisher", true).await;
    publisher.publish_acked("state", 1, true, 1, b"kept").await;
    // Non-retained and empty: an ordinary message, delivered to subscribers, clearing nothing.
    publisher.publish_acked("state", 0, false, 0, b"").await;
    let (mut late, _) = Raw::connect(&broker, "late", true).await;
    late.subscribe("state", 1).await;
    let retained = late.next().await;
    assert_eq!((retained.first & 1, retained.publish().2), (1, b"kept".to_vec()));
    late.ack(0x40, retained.pkid()).await;

    publisher.publish_acked("state", 1, true, 2, b"").await;
    let (mut later, _) = Raw::connect(&broker, "later", true).await;
    later.subscribe("state", 1).await;
    later.ping().await;
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_connect_timeout() {
    let broker = Broker::start("[broker.limits]\nconnect_timeout_ms = 200\n");
    let mut silent = TcpStream::connect(broker.address()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed without a word: {read:?}");
    assert!(broker.process.terminate().success());
}

/// A CONNECT with a user name and password (MQTT 3.1.1, clean session).
fn login_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    connect_bytes("MQTT", 4, 0b1100_0010, client_id, &[user, password])
}

/// A board with user `app` (password `secret`) allowed `app/#`, and `ops` (password `ops`)
/// allowed `ops/#`, closed to anonymous clients, with `sockets` added.
fn closed_board(port: u16, app_rules: &str, sockets: &str) -> String {
    let app = test_support::hash_password("secret");
    let ops = test_support::hash_password("ops");
    test_support::broker_board(
        port,
        &format!(
            "anonymous = false\n\
             [broker.users.app]\npassword_hash = \"{app}\"\npublish = [\"{app_rules}\"]\nsubscribe = [\"{app_rules}\"]\n\
             [broker.users.ops]\npassword_hash = \"{ops}\"\npublish = [\"ops/#\"]\nsubscribe = [\"ops/#\"]\n{sockets}"
        ),
    )
}

async fn subscribe_code(stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin), filter: &str) -> u8 {
    let mut body = vec![0x00, 0x07];
    body.extend(string(filter));
    body.push(1);
    stream.write_all(&with_length(0x82, &body)).await.unwrap();
    let mut suback = [0u8; 5];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut suback)).await.unwrap().unwrap();
    assert_eq!(&suback[..4], &[0x90, 0x03, 0x00, 0x07]);
    suback[4]
}

#[tokio::test]
async fn a_unix_socket_peer_logs_in_as_the_user_its_uid_maps_to() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = test_support::temp_dir("unix-socket");
    let path = dir.join("run/mqtt.sock");
    let uid = nix_uid();
    let socket = format!(
        "[broker.sockets.ipc]\npath = \"{}\"\nmode = \"600\"\npeers = {{ \"{uid}\" = \"app\" }}\n",
        path.display()
    );
    let board = dir.join("board.toml");
    std::fs::write(&board, closed_board(test_support::free_port(), "app/#", &socket)).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_broker"));
    command.arg("--board").arg(&board).arg("--journal").arg("off");
    let broker = test_support::Process::start(command, "broker", broker::READY);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // No user name: the peer's uid says who it is.
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream.write_all(&connect_bytes("MQTT", 4, 0x02, "local-app", &[])).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut connack)).await.unwrap().unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    assert_eq!(subscribe_code(&mut stream, "app/#").await, 1, "app's own topics");
    assert_eq!(subscribe_code(&mut stream, "ops/#").await, 0x80, "and only app's");

    // A user name and password still work over the socket, and are checked.
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream.write_all(&login_packet("ops-client", "ops", "wrong")).await.unwrap();
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut connack)).await.unwrap().unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x04]);
    assert!(broker.terminate().success());
}

/// This process's uid, for the socket's peer map.
fn nix_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn sighup_reloads_rules_and_closes_only_logins_that_no_longer_pass() {
    let dir = test_support::temp_dir("reload");
    let board = dir.join("board.toml");
    let port = test_support::free_port();
    std::fs::write(&board, closed_board(port, "app/#", "")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_broker"));
    command.arg("--board").arg(&board).arg("--journal").arg("off");
    let mut broker = test_support::Process::start(command, "broker", broker::READY);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let connect = |id: &'static str, user: &'static str, password: &'static str| async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(&login_packet(id, user, password)).await.unwrap();
        let mut connack = [0u8; 4];
        tokio::time::timeout(TIMEOUT, stream.read_exact(&mut connack)).await.unwrap().unwrap();
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "{user} logs in");
        stream
    };
    let mut app = connect("app-client", "app", "secret").await;
    let mut ops = connect("ops-client", "ops", "ops").await;
    assert_eq!(subscribe_code(&mut app, "other/#").await, 0x80);

    // app may now use other/#; ops's password changes.
    let text = closed_board(port, "other/#", "");
    let text =
        text.replace(&ops_hash_line(&text), &format!("password_hash = \"{}\"", test_support::hash_password("new")));
    std::fs::write(&board, text).unwrap();
    nix_kill(broker.id(), "HUP");
    broker.wait_line("identities and access rules reloaded");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(TIMEOUT, ops.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "ops's old password no longer passes: closed");
    assert_eq!(subscribe_code(&mut app, "other/#").await, 1, "app stays connected under its new rules");
    assert!(broker.terminate().success());
}

/// The `password_hash = "..."` line of user `ops` in a board written by [`closed_board`].
fn ops_hash_line(board: &str) -> String {
    let at = board.find("[broker.users.ops]").unwrap();
    board[at..].lines().nth(1).unwrap().to_owned()
}

fn nix_kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn mqtt_3_1_clients_are_served_like_3_1_1_ones() {
    let broker = Broker::start("");
    let mut stream = TcpStream::connect(broker.address()).await.unwrap();
    stream.write_all(&connect_bytes("MQIsdp", 3, 0x02, "old-client", &[])).await.unwrap();
    let mut raw = Raw { stream };
    assert_eq!(raw.next().await, Packet { first: 0x20, body: vec![0, 0] });
    raw.subscribe("old/#", 2).await;
    let (mut publisher, _) = Raw::connect(&broker, "publisher", true).await;
    publisher.publish_acked("old/x", 2, false, 5, b"3.1").await;
    let message = raw.next().await;
    assert_eq!(message.publish(), (2, false, b"3.1".to_vec()));

    // MQTT 3.1 has no server-assigned client ids: an empty one is refused.
    assert_eq!(connack_for(&broker, &connect_bytes("MQIsdp", 3, 0x02, "", &[])).await, [0x20, 0x02, 0x00, 0x02]);
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn an_empty_client_id_gets_a_clean_session_of_its_own() {
    let broker = Broker::start("");
    let (mut first, present) = Raw::connect(&broker, "", true).await;
    assert!(!present);
    let (mut second, _) = Raw::connect(&broker, "", true).await;
    // Two generated ids: neither takes the other over.
    first.subscribe("a", 0).await;
    second.subscribe("a", 0).await;
    first.ping().await;
    second.ping().await;
    // A persistent session needs an id of the client's own.
    assert_eq!(connack_for(&broker, &connect_bytes("MQTT", 4, 0x00, "", &[])).await, [0x20, 0x02, 0x00, 0x02]);
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_takes_over_and_the_first_ones_will_is_published() {
    let broker = Broker::start("");
    let (mut watcher, _) = Raw::connect(&broker, "watcher", true).await;
    watcher.subscribe("wills/#", 1).await;
    let mut stream = TcpStream::connect(broker.address()).await.unwrap();
    // Will flag, will QoS 1, clean session.
    stream.write_all(&connect_bytes("MQTT", 4, 0b0000_1110, "twin", &["wills/twin", "gone"])).await.unwrap();
    let mut first = Raw { stream };
    assert_eq!(first.next().await.kind(), 2);
    let (mut second, _) = Raw::connect(&broker, "twin", true).await;
    let will = watcher.next().await;
    assert_eq!(will.publish(), (1, false, b"gone".to_vec()));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(TIMEOUT, first.stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the first connection was closed");
    second.ping().await;
    assert!(broker.process.terminate().success());
}

// Regression, found by the fuzz target: rumqttd's router panicked (taking every connection
// with it) on a publish whose topic starts with a multi-byte character, which MQTT allows.
#[tokio::test]
async fn a_topic_starting_with_a_multi_byte_character_is_delivered() {
    let broker = Broker::start("");
    let (mut subscriber, _) = Raw::connect(&broker, "subscriber", true).await;
    subscriber.subscribe("ٌhar/#", 1).await;
    subscriber.subscribe("é", 1).await;
    let (mut publisher, _) = Raw::connect(&broker, "publisher", true).await;
    publisher.publish_acked("ٌhar/x", 1, false, 1, b"one").await;
    publisher.publish_acked("é", 0, false, 0, b"two").await;
    assert_eq!(subscriber.next().await.publish(), (1, false, b"one".to_vec()));
    assert_eq!(subscriber.next().await.publish(), (0, false, b"two".to_vec()));
    let (mut late, _) = Raw::connect(&broker, "late", true).await;
    late.ping().await;
    assert!(broker.process.terminate().success());
}
