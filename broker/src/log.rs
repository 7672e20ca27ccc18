//! The broker's log: what rumqttd's router says that is noise here.
//!
//! The router logs `no-connection id N is already gone` at ERROR for every event it still holds
//! for a link that has just disconnected: each packet a link sends queues one event, the first
//! event hands the router every packet in the link's buffer, the closing DISCONNECT among them,
//! and the events behind it find the link gone. Nothing is lost (the packets were handled), and
//! the router's public API gives no way to avoid it, so [`RouterNoise`] leaves exactly those
//! lines out. The router's other errors are still shown.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Leaves out the router's "already gone" lines (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterNoise;

const NOISY_TARGET: &str = "rumqttd::router::routing";
const NOISE: &str = "is already gone";

impl<S> Filter<S> for RouterNoise {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        if event.metadata().target() != NOISY_TARGET {
            return true;
        }
        let mut message = Message(false);
        event.record(&mut message);
        !message.0
    }
}

/// Whether an event's message is the noise.
struct Message(bool);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains(NOISE) {
            self.0 = true;
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && value.contains(NOISE) {
            self.0 = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_the_routers_already_gone_lines_are_left_out() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_filter(RouterNoise);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rumqttd::router::routing", "no-connection id {} is already gone", 3);
            tracing::error!(target: "rumqttd::router::routing", "no space for new connection");
            tracing::error!(target: "broker::connection", "is already gone, but not the router's");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("no-connection id 3"), "{text}");
        assert!(text.contains("no space for new connection"), "{text}");
        assert!(text.contains("but not the router's"), "{text}");
    }
}
