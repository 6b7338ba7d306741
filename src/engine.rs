//! The single writer: one thread owns the registry and the store, and applies
//! jobs from a crossbeam channel one at a time. A write is applied in memory,
//! made durable, and only then published to readers; if the store refuses it,
//! the write is undone and nothing is visible.
//!
//! Snapshot readers never queue behind the writer: published snapshots sit in
//! a `DashMap` of `Arc`s, and long-pollers wait on a `watch` channel per group.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use dashmap::DashMap;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::{Effects, Published, Registry, RegistryError, Settings, Tx};
use crate::store::{Blob, Store, StoreError};

type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// Below this many interned strings the interner is never compacted.
const COMPACT_MIN_STRINGS: usize = 100_000;

struct Writer {
    reg: Registry,
    store: Option<Store>,
    shared: Arc<Shared>,
}

/// What readers see without going through the writer.
#[derive(Default)]
struct Shared {
    snapshots: DashMap<Uuid, Arc<Published>, ahash::RandomState>,
    watchers: DashMap<Uuid, watch::Sender<u64>, ahash::RandomState>,
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
        let shared = Arc::new(Shared::default());
        for g in reg.groups() {
            shared.snapshots.insert(g.meta.id, g.snapshot.clone());
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
    ) -> Result<R, RegistryError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.jobs
            .send(job)
            .map_err(|_| RegistryError::internal("the writer has stopped"))?;
        rx.await
            .map_err(|_| RegistryError::internal("the writer dropped the request"))
    }

    /// Runs `f` against the registry, in order with the writes.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> R + Send + 'static,
    ) -> Result<R, RegistryError> {
        self.submit(move |w| f(&w.reg)).await
    }

    /// Runs `f` as one transaction: kept, persisted and published if it
    /// succeeds (and `dry_run` is false), undone otherwise.
    pub async fn write<R: Send + 'static>(
        &self,
        dry_run: bool,
        f: impl FnOnce(&mut Tx) -> Result<R, RegistryError> + Send + 'static,
    ) -> Result<R, RegistryError> {
        self.submit(move |w| w.transact(dry_run, f)).await?
    }

    /// Parses and validates a member config off the writer, then applies it.
    pub async fn put_config(
        &self,
        id: Uuid,
        bytes: Vec<u8>,
        format: Format,
        dry_run: bool,
    ) -> Result<crate::registry::ConfigOutcome, RegistryError> {
        // The registry's interner: it is replaced when compacted, and a member
        // built with an older one is rebuilt by the writer.
        let (info, interner) = self
            .read(move |r| {
                r.group(id).map(|g| {
                    let info = MemberInfo {
                        id: g.meta.id.to_string(),
                        name: g.meta.name.clone(),
                        is_default: g.meta.is_default,
                    };
                    (info, r.interner().clone())
                })
            })
            .await??;
        // The semaphore is never closed, so this always gets a permit.
        let _permit = self.builds.acquire().await.ok();
        let (member, bytes) = tokio::task::spawn_blocking(move || {
            let m = Member::build(info, &bytes, format, &interner);
            (m, bytes)
        })
        .await
        .map_err(|e| RegistryError::internal(format!("config validation failed to run: {e}")))?;
        let blob = Blob { format, bytes };
        self.write(dry_run, move |tx| tx.put_config(id, blob, member))
            .await
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
        dry_run: bool,
        f: impl FnOnce(&mut Tx) -> Result<R, RegistryError>,
    ) -> Result<R, RegistryError> {
        let started = Instant::now();
        let mut tx = self.reg.begin();
        // A bug that panics mid-write must not leave half of it applied: undo
        // what was recorded and report the request as failed.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut tx)))
            .unwrap_or_else(|_| {
                tracing::error!("a write panicked; undoing it");
                Err(RegistryError::internal(
                    "internal error while applying the write; nothing was changed",
                ))
            });
        let out = match result {
            Err(e) => {
                tx.rollback();
                Err(e)
            }
            Ok(r) if dry_run => {
                tx.rollback();
                Ok(r)
            }
            Ok(r) => {
                let effects = tx.effects();
                let stored = match &mut self.store {
                    Some(s) => s.commit(&effects.changes),
                    None => Ok(()),
                };
                match stored {
                    Err(e) => {
                        tx.rollback();
                        tracing::error!(error = %e, "write not made durable; undone");
                        Err(RegistryError::storage(format!("{e}; nothing was changed")))
                    }
                    Ok(()) => {
                        drop(tx);
                        self.publish(effects);
                        Ok(r)
                    }
                }
            }
        };
        crate::metrics::write_finished(started.elapsed());
        // Outside any transaction: the registry is consistent here.
        if let Some((before, after)) = self.reg.compact_interner(COMPACT_MIN_STRINGS) {
            tracing::info!(before, after, "compacted the string interner");
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
            self.shared.watchers.remove(&id);
            crate::metrics::group_deleted(&id);
        }
        for id in effects.touched {
            if let Ok(g) = self.reg.group(id)
                && let crate::registry::Kind::Composite { composite, .. } = &g.kind
            {
                crate::metrics::composite_conflicts(&id, composite.conflict_count());
            }
        }
    }
}
