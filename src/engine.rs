//! The single writer: one thread owns the registry and the store, and applies
//! jobs from a crossbeam channel one at a time. A write is applied in memory,
//! made durable, and only then published to readers; if the store refuses it,
//! the write is undone and nothing is visible.
//!
//! Readers never queue behind the writer: after each commit the writer
//! publishes each changed group's snapshot and its [`GroupView`] (groups,
//! status, memberships, nodes) as `Arc`s in `DashMap`s, and long-pollers wait
//! on a `watch` channel per group. Writes are typed commands; the server
//! never sees the registry's insides.
//!
//! Access control: the writer also publishes an immutable [`AccessView`]
//! (teams, tokens, grants) that request checks read, and keeps the audit
//! log: entries queue here and the writer appends them to the store in
//! batches (one durable transaction each) and to `DATA_DIR/audit.log` as JSON
//! lines. A write's entry is flushed at once and its caller waits for it; a
//! refusal's waits for the next batch (at most a second), so a flood of
//! failed attempts costs no fsync each.
//!
//! One file per job: `main_loop` (the writer's loop and what it keeps up
//! between jobs), `commit` (group commit), `start` (start-up), `audit` (the
//! audit log), `commands` (the typed commands and reads), `follow` (the
//! writer on a shared PostgreSQL store) and `pg_commit` (group commit there).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use dashmap::DashMap;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::intern::Interner;
use crate::registry::{
    AccessView, AuditEntry, GroupView, Mode, Published, Refusal, Registry, Settings, Staged, Tx,
    stage,
};
use crate::store::{Store, StoreError};

mod audit;
mod commands;
mod commit;
mod export;
mod follow;
mod main_loop;
mod pg_commit;
mod rebuild;
mod start;

pub use audit::AuditOptions;
use audit::{
    AUDIT_INTERVAL, AUDIT_RIDE, AuditBatch, AuditFile, AuditPending, AuditQueue, AuditSink,
    WRITE_AUDIT,
};
pub use export::{Dump, FORMAT as EXPORT_FORMAT};
pub use follow::StoreStatus;
pub use rebuild::RebuildStatus;

/// What the writer runs: a job that may read or do anything (between
/// batches), or a write, which joins the current batch (group commit).
enum Job {
    Run(Box<dyn FnOnce(&mut Writer) + Send>),
    Write(WriteJob),
    /// Audit entries wait to be made durable: they ride the next batch's
    /// commit if a write is queued, else they are stored at once.
    Audit,
}

/// A write: applies itself and hands back what waits for the batch's commit.
type WriteJob = Box<dyn FnOnce(&mut Writer) -> Option<Pending> + Send>;

/// A write of the current batch, applied in memory: its staged effects
/// (`None` for a dry run or a write that changed nothing) and its answer,
/// sent once the batch is durable.
struct Pending {
    staged: Option<Staged>,
    started: Instant,
    /// The request's audit entry, stored in the same commit as the write.
    audit: Option<AuditEntry>,
    answer: Box<dyn FnOnce(Result<(), Refusal>) + Send>,
}

/// Where the writer makes state durable.
enum Backend {
    /// No store: state lives as long as the process (tests, benches), and
    /// the audit log is a ring in memory.
    Memory,
    /// The local redb file: a batch of writes is one commit.
    Redb(Store),
    /// The shared PostgreSQL store (see `follow`).
    Postgres(Box<follow::Pg>),
}

struct Writer {
    reg: Registry,
    backend: Backend,
    shared: Arc<Shared>,
    audit: AuditSink,
    /// When node reports were last stored.
    nodes_flushed: Instant,
    /// The store was closed at shutdown: writes are refused.
    closed: bool,
}

/// Counts a config write as arriving until dropped (it is queued, or
/// failed before it could be).
struct Arriving(Arc<Shared>);

impl Arriving {
    fn new(shared: &Arc<Shared>) -> Arriving {
        shared
            .arriving
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Arriving(shared.clone())
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0
            .arriving
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What readers see without going through the writer.
struct Shared {
    snapshots: DashMap<Uuid, Arc<Published>, ahash::RandomState>,
    views: DashMap<Uuid, Arc<GroupView>, ahash::RandomState>,
    watchers: DashMap<Uuid, watch::Sender<u64>, ahash::RandomState>,
    /// Bumped after every publish that changed anything readers see (any
    /// group's snapshot or view, or a deletion): for pages that follow all groups.
    changes: watch::Sender<u64>,
    settings: Settings,
    /// The registry's current interner, for builds off the writer.
    interner: parking_lot::RwLock<Arc<Interner>>,
    /// The last few kept versions assembled from their blobs, newest last:
    /// (group, version, the snapshot as it was published).
    assembled: parking_lot::Mutex<VecDeque<(Uuid, u64, Arc<Published>)>>,
    access: parking_lot::RwLock<Arc<AccessView>>,
    audit: AuditQueue,
    /// Heartbeats taken so far; each takes its number after its report is
    /// in its group's table.
    beats: std::sync::atomic::AtomicU64,
    /// Every heartbeat numbered up to this is in the store.
    beats_stored: std::sync::atomic::AtomicU64,
    /// Config writes being parsed and validated, not yet queued: the writer
    /// waits a moment for them so they share its commit.
    arriving: std::sync::atomic::AtomicUsize,
    /// The members' rebuild after an upgrade (`engine::rebuild`).
    rebuild: rebuild::Rebuild,
}

#[derive(Clone)]
pub struct Engine {
    /// In an `Arc` so a PostgreSQL listener can hold it weakly.
    jobs: Arc<Sender<Job>>,
    shared: Arc<Shared>,
    /// With a PostgreSQL store: its position and reachability.
    status: Option<Arc<follow::Status>>,
    /// Config builds (parse + validate) running at once: a flood of large
    /// uploads queues here instead of filling memory on the blocking pool.
    builds: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the store {path} can't be restored: {detail}; refusing to start so no data is overwritten"
    )]
    Restore { path: String, detail: String },
}

impl Engine {
    async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> R + Send + 'static,
    ) -> Result<R, Refusal> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |w| {
            let _ = tx.send(f(w));
        }));
        self.jobs
            .send(job)
            .map_err(|_| Refusal::internal("the writer has stopped"))?;
        rx.await
            .map_err(|_| Refusal::internal("the writer dropped the request"))
    }

    /// Runs `f` as one transaction: kept, persisted and published if it
    /// succeeds (and `mode` is `Apply`), undone otherwise. Writes queued
    /// together share one durable commit (see [`run`]); a refusal is
    /// answered at once and undoes only its own write; every other answer
    /// waits for the batch's commit.
    async fn write<R: Send + 'static>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal> + Send + 'static,
    ) -> Result<R, Refusal> {
        self.write_arrived(mode, f, None).await
    }

    /// [`write`](Engine::write) of a write counted as arriving: the count
    /// drops once the write is queued.
    async fn write_arrived<R: Send + 'static>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal> + Send + 'static,
        arriving: Option<Arriving>,
    ) -> Result<R, Refusal> {
        // An applied write carries its request's audit entry into its own
        // commit (see `with_write_audit`).
        let audit = if mode == Mode::Apply {
            WRITE_AUDIT
                .try_with(|w| w.borrow_mut().draft.take())
                .ok()
                .flatten()
        } else {
            None
        };
        let carried = audit.is_some();
        let (tx, rx) = oneshot::channel::<Result<R, Refusal>>();
        let job = Job::Write(Box::new(move |w: &mut Writer| {
            let started = Instant::now();
            if w.closed {
                let _ = tx.send(Err(Refusal::storage("the daemon is shutting down")));
                return None;
            }
            // On the shared store the batch's lock and catch-up come first.
            if let Err(e) = w.begin_shared(mode) {
                let _ = tx.send(Err(e));
                crate::metrics::write_finished(started.elapsed());
                return None;
            }
            match stage(&mut w.reg, mode, f) {
                Err(e) => {
                    let _ = tx.send(Err(e));
                    crate::metrics::write_finished(started.elapsed());
                    None
                }
                Ok((r, staged)) => Some(Pending {
                    staged,
                    started,
                    audit,
                    answer: Box::new(move |done| {
                        let _ = tx.send(done.map(|()| r));
                    }),
                }),
            }
        }));
        let sent = self.jobs.send(job);
        drop(arriving);
        sent.map_err(|_| Refusal::internal("the writer has stopped"))?;
        let done = rx
            .await
            .map_err(|_| Refusal::internal("the writer dropped the request"))?;
        if carried && done.is_ok() {
            let _ = WRITE_AUDIT.try_with(|w| w.borrow_mut().committed = true);
        }
        done
    }
}
