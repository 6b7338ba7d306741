//! The audit log: entries queue in memory and the writer appends them in
//! batches (one durable transaction each, riding a batch of writes when one
//! is queued) to the store and to `DATA_DIR/audit.log`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Backend, Engine, Job, Writer};
use crate::registry::{AuditEntry, AuditFilter, Refusal};
use crate::store::StoreError;

/// Where the audit log goes and how big it may grow.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// `audit.log` is rotated to `audit.log.1` before it passes this size.
    pub max_file_bytes: u64,
    /// The store keeps the newest this many entries.
    pub max_entries: u64,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            max_file_bytes: 64 * 1024 * 1024,
            max_entries: 1_000_000,
        }
    }
}

/// Refusal entries waiting for a batch; past this many, more are counted and dropped.
pub(super) const MAX_PENDING_AUDIT: usize = 65_536;

/// A batch this big is flushed without waiting for the interval.
pub(super) const AUDIT_BATCH: usize = 512;

/// Refusal entries wait at most this long to become durable.
pub(super) const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// A write's entry waits at most about this long for a batch to ride
/// before it is stored on its own.
pub(super) const AUDIT_RIDE: Duration = Duration::from_millis(5);

tokio::task_local! {
    /// The audit entry of the request being handled, until a write carries it.
    pub(super) static WRITE_AUDIT: std::cell::RefCell<WriteAudit>;
}

pub(super) struct WriteAudit {
    pub(super) draft: Option<AuditEntry>,
    /// A write carried the entry and its commit succeeded.
    pub(super) committed: bool,
}

/// Audit entries taken from the queue to be stored together.
pub(super) struct AuditBatch {
    pub(super) entries: Vec<AuditEntry>,
    /// Every ticket up to this one is in `entries` or was stored before
    /// (`None`: only entries carried by writes, which have no ticket).
    pub(super) ticket: Option<u64>,
}

/// Entries on their way to the writer.
pub(super) struct AuditQueue {
    pub(super) pending: parking_lot::Mutex<AuditPending>,
    /// The last ticket made durable (or attempted), for callers that wait.
    pub(super) flushed: watch::Sender<u64>,
}

#[derive(Default)]
pub(super) struct AuditPending {
    pub(super) entries: Vec<AuditEntry>,
    /// Tickets handed out so far.
    pub(super) ticket: u64,
    pub(super) since: Option<Instant>,
    pub(super) urgent: bool,
    pub(super) dropped: u64,
}

/// The writer's side of the audit log.
pub(super) struct AuditSink {
    pub(super) opts: AuditOptions,
    pub(super) file: Option<AuditFile>,
    /// Without a store: the newest entries, in memory.
    pub(super) ring: VecDeque<AuditEntry>,
    pub(super) next_seq: u64,
}

/// `audit.log`: JSON lines, rotated by size (one old file kept).
pub(super) struct AuditFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    max: u64,
}

impl AuditFile {
    pub(super) fn new(path: PathBuf, max: u64) -> AuditFile {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        AuditFile {
            path,
            file: None,
            size,
            max: max.max(1024),
        }
    }

    fn open(&mut self) -> std::io::Result<&mut std::fs::File> {
        if self.file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
        // Just set, so present.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("audit file not open"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let mut old = self.path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(&self.path, PathBuf::from(old))?;
        self.size = 0;
        Ok(())
    }

    pub(super) fn append(&mut self, entries: &[AuditEntry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in entries {
            let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if self.size + (buf.len() + line.len()) as u64 > self.max
                && self.size + buf.len() as u64 > 0
            {
                if !buf.is_empty() {
                    self.open()?.write_all(&buf)?;
                    buf.clear();
                }
                self.rotate()?;
            }
            buf.extend_from_slice(&line);
        }
        let n = buf.len() as u64;
        self.open()?.write_all(&buf)?;
        self.size += n;
        Ok(())
    }
}

impl Engine {
    /// Runs `handler` (one request) so that its first applied write carries
    /// `entry` (the request's audit entry, with the status it answers on
    /// success) into that write's own durable commit: one fsync for both.
    /// Returns whether a committed write carried it; if not, the caller
    /// records the request as usual.
    pub async fn with_write_audit<F: std::future::Future>(
        &self,
        entry: AuditEntry,
        handler: F,
    ) -> (F::Output, bool) {
        let cell = std::cell::RefCell::new(WriteAudit {
            draft: Some(entry),
            committed: false,
        });
        WRITE_AUDIT
            .scope(cell, async move {
                let out = handler.await;
                let committed = WRITE_AUDIT.with(|w| w.borrow().committed);
                (out, committed)
            })
            .await
    }

    /// Queues an audit entry. With `durable`, the writer flushes at once and
    /// this returns when the entry is in the store; otherwise it joins the
    /// next batch (at most [`AUDIT_INTERVAL`] later).
    pub async fn audit(&self, entry: AuditEntry, durable: bool) {
        let q = &self.shared.audit;
        let (ticket, wake) = {
            let mut p = q.pending.lock();
            if p.entries.len() >= MAX_PENDING_AUDIT && !durable {
                p.dropped += 1;
                crate::metrics::audit_dropped();
                return;
            }
            p.ticket += 1;
            p.entries.push(entry);
            p.since.get_or_insert_with(Instant::now);
            p.urgent |= durable;
            (p.ticket, durable || p.entries.len() == AUDIT_BATCH)
        };
        if wake {
            // Wakes the writer: the entries ride the next batch's commit,
            // or are stored on their own if no write is queued.
            let _ = self.jobs.send(Job::Audit);
        }
        if durable {
            let mut rx = q.flushed.subscribe();
            let _ = rx.wait_for(|f| *f >= ticket).await;
        }
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>, Refusal> {
        self.submit(move |w| w.read_audit(&filter)).await?
    }
}

impl Writer {
    /// Appends queued audit entries if one waits for them, the batch is
    /// full or the oldest has waited long enough (or `force`).
    pub(super) fn flush_audit(&mut self, force: bool) {
        let Some(mut batch) = self.take_audit(force) else {
            return;
        };
        let keep = self.audit.opts.max_entries;
        let stored = match &mut self.backend {
            Backend::Redb(s) => Some(s.append_audit(&mut batch.entries, keep)),
            Backend::Postgres(pg) => Some(pg.store.append_audit(&mut batch.entries, keep)),
            Backend::Memory => None,
        };
        self.settle_audit(batch, stored);
    }

    /// How long the oldest queued audit entry has waited.
    pub(super) fn audit_waited(&self) -> Duration {
        self.shared
            .audit
            .pending
            .lock()
            .since
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// The queued audit entries, if they are due (or `force`).
    pub(super) fn take_audit(&mut self, force: bool) -> Option<AuditBatch> {
        let (entries, ticket, dropped) = {
            let mut p = self.shared.audit.pending.lock();
            let due = p.urgent
                || p.entries.len() >= AUDIT_BATCH
                || p.since.is_some_and(|t| t.elapsed() >= AUDIT_INTERVAL);
            if p.entries.is_empty() || !(due || force) {
                return None;
            }
            p.since = None;
            p.urgent = false;
            (
                std::mem::take(&mut p.entries),
                p.ticket,
                std::mem::take(&mut p.dropped),
            )
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "audit entries of refused requests were dropped: too many at once"
            );
        }
        Some(AuditBatch {
            entries,
            ticket: Some(ticket),
        })
    }

    /// After `batch` was stored (`stored`: the store's answer, `None`
    /// without a store): kept in memory if there is no store, appended to
    /// `audit.log`, and its waiters woken.
    pub(super) fn settle_audit(
        &mut self,
        mut batch: AuditBatch,
        stored: Option<Result<(), StoreError>>,
    ) {
        if batch.entries.is_empty() {
            if let Some(ticket) = batch.ticket {
                self.shared.audit.flushed.send_replace(ticket);
            }
            return;
        }
        let a = &mut self.audit;
        let entries = &mut batch.entries;
        match stored {
            Some(result) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, n = entries.len(), "audit entries not stored (still written to audit.log)");
                    crate::metrics::audit_write_failed();
                }
            }
            None => {
                let keep = a.opts.max_entries.min(100_000) as usize;
                for e in entries.iter_mut() {
                    e.seq = a.next_seq;
                    a.next_seq += 1;
                    a.ring.push_back(e.clone());
                }
                while a.ring.len() > keep.max(1) {
                    a.ring.pop_front();
                }
            }
        }
        if let Some(f) = &mut a.file
            && let Err(e) = f.append(entries)
        {
            tracing::error!(error = %e, "can't write the audit log file");
            crate::metrics::audit_write_failed();
        }
        if let Some(ticket) = batch.ticket {
            self.shared.audit.flushed.send_replace(ticket);
        }
    }

    pub(super) fn read_audit(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Refusal> {
        // What is queued becomes readable first.
        self.shared.audit.pending.lock().urgent = true;
        self.flush_audit(true);
        match &self.backend {
            Backend::Postgres(pg) => pg
                .store
                .read_audit(filter)
                .map_err(|e| Refusal::storage(e.to_string())),
            Backend::Redb(s) => s
                .read_audit(filter)
                .map_err(|e| Refusal::storage(e.to_string())),
            Backend::Memory => Ok(self
                .audit
                .ring
                .iter()
                .rev()
                .filter(|e| filter.matches(e))
                .take(filter.limit)
                .cloned()
                .collect()),
        }
    }
}
