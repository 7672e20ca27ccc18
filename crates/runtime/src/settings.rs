//! What every gateway shares besides its loop: its settings (from the board file), why it
//! could not run, and the counters it reports when it stops.

use std::net::SocketAddr;
use std::time::Duration;

use crate::bus::RetryPolicy;

/// What a gateway needs to know besides its devices; usually built with [`Settings::from_board`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub board: String,
    /// The gateway program, e.g. `i2c-gateway`: a topic level and the MQTT client id's suffix.
    pub gateway: String,
    /// The bus kind's topic level, e.g. `i2c`.
    pub bus_kind: String,
    /// busgate version the gateway reports in its status.
    pub version: String,
    pub broker: SocketAddr,
    /// Connect over this Unix socket instead of `broker`.
    pub broker_socket: Option<std::path::PathBuf>,
    pub client_id: String,
    pub keep_alive: Duration,
    pub outbox_capacity: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub retry: RetryPolicy,
    pub health_interval: Duration,
    /// Home Assistant discovery prefix, when discovery configs are published.
    pub homeassistant: Option<String>,
    /// The file holding the broker password of the user named after the gateway program, when
    /// the board gives a credentials directory; otherwise the gateway connects anonymously.
    pub password_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// `version` is the gateway program's version, reported in its status.
    pub fn from_board(board: &board::Board, kind: board::BusKind, version: &str) -> Self {
        let g = &board.gateway;
        let ms = Duration::from_millis;
        Settings {
            board: board.name.clone(),
            gateway: kind.gateway().to_owned(),
            bus_kind: kind.as_str().to_owned(),
            version: version.to_owned(),
            broker: g.broker,
            broker_socket: g.broker_socket.clone(),
            client_id: format!("{}-{}", board.name, kind.gateway()),
            keep_alive: Duration::from_secs(g.keep_alive_s),
            outbox_capacity: g.outbox_capacity,
            reconnect_min: ms(g.reconnect_min_ms),
            reconnect_max: ms(g.reconnect_max_ms),
            retry: RetryPolicy { min: ms(g.retry_min_ms), max: ms(g.retry_max_ms) },
            health_interval: Duration::from_secs(g.health_interval_s),
            homeassistant: board.homeassistant.clone(),
            password_file: g.credentials_dir.as_ref().map(|dir| dir.join(format!("{}.password", kind.gateway()))),
        }
    }
}

/// Why a gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("starting the thread for bus {bus:?}: {source}")]
    Thread { bus: String, source: std::io::Error },
    #[error("password file {}: {message}", path.display())]
    Credentials { path: std::path::PathBuf, message: String },
    #[error("the board has no {0} devices")]
    NoDevices(String),
}

/// Counters reported on the health topic and returned when the gateway stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_out: u64,
    pub commands_in: u64,
    pub errors: u64,
    pub dropped: u64,
    /// Connects to the broker after the first one.
    pub reconnects: u64,
}
