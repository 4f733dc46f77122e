//! The audit writer: decisions are queued on the hot path and written in batches by one task, off
//! the request's critical path; a graceful shutdown drains the queue.

use std::collections::HashMap;
use std::time::Duration;

use portcullis_domain::{AuditEvent, Stores, Timestamp};
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 65_536;
const BATCH: usize = 1_000;
const LINGER: Duration = Duration::from_millis(50);

enum Record {
    Event(Box<AuditEvent>),
    Used(String, Timestamp),
    Flush(oneshot::Sender<()>),
}

/// The handle the services write audit records through.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Record>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Record")
    }
}

impl AuditSink {
    /// Starts the writer task.
    pub fn spawn(stores: Stores) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(stores, rx));
        Self { tx }
    }

    /// Queues a decision. Waits only when the queue is full (the database has fallen far behind),
    /// so that no decision goes unrecorded.
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Record::Event(Box::new(event))).await.is_err() {
            tracing::error!("the audit writer has stopped; a decision was not recorded");
        }
    }

    /// Notes that a connection's credential was handed out at `at` (written in batches).
    pub fn used(&self, connection_id: &str, at: Timestamp) {
        // Last-use times are best effort: under pressure, dropping one is harmless.
        let _ = self.tx.try_send(Record::Used(connection_id.to_owned(), at));
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Record::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn writer(stores: Stores, mut rx: mpsc::Receiver<Record>) {
    let mut events: Vec<AuditEvent> = Vec::with_capacity(BATCH);
    let mut used: HashMap<String, Timestamp> = HashMap::new();
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        take(first, &mut events, &mut used, &mut acks);
        let deadline = tokio::time::Instant::now() + LINGER;
        while events.len() < BATCH && acks.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => take(r, &mut events, &mut used, &mut acks),
                Ok(None) | Err(_) => break,
            }
        }
        // Drain whatever is already queued, without waiting.
        while events.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => take(r, &mut events, &mut used, &mut acks),
                Err(_) => break,
            }
        }
        write(&stores, &mut events, &mut used).await;
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    write(&stores, &mut events, &mut used).await;
}

fn take(
    r: Record,
    events: &mut Vec<AuditEvent>,
    used: &mut HashMap<String, Timestamp>,
    acks: &mut Vec<oneshot::Sender<()>>,
) {
    match r {
        Record::Event(e) => events.push(*e),
        Record::Used(id, at) => {
            let slot = used.entry(id).or_insert(at);
            if at > *slot {
                *slot = at;
            }
        }
        Record::Flush(ack) => acks.push(ack),
    }
}

async fn write(
    stores: &Stores,
    events: &mut Vec<AuditEvent>,
    used: &mut HashMap<String, Timestamp>,
) {
    if !events.is_empty() {
        let mut attempt = 0;
        loop {
            match stores.audit.append_audit(events).await {
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
        events.clear();
    }
    if !used.is_empty() {
        let batch: Vec<(String, Timestamp)> = used.drain().collect();
        if let Err(e) = stores.connections.touch_connections(&batch).await {
            tracing::warn!(error = %e, "recording last use of connections failed");
        }
    }
}
