//! Just enough MQTT 3.1.1 to read retained messages: CONNECT, SUBSCRIBE at QoS 0, and the
//! PUBLISH packets that follow, over any byte stream (`ssh -W` to the board's broker).
//!
//! xtask compiles on every call, so it does not take rumqttc and tokio for the one thing
//! deploy needs: waiting until the board's gateways say "online".

use std::io::{self, Read, Write};

use anyhow::{Context, bail};

/// A PUBLISH received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// CONNECT with a clean session (and a user name and password when `login` has them), then
/// SUBSCRIBE to `filters` at QoS 0.
pub fn connect_and_subscribe(
    stream: &mut impl Write,
    client_id: &str,
    login: Option<(&str, &str)>,
    filters: &[String],
) -> io::Result<()> {
    let mut connect = Vec::new();
    put_string(&mut connect, "MQTT");
    // Protocol level 4 (3.1.1), clean session (and user name and password), keep alive 60 s.
    let flags = if login.is_some() { 0b1100_0010 } else { 0b0000_0010 };
    connect.extend_from_slice(&[4, flags, 0, 60]);
    put_string(&mut connect, client_id);
    if let Some((user, password)) = login {
        put_string(&mut connect, user);
        put_string(&mut connect, password);
    }
    stream.write_all(&packet(0x10, &connect))?;

    let mut subscribe = vec![0, 1];
    for filter in filters {
        put_string(&mut subscribe, filter);
        subscribe.push(0);
    }
    stream.write_all(&packet(0x82, &subscribe))?;
    stream.flush()
}

/// Reads packets until the next PUBLISH; fails on a refused CONNECT or the end of the stream.
pub fn next_message(stream: &mut impl Read) -> anyhow::Result<Message> {
    loop {
        let mut header = [0u8; 1];
        stream.read_exact(&mut header).context("the broker closed the connection")?;
        let length = remaining_length(stream)?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).context("reading an MQTT packet")?;
        match header[0] >> 4 {
            // CONNACK: the second byte is the return code.
            2 => {
                if let Some(&code) = body.get(1)
                    && code != 0
                {
                    bail!("the broker refused the connection (CONNACK return code {code})");
                }
            }
            3 => return parse_publish(header[0], &body),
            // SUBACK, PINGRESP and the rest carry nothing deploy needs.
            _ => {}
        }
    }
}

fn parse_publish(flags: u8, body: &[u8]) -> anyhow::Result<Message> {
    let short = || anyhow::anyhow!("malformed PUBLISH packet");
    let length = usize::from(u16::from_be_bytes([*body.first().ok_or_else(short)?, *body.get(1).ok_or_else(short)?]));
    let topic = body.get(2..2 + length).ok_or_else(short)?;
    let mut rest = 2 + length;
    // QoS 1 and 2 carry a packet identifier (we subscribe at QoS 0, so none should come).
    if flags & 0b0110 != 0 {
        rest += 2;
    }
    Ok(Message {
        topic: String::from_utf8_lossy(topic).into_owned(),
        payload: body.get(rest..).ok_or_else(short)?.to_vec(),
    })
}

fn remaining_length(stream: &mut impl Read) -> anyhow::Result<usize> {
    let mut value = 0usize;
    for shift in [0, 7, 14, 21] {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).context("reading an MQTT packet length")?;
        value |= usize::from(byte[0] & 0x7F) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("malformed MQTT packet length")
}

fn put_string(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend_from_slice(&(text.len() as u16).to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![header];
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn connect_and_subscribe_bytes() {
        let mut out = Vec::new();
        connect_and_subscribe(&mut out, "x", None, &["a/b".to_owned()]).unwrap();
        let connect = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x'];
        let subscribe = [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'b', 0];
        assert_eq!(out, [&connect[..], &subscribe[..]].concat());
    }

    #[test]
    fn connect_with_a_login() {
        let mut out = Vec::new();
        connect_and_subscribe(&mut out, "x", Some(("u", "pw")), &[]).unwrap();
        let connect =
            [0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'x', 0, 1, b'u', 0, 2, b'p', b'w'];
        assert_eq!(&out[..connect.len()], &connect[..]);
    }

    #[test]
    fn reads_publish_after_acks() {
        let mut input = vec![0x20, 2, 0, 0, 0x90, 3, 0, 1, 0];
        input.extend_from_slice(&packet(0x31, &[&[0, 3][..], b"a/b", b"{}"].concat()));
        let message = next_message(&mut input.as_slice()).unwrap();
        assert_eq!(message, Message { topic: "a/b".into(), payload: b"{}".to_vec() });
    }

    #[test]
    fn refused_connection_is_an_error() {
        let input = [0x20, 2, 0, 5];
        let error = next_message(&mut input.as_slice()).unwrap_err().to_string();
        assert_eq!(error, "the broker refused the connection (CONNACK return code 5)");
    }

    #[test]
    fn long_lengths_use_several_bytes() {
        let body = vec![0; 200];
        let encoded = packet(0x30, &body);
        assert_eq!(&encoded[..3], &[0x30, 0xC8, 0x01]);
        assert_eq!(remaining_length(&mut &encoded[1..]).unwrap(), 200);
    }
}
