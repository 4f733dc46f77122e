//! The change feed across nodes: `NOTIFY` in every write transaction, one listener connection per
//! node republishing the other nodes' changes on the local feed.

use std::time::Duration;

use futures_util::StreamExt;
use portcullis_domain::{Change, ChangeEvent, ChangeFeed, LocalChangeFeed, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, Client};

use crate::error::describe;
use crate::tls::{Connector, Messages};

/// The channel every node notifies and listens on.
pub(crate) const CHANNEL: &str = "portcullis_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more; a change too large to send (a very long
/// user id) is sent as a reset instead.
const MAX_PAYLOAD: usize = 7900;

/// The first wait before reconnecting a lost listener; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A notification's payload: who sent it, and what changed (none: forget everything).
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<Change>,
}

/// The payload announcing `change`, made by node `node`.
pub(crate) fn encode(node: &str, change: &Change) -> String {
    let notice = Notice {
        node: node.to_owned(),
        change: Some(change.clone()),
    };
    match serde_json::to_string(&notice) {
        Ok(payload) if payload.len() <= MAX_PAYLOAD => payload,
        // Too large (or, impossibly, not serializable): every other node resets instead.
        _ => reset_payload(node),
    }
}

fn reset_payload(node: &str) -> String {
    serde_json::json!({ "node": node }).to_string()
}

/// The change feed of the PostgreSQL backend: this node's own writes, published as they commit,
/// and every other node's, republished by the listener. Not live while the listener connection is
/// down (changes made elsewhere meanwhile are missed); a `Reset` is published when it goes down
/// and again when it is back.
#[derive(Debug, Clone)]
pub struct PgChangeFeed {
    local: LocalChangeFeed,
}

impl PgChangeFeed {
    pub(crate) fn new(local: LocalChangeFeed) -> Self {
        Self { local }
    }
}

impl ChangeFeed for PgChangeFeed {
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.local.subscribe()
    }

    fn is_live(&self) -> bool {
        self.local.is_live()
    }

    fn sequence(&self) -> u64 {
        self.local.sequence()
    }

    fn add_listener(&self, listener: portcullis_domain::Listener) {
        self.local.add_listener(listener);
    }
}

/// The running listener. Dropping it stops the task and marks the feed not live (nothing will
/// tell it about other nodes' changes any more).
pub(crate) struct Listener {
    task: AbortHandle,
    feed: LocalChangeFeed,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
        self.feed.set_live(false);
        self.feed.reset();
    }
}

impl Listener {
    /// Connects the listener (as `connector` says: the pool's TLS settings) and says `LISTEN`
    /// before returning (so that the store is live from its first call), then keeps it running on
    /// a task, reconnecting it the same way when it is lost.
    pub(crate) async fn start(
        config: tokio_postgres::Config,
        connector: Connector,
        feed: LocalChangeFeed,
        node_id: String,
        heartbeat: Duration,
    ) -> Result<Self, StoreError> {
        let session = Session::open(&config, &connector).await.map_err(|why| {
            StoreError::Unavailable(format!("the change listener cannot start: {why}"))
        })?;
        feed.set_live(true);
        let task = tokio::spawn(run(
            config,
            connector,
            session,
            feed.clone(),
            node_id,
            heartbeat,
        ));
        Ok(Self {
            task: task.abort_handle(),
            feed,
        })
    }
}

/// One listening connection.
struct Session {
    client: Client,
    messages: Messages,
}

impl Session {
    /// Connects and says `LISTEN`, within the configured connect timeout (the driver's own applies
    /// to opening the socket only: a peer that accepts and then says nothing would hang us).
    async fn open(config: &tokio_postgres::Config, connector: &Connector) -> Result<Self, String> {
        let limit = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(5));
        tokio::time::timeout(limit, Self::open_unbounded(config, connector))
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
    }

    async fn open_unbounded(
        config: &tokio_postgres::Config,
        connector: &Connector,
    ) -> Result<Self, String> {
        let (client, mut messages) = connector.connect(config).await.map_err(|e| describe(&e))?;
        {
            let statement = format!("LISTEN {CHANNEL}");
            let listen = client.batch_execute(&statement);
            tokio::pin!(listen);
            loop {
                tokio::select! {
                    done = &mut listen => {
                        done.map_err(|e| describe(&e))?;
                        break;
                    }
                    message = messages.next() => match message {
                        // A notice; no notification can come before LISTEN.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(describe(&e)),
                        None => return Err("the connection closed".into()),
                    }
                }
            }
        }
        Ok(Self { client, messages })
    }

    /// Republishes other nodes' notifications until the connection is lost; says why it was.
    async fn pump(&mut self, feed: &LocalChangeFeed, node_id: &str, heartbeat: Duration) -> String {
        let client = &self.client;
        let messages = &mut self.messages;
        // Completes only when the connection fails to answer: a silently dead peer (no RST, no
        // FIN) is otherwise only noticed by TCP keepalives.
        let beat = async {
            loop {
                tokio::time::sleep(heartbeat).await;
                match tokio::time::timeout(heartbeat, client.batch_execute("SELECT 1")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return format!("the heartbeat failed: {}", describe(&e)),
                    Err(_) => return "the heartbeat went unanswered".to_owned(),
                }
            }
        };
        tokio::pin!(beat);
        loop {
            tokio::select! {
                why = &mut beat => return why,
                message = messages.next() => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => deliver(feed, node_id, n.channel(), n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return describe(&e),
                    None => return "the connection closed".into(),
                }
            }
        }
    }
}

/// Republishes one notification, unless it is this node's own (published at commit already).
fn deliver(feed: &LocalChangeFeed, node_id: &str, channel: &str, payload: &str) {
    if channel != CHANNEL {
        return;
    }
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) if notice.node == node_id => {}
        Ok(Notice {
            change: Some(change),
            ..
        }) => feed.publish(change),
        Ok(Notice { change: None, .. }) => feed.reset(),
        Err(e) => {
            // Fail closed: something changed, we cannot tell what.
            tracing::warn!(error = %e, "an unreadable change notification; resetting caches");
            feed.reset();
        }
    }
}

/// Keeps a listener running: on a lost connection, not live and `Reset` at once, then reconnect
/// with backoff, and once listening again, live and `Reset` once more (changes made while it was
/// down were missed).
async fn run(
    config: tokio_postgres::Config,
    connector: Connector,
    mut session: Session,
    feed: LocalChangeFeed,
    node_id: String,
    heartbeat: Duration,
) {
    loop {
        let why = session.pump(&feed, &node_id, heartbeat).await;
        feed.set_live(false);
        feed.reset();
        drop(session);
        tracing::warn!(reason = %why, "the change listener lost its connection; caches are not trusted until it is back");
        let mut backoff = MIN_BACKOFF;
        session = loop {
            tokio::time::sleep(backoff).await;
            match Session::open(&config, &connector).await {
                Ok(s) => break s,
                Err(why) => {
                    tracing::warn!(reason = %why, retry_in = ?backoff.saturating_mul(2).min(MAX_BACKOFF), "the change listener cannot reconnect");
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
        };
        feed.set_live(true);
        feed.reset();
        tracing::info!("the change listener is back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_domain::ConnectionKey;

    #[test]
    fn payloads_round_trip() {
        let change = Change::Connection(ConnectionKey::user("app", "u1", Some("acme")));
        let payload = encode("n1", &change);
        let notice: Notice = serde_json::from_str(&payload).unwrap();
        assert_eq!(notice.node, "n1");
        assert_eq!(notice.change, Some(change));
        let notice: Notice = serde_json::from_str(&encode("n1", &Change::AdminKeys)).unwrap();
        assert_eq!(notice.change, Some(Change::AdminKeys));
    }

    #[test]
    fn oversized_changes_are_sent_as_resets() {
        let payload = encode("n1", &Change::User("u".repeat(10_000)));
        assert!(payload.len() < 100, "{payload}");
        let notice: Notice = serde_json::from_str(&payload).unwrap();
        assert_eq!(notice.node, "n1");
        assert_eq!(notice.change, None);
    }

    fn events(rx: &mut broadcast::Receiver<ChangeEvent>) -> Vec<ChangeEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn delivery_skips_own_changes_and_fails_closed() {
        let feed = LocalChangeFeed::new(16);
        let mut rx = feed.subscribe();
        deliver(
            &feed,
            "me",
            CHANNEL,
            &encode("other", &Change::App("x".into())),
        );
        deliver(
            &feed,
            "me",
            CHANNEL,
            &encode("me", &Change::App("mine".into())),
        );
        deliver(
            &feed,
            "me",
            "another_channel",
            &encode("other", &Change::Issuers),
        );
        assert_eq!(
            events(&mut rx),
            [ChangeEvent::Changed(Change::App("x".into()))]
        );
        deliver(&feed, "me", CHANNEL, "not json");
        deliver(
            &feed,
            "me",
            CHANNEL,
            r#"{"node":"other","change":{"kind":"noSuchKind"}}"#,
        );
        deliver(&feed, "me", CHANNEL, &reset_payload("other"));
        assert_eq!(
            events(&mut rx),
            [ChangeEvent::Reset, ChangeEvent::Reset, ChangeEvent::Reset]
        );
    }
}
