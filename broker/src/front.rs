//! The front: busgate accepts every client connection itself, plain or TLS, and relays it to
//! the listener's rumqttd server on an internal loopback port, where the gate checks it.
//!
//! Two things rumqttd's own accept loop cannot do. It leaves Nagle's algorithm on for client
//! sockets, so a subscriber that only receives (QoS 0) sees each message held until the
//! previous one is acknowledged, tens of milliseconds with delayed acknowledgements; the front
//! sets `TCP_NODELAY` towards the client and reads rumqttd's side in quick-acknowledgement
//! mode. And it runs a TLS handshake inside the accept loop, where one slow client stops the
//! listener; the front runs each handshake in its own task, with the connect timeout.
//!
//! The internal port is reachable from the board itself, so the front opens every relayed
//! connection with a random secret of this broker run ([`Preamble`]); the gate closes any
//! connection that does not start with it. A local process cannot skip a listener's TLS or
//! client-certificate check by connecting to the internal port.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The secret the front sends first on each connection to an internal server.
pub type Preamble = Arc<[u8]>;

/// A new random preamble.
pub fn preamble() -> io::Result<Preamble> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
    Ok(Arc::from(&bytes[..]))
}

/// Bytes relayed per read.
const CHUNK: usize = 16 * 1024;

/// Accepts clients on `listener` (TLS with `acceptor`, else plain) and relays each to the
/// internal server at `internal`, preamble first. Returns only if accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    internal: SocketAddr,
    preamble: Preamble,
    handshake_timeout: Duration,
) -> io::Error {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait a moment rather than spin.
            Err(error) if error.kind() != io::ErrorKind::InvalidInput => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return error,
        };
        let (acceptor, preamble) = (acceptor.clone(), preamble.clone());
        tokio::spawn(async move {
            if let Err(error) = accept(tcp, acceptor, internal, &preamble, handshake_timeout).await {
                tracing::debug!(%peer, %error, "connection ended");
            }
        });
    }
}

async fn accept(
    tcp: TcpStream,
    acceptor: Option<TlsAcceptor>,
    internal: SocketAddr,
    preamble: &[u8],
    handshake_timeout: Duration,
) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    match acceptor {
        None => {
            let (read, write) = tcp.into_split();
            relay(read, write, internal, preamble).await
        }
        Some(acceptor) => {
            let tls = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            let (read, write) = tokio::io::split(tls);
            relay(read, write, internal, preamble).await
        }
    }
}

/// Copies both ways until either side closes, then closes both.
async fn relay(
    mut client_read: impl AsyncRead + Unpin,
    mut client_write: impl AsyncWrite + Unpin,
    internal: SocketAddr,
    preamble: &[u8],
) -> io::Result<()> {
    let server = TcpStream::connect(internal).await?;
    server.set_nodelay(true)?;
    let (mut server_read, mut server_write) = server.into_split();
    server_write.write_all(preamble).await?;
    let upstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = client_read.read(&mut buffer).await?;
            if read == 0 {
                return io::Result::Ok(());
            }
            server_write.write_all(&buffer[..read]).await?;
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            // Acknowledge rumqttd's data at once: its socket runs Nagle's algorithm and would
            // hold the next message until this acknowledgement.
            let _ = socket2::SockRef::from(server_read.as_ref()).set_tcp_quickack(true);
            let read = server_read.read(&mut buffer).await?;
            if read == 0 {
                return io::Result::Ok(());
            }
            client_write.write_all(&buffer[..read]).await?;
        }
    };
    tokio::select! {
        done = upstream => done,
        done = downstream => done,
    }
}
