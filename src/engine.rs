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

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use dashmap::DashMap;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::Blob;
use crate::registry::record::Change;
use crate::registry::{
    AccessView, AuditEntry, AuditFilter, Beat, ConfigWrite, Credential, DpCertificate, Effects,
    GroupMeta, GroupRole, GroupUpdate, GroupView, Mode, NewCertificate, NewGroup, NewTeam, Node,
    NodeReport, PinOutcome, Published, Refusal, Registry, Settings, Staged, TeamRecord,
    TokenRecord, Tx, assemble_version, kept_range, member_refusal, new_key, new_session_cookie,
    new_token_secret, now_ms, stage, transact,
};
use crate::report::Report;
use crate::store::{Store, StoreError};

mod export;
mod follow;
pub use export::{Dump, FORMAT as EXPORT_FORMAT};
pub use follow::StoreStatus;

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

/// Most writes one store commit makes durable.
const MAX_BATCH: usize = 256;

/// Longest a batch waits for writes still being validated.
const GATHER: Duration = Duration::from_millis(1);

/// Node reports wait at most this long to be stored.
const NODE_INTERVAL: Duration = Duration::from_secs(1);

/// Below this many interned strings the interner is never compacted.
const COMPACT_MIN_STRINGS: usize = 100_000;

/// Old versions kept assembled for `?version=` reads and pins.
const ASSEMBLED_CACHE: usize = 8;

struct Writer {
    reg: Registry,
    store: Option<Store>,
    /// The shared PostgreSQL store instead of `store` (see `follow`).
    pg: Option<follow::Pg>,
    shared: Arc<Shared>,
    audit: AuditSink,
    /// When node reports were last stored.
    nodes_flushed: Instant,
    /// The store was closed at shutdown: writes are refused.
    closed: bool,
}

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
const MAX_PENDING_AUDIT: usize = 65_536;
/// A batch this big is flushed without waiting for the interval.
const AUDIT_BATCH: usize = 512;
/// Refusal entries wait at most this long to become durable.
const AUDIT_INTERVAL: Duration = Duration::from_secs(1);
/// A write's entry waits at most about this long for a batch to ride
/// before it is stored on its own.
const AUDIT_RIDE: Duration = Duration::from_millis(5);

tokio::task_local! {
    /// The audit entry of the request being handled, until a write carries it.
    static WRITE_AUDIT: std::cell::RefCell<WriteAudit>;
}

struct WriteAudit {
    draft: Option<AuditEntry>,
    /// A write carried the entry and its commit succeeded.
    committed: bool,
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

/// Audit entries taken from the queue to be stored together.
struct AuditBatch {
    entries: Vec<AuditEntry>,
    /// Every ticket up to this one is in `entries` or was stored before
    /// (`None`: only entries carried by writes, which have no ticket).
    ticket: Option<u64>,
}

/// Entries on their way to the writer.
struct AuditQueue {
    pending: parking_lot::Mutex<AuditPending>,
    /// The last ticket made durable (or attempted), for callers that wait.
    flushed: watch::Sender<u64>,
}

#[derive(Default)]
struct AuditPending {
    entries: Vec<AuditEntry>,
    /// Tickets handed out so far.
    ticket: u64,
    since: Option<Instant>,
    urgent: bool,
    dropped: u64,
}

/// The writer's side of the audit log.
struct AuditSink {
    opts: AuditOptions,
    file: Option<AuditFile>,
    /// Without a store: the newest entries, in memory.
    ring: VecDeque<AuditEntry>,
    next_seq: u64,
}

/// `audit.log`: JSON lines, rotated by size (one old file kept).
struct AuditFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    max: u64,
}

impl AuditFile {
    fn new(path: PathBuf, max: u64) -> AuditFile {
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

    fn append(&mut self, entries: &[AuditEntry]) -> std::io::Result<()> {
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
    /// Restores state from `store` (or starts empty without one) and starts the writer.
    pub fn start(store: Option<Store>, settings: Settings) -> Result<Engine, StartError> {
        Engine::start_with(store, settings, AuditOptions::default())
    }

    /// [`Engine::start`] with audit log limits. On first start (or on a store
    /// from before access control) the `org-admins` team is made with the
    /// effective uid of this process.
    pub fn start_with(
        mut store: Option<Store>,
        settings: Settings,
        audit: AuditOptions,
    ) -> Result<Engine, StartError> {
        let interner = Arc::new(Interner::new());
        let reg = match &mut store {
            Some(s) => {
                let loaded = s.load()?;
                let fresh = loaded.groups.is_empty();
                let thawing = !loaded.members.is_empty();
                let restored = match Registry::restore(interner.clone(), settings.clone(), loaded) {
                    // A frozen member that decodes but is not what this
                    // binary builds (a stamp two builds share) shows as a
                    // snapshot that no longer assembles: build them all.
                    Err(detail) if thawing => {
                        tracing::warn!(%detail, "restoring with frozen members failed; building every member from its config");
                        let mut loaded = s.load()?;
                        loaded.members.clear();
                        Registry::restore(Arc::new(Interner::new()), settings, loaded)
                    }
                    other => other,
                };
                let mut reg = restored.map_err(|detail| StartError::Restore {
                    path: s.path().display().to_string(),
                    detail,
                })?;
                if fresh {
                    // Make the default group durable before anything is served.
                    s.commit(&reg.all_changes())?;
                }
                let restored = reg.restored();
                crate::metrics::members_restored(restored.thawed, restored.built);
                tracing::info!(
                    thawed = restored.thawed,
                    built = restored.built,
                    "members restored (built ones are frozen for the next start-up)"
                );
                // History entries past --snapshot-history, or the served
                // version of a store written before history was kept (the
                // members it built are stored by the writer's first job).
                s.commit(&reg.take_restore_changes())?;
                let removed = s.collect_garbage(&reg.live_blobs())?;
                if removed > 0 {
                    tracing::info!(removed, "removed config blobs no record names");
                }
                s.settle();
                reg
            }
            None => Registry::new(interner.clone(), settings),
        };
        let mut reg = reg;
        if reg.access_needs_bootstrap() {
            let path = store
                .as_ref()
                .map(|s| s.path().display().to_string())
                .unwrap_or_default();
            let restore_err = |detail: String| StartError::Restore {
                path: path.clone(),
                detail,
            };
            let key = new_key().map_err(|e| restore_err(e.detail))?;
            // SAFETY: geteuid has no preconditions and can't fail.
            let uid = unsafe { libc::geteuid() };
            let store_ref = &mut store;
            transact(
                &mut reg,
                Mode::Apply,
                |effects| match store_ref {
                    Some(s) => s.commit(&effects.changes).map_err(|e| e.to_string()),
                    None => Ok(()),
                },
                |tx| tx.bootstrap_access(uid, key),
            )
            .map_err(|e| restore_err(format!("can't set up access control: {e}")))?;
            tracing::info!(
                uid,
                team = crate::registry::BOOTSTRAP_TEAM,
                "access control set up: the user running the daemon is org admin"
            );
        }
        let audit_file = store.as_ref().and_then(|s| {
            s.path()
                .parent()
                .map(|d| AuditFile::new(d.join("audit.log"), audit.max_file_bytes))
        });
        Engine::launch(reg, store, None, audit, audit_file)
    }

    /// Publishes the restored registry and starts the writer.
    fn launch(
        reg: Registry,
        store: Option<Store>,
        pg: Option<follow::Pg>,
        audit: AuditOptions,
        audit_file: Option<AuditFile>,
    ) -> Result<Engine, StartError> {
        let shared = Arc::new(Shared {
            snapshots: DashMap::default(),
            views: DashMap::default(),
            watchers: DashMap::default(),
            changes: watch::channel(0).0,
            settings: reg.settings().clone(),
            interner: parking_lot::RwLock::new(reg.interner().clone()),
            assembled: parking_lot::Mutex::new(VecDeque::new()),
            access: parking_lot::RwLock::new(Arc::new(reg.access_view())),
            audit: AuditQueue {
                pending: parking_lot::Mutex::new(AuditPending::default()),
                flushed: watch::channel(0).0,
            },
            beats: Default::default(),
            beats_stored: Default::default(),
            arriving: Default::default(),
        });
        reg.settle_all_nodes();
        for g in reg.groups() {
            shared.snapshots.insert(g.meta.id, g.snapshot.clone());
            if let Some(view) = reg.view_of(g.meta.id) {
                shared.views.insert(g.meta.id, view);
            }
            let (tx, _) = watch::channel(g.snapshot.version);
            shared.watchers.insert(g.meta.id, tx);
        }
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        if store.is_some() {
            // First of all, off the start-up's path: a new binary builds
            // every member once, and storing them frozen is a big write.
            let _ = jobs.send(Job::Run(Box::new(Writer::store_frozen)));
        }
        let jobs = Arc::new(jobs);
        let status = pg.as_ref().map(|p| p.status.clone());
        if let Some(p) = &pg {
            follow::listen(p, Arc::downgrade(&jobs));
        }
        let writer = Writer {
            reg,
            store,
            pg,
            shared: shared.clone(),
            audit: AuditSink {
                opts: audit,
                file: audit_file,
                ring: VecDeque::new(),
                next_seq: 1,
            },
            nodes_flushed: Instant::now(),
            closed: false,
        };
        std::thread::Builder::new()
            .name("rgmerge-writer".into())
            .spawn(move || run(writer, rx))
            .map_err(|e| StartError::Restore {
                path: String::new(),
                detail: format!("can't start the writer thread: {e}"),
            })?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Engine {
            jobs,
            shared,
            status,
            builds: Arc::new(tokio::sync::Semaphore::new(cores.max(2))),
        })
    }

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
        // commit (see `with_write_audit`); on PostgreSQL, into the same
        // writer job (`export::store_write_audit`).
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
            if w.pg.is_some() {
                // The shared store serializes writes itself: one database
                // transaction each, answered when it commits.
                let out = w.write_shared(mode, f);
                let _ = tx.send(w.store_write_audit(out, audit));
                return None;
            }
            if w.closed {
                let _ = tx.send(Err(Refusal::storage("the daemon is shutting down")));
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

    /// The view of a group that a write just changed (published before the
    /// write's answer).
    fn written(&self, id: Uuid) -> Result<Arc<GroupView>, Refusal> {
        self.view(id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))
    }

    pub async fn create_group(&self, req: NewGroup) -> Result<Arc<GroupView>, Refusal> {
        let meta: GroupMeta = self
            .write(Mode::Apply, move |tx| tx.create_group(req))
            .await?;
        self.written(meta.id)
    }

    pub async fn update_group(
        &self,
        id: Uuid,
        req: GroupUpdate,
    ) -> Result<Arc<GroupView>, Refusal> {
        self.write(Mode::Apply, move |tx| tx.update_group(id, req))
            .await?;
        self.written(id)
    }

    pub async fn delete_group(&self, id: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_group(id)).await
    }

    /// Adds members to a composite; the composite's report after the change.
    pub async fn add_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.add_members(composite, &members))
            .await
    }

    pub async fn remove_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.remove_members(composite, &members))
            .await
    }

    /// Makes `members` the composite's exact member list; its report after.
    pub async fn set_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.set_members(composite, &members))
            .await
    }

    /// Pins a data plane client certificate to a group (a composite too).
    pub async fn add_certificate(
        &self,
        group: Uuid,
        cert: NewCertificate,
    ) -> Result<DpCertificate, Refusal> {
        self.write(Mode::Apply, move |tx| tx.add_certificate(group, cert))
            .await
    }

    pub async fn update_certificate(
        &self,
        group: Uuid,
        id: Uuid,
        cert: NewCertificate,
    ) -> Result<DpCertificate, Refusal> {
        self.write(Mode::Apply, move |tx| {
            tx.update_certificate(group, id, cert)
        })
        .await
    }

    pub async fn delete_certificate(&self, group: Uuid, id: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_certificate(group, id))
            .await
    }

    /// A heartbeat, answered without the writer: the report goes into the
    /// group's node table at once and into the store with the next batch
    /// of node reports (within [`NODE_INTERVAL`]). Only while a membership
    /// change of the group is in flight does it go through the writer,
    /// which runs it once that change is settled.
    pub async fn heartbeat(&self, id: Uuid, report: NodeReport) -> Result<Node, Refusal> {
        let view = self
            .view(id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))?;
        if view.standard().is_some_and(|s| !s.composites.is_empty()) {
            return Err(member_refusal(&view.meta.name));
        }
        let report = report.check()?;
        let beat = view.nodes.beat(id, &view.meta.name, &report, now_ms());
        let beat = match beat {
            Beat::Settling => {
                // Between batches nothing is in flight: the join is settled.
                self.submit(move |w| match w.reg.group(id) {
                    Ok(g) => g.nodes.beat(id, &g.meta.name, &report, now_ms()),
                    Err(e) => Beat::Refused(e),
                })
                .await?
            }
            done => done,
        };
        match beat {
            Beat::Done(node) => {
                self.shared
                    .beats
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                crate::metrics::heartbeat();
                self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
                Ok(node)
            }
            Beat::Refused(e) => Err(e),
            Beat::Settling => Err(Refusal::internal(
                "a membership change of this control plane did not settle; try again",
            )),
        }
    }

    /// (heartbeats taken, heartbeats whose reports are in the store): once
    /// the second reaches a value the first had, every heartbeat answered
    /// before is durable.
    pub fn heartbeats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.shared.beats.load(SeqCst),
            self.shared.beats_stored.load(SeqCst),
        )
    }

    pub async fn delete_node(&self, id: Uuid, node: String) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_node(id, &node))
            .await
    }

    /// Parses and validates a member config off the writer, then applies it
    /// (or, for an invalid one, answers its errors and changes nothing).
    /// `content_type` picks the syntax; without one the bytes are sniffed.
    /// With `expected`, the write applies only if the group's config is
    /// still the one with that hash (a read-modify-write, such as one
    /// entity's change, must not lose a write that came in between).
    pub async fn put_config(
        &self,
        id: Uuid,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        mode: Mode,
        expected: Option<String>,
    ) -> Result<ConfigWrite, Refusal> {
        let format = Format::from_content_type(content_type, &bytes);
        let view = self.written(id)?;
        let arriving = Arriving::new(&self.shared);
        let info = view.meta.member_info();
        // The registry's interner: it is replaced when compacted, and a member
        // built with an older one (or under an old name) is rebuilt by the writer.
        let interner = self.shared_interner();
        let target = self.shared.settings.kong.clone();
        // The semaphore is never closed, so this always gets a permit. It
        // is held for the build only: writes waiting for their commit must
        // not keep others from joining the batch.
        let permit = self.builds.acquire().await.ok();
        let (member, bytes) = tokio::task::spawn_blocking(move || {
            let m = Member::build_for(info, &bytes, format, &interner, &target);
            (m, bytes)
        })
        .await
        .map_err(|e| Refusal::internal(format!("config validation failed to run: {e}")))?;
        drop(permit);
        let blob = Blob { format, bytes };
        self.write_arrived(
            mode,
            move |tx| match &expected {
                Some(hash) => tx.put_config_if(id, blob, member, hash),
                None => tx.put_config(id, blob, member),
            },
            Some(arriving),
        )
        .await
    }

    /// Kept version `version` of group `id`, exactly as it was published:
    /// the served snapshot if it is that version, else assembled from its
    /// sources' blobs off the writer (hash checked) and cached. Not kept: a
    /// not-found refusal naming the kept range.
    pub async fn snapshot_at(&self, id: Uuid, version: u64) -> Result<Arc<Published>, Refusal> {
        let view = self.written(id)?;
        let served = self.snapshot(id).unwrap_or_else(|| view.snapshot.clone());
        if served.version == version {
            return Ok(served);
        }
        let entry = view
            .history
            .iter()
            .find(|e| e.version == version)
            .cloned()
            .ok_or_else(|| {
                let (oldest, newest) = kept_range(&view.history);
                Refusal::not_found(format!(
                    "version {version} of '{}' is not kept: the kept versions are {oldest} to {newest}",
                    view.meta.name
                ))
            })?;
        // The served content under another number (a pin, or a version whose
        // bytes came back): no need to assemble it.
        if served.body.hash() == entry.hash && served.sources == entry.sources {
            return Ok(Arc::new(Published {
                version,
                published_ms: served.published_ms,
                body: served.body.clone(),
                deck: served.deck.clone(),
                sources: entry.sources.clone(),
                provenance: served.provenance.clone(),
            }));
        }
        let cached = self
            .shared
            .assembled
            .lock()
            .iter()
            .find(|(g, v, p)| *g == id && *v == version && p.body.hash() == entry.hash)
            .map(|(_, _, p)| p.clone());
        if let Some(p) = cached {
            return Ok(p);
        }
        let hashes: Vec<String> = entry.sources.iter().map(|(_, h)| h.clone()).collect();
        let blobs = self.submit(move |w| w.blobs(&hashes)).await??;
        let infos: HashMap<Uuid, MemberInfo> = entry
            .sources
            .iter()
            .filter_map(|(m, _)| self.view(*m))
            .map(|v| (v.meta.id, v.meta.member_info()))
            .collect();
        let _permit = self.builds.acquire().await.ok();
        let published = tokio::task::spawn_blocking(move || {
            assemble_version(
                entry.version,
                &entry.hash,
                &entry.sources,
                |h| blobs.get(h),
                |m| {
                    infos
                        .get(&m)
                        .cloned()
                        .unwrap_or_else(|| MemberInfo::unnamed(m))
                },
            )
        })
        .await
        .map_err(|e| Refusal::internal(format!("assembling the version failed to run: {e}")))?
        .map_err(|e| {
            tracing::error!(group = %id, version, error = %e, "a kept version can't be assembled");
            Refusal::internal(e)
        })?;
        let published = Arc::new(published);
        let mut cache = self.shared.assembled.lock();
        cache.retain(|(g, v, _)| !(*g == id && *v == version));
        cache.push_back((id, version, published.clone()));
        while cache.len() > ASSEMBLED_CACHE {
            cache.pop_front();
        }
        Ok(published)
    }

    /// Pins group `id` to its kept `version` (see `registry::history`).
    pub async fn pin(&self, id: Uuid, version: u64) -> Result<PinOutcome, Refusal> {
        let pinned = self.snapshot_at(id, version).await?;
        self.write(Mode::Apply, move |tx| tx.pin(id, version, &pinned))
            .await
    }

    /// Unpins group `id`: its current merge is served again.
    pub async fn unpin(&self, id: Uuid) -> Result<PinOutcome, Refusal> {
        self.write(Mode::Apply, move |tx| tx.unpin(id)).await
    }

    // ---- access control ----

    /// The access state request checks read, without touching the writer.
    pub fn access(&self) -> Arc<AccessView> {
        self.shared.access.read().clone()
    }

    pub async fn create_team(&self, req: NewTeam) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.create_team(req)).await
    }

    pub async fn delete_team(&self, name: String) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_team(&name))
            .await
    }

    pub async fn add_credential(&self, team: String, c: Credential) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.add_credential(&team, c))
            .await
    }

    pub async fn remove_credential(
        &self,
        team: String,
        c: Credential,
    ) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.remove_credential(&team, c))
            .await
    }

    /// A new token for `team`: its record, and the token itself, which is
    /// never stored and must be shown to the caller once.
    pub async fn issue_token(
        &self,
        team: String,
        name: String,
        expires_at_ms: u64,
    ) -> Result<(TokenRecord, String), Refusal> {
        let secret = new_token_secret()?;
        self.write(Mode::Apply, move |tx| {
            let rec = tx.issue_token(&team, name, expires_at_ms, &secret)?;
            Ok((rec, secret))
        })
        .await
    }

    pub async fn revoke_token(&self, team: String, id: Uuid) -> Result<TokenRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.revoke_token(&team, id))
            .await
    }

    /// Signs a page session in for `team`'s token `token_id`: a write, made
    /// durable (and on PostgreSQL logged for every daemon) before it returns
    /// the new cookie, which is never stored, and the session's expiry.
    pub async fn open_session(
        &self,
        team: String,
        token_id: Uuid,
    ) -> Result<(String, u64), Refusal> {
        let cookie = new_session_cookie()?;
        self.write(Mode::Apply, move |tx| {
            let expires_ms = tx.open_session(&team, token_id, &cookie)?;
            Ok((cookie, expires_ms))
        })
        .await
    }

    /// Signs the page session of `cookie` out, everywhere.
    pub async fn close_session(&self, cookie: String) -> Result<bool, Refusal> {
        self.write(Mode::Apply, move |tx| tx.close_session(&cookie))
            .await
    }

    pub async fn set_grant(
        &self,
        team: String,
        group: Uuid,
        role: GroupRole,
    ) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.set_grant(&team, group, role))
            .await
    }

    pub async fn remove_grant(&self, team: String, group: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.remove_grant(&team, group))
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

    /// At shutdown: makes every queued audit entry and node report durable,
    /// then closes the store cleanly (a store left open at exit is verified
    /// page by page at the next start-up). Later writes are refused.
    pub async fn close(&self) {
        let _ = self
            .submit(|w| {
                w.shared.audit.pending.lock().urgent = true;
                w.flush_audit(true);
                w.flush_nodes(true);
                w.closed = true;
                w.store = None;
            })
            .await;
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>, Refusal> {
        self.submit(move |w| w.read_audit(&filter)).await?
    }

    fn shared_interner(&self) -> Arc<Interner> {
        self.shared.interner.read().clone()
    }

    /// One group as readers see it, without touching the writer.
    pub fn view(&self, id: Uuid) -> Option<Arc<GroupView>> {
        self.shared.views.get(&id).map(|v| v.clone())
    }

    /// Every group, in no particular order.
    pub fn views(&self) -> Vec<Arc<GroupView>> {
        self.shared.views.iter().map(|v| v.clone()).collect()
    }

    /// The Kong Gateway configs are checked for.
    pub fn kong_target(&self) -> crate::config::KongTarget {
        self.shared.settings.kong.clone()
    }

    /// How recently a node must have been seen to count as active.
    pub fn active_window_ms(&self) -> u64 {
        self.shared.settings.active_window_ms
    }

    /// The group's current snapshot, without touching the writer.
    pub fn snapshot(&self, id: Uuid) -> Option<Arc<Published>> {
        self.shared.snapshots.get(&id).map(|s| s.clone())
    }

    /// Wakes when the group publishes a new version.
    pub fn subscribe(&self, id: Uuid) -> Option<watch::Receiver<u64>> {
        self.shared.watchers.get(&id).map(|w| w.subscribe())
    }

    /// Wakes after any publish that changed what readers see (a snapshot, a
    /// view — nodes included — or a deleted group); the value counts them.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}

/// The writer's loop. Writes queued together form a batch: each is applied
/// in memory in order (its own checks, its own refusal), then one store
/// commit makes them all durable, then each is published and answered. Any
/// other job ends the batch first, so it never sees a write that is not
/// durable yet.
fn run(mut w: Writer, rx: Receiver<Job>) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match rx.recv_timeout(AUDIT_INTERVAL / 4) {
                Ok(j) => j,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    w.flush_audit(false);
                    w.flush_nodes(false);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    w.flush_audit(true);
                    w.flush_nodes(true);
                    return;
                }
            },
        };
        match job {
            Job::Run(f) => {
                // A panic in one job must not take the daemon down with it; the job's
                // caller sees its reply channel dropped.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut w)));
                if result.is_err() {
                    tracing::error!(
                        "a writer job panicked; its request failed and nothing it did was published"
                    );
                }
            }
            // Stored below, or by the next batch if more jobs wait.
            Job::Audit => {}
            Job::Write(f) => {
                let mut batch = Vec::new();
                w.stage(f, &mut batch);
                // Writes still being validated are waited for, briefly, so
                // that a burst shares one commit instead of one each.
                let gather_until = Instant::now() + GATHER;
                while batch.len() < MAX_BATCH {
                    let job = match rx.try_recv() {
                        Ok(job) => job,
                        Err(crossbeam_channel::TryRecvError::Empty) => {
                            let now = Instant::now();
                            if w.shared.arriving.load(std::sync::atomic::Ordering::SeqCst) == 0
                                || now >= gather_until
                            {
                                break;
                            }
                            match rx.recv_timeout(gather_until - now) {
                                Ok(job) => job,
                                Err(_) => break,
                            }
                        }
                        Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                    };
                    match job {
                        Job::Write(f) => w.stage(f, &mut batch),
                        // Its entries join this batch's commit.
                        Job::Audit => {}
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                w.commit_batch(batch);
            }
        }
        // Entries whose callers wait ride the next batch's commit instead
        // of taking an fsync of their own, when more jobs are queued (and
        // none has waited long).
        if (next.is_none() && rx.is_empty()) || w.audit_waited() >= AUDIT_RIDE {
            w.flush_audit(false);
        }
        w.flush_nodes(false);
    }
}

impl Writer {
    /// Applies one write of a batch (a refusal is answered and undone at once).
    fn stage(&mut self, f: WriteJob, batch: &mut Vec<Pending>) {
        // `stage` catches a panic in the write itself; this is for the rest.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(Some(p)) => batch.push(p),
            Ok(None) => {}
            Err(_) => tracing::error!("a writer job panicked; its request failed"),
        }
    }

    /// Makes a batch durable in one store commit, then publishes and answers
    /// each write in order; if the commit fails, undoes them all, newest
    /// first, and refuses each with the storage error.
    fn commit_batch(&mut self, mut batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let mut changes: Vec<Change> = Vec::new();
        for p in &mut batch {
            if let Some(s) = &mut p.staged {
                changes.append(&mut s.effects.changes);
            }
        }
        crate::metrics::write_batch(batch.len());
        // The batch's own audit entries, and any already queued (refusals,
        // say), share this commit: one fsync for writes and their records.
        let mut audit = self.take_audit(true).unwrap_or(AuditBatch {
            entries: Vec::new(),
            ticket: None,
        });
        let queued = audit.entries.len();
        // A write's entry is dated by its commit: entries stay in time order
        // in the log (its readers stop at the first one older than `since`).
        let committed = crate::registry::now();
        audit.entries.extend(
            batch
                .iter_mut()
                .filter_map(|p| p.audit.take())
                .map(|mut e| {
                    e.time.clone_from(&committed);
                    e
                }),
        );
        let result = match &mut self.store {
            Some(s) => {
                let keep = self.audit.opts.max_entries;
                let r = s.commit_with_audit(&changes, &mut audit.entries, keep);
                let summary = r.as_ref().map_err(|e| e.to_string()).copied();
                if r.is_err() {
                    // Writes that were not made never happened: only the
                    // queued entries are still owed to the log.
                    audit.entries.truncate(queued);
                }
                self.settle_audit(audit, Some(r));
                summary
            }
            None => {
                self.settle_audit(audit, None);
                Ok(())
            }
        };
        drop(changes);
        match result {
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "writes not made durable; undone");
                for p in batch.into_iter().rev() {
                    if let Some(s) = p.staged {
                        s.rollback(&mut self.reg);
                    }
                    (p.answer)(Err(Refusal::storage(format!("{e}; nothing was changed"))));
                    crate::metrics::write_finished(p.started.elapsed());
                }
            }
            Ok(()) => {
                let mut access_changed = false;
                let mut answers = Vec::with_capacity(batch.len());
                for p in batch {
                    if let Some(s) = p.staged {
                        self.reg.settle_nodes(&s.effects);
                        access_changed |= s.effects.access_changed;
                        self.publish(s.effects);
                    }
                    answers.push((p.answer, p.started));
                }
                if access_changed {
                    *self.shared.access.write() = Arc::new(self.reg.access_view());
                }
                for (answer, started) in answers {
                    answer(Ok(()));
                    crate::metrics::write_finished(started.elapsed());
                }
            }
        }
        self.compact_interner();
    }

    /// A write on the shared PostgreSQL store: one database transaction
    /// each (see `follow`), published before it is answered; no batch.
    fn write_shared<R>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal>,
    ) -> Result<R, Refusal> {
        let Some(pg) = &mut self.pg else {
            return Err(Refusal::internal(
                "a shared-store write without a shared store",
            ));
        };
        let started = Instant::now();
        let mut caught = Vec::new();
        let out = follow::write(pg, &mut self.reg, mode, f, &mut caught);
        // (`transact` settled the write's own node tables.)
        for effects in caught {
            self.reg.settle_nodes(&effects);
            self.publish_effects(effects);
        }
        let out = out.map(|(r, effects)| {
            self.publish_effects(effects);
            r
        });
        if self.pg.as_ref().is_some_and(|p| p.needs_reload()) {
            self.reload();
        }
        crate::metrics::write_finished(started.elapsed());
        self.compact_interner();
        out
    }

    /// Outside any transaction (the registry is consistent here): compacts
    /// the interner once it has grown enough, and hands readers the new one.
    fn compact_interner(&mut self) {
        if let Some((before, after)) = self.reg.compact_interner(COMPACT_MIN_STRINGS) {
            tracing::info!(before, after, "compacted the string interner");
            *self.shared.interner.write() = self.reg.interner().clone();
        }
    }

    /// Stores the node reports of every heartbeat since the last time, in
    /// one transaction, once [`NODE_INTERVAL`] has passed (or `force`). A
    /// failed write keeps them for the next try.
    fn flush_nodes(&mut self, force: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        let upto = self.shared.beats.load(SeqCst);
        if upto == self.shared.beats_stored.load(SeqCst)
            || !(force || self.nodes_flushed.elapsed() >= NODE_INTERVAL)
        {
            return;
        }
        self.nodes_flushed = Instant::now();
        let mut taken = Vec::new();
        let mut changes = Vec::new();
        for g in self.reg.groups() {
            let dirty = g.nodes.take_dirty();
            if dirty.is_empty() {
                continue;
            }
            for (id, node) in &dirty {
                changes.push(match node {
                    Some(n) => Change::PutNode(g.meta.id, Box::new((**n).clone())),
                    None => Change::DeleteNode(g.meta.id, id.clone()),
                });
            }
            taken.push((g.nodes.clone(), dirty));
        }
        let result = match (&mut self.store, &self.pg) {
            (Some(s), _) => s.commit(&changes),
            // Node state is each daemon's own soft state: stored for restarts, not logged.
            (None, Some(pg)) => pg.store.store_nodes(&changes),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => {
                self.shared.beats_stored.store(upto, SeqCst);
                crate::metrics::nodes_stored(changes.len(), upto);
            }
            Err(e) => {
                tracing::error!(error = %e, nodes = changes.len(), "node reports not stored; will retry");
                for (table, dirty) in taken {
                    table.mark_dirty(dirty.into_iter().map(|(id, _)| id));
                }
            }
        }
    }

    /// Stores the members the restore had to build, frozen, so the next
    /// start-up thaws them. Losing them costs that start-up time, nothing else.
    fn store_frozen(&mut self) {
        let changes = self.reg.take_frozen_changes();
        let Some(s) = self.store.as_mut().filter(|_| !changes.is_empty()) else {
            return;
        };
        match s.commit(&changes) {
            Ok(()) => tracing::info!(members = changes.len(), "built members stored frozen"),
            Err(e) => {
                tracing::warn!(error = %e, "built members not stored frozen; the next start-up builds them again")
            }
        }
    }

    /// Config blobs by hash: the registry's current configs, else the store.
    fn blobs(&self, hashes: &[String]) -> Result<HashMap<String, Blob>, Refusal> {
        let mut out = HashMap::new();
        for h in hashes {
            if out.contains_key(h) {
                continue;
            }
            let blob = match self.reg.config_blob(h) {
                Some(b) => Some(b),
                None => match (&self.store, &self.pg) {
                    (Some(s), _) => s
                        .blob(h)
                        .map_err(|e| Refusal::storage(format!("reading config blob {h}: {e}")))?,
                    (None, Some(pg)) => pg
                        .store
                        .blob(h)
                        .map_err(|e| Refusal::storage(format!("reading config blob {h}: {e}")))?,
                    (None, None) => None,
                },
            };
            let blob = blob.ok_or_else(|| {
                Refusal::internal(format!("config blob {h} of a kept version is missing"))
            })?;
            out.insert(h.clone(), blob);
        }
        Ok(out)
    }

    /// Appends queued audit entries if one waits for them, the batch is
    /// full or the oldest has waited long enough (or `force`).
    fn flush_audit(&mut self, force: bool) {
        let Some(mut batch) = self.take_audit(force) else {
            return;
        };
        let keep = self.audit.opts.max_entries;
        let stored = match (&mut self.store, &self.pg) {
            (Some(s), _) => Some(s.append_audit(&mut batch.entries, keep)),
            (None, Some(pg)) => Some(pg.store.append_audit(&mut batch.entries, keep)),
            (None, None) => None,
        };
        self.settle_audit(batch, stored);
    }

    /// How long the oldest queued audit entry has waited.
    fn audit_waited(&self) -> Duration {
        self.shared
            .audit
            .pending
            .lock()
            .since
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// The queued audit entries, if they are due (or `force`).
    fn take_audit(&mut self, force: bool) -> Option<AuditBatch> {
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
    fn settle_audit(&mut self, mut batch: AuditBatch, stored: Option<Result<(), StoreError>>) {
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

    fn read_audit(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, Refusal> {
        // What is queued becomes readable first.
        self.shared.audit.pending.lock().urgent = true;
        self.flush_audit(true);
        if let (None, Some(pg)) = (&self.store, &self.pg) {
            return pg
                .store
                .read_audit(filter)
                .map_err(|e| Refusal::storage(e.to_string()));
        }
        match &self.store {
            Some(s) => s
                .read_audit(filter)
                .map_err(|e| Refusal::storage(e.to_string())),
            None => Ok(self
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

    fn publish(&self, effects: Effects) {
        let changed = !effects.published.is_empty()
            || !effects.deleted.is_empty()
            || !effects.views.is_empty();
        for (id, snap) in effects.published {
            let version = snap.version;
            self.shared.snapshots.insert(id, snap);
            match self.shared.watchers.get(&id) {
                Some(w) => {
                    w.send_replace(version);
                }
                None => {
                    self.shared.watchers.insert(id, watch::channel(version).0);
                }
            }
        }
        for id in effects.deleted {
            self.shared.snapshots.remove(&id);
            if let Some((_, view)) = self.shared.views.remove(&id) {
                view.nodes.close();
            }
            self.shared.watchers.remove(&id);
            self.shared.assembled.lock().retain(|(g, _, _)| *g != id);
        }
        for (id, view) in effects.views {
            self.shared.views.insert(id, view);
        }
        if changed {
            self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}
