//! The engine's MQTT 3.1 and 3.1.1 codec: client packets decoded from frames that
//! [`crate::frame::check`] has already found valid, and the broker's packets encoded.
//!
//! busgate decodes and encodes the client's side itself rather than through rumqttd's codec:
//! rumqttd keeps a publish's QoS, DUP flag and packet id private to its crate, refuses the
//! MQTT 3.1 `MQIsdp` CONNECT, and decodes leniently. Decoding after the strict check cannot
//! fail on a length: every `split_to` below stays inside a frame whose fields were measured.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// What a client may send, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    Connect(Connect),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe { pkid: u16, filters: Vec<(String, u8)> },
    Unsubscribe { pkid: u16, filters: Vec<String> },
    PingReq,
    Disconnect,
}

/// A CONNECT of MQTT 3.1 (level 3) or 3.1.1 (level 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub level: u8,
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// A PUBLISH as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Checked by the frame check: valid UTF-8 without wildcards or control characters.
    pub topic: Bytes,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
}

impl Publish {
    /// The topic as text; the frame check made sure it is UTF-8.
    pub fn topic_str(&self) -> &str {
        std::str::from_utf8(&self.topic).unwrap_or("")
    }
}

/// Decodes one whole frame (fixed header included) that [`crate::frame::check`] accepted.
/// `None` only if the frame is not what the check said it was, which the fuzz target looks for.
pub fn decode(mut frame: Bytes) -> Option<ClientPacket> {
    let first = frame.first().copied()?;
    frame.advance(1);
    // The remaining length: already checked, skipped here.
    loop {
        let byte = frame.first().copied()?;
        frame.advance(1);
        if byte & 0x80 == 0 {
            break;
        }
    }
    let mut body = Body { bytes: frame };
    let packet = match first >> 4 {
        1 => ClientPacket::Connect(body.connect()?),
        3 => {
            let qos = (first >> 1) & 0b11;
            let topic = body.field()?;
            let pkid = if qos > 0 { body.u16()? } else { 0 };
            let payload = std::mem::take(&mut body.bytes);
            ClientPacket::Publish(Publish {
                dup: first & 0b1000 != 0,
                qos,
                retain: first & 0b1 != 0,
                topic,
                pkid,
                payload,
            })
        }
        4 => ClientPacket::PubAck(body.u16()?),
        5 => ClientPacket::PubRec(body.u16()?),
        6 => ClientPacket::PubRel(body.u16()?),
        7 => ClientPacket::PubComp(body.u16()?),
        8 => {
            let pkid = body.u16()?;
            let mut filters = Vec::new();
            while !body.bytes.is_empty() {
                let filter = body.text()?;
                let qos = body.u8()?;
                filters.push((filter, qos));
            }
            ClientPacket::Subscribe { pkid, filters }
        }
        10 => {
            let pkid = body.u16()?;
            let mut filters = Vec::new();
            while !body.bytes.is_empty() {
                filters.push(body.text()?);
            }
            ClientPacket::Unsubscribe { pkid, filters }
        }
        12 => ClientPacket::PingReq,
        14 => ClientPacket::Disconnect,
        _ => return None,
    };
    Some(packet)
}

struct Body {
    bytes: Bytes,
}

impl Body {
    fn u8(&mut self) -> Option<u8> {
        let byte = self.bytes.first().copied()?;
        self.bytes.advance(1);
        Some(byte)
    }

    fn u16(&mut self) -> Option<u16> {
        if self.bytes.len() < 2 {
            return None;
        }
        Some(self.bytes.get_u16())
    }

    /// Two-byte length, then that many bytes.
    fn field(&mut self) -> Option<Bytes> {
        let length = usize::from(self.u16()?);
        if self.bytes.len() < length {
            return None;
        }
        Some(self.bytes.split_to(length))
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }

    fn connect(&mut self) -> Option<Connect> {
        let _name = self.field()?;
        let level = self.u8()?;
        let flags = self.u8()?;
        let keep_alive = self.u16()?;
        let client_id = self.text()?;
        let will = if flags & 0b100 != 0 {
            let topic = self.field()?;
            let payload = self.field()?;
            Some(Will { topic, payload, qos: (flags >> 3) & 0b11, retain: flags & 0b10_0000 != 0 })
        } else {
            None
        };
        let username = if flags & 0b1000_0000 != 0 { Some(self.text()?) } else { None };
        let password = if flags & 0b100_0000 != 0 { Some(self.field()?) } else { None };
        Some(Connect { level, clean_session: flags & 0b10 != 0, keep_alive, client_id, will, username, password })
    }
}

/// CONNACK return codes (MQTT 3.1.1 section 3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted = 0,
    ProtocolLevel = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUserNamePassword = 4,
    NotAuthorized = 5,
}

/// SUBACK's failure code.
pub const SUBACK_FAILURE: u8 = 0x80;

/// Appends the fixed header of a packet with `remaining` bytes after it.
fn header(out: &mut BytesMut, first: u8, remaining: usize) {
    out.put_u8(first);
    let mut length = remaining;
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if length == 0 {
            break;
        }
    }
}

pub fn connack(out: &mut BytesMut, session_present: bool, code: ConnectCode) {
    out.put_slice(&[0x20, 0x02, u8::from(session_present), code as u8]);
}

/// PUBACK (4), PUBREC (5), PUBREL (6), PUBCOMP (7).
pub fn ack(out: &mut BytesMut, kind: u8, pkid: u16) {
    let flags = if kind == 6 { 0b0010 } else { 0 };
    out.put_u8(kind << 4 | flags);
    out.put_u8(2);
    out.put_u16(pkid);
}

pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;

pub fn suback(out: &mut BytesMut, pkid: u16, codes: &[u8]) {
    header(out, 0x90, 2 + codes.len());
    out.put_u16(pkid);
    out.put_slice(codes);
}

pub fn unsuback(out: &mut BytesMut, pkid: u16) {
    out.put_slice(&[0xb0, 0x02]);
    out.put_u16(pkid);
}

pub fn pingresp(out: &mut BytesMut) {
    out.put_slice(&[0xd0, 0x00]);
}

/// A PUBLISH to a client; `pkid` is ignored at QoS 0.
pub fn publish(out: &mut BytesMut, topic: &[u8], payload: &[u8], qos: u8, retain: bool, dup: bool, pkid: u16) {
    let id_bytes = if qos > 0 { 2 } else { 0 };
    let first = 0x30 | u8::from(dup && qos > 0) << 3 | qos << 1 | u8::from(retain);
    header(out, first, 2 + topic.len() + id_bytes + payload.len());
    // Topics come from PUBLISH packets and the board file, so they fit in 16 bits.
    out.put_u16(topic.len() as u16);
    out.put_slice(topic);
    if qos > 0 {
        out.put_u16(pkid);
    }
    out.put_slice(payload);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::frame;

    fn hex(text: &str) -> Bytes {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    #[track_caller]
    fn check(text: &str, expected: ClientPacket) {
        let bytes = hex(text);
        let (_, size) = frame::check(&bytes, 1 << 20).unwrap().unwrap();
        assert_eq!(size, bytes.len());
        assert_eq!(decode(bytes), Some(expected));
    }

    #[test]
    fn client_packets_decode() {
        check(
            "10 0c 0004 4d515454 04 02 003c 0000",
            ClientPacket::Connect(Connect {
                level: 4,
                clean_session: true,
                keep_alive: 60,
                client_id: String::new(),
                will: None,
                username: None,
                password: None,
            }),
        );
        // MQTT 3.1: protocol name MQIsdp, level 3, with a will, user name and password.
        check(
            "10 1d 0006 4d5149736470 03 ee 000a 0001 63 0001 77 0002 6869 0001 75 0002 7077",
            ClientPacket::Connect(Connect {
                level: 3,
                clean_session: true,
                keep_alive: 10,
                client_id: "c".into(),
                will: Some(Will { topic: Bytes::from("w"), payload: Bytes::from("hi"), qos: 1, retain: true }),
                username: Some("u".into()),
                password: Some(Bytes::from("pw")),
            }),
        );
        check(
            "3b 08 0003 612f62 0007 ff",
            ClientPacket::Publish(Publish {
                dup: true,
                qos: 1,
                retain: true,
                topic: Bytes::from("a/b"),
                pkid: 7,
                payload: Bytes::from(&b"\xff"[..]),
            }),
        );
        check("62 02 0009", ClientPacket::PubRel(9));
        check(
            "82 0b 0001 0001 23 01 0002 612f 02",
            ClientPacket::Subscribe { pkid: 1, filters: vec![("#".into(), 1), ("a/".into(), 2)] },
        );
        check("a2 05 0001 0001 23", ClientPacket::Unsubscribe { pkid: 1, filters: vec!["#".into()] });
        check("c0 00", ClientPacket::PingReq);
        check("e0 00", ClientPacket::Disconnect);
    }

    #[test]
    fn server_packets_encode() {
        let mut out = BytesMut::new();
        connack(&mut out, true, ConnectCode::NotAuthorized);
        ack(&mut out, PUBREL, 258);
        suback(&mut out, 3, &[0, SUBACK_FAILURE]);
        unsuback(&mut out, 4);
        pingresp(&mut out);
        assert_eq!(&out[..], &hex("20 02 01 05  62 02 0102  90 04 0003 00 80  b0 02 0004  d0 00")[..]);

        let mut out = BytesMut::new();
        publish(&mut out, b"a/b", b"x", 2, false, true, 5);
        publish(&mut out, b"a", b"", 0, true, true, 5);
        assert_eq!(&out[..], &hex("3c 08 0003 612f62 0005 78  31 03 0001 61")[..]);

        // A remaining length over 127 takes two bytes.
        let mut out = BytesMut::new();
        publish(&mut out, b"t", &[0; 200], 0, false, false, 0);
        assert_eq!(&out[..3], &[0x30, (203 % 128) | 0x80, 1]);
        assert_eq!(out.len(), 3 + 203);
    }
}
