//! Change notifications: how every node's caches learn, at once, that something changed.
//!
//! Every store write publishes a [`Change`] after it commits. On SQLite (one node) the feed is
//! in-process; on PostgreSQL each write also sends a `NOTIFY` in its transaction, and every node's
//! listener republishes it locally, so a policy change on one node reaches the caches of all.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

use crate::ConnectionKey;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum Change {
    /// An app, or one of its policies (the id is the app's).
    App(String),
    /// One user of the directory.
    User(String),
    /// Possibly any user (a role or tenant change touching many users).
    AllUsers,
    /// One connection's credential or status.
    Connection(ConnectionKey),
    /// Every connection of an app (the app's id).
    AppConnections(String),
    /// The trusted issuers.
    Issuers,
    /// One OAuth client (its id).
    Client(String),
    /// The admin keys.
    AdminKeys,
    /// The data keys (a rotation).
    DataKeys,
    /// The token-signing keys (a rotation).
    SigningKeys,
    /// The resource servers (their URIs are the audiences of Portcullis's own tokens).
    Resources,
}

/// An event on the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeEvent {
    /// Something changed.
    Changed(Change),
    /// Events may have been lost (a dropped listener connection, a lagging subscriber): every
    /// cache must forget everything.
    Reset,
}

/// The change feed of a backend.
pub trait ChangeFeed: Send + Sync + std::fmt::Debug {
    /// Subscribes to events published from now on.
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent>;

    /// Whether the feed currently delivers every change made anywhere (for PostgreSQL: whether the
    /// listener connection is up). While it is not, caches must not be trusted (fail closed).
    fn is_live(&self) -> bool;

    /// How many events have been published so far. A cache that has processed fewer events than
    /// this has an invalidation pending and must not answer from memory; a value loaded while the
    /// sequence moved must not be cached.
    fn sequence(&self) -> u64;

    /// Registers a function called synchronously for every event, before `publish` returns
    /// (after the sequence has moved, before subscribers hear of it). Caches invalidate here, so
    /// that once a write has returned no cache on this node still answers with the old value.
    fn add_listener(&self, listener: Listener);
}

/// A synchronous change listener (see [`ChangeFeed::add_listener`]).
pub type Listener = Arc<dyn Fn(&ChangeEvent) + Send + Sync>;

/// An in-process feed: the whole feed of a single-node backend, and the local half of a
/// distributed one.
#[derive(Clone)]
pub struct LocalChangeFeed {
    sender: broadcast::Sender<ChangeEvent>,
    live: Arc<AtomicBool>,
    sequence: Arc<AtomicU64>,
    listeners: Arc<RwLock<Vec<Listener>>>,
}

impl std::fmt::Debug for LocalChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChangeFeed")
            .field("live", &self.is_live())
            .field("sequence", &self.sequence())
            .finish_non_exhaustive()
    }
}

impl LocalChangeFeed {
    /// A live feed buffering up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self {
            sender,
            live: Arc::new(AtomicBool::new(true)),
            sequence: Arc::new(AtomicU64::new(0)),
            listeners: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Publishes a change to every subscriber.
    pub fn publish(&self, change: Change) {
        self.send(ChangeEvent::Changed(change));
    }

    /// Tells every subscriber to forget everything.
    pub fn reset(&self) {
        self.send(ChangeEvent::Reset);
    }

    fn send(&self, event: ChangeEvent) {
        // INVARIANT: the sequence moves before the event is sent, so a reader that sees the
        // sequence unchanged knows no event it has not processed exists.
        self.sequence.fetch_add(1, Ordering::SeqCst);
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for listener in &listeners {
            listener(&event);
        }
        // No subscriber is fine: there is no cache to tell.
        let _ = self.sender.send(event);
    }

    /// Marks the feed live or not (see [`ChangeFeed::is_live`]).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
    }
}

impl ChangeFeed for LocalChangeFeed {
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.sender.subscribe()
    }

    fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn sequence(&self) -> u64 {
        self.sequence.load(Ordering::SeqCst)
    }

    fn add_listener(&self, listener: Listener) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }
}
