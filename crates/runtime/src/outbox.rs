//! A bounded queue of messages waiting for the broker, dropping the oldest when full.

use std::collections::VecDeque;

use bytes::Bytes;
use rumqttc::QoS;

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

/// Messages kept while the broker is unreachable, oldest first.
///
/// A board may be cut off from its broker for a long time; the outbox must not grow without
/// bound, so beyond `capacity` the oldest message is dropped and counted. Consumers see the gap
/// in the readings' sequence numbers and the count in the health topic.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Message>,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self { queue: VecDeque::with_capacity(capacity.min(1024)), capacity: capacity.max(1), dropped: 0 }
    }

    /// Queues a message behind the others.
    pub fn push(&mut self, message: Message) {
        if self.queue.len() == self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(message);
    }

    /// Puts messages back in front, in their order: they were sent but never acknowledged, so
    /// they are older than everything queued. Beyond capacity the oldest are dropped.
    pub fn requeue(&mut self, messages: impl DoubleEndedIterator<Item = Message>) {
        for message in messages.rev() {
            if self.queue.len() == self.capacity {
                // The message being requeued is older than everything in the queue.
                self.dropped += 1;
                continue;
            }
            self.queue.push_front(message);
        }
    }

    pub fn pop(&mut self) -> Option<Message> {
        self.queue.pop_front()
    }

    /// Returns a message taken with `pop` that could not be handed over after all.
    pub fn unpop(&mut self, message: Message) {
        self.requeue(std::iter::once(message));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages dropped because the outbox was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Message {
        Message { topic: format!("t/{n}"), payload: Bytes::from(vec![n]), qos: QoS::AtLeastOnce, retain: false }
    }

    fn drain(outbox: &mut Outbox) -> Vec<u8> {
        std::iter::from_fn(|| outbox.pop()).map(|m| m.payload[0]).collect()
    }

    #[test]
    fn keeps_order_within_capacity() {
        let mut outbox = Outbox::new(3);
        (1..=3).for_each(|n| outbox.push(message(n)));
        assert_eq!(drain(&mut outbox), [1, 2, 3]);
        assert_eq!(outbox.dropped(), 0);
    }

    #[test]
    fn drops_the_oldest_when_full_and_counts_them() {
        let mut outbox = Outbox::new(3);
        (1..=5).for_each(|n| outbox.push(message(n)));
        assert_eq!(outbox.dropped(), 2);
        assert_eq!(drain(&mut outbox), [3, 4, 5]);
    }

    #[test]
    fn requeued_messages_go_first_in_their_order() {
        let mut outbox = Outbox::new(5);
        outbox.push(message(3));
        outbox.requeue(vec![message(1), message(2)].into_iter());
        assert_eq!(drain(&mut outbox), [1, 2, 3]);
    }

    #[test]
    fn requeue_beyond_capacity_drops_the_oldest() {
        let mut outbox = Outbox::new(3);
        outbox.push(message(4));
        outbox.push(message(5));
        outbox.requeue(vec![message(1), message(2), message(3)].into_iter());
        assert_eq!(outbox.dropped(), 2);
        assert_eq!(drain(&mut outbox), [3, 4, 5]);
    }
}
