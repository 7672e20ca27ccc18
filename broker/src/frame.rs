//! A strict check of each MQTT 3.1.1 packet a client sends, on the raw bytes, before rumqttd's
//! codec decodes it.
//!
//! rumqttd's decoder is lenient: it accepts reserved flag bits, wildcards and control
//! characters in topic names, trailing bytes, and packets a client must never send. Every
//! MQTT 3.1.1 protocol violation must close the connection, so [`check`] looks at a whole frame
//! and says what it is, or why it is a violation. It never panics and never reads past the
//! frame, whatever the bytes (see `broker/fuzz`).

use schema::acl::{TopicError, check_topic_filter, check_topic_name};

/// Why a frame breaks MQTT 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("remaining length is malformed")]
    RemainingLength,
    #[error("packet of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("packet type {0} may not be sent by a client")]
    PacketType(u8),
    #[error("packet type {kind} with reserved flags {flags:#06b}")]
    Flags { kind: u8, flags: u8 },
    #[error("PUBLISH with QoS 3")]
    QoS3,
    #[error("PUBLISH with QoS 0 and the DUP flag")]
    Dup,
    #[error("packet is shorter or longer than its contents")]
    Length,
    #[error("CONNECT with protocol name {0:?}")]
    ProtocolName(String),
    #[error("CONNECT with the reserved flag set")]
    ConnectReserved,
    #[error("CONNECT will flags are inconsistent")]
    WillFlags,
    #[error("CONNECT has a password but no user name")]
    PasswordWithoutUser,
    #[error("string is not valid UTF-8 or contains U+0000")]
    Text,
    #[error("topic name {0}")]
    Topic(TopicError),
    #[error("topic filter {0}")]
    Filter(TopicError),
    #[error("packet identifier 0")]
    PacketIdZero,
    #[error("SUBSCRIBE or UNSUBSCRIBE without a topic filter")]
    NoFilter,
    #[error("SUBSCRIBE with requested QoS byte {0:#04x}")]
    RequestedQoS(u8),
}

/// What a valid frame is, with what the gate needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// CONNECT of MQTT 3.1.1 (protocol level 4) or MQTT 3.1 (level 3).
    Connect,
    /// CONNECT with the right protocol name but another level, which gets CONNACK code 1.
    OtherLevel(u8),
    Publish {
        qos: u8,
        pkid: u16,
    },
    Subscribe,
    Unsubscribe,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ or DISCONNECT.
    Other,
}

/// The frame at the front of `stream`: `Ok(None)` when it is not complete yet (the remaining
/// length is read first, so an oversized frame is refused before it arrives).
pub fn check(stream: &[u8], max_size: usize) -> Result<Option<(Frame, usize)>, Violation> {
    let Some(&first) = stream.first() else { return Ok(None) };
    let kind = first >> 4;
    let flags = first & 0x0f;
    let mut length = 0usize;
    let mut header = 1;
    loop {
        let Some(&byte) = stream.get(header) else { return Ok(None) };
        length |= usize::from(byte & 0x7f) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err(Violation::RemainingLength);
        }
    }
    if length > max_size {
        return Err(Violation::TooLarge { size: length, limit: max_size });
    }
    let expected_flags = match kind {
        3 => flags,
        6 | 8 | 10 => 0b0010,
        1 | 4 | 5 | 7 | 12 | 14 => 0,
        _ => return Err(Violation::PacketType(kind)),
    };
    if flags != expected_flags {
        return Err(Violation::Flags { kind, flags });
    }
    let Some(body) = stream.get(header..header + length) else { return Ok(None) };
    let mut reader = Reader { bytes: body };
    let frame = match kind {
        1 => connect(&mut reader)?,
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(Violation::QoS3);
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(Violation::Dup);
            }
            check_topic_name(reader.bytes()?).map_err(Violation::Topic)?;
            let pkid = if qos > 0 { reader.packet_id()? } else { 0 };
            // The payload is whatever is left.
            reader.bytes = &[];
            Frame::Publish { qos, pkid }
        }
        4..=7 => {
            reader.packet_id()?;
            Frame::Other
        }
        8 => {
            reader.packet_id()?;
            if reader.bytes.is_empty() {
                return Err(Violation::NoFilter);
            }
            while !reader.bytes.is_empty() {
                check_topic_filter(reader.text()?).map_err(Violation::Filter)?;
                let requested = reader.byte()?;
                if requested > 2 {
                    return Err(Violation::RequestedQoS(requested));
                }
            }
            Frame::Subscribe
        }
        10 => {
            reader.packet_id()?;
            if reader.bytes.is_empty() {
                return Err(Violation::NoFilter);
            }
            while !reader.bytes.is_empty() {
                check_topic_filter(reader.text()?).map_err(Violation::Filter)?;
            }
            Frame::Unsubscribe
        }
        _ => Frame::Other,
    };
    if !reader.bytes.is_empty() {
        return Err(Violation::Length);
    }
    Ok(Some((frame, header + length)))
}

fn connect(reader: &mut Reader<'_>) -> Result<Frame, Violation> {
    let name = reader.text()?;
    if name != "MQTT" && name != "MQIsdp" {
        return Err(Violation::ProtocolName(name.to_owned()));
    }
    let level = reader.byte()?;
    // MQTT 3.1.1 is level 4 named MQTT; MQTT 3.1 is level 3 named MQIsdp, with the same layout.
    if !matches!((name, level), ("MQTT", 4) | ("MQIsdp", 3)) {
        // Anything after the level may follow another version's rules.
        reader.bytes = &[];
        return Ok(Frame::OtherLevel(level));
    }
    let flags = reader.byte()?;
    if flags & 0b1 != 0 {
        return Err(Violation::ConnectReserved);
    }
    let will = flags & 0b100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b10_0000 != 0;
    if will_qos == 3 || (!will && (will_qos != 0 || will_retain)) {
        return Err(Violation::WillFlags);
    }
    let (user, password) = (flags & 0b1000_0000 != 0, flags & 0b100_0000 != 0);
    if password && !user {
        return Err(Violation::PasswordWithoutUser);
    }
    reader.take(2)?; // keep alive
    reader.text()?; // client id
    if will {
        check_topic_name(reader.bytes()?).map_err(Violation::Topic)?;
        reader.bytes()?;
    }
    if user {
        reader.text()?;
    }
    if password {
        reader.bytes()?;
    }
    Ok(Frame::Connect)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], Violation> {
        if self.bytes.len() < count {
            return Err(Violation::Length);
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, Violation> {
        Ok(self.take(1)?[0])
    }

    fn packet_id(&mut self) -> Result<u16, Violation> {
        let bytes = self.take(2)?;
        match u16::from_be_bytes([bytes[0], bytes[1]]) {
            0 => Err(Violation::PacketIdZero),
            id => Ok(id),
        }
    }

    /// Two-byte length, then that many bytes.
    fn bytes(&mut self) -> Result<&'a [u8], Violation> {
        let length = self.take(2)?;
        self.take(usize::from(u16::from_be_bytes([length[0], length[1]])))
    }

    /// A UTF-8 string without U+0000 (MQTT 3.1.1 section 1.5.3).
    fn text(&mut self) -> Result<&'a str, Violation> {
        let text = std::str::from_utf8(self.bytes()?).map_err(|_| Violation::Text)?;
        if text.contains('\0') {
            return Err(Violation::Text);
        }
        Ok(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    #[track_caller]
    fn check_hex(text: &str, expected: Result<Option<Frame>, Violation>) {
        let bytes = hex(text);
        assert_eq!(check(&bytes, 1 << 20).map(|found| found.map(|(frame, _)| frame)), expected, "{text}");
    }

    #[test]
    fn valid_packets() {
        check_hex("10 0c 0004 4d515454 04 02 003c 0000", Ok(Some(Frame::Connect)));
        check_hex("30 05 0003 612f62", Ok(Some(Frame::Publish { qos: 0, pkid: 0 })));
        check_hex("32 07 0003 612f62 0007 ff", Ok(Some(Frame::Publish { qos: 1, pkid: 7 })));
        check_hex("82 06 0001 0001 23 01", Ok(Some(Frame::Subscribe)));
        check_hex("a2 05 0001 0001 23", Ok(Some(Frame::Unsubscribe)));
        check_hex("c0 00", Ok(Some(Frame::Other)));
        check_hex("10 07 0004 4d515454 05", Ok(Some(Frame::OtherLevel(5))));
        check_hex("10 0e 0006 4d5149736470 03 02 003c 0000", Ok(Some(Frame::Connect)));
        check_hex("10 09 0006 4d5149736470 04", Ok(Some(Frame::OtherLevel(4))));
    }

    #[test]
    fn incomplete_packets_wait() {
        check_hex("", Ok(None));
        check_hex("30", Ok(None));
        check_hex("30 05 0003", Ok(None));
        check_hex("30 ff", Ok(None));
    }

    #[test]
    fn violations() {
        check_hex("82 06 0001 0001 23 03", Err(Violation::RequestedQoS(3)));
        check_hex("80 06 0001 0001 23 01", Err(Violation::Flags { kind: 8, flags: 0 }));
        check_hex("36 05 0003 612f62", Err(Violation::QoS3));
        check_hex("38 05 0003 612f62", Err(Violation::Dup));
        check_hex("30 05 0003 612f23", Err(Violation::Topic(TopicError::Wildcard)));
        check_hex("30 02 0000", Err(Violation::Topic(TopicError::Empty)));
        check_hex("32 07 0003 612f62 0000 ff", Err(Violation::PacketIdZero));
        check_hex("82 02 0001", Err(Violation::NoFilter));
        check_hex("20 02 0000", Err(Violation::PacketType(2)));
        check_hex("c0 01 00", Err(Violation::Length));
        check_hex("10 0c 0004 4d515454 04 03 003c 0000", Err(Violation::ConnectReserved));
        check_hex("10 0c 0004 4d515454 04 42 003c 0000", Err(Violation::PasswordWithoutUser));
        check_hex("10 0c 0004 4d515454 04 22 003c 0000", Err(Violation::WillFlags));
        check_hex("10 0c 0004 4d515453 04 02 003c 0000", Err(Violation::ProtocolName("MQTS".into())));
        check_hex("30 ff ff ff ff 01", Err(Violation::RemainingLength));
        assert_eq!(check(&hex("30 7f"), 100), Err(Violation::TooLarge { size: 127, limit: 100 }));
    }
}
