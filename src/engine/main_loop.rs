//! The writer's loop: jobs from the channel one at a time, writes gathered
//! into batches (see `commit`), and between them what the writer keeps up
//! on its own: node reports stored, the interner compacted, effects
//! published to readers.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tokio::sync::watch;

use super::{AUDIT_INTERVAL, AUDIT_RIDE, Backend, Job, WriteJob, Writer};
use crate::registry::Effects;
use crate::registry::record::Change;

/// Most writes one store commit makes durable.
const MAX_BATCH: usize = 256;

/// Longest a batch waits for writes still being validated.
const GATHER: Duration = Duration::from_millis(1);

/// Node reports wait at most this long to be stored.
const NODE_INTERVAL: Duration = Duration::from_secs(1);

/// Below this many interned strings the interner is never compacted.
const COMPACT_MIN_STRINGS: usize = 100_000;

/// The writer's loop. Writes queued together form a batch: each is applied
/// in memory in order (its own checks, its own refusal), then one store
/// commit makes them all durable, then each is published and answered. Any
/// other job ends the batch first, so it never sees a write that is not
/// durable yet.
pub(super) fn run(mut w: Writer, rx: Receiver<Job>) {
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
                // On the shared store the whole batch is gathered before any
                // write is staged: staging takes the log head's lock, which
                // every other daemon's writes wait for.
                let gather_first = matches!(w.backend, Backend::Postgres(_));
                let mut held: Vec<WriteJob> = Vec::new();
                let mut batch = Vec::new();
                if gather_first {
                    held.push(f);
                } else {
                    w.stage(f, &mut batch);
                }
                // Writes still being validated are waited for, briefly, so
                // that a burst shares one commit instead of one each.
                let gather_until = Instant::now() + GATHER;
                while batch.len() + held.len() < MAX_BATCH {
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
                        Job::Write(f) if gather_first => held.push(f),
                        Job::Write(f) => w.stage(f, &mut batch),
                        // Its entries join this batch's commit.
                        Job::Audit => {}
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                for f in held {
                    w.stage(f, &mut batch);
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
    /// Outside any transaction (the registry is consistent here): compacts
    /// the interner once it has grown enough, and hands readers the new one.
    pub(super) fn compact_interner(&mut self) {
        if let Some((before, after)) = self.reg.compact_interner(COMPACT_MIN_STRINGS) {
            tracing::info!(before, after, "compacted the string interner");
            *self.shared.interner.write() = self.reg.interner().clone();
        }
    }

    /// Stores the node reports of every heartbeat since the last time, in
    /// one transaction, once [`NODE_INTERVAL`] has passed (or `force`). A
    /// failed write keeps them for the next try.
    pub(super) fn flush_nodes(&mut self, force: bool) {
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
        let result = match &mut self.backend {
            Backend::Redb(s) => s.commit(&changes),
            // Node state is each daemon's own soft state: stored for restarts, not logged.
            Backend::Postgres(pg) => pg.store.store_nodes(&changes),
            Backend::Memory => Ok(()),
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

    pub(super) fn publish(&self, effects: Effects) {
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
