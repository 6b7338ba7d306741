//! Durable state in an embedded, crash-safe redb database in the data directory.
//!
//! Tables: `groups` (group id → JSON record: fields, memberships, the hash
//! of its config, its published snapshot, its pin), `nodes` (`<group
//! id>/<node id>` → JSON node record, written in batches), `history`
//! (`<group id>/<version, 20 digits>` → JSON entry of a kept version),
//! `blobs` (content hash → member config bytes, shared by every record and
//! kept version that names them), `frozen` (the same hash → the member
//! built from it, frozen: start-up thaws it instead of building), both
//! zstd-compressed where that pays (`store::packed`), `teams` (team name → JSON record:
//! credentials, token hashes, grants), `access` (the token-hash key) and
//! `audit` (sequence → JSON entry, append-only, the newest N kept). A write
//! is one redb transaction, durable when `commit` returns. A store from
//! before access control has no `access` key: it loads as "not set up yet"
//! and the engine bootstraps it. Knows nothing of HTTP.

pub mod packed;
pub mod postgres;

use std::collections::{HashMap, HashSet};

use std::path::{Path, PathBuf};
use uuid::Uuid;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::registry::record::{
    AccessRecord, AuditEntry, AuditFilter, Blob, Change, GroupRecord, Loaded, TeamRecord,
};

const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const TEAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("teams");
const ACCESS: TableDefinition<&str, &str> = TableDefinition::new("access");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// Added with snapshot history; a store without it gets it on open (no
/// schema change: older stores simply kept no history).
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");

/// A history row's key: ordered by group, then version.
fn history_key(group: &Uuid, version: u64) -> String {
    format!("{group}/{version:020}")
}

/// Frozen members (blob hash → `member::frozen` bytes in a `packed`
/// envelope): a cache beside `blobs` that start-up thaws instead of
/// building every member again. A store without it gets it on open.
const FROZEN: TableDefinition<&str, &[u8]> = TableDefinition::new("frozen");

/// Frozen members as stored before compression (blob hash → the bytes as
/// they are). Only read: a row there comes from an older binary, so it is
/// stale and serves only while its member is rebuilt. Each row goes when
/// its member is frozen again or its blob goes.
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");

/// Runtime instances (`<group id>/<node id>` → JSON node record): soft
/// state, written in batches. Added after nodes lived in group records; a
/// store without it gets it on open, and restore moves the records' nodes.
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");

fn node_key(group: &Uuid, node: &str) -> String {
    format!("{group}/{node}")
}

/// Appends `entries` to the audit table inside `tx`, numbering them after
/// the last one stored, and drops the oldest past `keep` entries.
fn append_audit_in(
    tx: &redb::WriteTransaction,
    entries: &mut [AuditEntry],
    keep: u64,
) -> Result<(), StoreError> {
    let w = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
    let mut audit = tx.open_table(AUDIT).map_err(|e| w(&e))?;
    let first = audit
        .last()
        .map_err(|e| w(&e))?
        .map_or(1, |(k, _)| k.value() + 1);
    for (seq, e) in (first..).zip(entries.iter_mut()) {
        e.seq = seq;
        let bytes = serde_json::to_vec(e).map_err(|e| w(&e))?;
        audit.insert(e.seq, bytes.as_slice()).map_err(|e| w(&e))?;
    }
    let mut excess = audit.len().map_err(|e| w(&e))?.saturating_sub(keep);
    while excess > 0 {
        if audit.pop_first().map_err(|e| w(&e))?.is_none() {
            break;
        }
        excess -= 1;
    }
    Ok(())
}

/// Puts `entries` (an import's audit log, oldest first) into the audit
/// table inside `tx`: with their own numbers when they all come after the
/// entries the table holds, else numbered after the last of those.
fn restore_audit_in(tx: &redb::WriteTransaction, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let w = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
    let mut audit = tx.open_table(AUDIT).map_err(|e| w(&e))?;
    let last = audit
        .last()
        .map_err(|e| w(&e))?
        .map_or(0, |(k, _)| k.value());
    let keep = entries.windows(2).all(|p| p[0].seq < p[1].seq)
        && entries.first().is_none_or(|e| e.seq > last);
    for (i, e) in (1u64..).zip(entries) {
        let seq = if keep { e.seq } else { last + i };
        let mut e = e.clone();
        e.seq = seq;
        let bytes = serde_json::to_vec(&e).map_err(|e| w(&e))?;
        audit.insert(seq, bytes.as_slice()).map_err(|e| w(&e))?;
    }
    Ok(())
}

/// What a commit does to the audit table.
enum AuditWrite<'a> {
    /// Appends these, numbering them, keeping the newest this many.
    Append(&'a mut [AuditEntry], u64),
    /// An import's log (see `restore_audit_in`).
    Restore(&'a [AuditEntry]),
}

/// The key range of every history row of `group`.
fn history_range(group: &Uuid) -> (String, String) {
    (format!("{group}/"), format!("{group}0"))
}
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_VERSION: u64 = 1;
pub const FILE_NAME: &str = "rgmerge.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store {path} is damaged or not an rgmerge store ({detail}); refusing to start so no data is overwritten. Restore it from a backup or `rgmerge export`, or move it away to start empty"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("the store {path} is in use by another process ({detail})")]
    Locked { path: PathBuf, detail: String },
    #[error("store write failed: {0}")]
    Write(String),
    #[error("store read failed: {0}")]
    Read(String),
    /// PostgreSQL (`postgres`): unreachable, refused, or newer than this binary.
    #[error("{0}")]
    Database(String),
}

/// redb keeps every page it reads cached, up to its cache size (1 GiB by
/// default). Start-up reads every config and frozen member once and copies
/// them out, so after it the store is reopened with this much
/// ([`Store::settle`]): a cache the size of the store would only hold a
/// second copy. Not from the start: evicting while start-up reads costs it
/// a third more time.
const CACHE_BYTES: usize = 64 << 20;

/// redb's builder with `cache` bytes of page cache (`None`: redb's default).
fn builder(cache: Option<usize>) -> redb::Builder {
    let mut b = Database::builder();
    if let Some(bytes) = cache {
        b.set_cache_size(bytes);
    }
    b
}

/// Opens an existing store. After a crash redb repairs the file on open, which
/// writes to it; if the file is damaged beyond repair, that attempt must not
/// leave it changed. So a store that does not open cleanly read-only is copied
/// aside first, and put back if the repair fails.
fn open_existing(path: &Path, cache: Option<usize>) -> Result<Database, redb::DatabaseError> {
    match redb::ReadOnlyDatabase::open(path) {
        Ok(ro) => {
            drop(ro);
            return builder(cache).open(path);
        }
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(redb::DatabaseError::DatabaseAlreadyOpen);
        }
        Err(_) => {}
    }
    let mut backup = path.as_os_str().to_owned();
    backup.push(".pre-repair");
    let backup = PathBuf::from(backup);
    std::fs::copy(path, &backup)?;
    match builder(cache).open(path) {
        Ok(db) => {
            let _ = std::fs::remove_file(&backup);
            Ok(db)
        }
        Err(e) => {
            let _ = std::fs::rename(&backup, path);
            Err(e)
        }
    }
}

pub struct Store {
    /// `None` after an I/O error until a reopen succeeds: redb asks to be
    /// closed and reopened before it is used again.
    db: Option<Database>,
    path: PathBuf,
    /// The page cache of later opens: `CACHE_BYTES` once `settle`d.
    cache: Option<usize>,
}

impl Store {
    /// Opens the store in `dir`, creating both on first start. An existing
    /// file that is not a healthy redb store is refused, never re-initialised.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.clone(),
            detail,
        };
        let locked_or_corrupt = |e: redb::DatabaseError| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.clone(),
                detail: e.to_string(),
            },
            other => corrupt(other.to_string()),
        };
        let db = match std::fs::metadata(&path) {
            Ok(m) if m.len() == 0 => return Err(corrupt("the file is empty".into())),
            Ok(_) => open_existing(&path, None).map_err(locked_or_corrupt)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                builder(None).create(&path).map_err(locked_or_corrupt)?
            }
            Err(source) => {
                return Err(StoreError::Dir {
                    path: path.clone(),
                    source,
                });
            }
        };
        let store = Store {
            db: Some(db),
            path,
            cache: None,
        };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StoreError> {
        let w = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db()?.begin_write().map_err(|e| w(&e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| w(&e))?;
            let existing = meta
                .get("schema_version")
                .map_err(|e| w(&e))?
                .map(|v| v.value());
            match existing {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(|e| w(&e))?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(v) => {
                    return Err(StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("schema version {v}, this rgmerge reads {SCHEMA_VERSION}"),
                    });
                }
            }
            tx.open_table(GROUPS).map_err(|e| w(&e))?;
            tx.open_table(BLOBS).map_err(|e| w(&e))?;
            tx.open_table(MEMBERS).map_err(|e| w(&e))?;
            tx.open_table(FROZEN).map_err(|e| w(&e))?;
            tx.open_table(HISTORY).map_err(|e| w(&e))?;
            tx.open_table(NODES).map_err(|e| w(&e))?;
            tx.open_table(TEAMS).map_err(|e| w(&e))?;
            tx.open_table(ACCESS).map_err(|e| w(&e))?;
            tx.open_table(AUDIT).map_err(|e| w(&e))?;
        }
        tx.commit().map_err(|e| w(&e))
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or_else(|| {
            StoreError::Write(
                "the store is closed after an I/O error and could not be reopened yet".into(),
            )
        })
    }

    /// Closes and reopens the database after a failed write.
    fn reopen(&mut self) {
        self.db = None;
        match open_existing(&self.path, self.cache) {
            Ok(db) => self.db = Some(db),
            Err(e) => {
                tracing::error!(error = %e, "store reopen failed; will retry on the next write")
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the database with a small page cache (`CACHE_BYTES`), once
    /// start-up has read everything: what the default cache holds then is
    /// a copy of the store nobody reads again.
    /// If that fails the store is reopened as before (`reopen`: the next
    /// write retries if that fails too).
    pub fn settle(&mut self) {
        self.db = None;
        self.cache = Some(CACHE_BYTES);
        match builder(self.cache).open(&self.path) {
            Ok(db) => self.db = Some(db),
            Err(e) => {
                tracing::warn!(error = %e, "reopening the store with a smaller cache failed");
                self.reopen();
            }
        }
    }

    /// Reads everything; a record that does not decode is corruption.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let r = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let tx = self.db()?.begin_read().map_err(|e| r(&e))?;
        let mut loaded = Loaded::default();
        let groups = tx.open_table(GROUPS).map_err(|e| r(&e))?;
        for row in groups.iter().map_err(|e| r(&e))? {
            let (k, v) = row.map_err(|e| corrupt(e.to_string()))?;
            let rec: GroupRecord = serde_json::from_slice(v.value())
                .map_err(|e| corrupt(format!("group record {}: {e}", k.value())))?;
            loaded.groups.push(rec);
        }
        // The two big tables: their rows copied out as stored (compressed:
        // a tenth of their size), then unpacked on every core.
        let mut blob_rows: Vec<(String, Vec<u8>)> = Vec::new();
        {
            let blobs = tx.open_table(BLOBS).map_err(|e| r(&e))?;
            for row in blobs.iter().map_err(|e| r(&e))? {
                let (k, v) = row.map_err(|e| corrupt(e.to_string()))?;
                blob_rows.push((k.value().to_string(), v.value().to_vec()));
            }
        }
        // Only the members a restore can use: of current configs and of
        // served snapshots (kept versions' stay on disk until their blob goes).
        let mut wanted: Vec<&str> = loaded
            .groups
            .iter()
            .flat_map(|g| {
                let sources = g.snapshot.sources.iter().map(|(_, h)| h.as_str());
                g.config.as_deref().into_iter().chain(sources)
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        // `true`: packed (the `frozen` table); `false`: an older binary's row.
        let mut member_rows: Vec<(String, Vec<u8>, bool)> = Vec::new();
        {
            let frozen = tx.open_table(FROZEN).map_err(|e| r(&e))?;
            let legacy = tx.open_table(MEMBERS).map_err(|e| r(&e))?;
            for h in wanted {
                if let Some(v) = frozen.get(h).map_err(|e| corrupt(e.to_string()))? {
                    member_rows.push((h.to_string(), v.value().to_vec(), true));
                } else if let Some(v) = legacy.get(h).map_err(|e| corrupt(e.to_string()))? {
                    member_rows.push((h.to_string(), v.value().to_vec(), false));
                }
            }
        }
        use rayon::prelude::*;
        let (blobs, members) = rayon::join(
            || {
                blob_rows
                    .into_par_iter()
                    .map(|(k, v)| {
                        let blob = packed::unpack_blob(&v)
                            .ok()
                            .and_then(decode_blob)
                            .ok_or_else(|| corrupt(format!("config blob {k} does not decode")))?;
                        Ok((k, blob))
                    })
                    .collect::<Result<HashMap<String, Blob>, StoreError>>()
            },
            || {
                // A frozen member that does not unpack is left out: it is
                // a cache, and its member is built instead.
                member_rows
                    .into_par_iter()
                    .filter_map(|(k, v, is_packed)| {
                        if !is_packed {
                            return Some((k, v));
                        }
                        match packed::unpack_member(&v) {
                            Ok(v) => Some((k, v)),
                            Err(why) => {
                                tracing::warn!(member = %k, %why, "a frozen member does not unpack; building it");
                                None
                            }
                        }
                    })
                    .collect::<HashMap<String, Vec<u8>>>()
            },
        );
        loaded.blobs = blobs?;
        loaded.members = members;
        loaded.history = self.rows_by_group(&tx, HISTORY, "history key", "history entry")?;
        loaded.nodes = self.rows_by_group(&tx, NODES, "node key", "node")?;
        let access = tx.open_table(ACCESS).map_err(|e| r(&e))?;
        let key = access
            .get("key")
            .map_err(|e| corrupt(e.to_string()))?
            .map(|v| v.value().to_string());
        if let Some(key) = key {
            let mut rec = AccessRecord {
                key,
                teams: Vec::new(),
            };
            let teams = tx.open_table(TEAMS).map_err(|e| r(&e))?;
            for row in teams.iter().map_err(|e| r(&e))? {
                let (k, v) = row.map_err(|e| corrupt(e.to_string()))?;
                let team: TeamRecord = serde_json::from_slice(v.value())
                    .map_err(|e| corrupt(format!("team record {}: {e}", k.value())))?;
                rec.teams.push(team);
            }
            loaded.access = Some(rec);
        }
        Ok(loaded)
    }

    /// The rows of `table`, keyed `GROUP/…`, decoded and gathered by group.
    /// `key` and `value` name a row in a corruption error.
    fn rows_by_group<T: serde::de::DeserializeOwned>(
        &self,
        tx: &redb::ReadTransaction,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &str,
    ) -> Result<HashMap<Uuid, Vec<T>>, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let table = tx
            .open_table(table)
            .map_err(|e| StoreError::Read(e.to_string()))?;
        let mut out: HashMap<Uuid, Vec<T>> = HashMap::new();
        for row in table.iter().map_err(|e| StoreError::Read(e.to_string()))? {
            let (k, v) = row.map_err(|e| corrupt(e.to_string()))?;
            let k = k.value();
            let group = k
                .split_once('/')
                .and_then(|(g, _)| Uuid::parse_str(g).ok())
                .ok_or_else(|| corrupt(format!("{key} {k} names no group")))?;
            let row: T = serde_json::from_slice(v.value())
                .map_err(|e| corrupt(format!("{value} {k}: {e}")))?;
            out.entry(group).or_default().push(row);
        }
        Ok(out)
    }

    /// Each table's rows and stored bytes (keys and values, as written):
    /// what the store file is made of, for `rgmerge bench`.
    pub fn table_bytes(&self) -> Result<Vec<(&'static str, u64, u64)>, StoreError> {
        let r = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.db()?.begin_read().map_err(|e| r(&e))?;
        let mut out = Vec::new();
        for (name, table) in [
            ("groups", GROUPS),
            ("blobs", BLOBS),
            ("frozen", FROZEN),
            ("members (before compression)", MEMBERS),
            ("history", HISTORY),
            ("nodes", NODES),
            ("teams", TEAMS),
        ] {
            let table = tx.open_table(table).map_err(|e| r(&e))?;
            let (mut rows, mut bytes) = (0, 0);
            for row in table.iter().map_err(|e| r(&e))? {
                let (k, v) = row.map_err(|e| r(&e))?;
                rows += 1;
                bytes += (k.value().len() + v.value().len()) as u64;
            }
            out.push((name, rows, bytes));
        }
        Ok(out)
    }

    /// One config blob, if the store has it.
    pub fn blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        let r = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.db()?.begin_read().map_err(|e| r(&e))?;
        let blobs = tx.open_table(BLOBS).map_err(|e| r(&e))?;
        let Some(v) = blobs.get(hash).map_err(|e| r(&e))? else {
            return Ok(None);
        };
        packed::unpack_blob(v.value())
            .ok()
            .and_then(decode_blob)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("config blob {hash} does not decode"),
            })
    }

    /// Applies `changes` in one durable transaction: all or nothing. After a
    /// failure (a full disk, say) the store is reopened so later writes can
    /// succeed once there is room again.
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.commit_with_audit(changes, &mut [], 0)
    }

    /// [`commit`](Store::commit) and [`append_audit`](Store::append_audit) in
    /// one durable transaction: a batch of writes and the audit entries
    /// waiting beside it share one fsync.
    pub fn commit_with_audit(
        &mut self,
        changes: &[Change],
        audit: &mut [AuditEntry],
        keep: u64,
    ) -> Result<(), StoreError> {
        if changes.is_empty() && audit.is_empty() {
            return Ok(());
        }
        if self.db.is_none() {
            self.reopen();
        }
        self.write_or_reopen(changes, AuditWrite::Append(audit, keep.max(1)))
    }

    /// An import: `changes` and the exported audit log (oldest first) in one
    /// durable transaction, all or nothing. The entries keep their numbers
    /// unless the store already holds entries numbered as high.
    pub fn commit_restoring(
        &mut self,
        changes: &[Change],
        audit: &[AuditEntry],
    ) -> Result<(), StoreError> {
        if self.db.is_none() {
            self.reopen();
        }
        self.write_or_reopen(changes, AuditWrite::Restore(audit))
    }

    fn write_or_reopen(&mut self, changes: &[Change], audit: AuditWrite) -> Result<(), StoreError> {
        let result = self.write(changes, audit);
        if result.is_err() {
            self.reopen();
        }
        result
    }

    fn write(&self, changes: &[Change], audit: AuditWrite) -> Result<(), StoreError> {
        let w = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db()?.begin_write().map_err(|e| w(&e))?;
        match audit {
            AuditWrite::Append(entries, keep) if !entries.is_empty() => {
                append_audit_in(&tx, entries, keep)?;
            }
            AuditWrite::Restore(entries) if !entries.is_empty() => restore_audit_in(&tx, entries)?,
            _ => {}
        }
        if changes.is_empty() {
            return tx.commit().map_err(|e| w(&e));
        }
        {
            let mut groups = tx.open_table(GROUPS).map_err(|e| w(&e))?;
            let mut blobs = tx.open_table(BLOBS).map_err(|e| w(&e))?;
            let mut members = tx.open_table(FROZEN).map_err(|e| w(&e))?;
            let mut legacy = tx.open_table(MEMBERS).map_err(|e| w(&e))?;
            let mut history = tx.open_table(HISTORY).map_err(|e| w(&e))?;
            let mut teams = tx.open_table(TEAMS).map_err(|e| w(&e))?;
            let mut access = tx.open_table(ACCESS).map_err(|e| w(&e))?;
            let mut nodes = tx.open_table(NODES).map_err(|e| w(&e))?;
            for c in changes {
                match c {
                    Change::PutGroup(rec) => {
                        let bytes = serde_json::to_vec(rec).map_err(|e| w(&e))?;
                        groups
                            .insert(rec.meta.id.to_string().as_str(), bytes.as_slice())
                            .map_err(|e| w(&e))?;
                    }
                    Change::DeleteGroup(id) => {
                        groups.remove(id.to_string().as_str()).map_err(|e| w(&e))?;
                        let (lo, hi) = history_range(id);
                        history
                            .retain_in::<&str, _>(lo.as_str()..hi.as_str(), |_, _| false)
                            .map_err(|e| w(&e))?;
                        nodes
                            .retain_in::<&str, _>(lo.as_str()..hi.as_str(), |_, _| false)
                            .map_err(|e| w(&e))?;
                    }
                    Change::PutNode(id, node) => {
                        let bytes = serde_json::to_vec(node).map_err(|e| w(&e))?;
                        nodes
                            .insert(node_key(id, &node.id).as_str(), bytes.as_slice())
                            .map_err(|e| w(&e))?;
                    }
                    Change::DeleteNode(id, node) => {
                        nodes
                            .remove(node_key(id, node).as_str())
                            .map_err(|e| w(&e))?;
                    }
                    Change::PutHistory(id, entry) => {
                        let bytes = serde_json::to_vec(entry).map_err(|e| w(&e))?;
                        history
                            .insert(history_key(id, entry.version).as_str(), bytes.as_slice())
                            .map_err(|e| w(&e))?;
                    }
                    Change::DeleteHistory(id, version) => {
                        history
                            .remove(history_key(id, *version).as_str())
                            .map_err(|e| w(&e))?;
                    }
                    Change::PutBlob(hash, blob) => {
                        if blobs.get(hash.as_str()).map_err(|e| w(&e))?.is_none() {
                            let row = packed::pack_blob(blob.encode());
                            blobs
                                .insert(hash.as_str(), row.as_slice())
                                .map_err(|e| w(&e))?;
                        }
                    }
                    Change::PutMember(hash, frozen) => {
                        let row = packed::pack_member(frozen);
                        members
                            .insert(hash.as_str(), row.as_slice())
                            .map_err(|e| w(&e))?;
                        legacy.remove(hash.as_str()).map_err(|e| w(&e))?;
                    }
                    Change::DeleteBlob(hash) => {
                        blobs.remove(hash.as_str()).map_err(|e| w(&e))?;
                        members.remove(hash.as_str()).map_err(|e| w(&e))?;
                        legacy.remove(hash.as_str()).map_err(|e| w(&e))?;
                    }
                    Change::PutTeam(t) => {
                        let bytes = serde_json::to_vec(t).map_err(|e| w(&e))?;
                        teams
                            .insert(t.name.as_str(), bytes.as_slice())
                            .map_err(|e| w(&e))?;
                    }
                    Change::DeleteTeam(name) => {
                        teams.remove(name.as_str()).map_err(|e| w(&e))?;
                    }
                    Change::PutAccessKey(key) => {
                        access.insert("key", key.as_str()).map_err(|e| w(&e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| w(&e))
    }

    /// Appends audit entries in one durable transaction, numbering them after
    /// the last one stored, and drops the oldest past `keep` entries.
    pub fn append_audit(
        &mut self,
        entries: &mut [AuditEntry],
        keep: u64,
    ) -> Result<(), StoreError> {
        self.commit_with_audit(&[], entries, keep)
    }

    /// Audit entries matching `filter`, newest first.
    pub fn read_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let r = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let tx = self.db()?.begin_read().map_err(|e| r(&e))?;
        let audit = tx.open_table(AUDIT).map_err(|e| r(&e))?;
        let end = filter.before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for row in audit.range(..end).map_err(|e| r(&e))?.rev() {
            if out.len() >= filter.limit {
                break;
            }
            let (_, v) = row.map_err(|e| r(&e))?;
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(v.value()) else {
                continue;
            };
            // Entries are appended in time order: past `since`, stop.
            if filter
                .since
                .as_ref()
                .is_some_and(|s| entry.time.as_str() < s.as_str())
            {
                break;
            }
            if filter.matches(&entry) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Removes blobs no record names any more, and with each its frozen
    /// member (`DeleteBlob`). The `members` table itself is not scanned:
    /// every row is written beside a live blob and dropped with it, and
    /// scanning would read every kept version's frozen member at start-up.
    pub fn collect_garbage(&mut self, live: &HashSet<String>) -> Result<usize, StoreError> {
        let r = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let dead: Vec<String> = {
            let tx = self.db()?.begin_read().map_err(|e| r(&e))?;
            let blobs = tx.open_table(BLOBS).map_err(|e| r(&e))?;
            let mut dead = Vec::new();
            for row in blobs.iter().map_err(|e| r(&e))? {
                let (k, _) = row.map_err(|e| r(&e))?;
                if !live.contains(k.value()) {
                    dead.push(k.value().to_string());
                }
            }
            dead
        };
        let n = dead.len();
        self.commit(&dead.into_iter().map(Change::DeleteBlob).collect::<Vec<_>>())?;
        Ok(n)
    }
}

/// [`Blob::decode`] of an unpacked row, keeping its buffer: the tag byte
/// is shifted out in place instead of the config (98 MB at the bench's
/// start-up) being copied into a fresh allocation.
fn decode_blob(mut v: Vec<u8>) -> Option<Blob> {
    let format = Blob::decode(v.get(..1)?)?.format;
    v.remove(0);
    Some(Blob { format, bytes: v })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before access control (no `teams`, `access` or
    /// `audit` tables) opens, and loads as "access not set up yet".
    #[test]
    fn a_store_from_before_access_control_loads_without_access() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Database::create(dir.path().join(FILE_NAME)).expect("create");
            let tx = db.begin_write().expect("write");
            {
                let mut meta = tx.open_table(META).expect("meta");
                meta.insert("schema_version", SCHEMA_VERSION)
                    .expect("insert");
                tx.open_table(GROUPS).expect("groups");
                tx.open_table(BLOBS).expect("blobs");
            }
            tx.commit().expect("commit");
        }
        let mut store = Store::open(dir.path()).expect("old store opens");
        let loaded = store.load().expect("load");
        assert!(loaded.access.is_none());
        store
            .commit(&[Change::PutAccessKey("ab".repeat(32))])
            .expect("commit");
        let mut entries = vec![
            AuditEntry {
                seq: 0,
                time: "2026-01-01T00:00:00.000000Z".into(),
                teams: vec!["a".into()],
                credential: "uid".into(),
                uid: Some(1),
                gid: Some(1),
                token_id: None,
                method: "POST".into(),
                path: "/v2/teams".into(),
                group: None,
                status: 201,
                result: "ok".into(),
                reason: None,
            };
            5
        ];
        store.append_audit(&mut entries, 3).expect("append");
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let all = store
            .read_audit(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .expect("read");
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4, 3]);
        let loaded = store.load().expect("load");
        assert_eq!(loaded.access.map(|a| a.key), Some("ab".repeat(32)));
    }

    /// A store written before compression (raw `j…` blobs, frozen members
    /// as they are in `members`) loads as it was; new writes are packed,
    /// and freezing a member again drops its old row.
    #[test]
    fn a_store_from_before_compression_loads_and_moves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = br#"{"_format_version":"3.0","services":[]}"#.repeat(20);
        let mut encoded = b"j".to_vec();
        encoded.extend_from_slice(&config);
        let old_member = b"an older binary's frozen member".to_vec();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).expect("create");
            let tx = db.begin_write().expect("write");
            {
                let mut meta = tx.open_table(META).expect("meta");
                meta.insert("schema_version", SCHEMA_VERSION)
                    .expect("insert");
                let mut blobs = tx.open_table(BLOBS).expect("blobs");
                blobs.insert("h", encoded.as_slice()).expect("blob");
                let mut members = tx.open_table(MEMBERS).expect("members");
                members.insert("h", old_member.as_slice()).expect("member");
                tx.open_table(GROUPS).expect("groups");
            }
            tx.commit().expect("commit");
        }
        let mut store = Store::open(dir.path()).expect("an old store opens");
        let blob = store.blob("h").expect("read").expect("kept");
        assert_eq!(blob.bytes, config);
        let legacy = |store: &Store| {
            let tx = store.db().expect("db").begin_read().expect("read");
            let t = tx.open_table(MEMBERS).expect("members");
            t.get("h").expect("get").map(|v| v.value().to_vec())
        };
        assert_eq!(legacy(&store), Some(old_member));
        let frozen = b"this binary's frozen member".repeat(10);
        let other = Blob {
            format: crate::config::Format::Json,
            bytes: config.repeat(2),
        };
        store
            .commit(&[
                Change::PutMember("h".into(), frozen.clone().into()),
                Change::PutBlob("h2".into(), other.clone()),
            ])
            .expect("commit");
        assert_eq!(legacy(&store), None, "the old row goes");
        let tx = store.db().expect("db").begin_read().expect("read");
        let t = tx.open_table(FROZEN).expect("frozen");
        let row = t.get("h").expect("get").expect("stored").value().to_vec();
        assert_eq!(packed::unpack_member(&row), Ok(frozen));
        let t = tx.open_table(BLOBS).expect("blobs");
        let row = t.get("h2").expect("get").expect("stored").value().to_vec();
        assert!(row.len() < other.bytes.len() / 4, "compressed");
        assert_eq!(store.blob("h2").expect("read"), Some(other));
    }
}
