//! Readiness: waiting until each listener completes an MQTT handshake.
//!
//! rumqttd binds and accepts inside its server task and reports neither, so the broker is ready
//! when a client can actually connect. The probe is a real MQTT client: a bare TCP connection
//! that closed without CONNECT would be logged by rumqttd as an error, while a client that
//! connects and then closes its socket is an ordinary, quiet disconnection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use board::Listener;
use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{self, ConnAck, Connect, ConnectReturnCode, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout_at};

use crate::Error;
use crate::front::Preamble;

/// Pause between attempts while a listener is not up yet.
const RETRY: Duration = Duration::from_millis(20);

/// Where to check one listener.
pub(crate) struct Probe {
    pub name: String,
    /// The listener's internal server's address.
    pub address: SocketAddr,
    /// What the internal server expects first.
    pub preamble: Option<Preamble>,
}

impl From<&Listener> for Probe {
    fn from(listener: &Listener) -> Probe {
        Probe { name: listener.name.clone(), address: listener.address, preamble: None }
    }
}

/// Waits until every listener accepts an MQTT connection, or fails after `limit`.
pub(crate) async fn wait_all(listeners: &[Probe], limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    for listener in listeners {
        let address = connectable(listener.address);
        loop {
            let reason = match timeout_at(deadline, handshake(address, listener.preamble.as_deref())).await {
                Ok(Ok(())) => break,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            if Instant::now() + RETRY >= deadline {
                return Err(Error::NotReady {
                    name: listener.name.clone(),
                    address: listener.address,
                    timeout: limit,
                    reason,
                });
            }
            sleep(RETRY).await;
        }
    }
    Ok(())
}

/// A wildcard listener (`0.0.0.0`, `::`) is reached over loopback.
fn connectable(address: SocketAddr) -> SocketAddr {
    let mut address = address;
    if address.ip().is_unspecified() {
        let loopback = match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        address.set_ip(loopback);
    }
    address
}

static ATTEMPT: AtomicU32 = AtomicU32::new(0);

/// CONNECT, wait for a CONNACK, close. A listener without anonymous access answers the probe
/// with "not authorized", which shows just as well that it serves MQTT.
async fn handshake(address: SocketAddr, preamble: Option<&[u8]>) -> io::Result<()> {
    let mut stream = TcpStream::connect(address).await?;
    if let Some(preamble) = preamble {
        stream.write_all(preamble).await?;
    }
    let connect = Connect {
        keep_alive: 10,
        // Unique per attempt: rumqttd mishandles a client id reused while its previous
        // connection is still being taken down (see gate.rs).
        client_id: format!("busgate-broker-ready-{}-{}", std::process::id(), ATTEMPT.fetch_add(1, Ordering::Relaxed)),
        clean_session: true,
    };
    let mut buffer = BytesMut::new();
    V4.write(Packet::Connect(connect, None, None, None, None), &mut buffer).map_err(invalid)?;
    stream.write_all(&buffer).await?;
    buffer.clear();
    loop {
        match V4.read_mut(&mut buffer, 64) {
            Ok(Packet::ConnAck(
                ConnAck { code: ConnectReturnCode::Success | ConnectReturnCode::NotAuthorized, .. },
                _,
            )) => {
                return Ok(());
            }
            Ok(packet) => return Err(io::Error::other(format!("expected a successful CONNACK, got {packet:?}"))),
            Err(protocol::Error::InsufficientBytes(_)) => {
                if stream.read_buf(&mut buffer).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Err(error) => return Err(invalid(error)),
        }
    }
}

fn invalid(error: protocol::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_over_loopback() {
        assert_eq!(connectable("0.0.0.0:1883".parse().unwrap()), "127.0.0.1:1883".parse().unwrap());
        assert_eq!(connectable("[::]:1883".parse().unwrap()), "[::1]:1883".parse().unwrap());
        assert_eq!(connectable("127.0.0.1:1883".parse().unwrap()), "127.0.0.1:1883".parse().unwrap());
    }

    #[tokio::test]
    async fn a_port_nobody_serves_is_not_ready_in_time() {
        // Bound but never accepting MQTT: the handshake cannot complete.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener =
            Listener { name: "local".into(), address: silent.local_addr().unwrap(), anonymous: true, tls: None };
        let error = wait_all(&[Probe::from(&listener)], Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(error, Error::NotReady { .. }), "{error}");
    }
}
