//! Which session each client id has, who holds it, and the bounds on persistent sessions.
//!
//! A client id has at most one session and one connection. A new connection with the same id
//! takes over: the old connection is told to close (MQTT 3.1.1 section 3.1.4), and a clean
//! session starts afresh while a persistent one is handed over as it is. Persistent sessions
//! whose client has been away longer than the board's expiry are removed, and when the bound on
//! their number is reached the one away longest makes room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::counters::{Counters, bump};
use crate::hub::Hub;
use crate::session::{Bounds, Session, State};

/// Bounds on persistent sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_sessions: usize,
    /// A persistent session whose client has been away this long is removed.
    pub expiry: Duration,
}

pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    limits: SessionLimits,
    bounds: Bounds,
    counters: Arc<Counters>,
    /// Numbers the connections, so that a connection that was taken over can tell.
    next_owner: AtomicU64,
}

struct Entry {
    session: Arc<Session>,
    /// The connection that has the session, if one does.
    owner: Option<u64>,
    /// Tells that connection to close.
    kick: Arc<Notify>,
}

/// A connection's hold on a session.
pub struct Claim {
    pub session: Arc<Session>,
    /// Whether an earlier session was resumed (CONNACK's session present flag).
    pub resumed: bool,
    pub owner: u64,
    /// Notified when another connection takes the session over.
    pub kick: Arc<Notify>,
}

/// Why no session could be had.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{0} persistent sessions, all with a connection")]
    Full(usize),
    #[error("the router refused a link: {0}")]
    Router(String),
}

impl Registry {
    pub fn new(limits: SessionLimits, bounds: Bounds, counters: Arc<Counters>) -> Registry {
        Registry { entries: Mutex::new(HashMap::new()), limits, bounds, counters, next_owner: AtomicU64::new(1) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the session of `client_id` for a new connection.
    pub async fn claim(&self, hub: &Arc<Hub>, client_id: &str, clean: bool) -> Result<Claim, ClaimError> {
        let owner = self.next_owner.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(Notify::new());
        {
            let mut entries = self.entries();
            if let Some(entry) = entries.get_mut(client_id) {
                if entry.owner.is_some() {
                    entry.kick.notify_one();
                }
                if !clean && entry.session.persistent {
                    entry.owner = Some(owner);
                    entry.kick = kick.clone();
                    entry.session.lock().attached = true;
                    entry.session.owner.store(owner, Ordering::Relaxed);
                    bump(&self.counters.sessions_resumed);
                    return Ok(Claim { session: entry.session.clone(), resumed: true, owner, kick });
                }
                entries.remove(client_id);
            }
            if !clean {
                self.make_room(&mut entries)?;
            }
        }
        let state = State { attached: true, ..State::default() };
        let session = self.open(hub, client_id, !clean, state).await?;
        let mut entries = self.entries();
        if let Some(other) = entries.get(client_id)
            && other.owner.is_some()
        {
            // Another connection with this id came in while the link was being built.
            other.kick.notify_one();
        }
        session.owner.store(owner, Ordering::Relaxed);
        entries
            .insert(client_id.to_owned(), Entry { session: session.clone(), owner: Some(owner), kick: kick.clone() });
        Ok(Claim { session, resumed: false, owner, kick })
    }

    async fn open(
        &self,
        hub: &Arc<Hub>,
        client_id: &str,
        persistent: bool,
        state: State,
    ) -> Result<Arc<Session>, ClaimError> {
        Session::open(hub, client_id.to_owned(), persistent, self.counters.clone(), self.bounds, state)
            .await
            .map_err(|error| ClaimError::Router(error.to_string()))
    }

    /// Removes the persistent session away longest when the bound is reached.
    fn make_room(&self, entries: &mut HashMap<String, Entry>) -> Result<(), ClaimError> {
        let persistent = entries.values().filter(|entry| entry.session.persistent).count();
        if persistent < self.limits.max_sessions {
            return Ok(());
        }
        let oldest = entries
            .iter()
            .filter(|(_, entry)| entry.session.persistent && entry.owner.is_none())
            .filter_map(|(id, entry)| entry.session.lock().detached_at.map(|at| (at, id.clone())))
            .min();
        let Some((_, id)) = oldest else { return Err(ClaimError::Full(persistent)) };
        entries.remove(&id);
        bump(&self.counters.sessions_expired);
        tracing::info!(
            client_id = id,
            max_sessions = self.limits.max_sessions,
            "session removed to make room for a new one"
        );
        Ok(())
    }

    /// The connection `owner` has ended: a persistent session waits for its client, a clean
    /// one is gone. Nothing happens if another connection has taken the session over.
    pub fn release(&self, client_id: &str, owner: u64) {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(client_id) else { return };
        if entry.owner != Some(owner) {
            return;
        }
        if entry.session.persistent {
            entry.owner = None;
            entry.session.lock().detach();
        } else {
            entries.remove(client_id);
        }
    }

    /// Removes persistent sessions whose client has been away longer than the expiry.
    pub fn expire(&self) {
        let expiry = self.limits.expiry;
        let mut entries = self.entries();
        entries.retain(|client_id, entry| {
            let away =
                entry.owner.is_none() && entry.session.lock().detached_at.is_some_and(|at| at.elapsed() >= expiry);
            if away {
                bump(&self.counters.sessions_expired);
                tracing::info!(client_id, expiry_s = expiry.as_secs(), "session expired");
            }
            !away
        });
    }

    /// Every persistent session's client id and state, for the session file.
    pub fn snapshot(&self) -> Vec<(String, State)> {
        let entries = self.entries();
        let mut sessions: Vec<(String, State)> = entries
            .iter()
            .filter(|(_, entry)| entry.session.persistent)
            .map(|(id, entry)| (id.clone(), entry.session.lock().clone()))
            .collect();
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        sessions
    }

    /// Brings back persistent sessions from the session file, each waiting for its client.
    pub async fn restore(&self, hub: &Arc<Hub>, sessions: Vec<(String, State)>) -> Result<(), ClaimError> {
        for (client_id, mut state) in sessions {
            state.attached = false;
            state.detached_at = Some(std::time::Instant::now());
            let session = self.open(hub, &client_id, true, state).await?;
            let entry = Entry { session, owner: None, kick: Arc::new(Notify::new()) };
            self.entries().insert(client_id, entry);
        }
        Ok(())
    }

    /// Sessions kept now, persistent or not.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
