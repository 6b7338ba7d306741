//! Start-up: the registry restored from the store (members thawed or
//! built), the default group and access control made on a new store, then
//! everything published and the writer thread started.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use tokio::sync::watch;

use super::{
    AuditFile, AuditOptions, AuditPending, AuditQueue, AuditSink, Backend, Engine, Job, Shared,
    StartError, Writer, follow, main_loop, rebuild,
};
use crate::intern::Interner;
use crate::registry::{Mode, Registry, RestoreOptions, Settings, new_key, transact};
use crate::store::Store;

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
                // After an upgrade the stale frozen members serve the stored
                // snapshots until the writer has rebuilt them (`rebuild`).
                let opts = RestoreOptions {
                    stale: true,
                    progress: None,
                };
                let restored = match Registry::restore_with(
                    interner.clone(),
                    settings.clone(),
                    loaded,
                    opts,
                ) {
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
                    stale = restored.stale,
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
        let backend = match store {
            Some(s) => Backend::Redb(s),
            None => Backend::Memory,
        };
        Engine::launch(reg, backend, audit, audit_file)
    }

    /// Publishes the restored registry and starts the writer.
    pub(super) fn launch(
        reg: Registry,
        backend: Backend,
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
            rebuild: Default::default(),
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
        if let (Backend::Redb(_), Some(of)) = (&backend, rebuild::needs_rebuild(&reg)) {
            // Before anything else, so every write waits for it.
            Writer::announce_rebuild(&shared, of);
            let _ = jobs.send(Job::Run(Box::new(Writer::rebuild_stale)));
        }
        if matches!(backend, Backend::Redb(_)) {
            // First of all, off the start-up's path: a new binary builds
            // every member once, and storing them frozen is a big write.
            let _ = jobs.send(Job::Run(Box::new(Writer::store_frozen)));
        }
        let jobs = Arc::new(jobs);
        let mut status = None;
        if let Backend::Postgres(p) = &backend {
            status = Some(p.status.clone());
            follow::listen(p, Arc::downgrade(&jobs));
        }
        let writer = Writer {
            reg,
            backend,
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
            .spawn(move || main_loop::run(writer, rx))
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
}

impl Writer {
    /// Stores the members the restore had to build, frozen, so the next
    /// start-up thaws them. Losing them costs that start-up time, nothing else.
    pub(super) fn store_frozen(&mut self) {
        let changes = self.reg.take_frozen_changes();
        let Backend::Redb(s) = &mut self.backend else {
            return;
        };
        if changes.is_empty() {
            return;
        }
        match s.commit(&changes) {
            Ok(()) => tracing::info!(members = changes.len(), "built members stored frozen"),
            Err(e) => {
                tracing::warn!(error = %e, "built members not stored frozen; the next start-up builds them again")
            }
        }
    }
}
