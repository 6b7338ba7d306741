//! Group commit: the writes queued at the writer are applied in memory one
//! by one (a refusal undone alone), made durable in one store commit with
//! their audit entries, then published and answered in order.

use std::sync::Arc;

use super::{AuditBatch, Backend, Pending, WriteJob, Writer, pg_commit};
use crate::registry::Refusal;
use crate::registry::record::Change;

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
            self.end_shared();
            return;
        }
        // Each write's changes, in order (on PostgreSQL each write is one
        // entry of the change log).
        let mut writes: Vec<Vec<Change>> = Vec::with_capacity(batch.len());
        for p in &mut batch {
            if let Some(s) = &mut p.staged
                && !s.effects.changes.is_empty()
            {
                writes.push(std::mem::take(&mut s.effects.changes));
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
        let keep = self.audit.opts.max_entries;
        let stored = match &mut self.backend {
            Backend::Redb(s) => {
                let changes: Vec<Change> = writes.drain(..).flatten().collect();
                Some(s.commit_with_audit(&changes, &mut audit.entries, keep))
            }
            Backend::Postgres(pg) => Some(pg_commit::commit(
                pg,
                &self.reg,
                &writes,
                &mut audit.entries,
                keep,
            )),
            Backend::Memory => None,
        };
        let result = match &stored {
            Some(Err(e)) => {
                // Writes that were not made never happened: only the
                // queued entries are still owed to the log.
                audit.entries.truncate(queued);
                Err(e.to_string())
            }
            _ => Ok(()),
        };
        self.settle_audit(audit, stored);
        drop(writes);
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
        self.end_shared();
        self.compact_interner();
    }
}
