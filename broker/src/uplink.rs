//! The uplink: selected local topics forwarded to an upstream broker at QoS 1 through a
//! store-and-forward queue on disk, and command topics from upstream published locally.
//!
//! A router link subscribes to the `forward` filters (a command from upstream that also matches
//! one of them goes back up: keep the two apart in the board file). Every message is appended to the queue file before it is sent; the front of
//! the queue is published upstream (topic prefixed with `remote_prefix`) and leaves the queue
//! only when the upstream broker acknowledges it, one message at a time. While upstream is
//! unreachable messages wait in the queue, which keeps the file under `max_queue_bytes` by
//! dropping the oldest (counted). Delivery is at least once: a message sent just before a
//! connection broke is sent again. Each connection starts from a fresh MQTT client, so nothing
//! rumqttc kept from the last one is replayed beside the queue.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet as ClientPacket, QoS};
use rumqttd::local::LinkRx;
use tokio::time::Instant;

use crate::hub::{self, Hub, Message, Received, RouterTx};

/// Reconnect backoff towards the upstream broker.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

impl Record {
    fn encoded(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.size() as usize);
        bytes.extend_from_slice(&(self.topic.len() as u16).to_be_bytes());
        bytes.extend_from_slice(self.topic.as_bytes());
        bytes.push(u8::from(self.retain));
        bytes.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    fn size(&self) -> u64 {
        (2 + self.topic.len() + 1 + 4 + self.payload.len()) as u64
    }
}

fn decode(mut bytes: &[u8]) -> VecDeque<Record> {
    let mut records = VecDeque::new();
    // A record cut short by a crash ends the file.
    while let Some(record) = (|| {
        let (length, rest) = bytes.split_at_checked(2)?;
        let (topic, rest) = rest.split_at_checked(usize::from(u16::from_be_bytes([length[0], length[1]])))?;
        let (retain, rest) = rest.split_first()?;
        let (length, rest) = rest.split_at_checked(4)?;
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let (payload, rest) = rest.split_at_checked(length)?;
        bytes = rest;
        Some(Record {
            topic: String::from_utf8(topic.to_vec()).ok()?,
            payload: Bytes::copy_from_slice(payload),
            retain: *retain != 0,
        })
    })() {
        records.push_back(record);
    }
    records
}

/// The store-and-forward queue: pending messages in memory and in a file of at most
/// `max_bytes` (pending plus acknowledged ones not yet compacted away), mode 0600.
pub struct Queue {
    path: PathBuf,
    max_bytes: u64,
    records: VecDeque<Record>,
    /// Bytes of the pending records.
    pending_bytes: u64,
    /// Bytes in the file (pending and acknowledged).
    file_bytes: u64,
    file: File,
    pub depth: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Opens the queue, keeping what a previous run left unsent.
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<Queue> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let records = match fs::read(&path) {
            Ok(bytes) => decode(&bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => VecDeque::new(),
            Err(error) => return Err(error),
        };
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        let mut queue = Queue {
            path,
            max_bytes,
            pending_bytes: records.iter().map(Record::size).sum(),
            records,
            file_bytes: 0,
            file,
            depth: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        queue.compact()?;
        Ok(queue)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn front(&self) -> Option<&Record> {
        self.records.front()
    }

    /// Appends a message, dropping the oldest ones if the file would pass its bound.
    pub fn push(&mut self, record: Record) -> io::Result<()> {
        let size = record.size();
        if size > self.max_bytes {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if self.file_bytes + size > self.max_bytes {
            while self.pending_bytes + size > self.max_bytes {
                if let Some(old) = self.records.pop_front() {
                    self.pending_bytes -= old.size();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.compact()?;
        }
        self.file.write_all(&record.encoded())?;
        self.file_bytes += size;
        self.pending_bytes += size;
        self.records.push_back(record);
        self.depth.store(self.records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The front message was acknowledged upstream.
    pub fn pop(&mut self) -> io::Result<()> {
        if let Some(record) = self.records.pop_front() {
            self.pending_bytes -= record.size();
        }
        self.depth.store(self.records.len() as u64, Ordering::Relaxed);
        if self.records.is_empty() || self.file_bytes > self.max_bytes / 2 {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the file with the pending messages only (temporary file, rename).
    fn compact(&mut self) -> io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        for record in &self.records {
            file.write_all(&record.encoded())?;
        }
        file.sync_all()?;
        fs::rename(&temporary, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.file_bytes = self.pending_bytes;
        self.depth.store(self.records.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The uplink's local link and settings.
pub struct Uplink {
    settings: board::Uplink,
    /// Read once at start from the password file, which must be the owner's alone (as the
    /// gateways check theirs), so a missing or readable file is an error then.
    password: Option<String>,
    /// Built once at start, so a bad CA file is an error then, not a retry loop.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Whether the upstream broker has accepted the current connection (the health topic says).
    pub connected: Arc<AtomicBool>,
    hub: Arc<Hub>,
    tx: RouterTx,
    rx: LinkRx,
    queue: Queue,
}

impl Uplink {
    /// Connects to the local router and subscribes to the forwarded topics; the retained
    /// messages under them are queued at once, as a new subscriber would get them.
    pub async fn start(hub: Arc<Hub>, settings: board::Uplink, mut queue: Queue) -> Result<Uplink, String> {
        let tls = match &settings.tls {
            None => None,
            Some(tls) => Some(crate::tls::uplink_config(tls).map_err(|error| format!("TLS: {error}"))?),
        };
        let password = match &settings.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let (mut tx, rx) = hub.link().await.map_err(|error| format!("its local link: {error}"))?;
        for (index, filter) in settings.forward.iter().enumerate() {
            tx.subscribe(filter, index + 1).map_err(|error| format!("its local link: {error}"))?;
            for message in hub.retained_for(filter) {
                queue.push(record(message)).map_err(|error| format!("its queue: {error}"))?;
            }
        }
        Ok(Uplink { settings, password, tls, connected: Arc::new(AtomicBool::new(false)), hub, tx, rx, queue })
    }

    fn options(&self) -> MqttOptions {
        let mut options =
            MqttOptions::new(self.settings.client_id.clone(), self.settings.host.clone(), self.settings.port);
        if let Some(config) = &self.tls {
            options
                .set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(config.clone())));
        }
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(username) = &self.settings.username {
            let password = self.password.clone().unwrap_or_default();
            options.set_credentials(username.clone(), password);
        }
        options
    }

    /// Forwards until the task is dropped.
    pub async fn run(mut self) {
        let mut upstream: Option<(AsyncClient, EventLoop)> = None;
        let mut connected = false;
        // The last reason a connection failed, logged when it changes rather than on every retry.
        let mut failure: Option<String> = None;
        let mut in_flight = false;
        let mut retry = backoff::Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut retry_at = Instant::now();
        loop {
            if upstream.is_none() && Instant::now() >= retry_at {
                upstream = Some(AsyncClient::new(self.options(), 16));
            }
            let event = tokio::select! {
                received = hub::receive(&mut self.rx) => match received {
                    Ok(Received::Message(message, _)) => Some(Ok(message)),
                    Ok(Received::Paused) => {
                        let _ = self.rx.wake().await;
                        None
                    }
                    Ok(Received::Nothing) => None,
                    Err(error) => {
                        tracing::error!(%error, "the uplink lost its local link");
                        return;
                    }
                },
                event = poll(&mut upstream) => Some(Err(event)),
                () = tokio::time::sleep_until(retry_at), if upstream.is_none() => None,
            };
            match event {
                Some(Ok(message)) => {
                    if let Err(error) = self.queue.push(record(message)) {
                        tracing::error!(%error, "the uplink queue cannot be written");
                    }
                }
                Some(Err(Ok(Event::Incoming(ClientPacket::ConnAck(_))))) => {
                    tracing::info!(host = %self.settings.host, port = self.settings.port, tls = self.tls.is_some(), "uplink connected");
                    connected = true;
                    self.connected.store(true, Ordering::Relaxed);
                    failure = None;
                    retry.reset();
                    if let Some((client, _)) = &upstream {
                        for filter in &self.settings.commands {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                    }
                }
                Some(Err(Ok(Event::Incoming(ClientPacket::PubAck(_))))) if in_flight => {
                    in_flight = false;
                    if let Err(error) = self.queue.pop() {
                        tracing::error!(%error, "the uplink queue cannot be written");
                    }
                }
                Some(Err(Ok(Event::Incoming(ClientPacket::Publish(command))))) => {
                    let local =
                        command.topic.strip_prefix(self.settings.remote_prefix.as_str()).unwrap_or(&command.topic);
                    let message = Message {
                        topic: Bytes::copy_from_slice(local.as_bytes()),
                        payload: command.payload,
                        qos: 1,
                        retain: false,
                    };
                    if let Err(error) = self.hub.publish(&mut self.tx, &message) {
                        tracing::warn!(%error, "a command from upstream could not be published locally");
                    }
                }
                Some(Err(Ok(_))) | None => {}
                Some(Err(Err(error))) => {
                    let reason = error.to_string();
                    if connected {
                        tracing::warn!(%error, "uplink disconnected");
                    } else if failure.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(
                            host = %self.settings.host,
                            port = self.settings.port,
                            %error,
                            "the uplink cannot connect; messages wait in its queue"
                        );
                    }
                    failure = Some(reason);
                    upstream = None;
                    connected = false;
                    self.connected.store(false, Ordering::Relaxed);
                    in_flight = false;
                    retry_at = Instant::now() + retry.next_delay();
                }
            }
            if connected
                && !in_flight
                && let (Some((client, _)), Some(record)) = (&upstream, self.queue.front())
            {
                let topic = format!("{}{}", self.settings.remote_prefix, record.topic);
                if client.try_publish(topic, QoS::AtLeastOnce, record.retain, record.payload.clone()).is_ok() {
                    in_flight = true;
                }
            }
        }
    }
}

/// The upstream password, from a file only its owner may read.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let error = |message: String| format!("its password file {}: {message}", path.display());
    let mode = fs::metadata(path).map_err(|e| error(e.to_string()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(error(format!("mode {:o} lets others read it; chmod 600", mode & 0o777)));
    }
    let password = fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    Ok(password.trim_end().to_owned())
}

/// A forwarded message as a queue record, with the retain flag it was published with.
fn record(message: Message) -> Record {
    Record {
        topic: String::from_utf8_lossy(&message.topic).into_owned(),
        payload: message.payload,
        retain: message.retain,
    }
}

async fn poll(upstream: &mut Option<(AsyncClient, EventLoop)>) -> Result<Event, rumqttc::ConnectionError> {
    match upstream {
        Some((_, eventloop)) => eventloop.poll().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn record(n: u32) -> Record {
        Record { topic: "t".into(), payload: Bytes::from(n.to_be_bytes().to_vec()), retain: false }
    }

    // Regression: a missing or unreadable password file silently became an empty password.
    #[test]
    fn the_password_file_must_exist_and_be_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("busgate-uplink-password-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("uplink.password");
        let error = read_password(&path).unwrap_err();
        assert!(error.contains("No such file"), "{error}");
        fs::write(&path, "s3cret\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_password(&path).unwrap_err();
        assert!(error.ends_with("mode 644 lets others read it; chmod 600"), "{error}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&path).unwrap(), "s3cret");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_queue_survives_a_restart_and_keeps_its_bound() {
        let dir = std::env::temp_dir().join(format!("busgate-uplink-queue-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("uplink.queue");
        // Each record is 2 + 1 + 1 + 4 + 4 = 12 bytes; room for 10.
        let mut queue = Queue::open(path.clone(), 120).unwrap();
        for n in 0..15 {
            queue.push(record(n)).unwrap();
            assert!(fs::metadata(&path).unwrap().len() <= 120);
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 5);
        queue.pop().unwrap();
        drop(queue);
        let queue = Queue::open(path.clone(), 120).unwrap();
        assert_eq!(queue.len(), 9);
        assert_eq!(queue.front(), Some(&record(6)));
        fs::remove_dir_all(dir).unwrap();
    }
}
