//! The gateway shell: what every gateway does around its own loop.
//!
//! The shell owns the MQTT [`Link`], the health tick, systemd's readiness and watchdog, the
//! shutdown and the final counters, and answers refused commands. A gateway's own loop (the
//! poll loop of the I2C and SPI gateways, the CAN loop) implements [`Loop`]: its own events,
//! the messages on its subscribed topics, its figures for the health topic, and how it stops.
//! One task runs both, so there is no locking.

use std::future::Future;
use std::time::{Duration, Instant};

use schema::payload::Payload;
use schema::{CommandError, Reply};

use crate::link::{HealthFigures, Link};
use crate::settings::{Counters, RuntimeError, Settings};

/// A gateway's own loop, driven by the shell.
pub trait Loop: Send {
    /// What the loop's own sources (bus threads, interface tasks, timers) report.
    type Event: Send;

    /// The topic filters to subscribe to after every connect.
    fn filters(&self) -> Vec<String>;

    /// Called once the link exists, before any event: e.g. registers retained topics.
    fn start(&mut self, shell: &mut Shell);

    /// Waits for the loop's next event; cancel-safe. `None` when no more events will come.
    fn next(&mut self) -> impl Future<Output = Option<Self::Event>> + Send;

    fn on_event(&mut self, event: Self::Event, shell: &mut Shell);

    /// A message on a subscribed topic: usually a command.
    fn on_message(&mut self, publish: &rumqttc::Publish, shell: &mut Shell);

    /// Called on every health tick, before the shell publishes the gateway's health: publishes
    /// what the loop reports besides, and says how many of its devices (or buses) are online.
    fn health(&mut self, shell: &mut Shell) -> Devices;

    /// Stops the loop's threads or tasks; the link is still open meanwhile.
    fn stop(self) -> impl Future<Output = ()> + Send;
}

/// Devices (or CAN buses) online, and in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Devices {
    pub online: u64,
    pub total: u64,
}

/// What a loop's handlers use: the link and the counters.
#[derive(Debug)]
pub struct Shell {
    pub link: Link,
    commands_in: u64,
    errors: u64,
    started: Instant,
}

impl Shell {
    /// Publishes with QoS 1 (see [`Link::publish`]).
    pub fn publish(&mut self, topic: String, payload: impl Into<bytes::Bytes>, retain: bool) {
        self.link.publish(topic, payload, retain);
    }

    /// Counts a command received.
    pub fn command_in(&mut self) {
        self.commands_in += 1;
    }

    /// Counts an error (a refused command, a failed send, a failed device operation).
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Refuses a command: counts the error and publishes the refusal on `topic`, the reply topic
    /// of `device`.
    pub fn refuse(&mut self, topic: String, device: &str, error: &CommandError) {
        self.error();
        tracing::info!(device, %error, "command refused");
        self.link.publish(topic, Reply::refused(device, error).to_json(), false);
    }

    fn publish_health(&mut self, devices: Devices) {
        let figures = HealthFigures {
            commands_in: self.commands_in,
            errors: self.errors,
            devices_online: devices.online,
            devices_total: devices.total,
        };
        self.link.publish_health(self.started, figures);
    }

    fn counters(&self) -> Counters {
        Counters {
            messages_out: self.link.messages_out(),
            commands_in: self.commands_in,
            errors: self.errors,
            dropped: self.link.dropped(),
            reconnects: self.link.reconnects(),
        }
    }
}

/// Runs a gateway's loop until `shutdown` completes; returns its counters.
pub async fn run<L: Loop>(
    settings: &Settings,
    mut gateway: L,
    shutdown: impl Future<Output = ()>,
) -> Result<Counters, RuntimeError> {
    let link = match Link::start(settings, gateway.filters()) {
        Ok(link) => link,
        Err(error) => {
            gateway.stop().await;
            return Err(error);
        }
    };
    let mut shell = Shell { link, commands_in: 0, errors: 0, started: Instant::now() };
    gateway.start(&mut shell);
    tracing::info!(gateway = %settings.gateway, broker = %settings.broker, "gateway started");
    let mut systemd = Systemd::from_env();
    systemd.notify(&[sd_notify::NotifyState::Ready]);

    let mut health = tokio::time::interval(settings.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = tokio::time::interval(systemd.watchdog.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = gateway.next() => gateway.on_event(event, &mut shell),
            Some(publish) = shell.link.recv() => gateway.on_message(&publish, &mut shell),
            _ = health.tick() => {
                let devices = gateway.health(&mut shell);
                shell.publish_health(devices);
            }
            // Fed from this loop, so a loop stuck in a handler starves the watchdog.
            _ = watchdog.tick(), if systemd.watchdog.is_some() => systemd.notify(&[sd_notify::NotifyState::Watchdog]),
        }
    }

    tracing::info!("gateway stopping");
    systemd.notify(&[sd_notify::NotifyState::Stopping]);
    gateway.stop().await;
    let counters = shell.counters();
    shell.link.stop().await;
    tracing::info!(?counters, "gateway stopped");
    Ok(counters)
}

/// systemd's notification socket, when the gateway runs as a `Type=notify` service.
#[derive(Debug)]
struct Systemd {
    /// How often to feed the watchdog: half its timeout (`WATCHDOG_USEC`), when it is on.
    watchdog: Option<Duration>,
    /// Set after the first failed notification, so it is logged once.
    failed: bool,
}

impl Systemd {
    fn from_env() -> Systemd {
        Systemd { watchdog: feed_every(sd_notify::watchdog_enabled()), failed: false }
    }

    /// Sends to `$NOTIFY_SOCKET`; does nothing where it is not set.
    fn notify(&mut self, states: &[sd_notify::NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(states)
            && !self.failed
        {
            tracing::warn!(%error, "cannot notify systemd");
            self.failed = true;
        }
    }
}

/// How often to feed a watchdog of this timeout: at half of it, as sd_watchdog_enabled(3)
/// advises; never for a zero timeout, which systemd does not set and a timer cannot run at.
fn feed_every(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|timeout| *timeout >= Duration::from_millis(2)).map(|timeout| timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_at_half_its_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(feed_every(Some(ms(200))), Some(ms(100)));
        assert_eq!(feed_every(Some(Duration::ZERO)), None, "a zero period would panic the timer");
        assert_eq!(feed_every(None), None);
    }
}
