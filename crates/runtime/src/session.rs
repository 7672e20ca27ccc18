//! The MQTT connection: drives rumqttc's event loop in its own task, reconnects with backoff,
//! and hands back every publish that a dropped connection would otherwise lose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use backoff::Backoff;
use rumqttc::{Event, EventLoop, Outgoing, Packet, Request};
use tokio::sync::mpsc;

use crate::outbox::Message;

/// What the connection task reports to the gateway loop.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// A CONNACK arrived; `session_present` false means subscriptions must be made again.
    Connected { session_present: bool },
    /// The connection dropped. `unsent` holds the publishes that were queued or in flight
    /// without an acknowledgement: rumqttc discards them when the next session is new (which it
    /// always is after a broker restart), so the gateway puts them back in its outbox.
    Disconnected { error: String, unsent: Vec<Message> },
    /// A message on a subscribed topic.
    Incoming(rumqttc::Publish),
    /// rumqttc accepted more work; sent only when the gateway asked (see `wake_on_progress`).
    Progress,
}

/// Drives the event loop until the gateway disconnects or goes away.
pub(crate) async fn drive(
    mut eventloop: EventLoop,
    events: mpsc::Sender<SessionEvent>,
    mut reconnect: Backoff,
    wake_on_progress: Arc<AtomicBool>,
) {
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                reconnect.reset();
                SessionEvent::Connected { session_present: ack.session_present }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => SessionEvent::Incoming(publish),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                linger(&mut eventloop).await;
                return;
            }
            Ok(Event::Incoming(Packet::PubAck(_)) | Event::Outgoing(Outgoing::Publish(_))) => {
                if !wake_on_progress.swap(false, Ordering::AcqRel) {
                    continue;
                }
                SessionEvent::Progress
            }
            Ok(other) => {
                tracing::trace!(?other, "mqtt event");
                continue;
            }
            Err(error) => {
                let unsent = take_publishes(&mut eventloop);
                let error = error.to_string();
                tracing::warn!(%error, unsent = unsent.len(), "mqtt connection lost");
                if events.send(SessionEvent::Disconnected { error, unsent }).await.is_err() {
                    return;
                }
                tokio::time::sleep(reconnect.next_delay()).await;
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

/// After DISCONNECT, reads until the broker closes the connection (or a second passes).
///
/// Dropping a socket that still has unread data (acknowledgements in flight) makes the kernel
/// send a reset, and a broker may then treat the DISCONNECT as never received and publish the
/// last will (Mosquitto 2.0 does: "disconnected due to out of memory").
async fn linger(eventloop: &mut EventLoop) {
    let drain = async { while eventloop.poll().await.is_ok() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    tracing::debug!("disconnected");
}

/// Takes the publishes rumqttc kept for resending, in their order.
fn take_publishes(eventloop: &mut EventLoop) -> Vec<Message> {
    let pending = std::mem::take(&mut eventloop.pending);
    let mut unsent = Vec::with_capacity(pending.len());
    // Subscriptions are made again on connect; acks and pings belong to the old session.
    for request in pending {
        if let Request::Publish(publish) = request {
            unsent.push(Message {
                topic: publish.topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
            });
        }
    }
    unsent
}
