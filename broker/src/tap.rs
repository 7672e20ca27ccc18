//! The journal's view of the broker: rumqttd's MQTT codec, wrapped so that every PUBLISH a
//! client sends is also handed to the journal.
//!
//! A rumqttd server clones its codec for each connection, so a [`Tapped`] codec lives exactly as
//! long as one client connection. It sees what the client sent, before the router touches it:
//! the topic, the payload, the QoS and the retain flag as published. It also sees the
//! connection's will, and journals it when the connection ends the way that makes rumqttd
//! publish it (accepted, then closed without DISCONNECT).
//!
//! What it does not see: messages refused while decoding (too large, malformed), which rumqttd
//! answers by closing the connection, and messages published from inside the broker process
//! (there are none). A QoS 2 message is journaled when it arrives, although rumqttd delivers it
//! only after the client's PUBREL. And one will too many: when a client with the same id takes
//! over a persistent session (clean_session = false), rumqttd cancels the old connection's
//! will, but the journal still records it.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use rumqttd::protocol::{self, ConnAck, ConnectReturnCode, LastWill, Packet, Protocol};

use crate::journal::{JournalSender, Record};

/// Makes tapped codecs that send to one journal, or to none.
#[derive(Clone)]
pub struct Tap {
    journal: Option<JournalSender>,
}

impl Tap {
    pub fn new(journal: Option<JournalSender>) -> Tap {
        Tap { journal }
    }

    /// Wraps a codec (rumqttd's `V4` or `V5`).
    pub fn wrap<P>(&self, inner: P) -> Tapped<P> {
        Tapped { inner, journal: self.journal.clone(), will: None, accepted: AtomicBool::new(false) }
    }
}

/// A codec that journals what it decodes. See the module documentation.
pub struct Tapped<P> {
    inner: P,
    journal: Option<JournalSender>,
    /// The will from this connection's CONNECT, until a DISCONNECT cancels it.
    will: Option<LastWill>,
    /// Whether the broker accepted the connection (wrote a successful CONNACK). rumqttd only
    /// registers the will of an accepted connection, so only then can the will be published.
    /// Atomic because the codec writes through `&self` and rumqttd needs it `Sync`.
    accepted: AtomicBool,
}

impl<P: Clone> Clone for Tapped<P> {
    fn clone(&self) -> Self {
        Tapped {
            inner: self.inner.clone(),
            journal: self.journal.clone(),
            will: self.will.clone(),
            accepted: AtomicBool::new(self.accepted.load(Ordering::Relaxed)),
        }
    }
}

impl<P: Protocol> Protocol for Tapped<P> {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, protocol::Error> {
        // rumqttd keeps a publish's QoS private, but a decoded packet started at the front of
        // the stream, and bits 2-1 of its first byte are the QoS (MQTT 3.1.1 section 3.3.1).
        let first_byte = stream.first().copied().unwrap_or(0);
        let packet = self.inner.read_mut(stream, max_size)?;
        if let Some(journal) = &self.journal {
            match &packet {
                Packet::Publish(publish, _) => journal.record(Record {
                    topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                    qos: (first_byte >> 1) & 0b11,
                    retain: publish.retain,
                    payload: publish.payload.to_vec(),
                }),
                Packet::Connect(_, _, will, _, _) => self.will.clone_from(will),
                Packet::Disconnect(..) => self.will = None,
                _ => {}
            }
        }
        Ok(packet)
    }

    fn write(&self, packet: Packet, buffer: &mut BytesMut) -> Result<usize, protocol::Error> {
        if let Packet::ConnAck(ConnAck { code: ConnectReturnCode::Success, .. }, _) = &packet {
            self.accepted.store(true, Ordering::Relaxed);
        }
        self.inner.write(packet, buffer)
    }
}

impl<P> Drop for Tapped<P> {
    /// The connection has ended: rumqttd now publishes the will of an accepted connection that
    /// did not send DISCONNECT.
    fn drop(&mut self) {
        if let (Some(journal), Some(will), true) =
            (&self.journal, self.will.take(), self.accepted.load(Ordering::Relaxed))
        {
            journal.record(Record {
                topic: String::from_utf8_lossy(&will.topic).into_owned(),
                qos: will.qos as u8,
                retain: will.retain,
                payload: will.message.to_vec(),
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::fs;

    use bytes::Bytes;
    use rumqttd::protocol::v4::V4;
    use rumqttd::protocol::{Connect, Disconnect, DisconnectReasonCode, QoS};

    use super::*;
    use crate::journal::{Journal, Queue, RotatingFile, Sink};

    /// Runs `session` against a tapped V4 codec and returns the journaled (topic, qos, retain,
    /// payload) of each line.
    fn journaled(name: &str, session: impl FnOnce(&Tap)) -> Vec<(String, u8, bool, String)> {
        let dir = std::env::temp_dir().join(format!("busgate-tap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("j.jsonl");
        let sink = Sink::File(RotatingFile::open(&path, 1 << 20, 1).unwrap());
        let journal = Journal::spawn(sink, Queue { messages: 16, bytes: 1 << 20 }).unwrap();
        session(&Tap::new(Some(journal.sender())));
        assert_eq!(journal.close(), 0);
        let text = fs::read_to_string(&path).unwrap();
        fs::remove_dir_all(dir).unwrap();
        text.lines()
            .map(|line| {
                let entry: schema::JournalEntry = schema::payload::parse(line.as_bytes()).unwrap();
                let payload = entry.payload_hex.clone().unwrap_or_else(|| format!("{:?}", entry.payload));
                (entry.topic, entry.qos, entry.retain, payload)
            })
            .collect()
    }

    /// Encodes packets as a client would send them.
    fn encode(packets: Vec<Packet>) -> BytesMut {
        let mut stream = BytesMut::new();
        for packet in packets {
            V4.write(packet, &mut stream).unwrap();
        }
        stream
    }

    /// A PUBLISH on the wire (rumqttd's `Publish` keeps its QoS private, so it cannot be
    /// built and encoded with QoS 1 or 2).
    fn publish(stream: &mut BytesMut, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        body.extend_from_slice(topic.as_bytes());
        if qos != QoS::AtMostOnce {
            body.extend_from_slice(&7u16.to_be_bytes());
        }
        body.extend_from_slice(payload);
        stream.extend_from_slice(&[0b0011_0000 | (qos as u8) << 1 | u8::from(retain), body.len() as u8]);
        stream.extend_from_slice(&body);
    }

    fn connect(will: Option<LastWill>) -> Packet {
        let connect = Connect { keep_alive: 10, client_id: "c".into(), clean_session: true };
        Packet::Connect(connect, None, will, None, None)
    }

    fn will() -> LastWill {
        LastWill { topic: Bytes::from("g/status"), message: Bytes::from("bye"), qos: QoS::AtLeastOnce, retain: true }
    }

    fn connack(code: ConnectReturnCode) -> Packet {
        Packet::ConnAck(ConnAck { session_present: false, code }, None)
    }

    fn read_all(codec: &mut Tapped<V4>, mut stream: BytesMut) {
        while !stream.is_empty() {
            codec.read_mut(&mut stream, 1 << 20).unwrap();
        }
    }

    #[test]
    fn publishes_are_journaled_with_their_qos_and_retain_flag() {
        let lines = journaled("publish", |tap| {
            let mut codec = tap.wrap(V4);
            let mut stream = BytesMut::new();
            publish(&mut stream, "a", QoS::AtMostOnce, false, b"\x01");
            publish(&mut stream, "b", QoS::AtLeastOnce, true, b"\x02");
            publish(&mut stream, "c", QoS::ExactlyOnce, false, b"\x03");
            read_all(&mut codec, stream);
        });
        assert_eq!(
            lines,
            [
                ("a".into(), 0, false, "01".into()),
                ("b".into(), 1, true, "02".into()),
                ("c".into(), 2, false, "03".into())
            ]
        );
    }

    #[test]
    fn the_will_is_journaled_when_an_accepted_connection_drops() {
        let lines = journaled("will", |tap| {
            let mut codec = tap.wrap(V4);
            read_all(&mut codec, encode(vec![connect(Some(will()))]));
            codec.write(connack(ConnectReturnCode::Success), &mut BytesMut::new()).unwrap();
        });
        assert_eq!(lines, [("g/status".into(), 1, true, "627965".into())]);
    }

    #[test]
    fn no_will_after_disconnect() {
        let lines = journaled("disconnect", |tap| {
            let mut codec = tap.wrap(V4);
            read_all(&mut codec, encode(vec![connect(Some(will()))]));
            codec.write(connack(ConnectReturnCode::Success), &mut BytesMut::new()).unwrap();
            let disconnect = Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection };
            read_all(&mut codec, encode(vec![Packet::Disconnect(disconnect, None)]));
        });
        assert_eq!(lines, []);
    }

    #[test]
    fn no_will_for_a_refused_connection() {
        let lines = journaled("refused", |tap| {
            let mut codec = tap.wrap(V4);
            read_all(&mut codec, encode(vec![connect(Some(will()))]));
            codec.write(connack(ConnectReturnCode::NotAuthorized), &mut BytesMut::new()).unwrap();
            // And a connection that never got a CONNACK at all.
            let mut codec = tap.wrap(V4);
            read_all(&mut codec, encode(vec![connect(Some(will()))]));
        });
        assert_eq!(lines, []);
    }
}
