//! The engine on a shared PostgreSQL store: many daemons, one truth.
//!
//! A batch of writes locks the change log's head (every daemon's writers
//! queue there), first applies whatever other daemons committed since this
//! daemon's position, then runs its commands on the up-to-date registry,
//! writes their changes and a log entry each, and commits — only then are
//! they published and acknowledged (`pg_commit`). If the commit fails the
//! writes are undone in memory (the entries caught up stay applied). A dry
//! run applies what others committed first. Between writes the writer follows the
//! log: a `NOTIFY` (or a one-second tick, or a reconnection) queues a
//! catch-up job that applies each new entry with `Registry::apply_logged`,
//! exactly as the writing daemon published it. A gap (a trimmed log, a
//! blob deleted since) or an entry that does not apply cleanly reloads
//! everything from the database instead.
//!
//! While the database is unreachable the daemon keeps serving what it has
//! published, refuses writes (503) and says so in `/healthz` and `/metrics`;
//! the next tick after the database returns catches it up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::watch;

use super::{AuditOptions, Backend, Engine, Job, Shared, StartError, Writer};
use crate::intern::Interner;
use crate::registry::{Effects, Mode, Refusal, Registry, Settings, new_key, now_ms, transact};
use crate::store::postgres::{Entries, PgStore};

/// Log entries read per query while catching up.
const BATCH: i64 = 256;

/// The writer's side of a PostgreSQL store.
pub(super) struct Pg {
    pub(super) store: PgStore,
    /// The last log position applied to the registry.
    pos: u64,
    pub(super) status: Arc<Status>,
    /// A catch-up job is queued: notifications meanwhile need no other.
    queued: Arc<AtomicBool>,
    /// Catching up under a write's lock failed: reload before the next job.
    needs_reload: bool,
    /// The last `nodes` row read back (node reports of every daemon).
    node_seq: i64,
    /// The current batch of writes holds the head's lock at this position
    /// (`Ok`), or could not take it (`Err`: its writes are refused); `None`
    /// between batches (see `pg_commit`).
    pub(super) batch: Option<Result<u64, Refusal>>,
    /// Blobs this daemon's writes stopped naming, and when: deleted from
    /// the database a while later (see `pg_commit`).
    pub(super) dead_blobs: std::collections::VecDeque<(std::time::Instant, String)>,
}

/// How this daemon stands with the database; read by `/healthz` and `/metrics`.
#[derive(Debug)]
pub struct Status {
    database: String,
    pos: AtomicU64,
    /// The newest position seen in the database.
    head: AtomicU64,
    reachable: AtomicBool,
    /// When this daemon last knew itself caught up with the head, Unix ms.
    caught_up_ms: AtomicU64,
}

impl Status {
    fn reached(&self, pos: u64) {
        self.pos.store(pos, Ordering::Release);
        self.head.fetch_max(pos, Ordering::AcqRel);
    }
    fn caught_up(&self) {
        self.reachable.store(true, Ordering::Release);
        self.caught_up_ms.store(now_ms(), Ordering::Release);
    }
    fn lost(&self, e: &dyn std::fmt::Display) {
        if self.reachable.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, "the database is unreachable: serving the last snapshots, refusing writes");
        }
    }
}

/// What `/healthz` and `/metrics` say about the store.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStatus {
    /// `redb` or `postgres`.
    pub kind: &'static str,
    /// The database (no password); absent for redb.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub reachable: bool,
    /// The change log position applied (postgres).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Changes committed that this daemon has not applied yet, as far as it
    /// knows (while unreachable: as of the last contact).
    pub lag_changes: u64,
    /// Seconds since this daemon last knew it was caught up (0 when it is).
    pub lag_seconds: f64,
}

impl StoreStatus {
    /// Whether writes are accepted and snapshots are current.
    pub fn healthy(&self) -> bool {
        self.reachable && self.lag_changes == 0
    }
}

impl Status {
    fn snapshot(&self) -> StoreStatus {
        let pos = self.pos.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        let reachable = self.reachable.load(Ordering::Acquire);
        let lag_changes = head.saturating_sub(pos);
        let lag_seconds = if reachable && lag_changes == 0 {
            0.0
        } else {
            now_ms().saturating_sub(self.caught_up_ms.load(Ordering::Acquire)) as f64 / 1000.0
        };
        StoreStatus {
            kind: "postgres",
            database: Some(self.database.clone()),
            reachable,
            position: Some(pos),
            lag_changes,
            lag_seconds,
        }
    }
}

impl Engine {
    /// Starts on a PostgreSQL store: loads it, and on a new database makes
    /// the default group and bootstraps access control (org admin: this
    /// process's euid) as the log's first entry — serialized with other
    /// daemons starting at once.
    pub fn start_postgres(
        mut store: PgStore,
        settings: Settings,
        audit: AuditOptions,
    ) -> Result<Engine, StartError> {
        let display = store.display().to_string();
        let restore_err = |detail: String| StartError::Restore {
            path: display.clone(),
            detail,
        };
        let mut attempts = 0;
        let (reg, pos) = loop {
            attempts += 1;
            let (loaded, pos) = store.load()?;
            let fresh = loaded.groups.is_empty();
            let mut reg = Registry::restore(Arc::new(Interner::new()), settings.clone(), loaded)
                .map_err(restore_err)?;
            // Trimming history past --snapshot-history is local to this
            // daemon's setting: the database keeps what the writers kept.
            reg.drop_restore_changes();
            let mut changes = if fresh { reg.all_changes() } else { Vec::new() };
            if reg.access_needs_bootstrap() {
                let key = new_key().map_err(|e| restore_err(e.detail))?;
                // SAFETY: geteuid has no preconditions and can't fail.
                let uid = unsafe { libc::geteuid() };
                let mut made = Vec::new();
                transact(
                    &mut reg,
                    Mode::Apply,
                    |effects| {
                        made.extend(effects.changes.iter().cloned());
                        Ok(())
                    },
                    |tx| tx.bootstrap_access(uid, key),
                )
                .map_err(|e| restore_err(format!("can't set up access control: {e}")))?;
                changes.extend(made);
                tracing::info!(
                    uid,
                    "access control set up: the user running the daemon is org admin"
                );
            }
            if changes.is_empty() {
                break (reg, pos);
            }
            match store.commit(Some(pos), &changes)? {
                Some(p) => break (reg, p),
                // Another daemon initialised it meanwhile: load what it made.
                None if attempts < 5 => continue,
                None => {
                    return Err(restore_err(
                        "the database keeps changing during start-up".into(),
                    ));
                }
            }
        };
        let status = Arc::new(Status {
            database: store.display().to_string(),
            pos: AtomicU64::new(pos),
            head: AtomicU64::new(pos),
            reachable: AtomicBool::new(true),
            caught_up_ms: AtomicU64::new(now_ms()),
        });
        let pg = Pg {
            store,
            pos,
            status,
            queued: Arc::new(AtomicBool::new(false)),
            needs_reload: false,
            node_seq: 0,
            batch: None,
            dead_blobs: Default::default(),
        };
        Engine::launch(reg, Backend::Postgres(Box::new(pg)), audit, None)
    }

    /// How this daemon stands with its store.
    pub fn store_status(&self) -> StoreStatus {
        match &self.status {
            Some(s) => s.snapshot(),
            None => StoreStatus {
                kind: "redb",
                database: None,
                reachable: true,
                position: None,
                lag_changes: 0,
                lag_seconds: 0.0,
            },
        }
    }
}

/// Wakes the writer on every notification (one queued catch-up at a time).
/// Holds the job channel weakly: the writer still stops when the last
/// `Engine` is dropped.
pub(super) fn listen(pg: &Pg, jobs: std::sync::Weak<crossbeam_channel::Sender<Job>>) {
    let queued = pg.queued.clone();
    pg.store.listen(Arc::new(move || {
        if queued.swap(true, Ordering::AcqRel) {
            return;
        }
        match jobs.upgrade() {
            Some(jobs) => {
                let _ = jobs.send(Job::Run(Box::new(|w: &mut Writer| w.follow())));
            }
            None => queued.store(false, Ordering::Release),
        }
    }));
}

/// Applies the log after `pg.pos` (up to the head, or to `until` under a
/// write's lock), collecting what to publish. `false`: it can't be replayed
/// and the registry must be reloaded.
fn catch_up(
    pg: &mut Pg,
    reg: &mut Registry,
    out: &mut Vec<Effects>,
    until: Option<u64>,
    mut first: Option<Entries>,
) -> Result<bool, Refusal> {
    loop {
        if until.is_some_and(|u| pg.pos >= u) {
            return Ok(true);
        }
        let read = match first.take() {
            Some(e) => Ok(e),
            None => pg.store.entries_after(pg.pos, BATCH),
        };
        let entries = match read {
            Ok(Entries::Next(v)) => v,
            Ok(Entries::Gap) => return Ok(false),
            Err(e) => {
                pg.status.lost(&e);
                return Err(Refusal::storage(format!(
                    "{e}; writes are refused until the database is back (snapshots are still served)"
                )));
            }
        };
        let Some(last) = entries.last().map(|e| e.pos) else {
            pg.status.caught_up();
            return Ok(true);
        };
        pg.status.head.fetch_max(last, Ordering::AcqRel);
        let n = entries.len();
        for e in entries {
            let store = &pg.store;
            let mut fetch = |h: &str| store.blob(h).ok().flatten();
            match reg.apply_logged(&e.changes, &mut fetch) {
                Ok(effects) => {
                    out.push(effects);
                    pg.pos = e.pos;
                    pg.status.reached(e.pos);
                }
                Err(detail) => {
                    tracing::warn!(pos = e.pos, %detail, "a change log entry did not apply; reloading from the database");
                    return Ok(false);
                }
            }
        }
        if (n as i64) < BATCH && until.is_none() {
            pg.status.caught_up();
            return Ok(true);
        }
    }
}

/// Begins a batch of writes: locks the log head and applies what other
/// daemons committed since this daemon's position (collected in `caught`,
/// to be published at once, whatever the outcome). Returns the head; on an
/// error the lock is released (and a gap marks the registry for a reload).
pub(super) fn lock(
    pg: &mut Pg,
    reg: &mut Registry,
    caught: &mut Vec<Effects>,
) -> Result<u64, Refusal> {
    let (head, first) = pg.store.lock_head_reading(pg.pos, BATCH).map_err(|e| {
        pg.status.lost(&e);
        Refusal::storage(format!(
            "{e}; writes are refused until the database is back (snapshots are still served)"
        ))
    })?;
    pg.status.head.fetch_max(head, Ordering::AcqRel);
    if head > pg.pos {
        match catch_up(pg, reg, caught, Some(head), Some(first)) {
            Ok(true) => {}
            Ok(false) => {
                pg.store.rollback_locked();
                pg.needs_reload = true;
                return Err(Refusal::storage(
                    "this daemon is reloading its state from the database; try again",
                ));
            }
            Err(e) => {
                pg.store.rollback_locked();
                return Err(e);
            }
        }
    }
    pg.status.caught_up();
    Ok(head)
}

/// A batch committed: this daemon's position is the new head `pos`.
pub(super) fn committed(pg: &mut Pg, pos: u64) {
    pg.pos = pos;
    pg.status.reached(pos);
    pg.status.caught_up();
}

/// Most node rows read back per catch-up.
const NODE_ROWS: i64 = 10_000;

/// Node reports other daemons stored (their data planes' heartbeats) since
/// the last read, taken into this daemon's node tables; true if any changed.
/// Soft state: a failed read is tried again on the next catch-up.
fn absorb_nodes(pg: &mut Pg, reg: &Registry) -> bool {
    let mut changed = false;
    loop {
        let rows = match pg.store.nodes_after(pg.node_seq, NODE_ROWS) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "node reports not read back");
                return changed;
            }
        };
        let full = rows.len() as i64 == NODE_ROWS;
        for (group, node, seq) in rows {
            pg.node_seq = pg.node_seq.max(seq);
            if let Ok(g) = reg.group(group) {
                changed |= g.nodes.absorb(node);
            }
        }
        if !full {
            return changed;
        }
    }
}

impl Pg {
    pub(super) fn needs_reload(&self) -> bool {
        self.needs_reload
    }
}

impl Writer {
    /// Applies what other daemons committed since this one's position.
    pub(super) fn follow(&mut self) {
        let Backend::Postgres(pg) = &mut self.backend else {
            return;
        };
        pg.queued.store(false, Ordering::Release);
        let mut out = Vec::new();
        let ok = catch_up(pg, &mut self.reg, &mut out, None, None);
        let reload = matches!(ok, Ok(false)) || pg.needs_reload;
        let absorbed = absorb_nodes(pg, &self.reg);
        for effects in out {
            // A followed write may have made a group a member (or not).
            self.reg.settle_nodes(&effects);
            self.publish_effects(effects);
        }
        if absorbed {
            self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        if reload {
            self.reload();
        }
    }

    /// Publishes a write's (or a followed entry's) effects.
    pub(super) fn publish_effects(&mut self, effects: Effects) {
        if effects.access_changed {
            *self.shared.access.write() = Arc::new(self.reg.access_view());
        }
        self.publish(effects);
    }

    /// Rebuilds the registry from the database and publishes every group
    /// anew (groups gone since are unpublished).
    pub(super) fn reload(&mut self) {
        let Backend::Postgres(pg) = &mut self.backend else {
            return;
        };
        let (loaded, pos) = match pg.store.load() {
            Ok(l) => l,
            Err(e) => {
                pg.status.lost(&e);
                return;
            }
        };
        let settings = self.reg.settings().clone();
        let mut reg = match Registry::restore(Arc::new(Interner::new()), settings, loaded) {
            Ok(r) => r,
            Err(detail) => {
                tracing::error!(%detail, "the database's state does not restore; still serving the last snapshots");
                return;
            }
        };
        reg.drop_restore_changes();
        pg.pos = pos;
        pg.needs_reload = false;
        pg.status.reached(pos);
        pg.status.caught_up();
        tracing::info!(pos, "reloaded the state from the database");
        self.install(reg);
    }

    /// Replaces the registry with `reg` (restored anew) and publishes every
    /// group from it; groups gone since are unpublished.
    pub(super) fn install(&mut self, reg: Registry) {
        // Node reports taken since the last batch live only in the tables
        // being replaced: carry them over (the newer report wins) and store
        // them with the next batch, so a reload loses none (issue 27).
        for g in reg.groups() {
            if let Ok(old) = self.reg.group(g.meta.id) {
                let newer: Vec<String> = old
                    .nodes
                    .list()
                    .into_iter()
                    .filter_map(|n| g.nodes.absorb((*n).clone()).then(|| n.id.clone()))
                    .collect();
                g.nodes.mark_dirty(newer);
            }
        }
        self.reg = reg;
        self.reg.settle_all_nodes();
        let shared: &Shared = &self.shared;
        *shared.interner.write() = self.reg.interner().clone();
        *shared.access.write() = Arc::new(self.reg.access_view());
        let live: std::collections::HashSet<uuid::Uuid> =
            self.reg.groups().map(|g| g.meta.id).collect();
        let gone: Vec<uuid::Uuid> = shared
            .views
            .iter()
            .map(|v| *v.key())
            .filter(|id| !live.contains(id))
            .collect();
        for id in gone {
            shared.snapshots.remove(&id);
            shared.views.remove(&id);
            shared.watchers.remove(&id);
        }
        shared.assembled.lock().clear();
        for g in self.reg.groups() {
            let id = g.meta.id;
            shared.snapshots.insert(id, g.snapshot.clone());
            if let Some(v) = self.reg.view_of(id) {
                shared.views.insert(id, v);
            }
            match shared.watchers.get(&id) {
                Some(w) => {
                    w.send_replace(g.snapshot.version);
                }
                None => {
                    shared
                        .watchers
                        .insert(id, watch::channel(g.snapshot.version).0);
                }
            }
        }
        shared.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}
