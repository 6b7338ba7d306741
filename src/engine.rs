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

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use dashmap::DashMap;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::Blob;
use crate::registry::{
    ConfigWrite, DpCertificate, Effects, GroupMeta, GroupUpdate, GroupView, Mode, NewCertificate,
    NewGroup, Node, NodeReport, Published, Refusal, Registry, Settings, Tx, transact,
};
use crate::report::Report;
use crate::store::{Store, StoreError};

type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// Below this many interned strings the interner is never compacted.
const COMPACT_MIN_STRINGS: usize = 100_000;

struct Writer {
    reg: Registry,
    store: Option<Store>,
    shared: Arc<Shared>,
}

/// What readers see without going through the writer.
struct Shared {
    snapshots: DashMap<Uuid, Arc<Published>, ahash::RandomState>,
    views: DashMap<Uuid, Arc<GroupView>, ahash::RandomState>,
    watchers: DashMap<Uuid, watch::Sender<u64>, ahash::RandomState>,
    settings: Settings,
    /// The registry's current interner, for builds off the writer.
    interner: parking_lot::RwLock<Arc<Interner>>,
}

#[derive(Clone)]
pub struct Engine {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
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
    pub fn start(mut store: Option<Store>, settings: Settings) -> Result<Engine, StartError> {
        let interner = Arc::new(Interner::new());
        let reg = match &mut store {
            Some(s) => {
                let loaded = s.load()?;
                let fresh = loaded.groups.is_empty();
                let reg =
                    Registry::restore(interner.clone(), settings, loaded).map_err(|detail| {
                        StartError::Restore {
                            path: s.path().display().to_string(),
                            detail,
                        }
                    })?;
                if fresh {
                    // Make the default group durable before anything is served.
                    s.commit(&reg.all_changes())?;
                }
                let removed = s.collect_garbage(&reg.live_blobs())?;
                if removed > 0 {
                    tracing::info!(removed, "removed config blobs no record names");
                }
                reg
            }
            None => Registry::new(interner.clone(), settings),
        };
        let shared = Arc::new(Shared {
            snapshots: DashMap::default(),
            views: DashMap::default(),
            watchers: DashMap::default(),
            settings: reg.settings().clone(),
            interner: parking_lot::RwLock::new(reg.interner().clone()),
        });
        for g in reg.groups() {
            shared.snapshots.insert(g.meta.id, g.snapshot.clone());
            if let Some(view) = reg.view_of(g.meta.id) {
                shared.views.insert(g.meta.id, view);
            }
            let (tx, _) = watch::channel(g.snapshot.version);
            shared.watchers.insert(g.meta.id, tx);
            crate::metrics::snapshot_published(&g.meta.id, g.snapshot.version);
        }
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let writer = Writer {
            reg,
            store,
            shared: shared.clone(),
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
            builds: Arc::new(tokio::sync::Semaphore::new(cores.max(2))),
        })
    }

    async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> R + Send + 'static,
    ) -> Result<R, Refusal> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.jobs
            .send(job)
            .map_err(|_| Refusal::internal("the writer has stopped"))?;
        rx.await
            .map_err(|_| Refusal::internal("the writer dropped the request"))
    }

    /// Runs `f` as one transaction: kept, persisted and published if it
    /// succeeds (and `mode` is `Apply`), undone otherwise.
    async fn write<R: Send + 'static>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal> + Send + 'static,
    ) -> Result<R, Refusal> {
        self.submit(move |w| w.transact(mode, f)).await?
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

    pub async fn heartbeat(&self, id: Uuid, report: NodeReport) -> Result<Node, Refusal> {
        self.write(Mode::Apply, move |tx| tx.heartbeat(id, report))
            .await
    }

    pub async fn delete_node(&self, id: Uuid, node: String) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_node(id, &node))
            .await
    }

    /// Parses and validates a member config off the writer, then applies it
    /// (or, for an invalid one, answers its errors and changes nothing).
    /// `content_type` picks the syntax; without one the bytes are sniffed.
    pub async fn put_config(
        &self,
        id: Uuid,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        mode: Mode,
    ) -> Result<ConfigWrite, Refusal> {
        let format = Format::from_content_type(content_type, &bytes);
        let view = self.written(id)?;
        let info = MemberInfo {
            id: view.meta.id.to_string(),
            name: view.meta.name.clone(),
            is_default: view.meta.is_default,
        };
        // The registry's interner: it is replaced when compacted, and a member
        // built with an older one (or under an old name) is rebuilt by the writer.
        let interner = self.shared_interner();
        // The semaphore is never closed, so this always gets a permit.
        let _permit = self.builds.acquire().await.ok();
        let (member, bytes) = tokio::task::spawn_blocking(move || {
            let m = Member::build(info, &bytes, format, &interner);
            (m, bytes)
        })
        .await
        .map_err(|e| Refusal::internal(format!("config validation failed to run: {e}")))?;
        let blob = Blob { format, bytes };
        self.write(mode, move |tx| tx.put_config(id, blob, member))
            .await
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
}

fn run(mut w: Writer, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        // A panic in one job must not take the daemon down with it; the job's
        // caller sees its reply channel dropped.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut w)));
        if result.is_err() {
            tracing::error!(
                "a writer job panicked; its request failed and nothing it did was published"
            );
        }
    }
}

impl Writer {
    fn transact<R>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal>,
    ) -> Result<R, Refusal> {
        let started = Instant::now();
        let store = &mut self.store;
        let out = transact(
            &mut self.reg,
            mode,
            |effects| match store {
                Some(s) if !effects.changes.is_empty() => {
                    s.commit(&effects.changes).map_err(|e| e.to_string())
                }
                _ => Ok(()),
            },
            f,
        );
        let out = out.map(|(r, effects)| {
            self.publish(effects);
            r
        });
        crate::metrics::write_finished(started.elapsed());
        // Outside any transaction: the registry is consistent here.
        if let Some((before, after)) = self.reg.compact_interner(COMPACT_MIN_STRINGS) {
            tracing::info!(before, after, "compacted the string interner");
            *self.shared.interner.write() = self.reg.interner().clone();
        }
        out
    }

    fn publish(&self, effects: Effects) {
        for (id, snap) in effects.published {
            let version = snap.version;
            self.shared.snapshots.insert(id, snap);
            crate::metrics::snapshot_published(&id, version);
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
            self.shared.views.remove(&id);
            self.shared.watchers.remove(&id);
            crate::metrics::group_deleted(&id);
        }
        for (id, view) in effects.views {
            if let Some(c) = view.composite() {
                crate::metrics::composite_conflicts(&id, c.report.conflicts.len());
            }
            self.shared.views.insert(id, view);
        }
    }
}
