//! Group commit on the shared PostgreSQL store.
//!
//! The writes a batch gathers are staged under one lock of the change log's
//! head, which the batch's first applied write takes (`begin_shared`): it
//! applies what other daemons committed since this daemon's position, so
//! every write of the batch runs on the up-to-date registry. The batch then
//! commits in one database transaction — one log entry per write, at
//! consecutive positions, with the writes' audit entries — sent as one
//! pipeline (`PgStore::commit_locked_batch`). Only after that commit is each
//! write published and answered; if it fails, every write is undone, newest
//! first, and refused. Writes of other daemons wait at the head meanwhile,
//! so the log's order is the order every daemon applies.
//!
//! A dry run takes no lock: it first applies what other daemons wrote, as
//! a catch-up between writes does, then runs on that state.

use std::time::{Duration, Instant};

use super::follow::{self, Pg};
use super::{Backend, Writer};
use crate::registry::record::Change;
use crate::registry::{AuditEntry, Mode, Refusal, Registry};
use crate::store::StoreError;

impl Writer {
    /// Readies the registry for a write of the current batch on the shared
    /// store (nothing to do on the others): the first applied write locks
    /// the head and catches up; a dry run catches up without the lock. An
    /// error refuses the write, and every later applied write of the batch.
    pub(super) fn begin_shared(&mut self, mode: Mode) -> Result<(), Refusal> {
        let Backend::Postgres(pg) = &mut self.backend else {
            return Ok(());
        };
        match (&pg.batch, mode) {
            (Some(Ok(_)), _) => return Ok(()),
            (Some(Err(e)), Mode::Apply) => return Err(e.clone()),
            (_, Mode::DryRun) => {
                // Nothing is staged without the lock: the registry is as
                // committed, and a catch-up (or a reload) may replace it.
                self.follow();
                return Ok(());
            }
            (None, Mode::Apply) => {}
        }
        let mut caught = Vec::new();
        let locked = follow::lock(pg, &mut self.reg, &mut caught);
        pg.batch = Some(locked.clone());
        for effects in caught {
            // A followed write may have made a group a member (or not).
            self.reg.settle_nodes(&effects);
            self.publish_effects(effects);
        }
        locked.map(|_| ())
    }

    /// Ends the current batch on the shared store: a head still locked (its
    /// writes were all refused) is released, and a reload owed since is done.
    pub(super) fn end_shared(&mut self) {
        let Backend::Postgres(pg) = &mut self.backend else {
            return;
        };
        if let Some(Ok(_)) = pg.batch.take() {
            pg.store.rollback_locked();
        }
        if pg.needs_reload() {
            self.reload();
        }
    }
}

/// How long a config blob that no record names stays in the database. The
/// log names blobs by hash: a follower replaying an entry needs the blob it
/// put. Deleted at once, a blob was gone as soon as its group had
/// `snapshot_history` later writes, so a follower that far behind (a
/// second, under a heavy load) had to reload — and fell behind again while
/// reloading. A follower further behind than this reloads, as one behind a
/// trimmed log does.
const BLOB_GRACE: Duration = Duration::from_secs(60);

/// Makes a batch durable on the shared store: `writes` (each staged write's
/// changes, in order; none empty) as one log entry each, and `audit`, in
/// the transaction the batch's lock began, with the blobs that have been
/// dead for [`BLOB_GRACE`] and that `reg` (caught up, the batch staged)
/// still does not name. Without a lock (dry runs and refusals only) there
/// is nothing to log and `audit` is stored alone.
///
/// A daemon killed holding dead blobs leaves them in the database (unnamed,
/// never read): a leak of at most a minute of deletes, not a loss.
pub(super) fn commit(
    pg: &mut Pg,
    reg: &Registry,
    writes: &[Vec<Change>],
    audit: &mut [AuditEntry],
    keep: u64,
) -> Result<(), StoreError> {
    match pg.batch.take() {
        Some(Ok(head)) => {
            let due = pg
                .dead_blobs
                .iter()
                .take_while(|(t, _)| t.elapsed() >= BLOB_GRACE)
                .count();
            let mut purge: Vec<(Instant, String)> = pg.dead_blobs.drain(..due).collect();
            if !purge.is_empty() {
                let live = reg.live_blobs();
                purge.retain(|(_, h)| !live.contains(h));
            }
            let hashes: Vec<String> = purge.iter().map(|(_, h)| h.clone()).collect();
            let refs: Vec<&[Change]> = writes.iter().map(Vec::as_slice).collect();
            match pg
                .store
                .commit_locked_batch(head, &refs, audit, keep, &hashes)
            {
                Ok(pos) => {
                    follow::committed(pg, pos);
                    let now = Instant::now();
                    for c in writes.iter().flatten() {
                        if let Change::DeleteBlob(h) = c {
                            pg.dead_blobs.push_back((now, h.clone()));
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    // Not deleted: still due next time.
                    for p in purge.into_iter().rev() {
                        pg.dead_blobs.push_front(p);
                    }
                    Err(e)
                }
            }
        }
        other => {
            pg.batch = other;
            if !writes.is_empty() {
                return Err(StoreError::Database(
                    "internal: writes staged without the log head's lock".into(),
                ));
            }
            pg.store.append_audit(audit, keep)
        }
    }
}
