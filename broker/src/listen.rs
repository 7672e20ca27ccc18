//! Accept loops: each listener's socket is owned here, and each accepted client gets a task of
//! its own that runs [`crate::connection::serve`].
//!
//! The accept loop itself only accepts: `TCP_NODELAY` is set (a subscriber that only receives
//! would otherwise see each message held by Nagle's algorithm), and a TLS handshake runs in
//! the client's own task with the connect timeout, so a slow client never holds up the next.
//! Connections that have not logged in yet are bounded as well as logged-in ones: past the
//! bound a new socket is closed at once, so a flood of connection attempts costs established
//! clients almost nothing.
//!
//! A listener is a byte stream and a [`Door`]; the protocol level is read from the CONNECT
//! (by the connection), so another transport (WebSocket) is another accept loop here.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::connection::{self, Door, Engine};

/// Connections accepted and not yet ended or logged in, over all listeners.
#[derive(Debug, Default)]
pub struct Pending(AtomicUsize);

/// Holds a place among the pending connections while the task runs.
struct Place(Arc<Pending>);

impl Pending {
    fn take(self: &Arc<Pending>, max: usize) -> Option<Place> {
        if self.0.fetch_add(1, Ordering::Relaxed) >= max {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Place(self.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one listener admits, shared by its connections.
#[derive(Clone)]
pub struct Listener {
    pub name: Arc<str>,
    pub anonymous: bool,
    pub engine: Arc<Engine>,
    pub pending: Arc<Pending>,
    /// Connections in any state at once, over all listeners, beyond which a new socket is
    /// closed without a word.
    pub max_pending: usize,
}

/// Accepts plain or TLS clients on `socket` until accepting fails for good.
pub async fn tcp(socket: TcpListener, acceptor: Option<TlsAcceptor>, listener: Listener) -> io::Error {
    loop {
        let (tcp, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => match pause_after(error).await {
                Some(error) => return error,
                None => continue,
            },
        };
        let Some(place) = listener.pending.take(listener.max_pending) else {
            tracing::debug!(%peer, "too many connections at once; closed");
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let door = Door {
            listener: listener.name.clone(),
            anonymous: listener.anonymous,
            peer_user: None,
            peer: peer.to_string(),
        };
        let (engine, acceptor) = (listener.engine.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _place = place;
            match acceptor {
                None => connection::serve(engine, door, tcp).await,
                Some(acceptor) => {
                    let timeout = engine.settings.connect_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection::serve(engine, door, tls).await,
                        Ok(Err(error)) => tracing::info!(peer = door.peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::info!(peer = door.peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Accepts clients on a Unix socket; a peer whose uid the board maps to a user logs in as that
/// user without a password (the socket file's permissions decide who may connect at all).
pub async fn unix(socket: UnixListener, peers: Arc<Vec<(u32, String)>>, listener: Listener) -> io::Error {
    loop {
        let (stream, _) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => match pause_after(error).await {
                Some(error) => return error,
                None => continue,
            },
        };
        let Some(place) = listener.pending.take(listener.max_pending) else { continue };
        let uid = stream.peer_cred().map(|credentials| credentials.uid()).ok();
        let peer_user = uid.and_then(|uid| peers.iter().find(|(peer, _)| *peer == uid).map(|(_, user)| user.clone()));
        let peer = uid.map_or_else(|| "uid ?".to_owned(), |uid| format!("uid {uid}"));
        let door = Door { listener: listener.name.clone(), anonymous: listener.anonymous, peer_user, peer };
        let engine = listener.engine.clone();
        tokio::spawn(async move {
            let _place = place;
            connection::serve(engine, door, stream).await;
        });
    }
}

/// Out of file descriptors and the like: wait a moment rather than spin. Returns the error if
/// it is final.
async fn pause_after(error: io::Error) -> Option<io::Error> {
    if error.kind() == io::ErrorKind::InvalidInput {
        return Some(error);
    }
    tracing::warn!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(50)).await;
    None
}

/// Binds a Unix socket at `path`, replacing a stale socket file left by an earlier run, with
/// the file mode the board asks for.
pub fn bind_unix(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            // A live broker answers on it; refuse to steal its socket.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process serves this socket"));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file that is not a socket is in the way")),
        Err(_) => {}
    }
    let socket = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
