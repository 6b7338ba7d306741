//! Group commit: the writes queued at the writer are applied in memory one
//! by one (a refusal undone alone), made durable in one store commit with
//! their audit entries, then published and answered in order.

use std::sync::Arc;
use std::time::Instant;

use super::{AuditBatch, Backend, Pending, WriteJob, Writer, follow};
use crate::registry::record::Change;
use crate::registry::{Mode, Refusal, Tx};

impl Writer {
    /// Applies one write of a batch (a refusal is answered and undone at once).
    pub(super) fn stage(&mut self, f: WriteJob, batch: &mut Vec<Pending>) {
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
    pub(super) fn commit_batch(&mut self, mut batch: Vec<Pending>) {
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
        let result = match &mut self.backend {
            Backend::Redb(s) => {
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
            // (Writes on PostgreSQL never join a batch: see `write_shared`.)
            Backend::Memory | Backend::Postgres(_) => {
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
    pub(super) fn write_shared<R>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&mut Tx) -> Result<R, Refusal>,
    ) -> Result<R, Refusal> {
        let Backend::Postgres(pg) = &mut self.backend else {
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
        if matches!(&self.backend, Backend::Postgres(p) if p.needs_reload()) {
            self.reload();
        }
        crate::metrics::write_finished(started.elapsed());
        self.compact_interner();
        out
    }
}
