//! Protocol hardening over raw TCP: keepalive limits, connection limit, malformed topics, and
//! the delivered QoS.

use std::time::Duration;

use rumqttc::QoS;
use test_support::{Client, TIMEOUT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Broker;

/// A CONNECT (MQTT 3.1.1, clean session) with this client id and keepalive.
fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

async fn open(broker: &Broker, packet: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(broker.address()).await.unwrap();
    stream.write_all(packet).await.unwrap();
    stream
}

async fn read(stream: &mut TcpStream, count: usize) -> Vec<u8> {
    let mut buffer = vec![0; count];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut buffer)).await.expect("bytes in time").unwrap();
    buffer
}

/// Waits until the broker closes the connection.
async fn closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest)).await.expect("the broker closes the connection").ok();
}

#[tokio::test]
async fn keepalive_zero_is_accepted_and_too_long_a_keepalive_refused() {
    let broker = Broker::start("[broker.limits]\nmax_keepalive_s = 120\n");
    let mut zero = open(&broker, &connect("zero", 0)).await;
    assert_eq!(read(&mut zero, 4).await, [0x20, 0x02, 0x00, 0x00]);
    zero.write_all(&[0xc0, 0x00]).await.unwrap();
    assert_eq!(read(&mut zero, 2).await, [0xd0, 0x00]);

    let mut long = open(&broker, &connect("long", 121)).await;
    // Identifier rejected, as Mosquitto answers an MQTT 3.1.1 client over max_keepalive.
    assert_eq!(read(&mut long, 4).await, [0x20, 0x02, 0x00, 0x02]);
    closed(&mut long).await;
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn clients_beyond_the_connection_limit_get_server_unavailable() {
    let broker = Broker::start("[broker.limits]\nmax_connections = 2\n");
    let mut first = open(&broker, &connect("first", 30)).await;
    assert_eq!(read(&mut first, 4).await, [0x20, 0x02, 0x00, 0x00]);
    let mut second = open(&broker, &connect("second", 30)).await;
    assert_eq!(read(&mut second, 4).await, [0x20, 0x02, 0x00, 0x00]);
    let mut third = open(&broker, &connect("third", 30)).await;
    assert_eq!(read(&mut third, 4).await, [0x20, 0x02, 0x00, 0x03]);
    closed(&mut third).await;

    // A place frees up when a client leaves.
    first.write_all(&[0xe0, 0x00]).await.unwrap();
    closed(&mut first).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let mut again = open(&broker, &connect("again", 30)).await;
        if read(&mut again, 4).await == [0x20, 0x02, 0x00, 0x00] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no place freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn a_publish_with_a_wildcard_or_control_character_closes_the_connection() {
    let broker = Broker::start("");
    let mut watcher = Client::connect(broker.address(), "watcher").await;
    watcher.subscribe("#").await;
    for topic in [&b"a/+"[..], b"a/#", b"a\x01b", b"a\xffb", b""] {
        let mut stream = open(&broker, &connect("bad", 30)).await;
        assert_eq!(read(&mut stream, 4).await, [0x20, 0x02, 0x00, 0x00]);
        let mut publish = vec![0x30, (2 + topic.len() + 1) as u8];
        publish.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        publish.extend_from_slice(topic);
        publish.push(b'x');
        stream.write_all(&publish).await.unwrap();
        closed(&mut stream).await;
    }
    // Nothing of it was delivered: the next message the watcher sees is this one.
    let publisher = Client::connect(broker.address(), "publisher").await;
    publisher.publish("after", "ok").await;
    // (The broker's own health, published every few seconds, may come in between.)
    let first =
        watcher.wait_for(|m| !m.topic.starts_with("test-support/") && !m.topic.ends_with("/broker/stats")).await;
    assert_eq!(first.topic, "after");
    assert!(broker.process.terminate().success());
}

// rumqttd sends every message at the subscription's QoS; the gate sends a QoS 0 message as
// QoS 0 and acknowledges it to rumqttd itself. More messages than rumqttd keeps in flight
// (100) show that those acknowledgements keep the flow going.
#[tokio::test]
async fn a_qos_0_message_reaches_a_qos_1_subscriber_as_qos_0() {
    let broker = Broker::start("");
    let mut subscriber = subscribed_to_q(&broker).await;

    let publisher = Client::connect(broker.address(), "publisher").await;
    const COUNT: u8 = 250;
    for n in 0..COUNT {
        publisher.client.publish("q", QoS::AtMostOnce, false, vec![n]).await.unwrap();
    }
    for n in 0..COUNT {
        // 0x30: PUBLISH, QoS 0; topic "q", payload n.
        assert_eq!(read(&mut subscriber, 6).await, [0x30, 0x04, 0x00, 0x01, b'q', n], "message {n}");
    }
    // A QoS 1 message still arrives as QoS 1, and the session is in order after all that.
    publisher.client.publish("q", QoS::AtLeastOnce, false, vec![7]).await.unwrap();
    let message = read(&mut subscriber, 8).await;
    assert_eq!((message[0], message[1], &message[2..5], message[7]), (0x32, 0x06, &[0x00, 0x01, b'q'][..], 7));
    let pkid = [message[5], message[6]];
    subscriber.write_all(&[0x40, 0x02, pkid[0], pkid[1]]).await.unwrap();
    subscriber.write_all(&[0xc0, 0x00]).await.unwrap();
    assert_eq!(read(&mut subscriber, 2).await, [0xd0, 0x00]);
    assert!(broker.process.terminate().success());
}

/// A raw client connected as "subscriber" and subscribed to "q" at QoS 1 (both acknowledged).
async fn subscribed_to_q(broker: &Broker) -> TcpStream {
    let mut subscriber = open(broker, &connect("subscriber", 30)).await;
    assert_eq!(read(&mut subscriber, 4).await, [0x20, 0x02, 0x00, 0x00]);
    subscriber.write_all(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'q', 0x01]).await.unwrap();
    assert_eq!(read(&mut subscriber, 5).await, [0x90, 0x03, 0x00, 0x01, 0x01]);
    subscriber
}

/// Reads one PUBLISH on topic "q" with a one-byte payload: (QoS, packet id, payload).
async fn read_q(stream: &mut TcpStream) -> (u8, u16, u8) {
    let header = read(stream, 2).await;
    let body = read(stream, usize::from(header[1])).await;
    let qos = (header[0] >> 1) & 0b11;
    assert_eq!(&body[..3], &[0x00, 0x01, b'q'], "{header:02x?} {body:02x?}");
    match qos {
        0 => (0, 0, body[3]),
        _ => (qos, u16::from_be_bytes([body[3], body[4]]), body[5]),
    }
}

// Regression: the acknowledgement the gate makes up for a QoS 0 message sent as QoS 0 went to
// rumqttd before the client's own acknowledgement of an earlier QoS 1 message; rumqttd wants
// them in order and disconnected the subscriber ("out of order ack").
#[tokio::test]
async fn made_up_acknowledgements_wait_behind_the_clients_own() {
    let broker = Broker::start("");
    let mut subscriber = subscribed_to_q(&broker).await;

    let publisher = Client::connect(broker.address(), "publisher").await;
    const COUNT: u8 = 200;
    for n in 0..COUNT {
        let qos = if n % 2 == 0 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        publisher.client.publish("q", qos, false, vec![n]).await.unwrap();
    }
    // Acknowledge each QoS 1 message only after the next message has arrived.
    let mut unacknowledged = None;
    for n in 0..COUNT {
        let (qos, pkid, payload) = read_q(&mut subscriber).await;
        assert_eq!((qos, payload), (if n % 2 == 0 { 1 } else { 0 }, n), "message {n}");
        if let Some(earlier) = unacknowledged.take() {
            let [high, low] = u16::to_be_bytes(earlier);
            subscriber.write_all(&[0x40, 0x02, high, low]).await.unwrap();
        }
        if qos == 1 {
            unacknowledged = Some(pkid);
        }
    }
    if let Some(last) = unacknowledged {
        let [high, low] = u16::to_be_bytes(last);
        subscriber.write_all(&[0x40, 0x02, high, low]).await.unwrap();
    }
    subscriber.write_all(&[0xc0, 0x00]).await.unwrap();
    assert_eq!(read(&mut subscriber, 2).await, [0xd0, 0x00], "the subscriber is still connected");
    assert!(broker.process.terminate().success());
}

// Regression: rumqttd's router drops a connection whose client id contains `/` (or `+`, `#`,
// `$`) without a CONNACK, and its server panicked on the next connection with that id,
// poisoning a lock that every later connection takes: one client could stop the listener.
// Such ids are legal MQTT; the engine never hands a client's id to the router, so they are
// served, and the listener keeps serving after them.
#[tokio::test]
async fn client_ids_rumqttd_cannot_route_are_served() {
    let broker = Broker::start("");
    for id in ["a/b", "a/b", "+#$"] {
        let mut stream = open(&broker, &connect(id, 30)).await;
        assert_eq!(read(&mut stream, 4).await, [0x20, 0x02, 0x00, 0x00], "{id}");
        stream.write_all(&[0xc0, 0x00]).await.unwrap();
        assert_eq!(read(&mut stream, 2).await, [0xd0, 0x00]);
    }
    let mut fine = open(&broker, &connect("a-b", 30)).await;
    assert_eq!(read(&mut fine, 4).await, [0x20, 0x02, 0x00, 0x00]);
    assert!(broker.process.terminate().success());
}
