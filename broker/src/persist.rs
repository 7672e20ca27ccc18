//! The session file: persistent sessions (subscriptions, queued and in-flight QoS 1 and 2
//! messages, packet ids) kept across a broker restart, beside the retained store.
//!
//! Written whole and atomically (a temporary file, fsync, rename; mode 0600), when sessions
//! changed, every few seconds and at shutdown. Bounded: past `max_bytes` queued messages are
//! left out (counted and logged), never the sessions themselves.

use std::path::Path;
use std::time::Instant;

use bytes::{Buf as _, Bytes};

use crate::hub::Message;
use crate::session::{Delivery, Inflight, State, Subscription};

const MAGIC: &[u8] = b"busgate-sessions 1\n";

/// Encodes the sessions within `max_bytes`; returns the bytes and how many queued messages did
/// not fit.
pub fn encode(sessions: &[(String, State)], max_bytes: usize) -> (Vec<u8>, u64) {
    let mut out = MAGIC.to_vec();
    let mut left_out = 0;
    for (client_id, state) in sessions {
        text(&mut out, client_id);
        out.extend_from_slice(&state.last_pkid.to_be_bytes());
        out.extend_from_slice(&(state.next_subscription_id as u64).to_be_bytes());
        out.extend_from_slice(&(state.subscriptions.len() as u32).to_be_bytes());
        for (filter, subscription) in &state.subscriptions {
            text(&mut out, filter);
            out.extend_from_slice(&(subscription.id as u64).to_be_bytes());
            out.push(subscription.qos);
        }
        out.extend_from_slice(&(state.incoming_qos2.len() as u32).to_be_bytes());
        for pkid in &state.incoming_qos2 {
            out.extend_from_slice(&pkid.to_be_bytes());
        }
        // In-flight messages are kept whatever the bound: their packet ids are promises.
        out.extend_from_slice(&(state.inflight.len() as u32).to_be_bytes());
        for inflight in &state.inflight {
            out.extend_from_slice(&inflight.pkid.to_be_bytes());
            out.push(u8::from(inflight.released));
            delivery(&mut out, &inflight.delivery);
        }
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_be_bytes());
        let mut kept = 0u32;
        for queued in &state.queue {
            if out.len() + queued.message.topic.len() + queued.message.payload.len() + 12 > max_bytes {
                left_out += 1;
                continue;
            }
            delivery(&mut out, queued);
            kept += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&kept.to_be_bytes());
    }
    (out, left_out)
}

fn text(out: &mut Vec<u8>, text: &str) {
    // Client ids, filters and topics come from MQTT strings: at most 65535 bytes.
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn delivery(out: &mut Vec<u8>, delivery: &Delivery) {
    let message = &delivery.message;
    out.extend_from_slice(&[delivery.qos, u8::from(delivery.retain), message.qos, u8::from(message.retain)]);
    out.extend_from_slice(&(message.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(&message.topic);
    out.extend_from_slice(&(message.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&message.payload);
}

/// Decodes a session file; `None` if it is not one or is cut short.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, State)>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let mut reader = Reader { bytes: Bytes::copy_from_slice(rest) };
    let mut sessions = Vec::new();
    while !reader.bytes.is_empty() {
        let client_id = reader.text()?;
        let mut state = State { last_pkid: reader.u16()?, ..State::default() };
        state.next_subscription_id = usize::try_from(reader.u64()?).ok()?;
        for _ in 0..reader.u32()? {
            let filter = reader.text()?;
            let id = usize::try_from(reader.u64()?).ok()?;
            let qos = reader.u8()?.min(2);
            state.subscriptions.insert(filter, Subscription { id, qos });
        }
        for _ in 0..reader.u32()? {
            state.incoming_qos2.insert(reader.u16()?);
        }
        for _ in 0..reader.u32()? {
            let pkid = reader.u16()?;
            let released = reader.u8()? != 0;
            state.inflight.push_back(Inflight { pkid, released, delivery: reader.delivery()? });
        }
        for _ in 0..reader.u32()? {
            let delivery = reader.delivery()?;
            state.queued_bytes += delivery.size();
            state.queue.push_back(delivery);
        }
        state.detached_at = Some(Instant::now());
        sessions.push((client_id, state));
    }
    Some(sessions)
}

struct Reader {
    bytes: Bytes,
}

impl Reader {
    fn take(&mut self, count: usize) -> Option<Bytes> {
        (self.bytes.len() >= count).then(|| self.bytes.split_to(count))
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?.get_u8())
    }

    fn u16(&mut self) -> Option<u16> {
        Some(self.take(2)?.get_u16())
    }

    fn u32(&mut self) -> Option<u32> {
        Some(self.take(4)?.get_u32())
    }

    fn u64(&mut self) -> Option<u64> {
        Some(self.take(8)?.get_u64())
    }

    fn text(&mut self) -> Option<String> {
        let length = usize::from(self.u16()?);
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }

    fn delivery(&mut self) -> Option<Delivery> {
        let flags = self.take(4)?;
        let topic_length = usize::from(self.u16()?);
        let topic = self.take(topic_length)?;
        let payload_length = usize::try_from(self.u32()?).ok()?;
        let payload = self.take(payload_length)?;
        let message = Message { topic, payload, qos: flags[2].min(2), retain: flags[3] != 0 };
        Some(Delivery { message, qos: flags[0].min(2), retain: flags[1] != 0 })
    }
}

/// Reads the session file; a missing file is no sessions.
pub fn load(path: &Path) -> Result<Vec<(String, State)>, String> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).ok_or_else(|| format!("{}: not a session file, or cut short", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Writes the session file atomically.
pub fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::retained::write_atomically(path, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn delivery(n: u8, qos: u8) -> Delivery {
        let message = Message {
            topic: Bytes::from("a/b"),
            payload: Bytes::from(vec![n; 3]),
            qos: 2,
            retain: n.is_multiple_of(2),
        };
        Delivery { message, qos, retain: false }
    }

    fn state() -> State {
        let mut state = State { last_pkid: 41, next_subscription_id: 3, ..State::default() };
        state.subscriptions.insert("a/#".into(), Subscription { id: 1, qos: 2 });
        state.subscriptions.insert("b".into(), Subscription { id: 3, qos: 1 });
        state.incoming_qos2.insert(9);
        state.inflight.push_back(Inflight { pkid: 40, released: true, delivery: delivery(1, 2) });
        state.inflight.push_back(Inflight { pkid: 41, released: false, delivery: delivery(2, 1) });
        state.queue.extend([delivery(3, 1), delivery(4, 2)]);
        state.queued_bytes = state.queue.iter().map(Delivery::size).sum();
        state
    }

    #[test]
    fn sessions_round_trip() {
        let sessions = vec![("one".to_owned(), state()), ("two".to_owned(), State::default())];
        let (bytes, left_out) = encode(&sessions, 1 << 20);
        assert_eq!(left_out, 0);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        for ((id, expected), (decoded_id, decoded)) in sessions.iter().zip(&decoded) {
            assert_eq!(id, decoded_id);
            assert_eq!(decoded.subscriptions, expected.subscriptions);
            assert_eq!(decoded.inflight, expected.inflight);
            assert_eq!(decoded.queue, expected.queue);
            assert_eq!(decoded.incoming_qos2, expected.incoming_qos2);
            assert_eq!(
                (decoded.last_pkid, decoded.next_subscription_id),
                (expected.last_pkid, expected.next_subscription_id)
            );
        }
    }

    #[test]
    fn the_bound_leaves_out_queued_messages_only() {
        let sessions = vec![("one".to_owned(), state())];
        let (full, _) = encode(&sessions, 1 << 20);
        let (bytes, left_out) = encode(&sessions, full.len() - 1);
        assert_eq!(left_out, 1);
        assert!(bytes.len() < full.len());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded[0].1.inflight.len(), 2);
        assert_eq!(decoded[0].1.queue.len(), 1);
    }

    #[test]
    fn a_cut_file_is_refused() {
        let (bytes, _) = encode(&[("one".to_owned(), state())], 1 << 20);
        for cut in [MAGIC.len() + 1, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
    }
}
