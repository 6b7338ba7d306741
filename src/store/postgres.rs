//! The state in PostgreSQL (15 or later), shared by many daemons
//! (`rgmerge serve --store postgres://…`).
//!
//! Tables: `groups` (id → JSON record, as the redb store keeps it), `blobs`
//! (content hash → member config bytes), `history`, `teams`, `access_key`,
//! `audit`, and the projections `memberships`, `nodes` and `grants` (kept
//! in the same transaction as the records they come from, for operators'
//! queries). Every write also appends one row to `change_log` — the write's
//! changes, in order — at the position after `log_head`, whose single row
//! each writer locks (`FOR UPDATE`) for the whole transaction: writes from
//! any daemon are serialized by the database, and each daemon applies the
//! log in position order, so all agree on every version and hash. A commit
//! `NOTIFY`s `rgmerge_log` with the new position; followers `LISTEN`.
//!
//! Schema migrations are numbered, embedded, applied at start under an
//! advisory lock, and a database newer than this binary is refused.
//!
//! The methods are synchronous: each drives the store's own small tokio
//! runtime, so the engine's writer thread (a plain thread) can call them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::StoreError;
mod rows;
mod tls;

use rows::Stmt;

use crate::registry::record::{
    AccessRecord, AuditEntry, AuditFilter, Blob, Change, GroupRecord, HistoryEntry, Loaded, Node,
    TeamRecord,
};

/// The channel commits notify with the new log position.
pub const CHANNEL: &str = "rgmerge_log";

/// Log rows kept behind the head; a daemon further behind reloads
/// everything instead of replaying.
const LOG_KEEP: i64 = 100_000;

/// The schema, one step per version. Never edit a released step: add one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE log_head (id int PRIMARY KEY CHECK (id = 1), pos bigint NOT NULL);
     INSERT INTO log_head VALUES (1, 0);
     CREATE TABLE change_log (pos bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), changes bytea NOT NULL);
     CREATE TABLE groups (id text PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE blobs (hash text PRIMARY KEY, data bytea NOT NULL);
     CREATE TABLE history (group_id text NOT NULL, version bigint NOT NULL, entry bytea NOT NULL, PRIMARY KEY (group_id, version));
     CREATE TABLE teams (name text PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE access_key (id int PRIMARY KEY CHECK (id = 1), key text NOT NULL);
     CREATE TABLE audit (seq bigserial PRIMARY KEY, entry bytea NOT NULL);
     CREATE TABLE memberships (composite_id text NOT NULL, member_id text NOT NULL, PRIMARY KEY (composite_id, member_id));
     CREATE INDEX memberships_member ON memberships (member_id);
     CREATE SEQUENCE node_seq;
     CREATE TABLE nodes (group_id text NOT NULL, node_id text NOT NULL, node jsonb NOT NULL, seq bigint NOT NULL DEFAULT nextval('node_seq'), PRIMARY KEY (group_id, node_id));
     CREATE INDEX nodes_seq ON nodes (seq);
     CREATE TABLE grants (team text NOT NULL, group_id text NOT NULL, role text NOT NULL, PRIMARY KEY (team, group_id));",
)];

/// The newest schema version this binary knows.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// One change as the log holds it: a blob by its hash (its bytes are in
/// `blobs`, written in the same transaction).
#[derive(Serialize, Deserialize)]
enum Logged {
    PutGroup(Box<GroupRecord>),
    DeleteGroup(Uuid),
    PutBlob(String),
    DeleteBlob(String),
    PutHistory(Uuid, Box<HistoryEntry>),
    DeleteHistory(Uuid, u64),
    PutTeam(Box<TeamRecord>),
    DeleteTeam(String),
    PutAccessKey(String),
    /// A node deleted through the API (node reports themselves are not logged).
    DeleteNode(Uuid, String),
}

impl Logged {
    /// What followers replay of a change; node reports are each daemon's
    /// own soft state, stored but not logged.
    fn of(c: &Change) -> Option<Logged> {
        Some(match c {
            Change::PutGroup(r) => Logged::PutGroup(r.clone()),
            Change::DeleteGroup(id) => Logged::DeleteGroup(*id),
            Change::PutBlob(h, _) => Logged::PutBlob(h.clone()),
            Change::DeleteBlob(h) => Logged::DeleteBlob(h.clone()),
            Change::PutHistory(id, e) => Logged::PutHistory(*id, e.clone()),
            Change::DeleteHistory(id, v) => Logged::DeleteHistory(*id, *v),
            Change::PutTeam(t) => Logged::PutTeam(t.clone()),
            Change::DeleteTeam(n) => Logged::DeleteTeam(n.clone()),
            Change::PutAccessKey(k) => Logged::PutAccessKey(k.clone()),
            Change::DeleteNode(g, n) => Logged::DeleteNode(*g, n.clone()),
            Change::PutNode(..) | Change::PutMember(..) => return None,
        })
    }
}

/// One committed write, as followers replay it.
#[derive(Debug)]
pub struct Entry {
    pub pos: u64,
    /// When it was committed, Unix milliseconds.
    pub at_ms: u64,
    pub changes: Vec<Change>,
}

/// What [`PgStore::entries_after`] found.
#[derive(Debug)]
pub enum Entries {
    /// The next entries, in order (none when caught up).
    Next(Vec<Entry>),
    /// The log no longer holds what comes next (it was trimmed, or a blob
    /// an entry wrote is gone): reload everything.
    Gap,
}

pub struct PgStore {
    /// Drives the pool's connections and the listener; `None` only while
    /// dropping (shut down in the background, so dropping inside another
    /// runtime is allowed).
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The database as given, without its password, for messages.
    display: String,
    config: tokio_postgres::Config,
    /// The TLS connector every connection (pool and listener) uses.
    tls: MakeRustlsConnect,
    /// What TLS checks, for messages: `sslmode=…, sslrootcert=…`.
    tls_describe: String,
    /// The connection holding the head's lock during a write.
    locked: Option<Object>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.locked = None;
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn db_err(what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(format!("{what}: {}", describe(&e)))
}

/// A driver error with its server-side detail, if any.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => chain(e),
    }
}

/// An error and its sources, `: `-joined: a TLS refusal's reason (a name
/// mismatch, an unknown issuer) is only in the sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let next = inner.to_string();
        // Some errors repeat their source in their own message.
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        src = inner.source();
    }
    s
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Database(format!("{what} in the database does not decode: {e}")))
}

/// A `nodes` row read as `group_id, node::text, …`: its group and node.
fn node_row(row: &tokio_postgres::Row) -> Result<(Uuid, Node), StoreError> {
    let id: String = row.get(0);
    let group = Uuid::parse_str(&id)
        .map_err(|e| StoreError::Database(format!("a node names no group ({id}): {e}")))?;
    let doc: String = row.get(1);
    Ok((group, decode("a node", doc.as_bytes())?))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Database(format!("can't encode a record: {e}")))
}

fn ms_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}@{}", &url[..s + 3], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects, applies missing migrations and checks the schema. A
    /// database whose schema is newer than this binary is refused.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let display = redact(url);
        let bad = |e: String| StoreError::Database(format!("--store {display}: {e}"));
        // `sslmode`/`sslrootcert` are read here (tokio-postgres knows
        // neither verify mode nor the root file), the rest by tokio-postgres.
        let (rest, mode, root) = tls::split(url).map_err(bad)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| bad(describe(&e)))?;
        let params = tls::settle(mode, root, tls::is_local(&config));
        let connector = tls::connector(&params).map_err(bad)?;
        config.ssl_mode(connector.ssl_mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        config.application_name("rgmerge");
        // Statements are prepared once per connection, but planned for their
        // parameters at each run: a generic plan made while `blobs` was small
        // kept scanning it whole once it had grown.
        let custom = "-c plan_cache_mode=force_custom_plan";
        let options = match config.get_options() {
            Some(o) => format!("{o} {custom}"),
            None => custom.to_string(),
        };
        config.options(&options);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rgmerge-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("can't start the database runtime: {e}")))?;
        let mgr = Manager::from_config(
            config.clone(),
            connector.make.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(Duration::from_secs(3));
        let pool = Pool::builder(mgr)
            .max_size(8)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(format!("can't make a connection pool: {e}")))?;
        let store = PgStore {
            rt: Some(rt),
            pool,
            display,
            config,
            tls: connector.make,
            tls_describe: connector.describe,
            locked: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database, for messages (no password).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Runs `f` to completion on the store's runtime, from any thread (one
    /// inside another runtime hands it to a scoped thread).
    fn block<F: Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        let Some(rt) = self.rt.as_ref() else {
            unreachable!("the runtime is only taken while dropping")
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| match s.spawn(|| rt.block_on(f)).join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            })
        } else {
            rt.block_on(f)
        }
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            // The driver's error without deadpool's "Error occurred while
            // creating a new object" in front of it.
            let why = match &e {
                deadpool_postgres::PoolError::Backend(be) => describe(be),
                other => chain(other),
            };
            StoreError::Database(format!(
                "the database {} is unreachable ({}): {why}",
                self.display, self.tls_describe
            ))
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.block(async {
            let mut c = self.conn().await?;
            let tx = c.transaction().await.map_err(db_err("begin"))?;
            // Every daemon starting at once: one migrates, the others wait.
            tx.execute("SELECT pg_advisory_xact_lock(7436710295)", &[])
                .await
                .map_err(db_err("lock for migrations"))?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(db_err("create schema_migrations"))?;
            let row = tx
                .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
                .await
                .map_err(db_err("read the schema version"))?;
            let current: i32 = row.get(0);
            let known = schema_version();
            if current > known {
                return Err(StoreError::Database(format!(
                    "the database {} has schema version {current}, newer than this rgmerge knows ({known}): it was written by a newer rgmerge. Refusing to start so nothing is overwritten; run that version (or newer)",
                    self.display
                )));
            }
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                tx.batch_execute(sql)
                    .await
                    .map_err(db_err(&format!("schema migration {v}")))?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[v])
                    .await
                    .map_err(db_err("record the migration"))?;
                tracing::info!(version = v, "applied a schema migration");
            }
            tx.commit().await.map_err(db_err("commit the migrations"))
        })
    }

    /// Everything, as of one log position (read in one snapshot).
    pub fn load(&self) -> Result<(Loaded, u64), StoreError> {
        self.load_in_one_read(false)
            .map(|(loaded, pos, _)| (loaded, pos))
    }

    /// [`load`](PgStore::load) and the whole audit log (oldest first), in
    /// the same snapshot: an export of one point in time.
    pub fn load_whole(&self) -> Result<(Loaded, u64, Vec<AuditEntry>), StoreError> {
        self.load_in_one_read(true)
    }

    fn load_in_one_read(
        &self,
        with_audit: bool,
    ) -> Result<(Loaded, u64, Vec<AuditEntry>), StoreError> {
        self.block(async {
            let mut c = self.conn().await?;
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db_err("begin"))?;
            let pos: i64 = tx
                .query_one("SELECT pos FROM log_head", &[])
                .await
                .map_err(db_err("read the log head"))?
                .get(0);
            let mut loaded = Loaded::default();
            for row in tx
                .query("SELECT id, record FROM groups", &[])
                .await
                .map_err(db_err("read groups"))?
            {
                let id: String = row.get(0);
                loaded
                    .groups
                    .push(decode(&format!("group record {id}"), row.get(1))?);
            }
            for row in tx
                .query("SELECT hash, data FROM blobs", &[])
                .await
                .map_err(db_err("read blobs"))?
            {
                let hash: String = row.get(0);
                let blob = Blob::decode(row.get(1)).ok_or_else(|| {
                    StoreError::Database(format!("config blob {hash} has no format tag"))
                })?;
                loaded.blobs.insert(hash, blob);
            }
            for row in tx
                .query("SELECT group_id, entry FROM history", &[])
                .await
                .map_err(db_err("read history"))?
            {
                let id: String = row.get(0);
                let group = Uuid::parse_str(&id).map_err(|e| {
                    StoreError::Database(format!("history names no group ({id}): {e}"))
                })?;
                let entry: HistoryEntry = decode("a history entry", row.get(1))?;
                loaded.history.entry(group).or_default().push(entry);
            }
            for row in tx
                .query("SELECT group_id, node::text FROM nodes", &[])
                .await
                .map_err(db_err("read nodes"))?
            {
                let (group, node) = node_row(&row)?;
                loaded.nodes.entry(group).or_default().push(node);
            }
            let key = tx
                .query_opt("SELECT key FROM access_key", &[])
                .await
                .map_err(db_err("read the access key"))?;
            if let Some(key) = key {
                let mut rec = AccessRecord {
                    key: key.get(0),
                    teams: Vec::new(),
                };
                for row in tx
                    .query("SELECT record FROM teams", &[])
                    .await
                    .map_err(db_err("read teams"))?
                {
                    rec.teams.push(decode("a team record", row.get(0))?);
                }
                loaded.access = Some(rec);
            }
            let mut audit = Vec::new();
            if with_audit {
                for row in tx
                    .query("SELECT entry FROM audit ORDER BY seq", &[])
                    .await
                    .map_err(db_err("read the audit log"))?
                {
                    audit.push(decode("an audit entry", row.get(0))?);
                }
            }
            tx.commit().await.map_err(db_err("end the read"))?;
            Ok((loaded, pos as u64, audit))
        })
    }

    /// One config blob, if the database has it.
    pub fn blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let one = c
                .prepare_cached("SELECT data FROM blobs WHERE hash = $1")
                .await
                .map_err(db_err("read a blob"))?;
            let row = c
                .query_opt(&one, &[&hash])
                .await
                .map_err(db_err("read a blob"))?;
            row.map(|r| {
                Blob::decode(r.get(0)).ok_or_else(|| {
                    StoreError::Database(format!("config blob {hash} has no format tag"))
                })
            })
            .transpose()
        })
    }

    /// Begins a write: locks the log's head until [`PgStore::commit_locked`]
    /// (or [`PgStore::commit_locked_batch`]) or [`PgStore::rollback_locked`],
    /// and returns its position. Every other writer waits here, on any
    /// daemon. One round trip: `BEGIN` and the lock are sent together.
    pub fn lock_head(&mut self) -> Result<u64, StoreError> {
        self.lock_reading(None).map(|(head, _)| head)
    }

    /// [`PgStore::lock_head`], and the log entries after `pos` (at most
    /// `limit`), read once the lock is held: sent with the lock, so a
    /// batch's catch-up costs no round trip of its own (but one for the
    /// blobs the entries put).
    pub fn lock_head_reading(
        &mut self,
        pos: u64,
        limit: i64,
    ) -> Result<(u64, Entries), StoreError> {
        let (head, entries) = self.lock_reading(Some((pos, limit)))?;
        Ok((head, entries.unwrap_or(Entries::Next(Vec::new()))))
    }

    fn lock_reading(
        &mut self,
        after: Option<(u64, i64)>,
    ) -> Result<(u64, Option<Entries>), StoreError> {
        self.locked = None;
        let locked = self.block(async {
            let c = self.conn().await?;
            let (head, log) = futures_util::future::try_join(
                c.prepare_cached("SELECT pos FROM log_head WHERE id = 1 FOR UPDATE"),
                c.prepare_cached(LOG_AFTER),
            )
            .await
            .map_err(db_err("lock the log head"))?;
            let (pos, limit) = after.unwrap_or((0, 0));
            let (p, l) = (pos as i64, limit);
            let read = async {
                match after {
                    Some(_) => c.query(&log, &[&p, &l]).await.map(Some),
                    None => Ok(None),
                }
            };
            // A daemon that hangs holding the lock must not stop every
            // other daemon's writes for good. The three are sent back to
            // back; the server runs the read once the lock is granted.
            let (begun, row, rows) = futures_util::future::join3(
                c.batch_execute("BEGIN; SET LOCAL lock_timeout = '30s'"),
                c.query_one(&head, &[]),
                read,
            )
            .await;
            let got = async {
                begun.map_err(db_err("begin"))?;
                let head: i64 = row.map_err(db_err("lock the log head"))?.get(0);
                let entries = match rows.map_err(db_err("read the change log"))? {
                    Some(rows) => Some(entries_from(&c, pos, rows).await?),
                    None => None,
                };
                Ok::<_, StoreError>((head as u64, entries))
            }
            .await;
            match got {
                Ok((head, entries)) => Ok((c, head, entries)),
                Err(e) => {
                    // Not back to the pool inside a failed transaction.
                    let _ = c.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        });
        let (c, head, entries) = locked?;
        self.locked = Some(c);
        Ok((head, entries))
    }

    /// Ends a write that changed nothing: releases the head.
    pub fn rollback_locked(&mut self) {
        if let Some(c) = self.locked.take()
            && let Err(e) = self.block(c.batch_execute("ROLLBACK"))
        {
            tracing::warn!(error = %describe(&e), "rollback failed; the connection is dropped");
        }
    }

    /// Writes `changes` and their log entry at `head + 1`, notifies, and
    /// commits: durable when this returns `Ok` (the new position). On an
    /// error the write may or may not have committed (the connection was
    /// lost during `COMMIT`): the log says which, and followers apply it.
    pub fn commit_locked(&mut self, head: u64, changes: &[Change]) -> Result<u64, StoreError> {
        self.commit_locked_with(head, &[changes], &mut [], 0, None)
    }

    /// Group commit: each of `writes` (one write's changes) becomes one log
    /// entry, at `head + 1`, `head + 2`, …; their rows, those entries,
    /// `audit` (numbered here; the oldest past `keep` dropped), the head
    /// and the notification are one transaction, sent as one pipeline.
    /// Durable when this returns `Ok` (the new head). On an error the batch
    /// may or may not have committed (the connection was lost during
    /// `COMMIT`): the log says which, and followers apply it.
    ///
    /// The blobs `writes` delete are not deleted: the caller deletes them
    /// later, through `purge` (blobs no record names any more), so that a
    /// follower a little behind still finds the blobs the entries it
    /// replays put.
    pub fn commit_locked_batch(
        &mut self,
        head: u64,
        writes: &[&[Change]],
        audit: &mut [AuditEntry],
        keep: u64,
        purge: &[String],
    ) -> Result<u64, StoreError> {
        self.commit_locked_with(head, writes, audit, keep, Some(purge))
    }

    /// `purge`: `None` deletes the blobs `writes` delete at once; else they
    /// stay, and the blobs in it are deleted.
    fn commit_locked_with(
        &mut self,
        head: u64,
        writes: &[&[Change]],
        audit: &mut [AuditEntry],
        keep: u64,
        purge: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let Some(c) = self.locked.take() else {
            return Err(StoreError::Database(
                "internal: a commit without the head's lock".into(),
            ));
        };
        let last = head + writes.len() as u64;
        let result = self.block(async {
            let mut stmts = Vec::new();
            if let Some(p) = purge.filter(|p| !p.is_empty()) {
                stmts.push(Stmt::new(
                    "delete blobs",
                    "DELETE FROM blobs WHERE hash = ANY($1)",
                    vec![Box::new(p.to_vec())],
                ));
            }
            rows::statements(
                writes.iter().flat_map(|w| w.iter()),
                purge.is_some(),
                &mut stmts,
            )?;
            if !writes.is_empty() {
                let mut pos = Vec::with_capacity(writes.len());
                let mut payload = Vec::with_capacity(writes.len());
                for (p, w) in (head as i64 + 1..).zip(writes) {
                    pos.push(p);
                    payload.push(encode(&w.iter().filter_map(Logged::of).collect::<Vec<_>>())?);
                }
                let l = last as i64;
                stmts.push(Stmt::new(
                    "append to the change log",
                    "INSERT INTO change_log (pos, changes) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                    vec![Box::new(pos), Box::new(payload)],
                ));
                stmts.push(Stmt::new(
                    "move the log head",
                    "UPDATE log_head SET pos = $1 WHERE id = 1",
                    vec![Box::new(l)],
                ));
                // Once per thousand positions passed.
                if l / 1000 > head as i64 / 1000 {
                    stmts.push(Stmt::new(
                        "trim the change log",
                        "DELETE FROM change_log WHERE pos <= $1",
                        vec![Box::new(l - LOG_KEEP)],
                    ));
                }
                stmts.push(Stmt::new(
                    "notify",
                    "SELECT pg_notify($1, $2)",
                    vec![Box::new(CHANNEL.to_string()), Box::new(l.to_string())],
                ));
            }
            audit_statements(&c, audit, keep, &mut stmts).await?;
            rows::pipeline(&c, None, &stmts, Some("COMMIT")).await
        });
        if result.is_err() {
            // Whatever state the session is in, end it: a failed statement
            // aborts the transaction; ROLLBACK there is harmless.
            let _ = self.block(c.batch_execute("ROLLBACK"));
        }
        result.map(|()| last)
    }

    /// One write without the engine: lock, check nobody wrote since
    /// `expect` (if given), write, commit. For start-up and import. `None`:
    /// the log moved on from `expect`, nothing was written.
    pub fn commit(
        &mut self,
        expect: Option<u64>,
        changes: &[Change],
    ) -> Result<Option<u64>, StoreError> {
        let head = self.lock_head()?;
        if expect.is_some_and(|e| e != head) {
            self.rollback_locked();
            return Ok(None);
        }
        if changes.is_empty() {
            self.rollback_locked();
            return Ok(Some(head));
        }
        self.commit_locked(head, changes).map(Some)
    }

    /// An import: [`commit`](PgStore::commit) with the exported audit log
    /// (oldest first) in the same transaction, all or nothing. The entries
    /// keep their numbers unless the database already holds entries
    /// numbered as high; the audit sequence then continues after them.
    pub fn commit_restoring(
        &mut self,
        expect: Option<u64>,
        changes: &[Change],
        audit: &[AuditEntry],
    ) -> Result<Option<u64>, StoreError> {
        let head = self.lock_head()?;
        if expect.is_some_and(|e| e != head) {
            self.rollback_locked();
            return Ok(None);
        }
        let written = match &self.locked {
            Some(c) => self.block(restore_audit(c, audit)),
            None => Err(StoreError::Database(
                "internal: an import without the head's lock".into(),
            )),
        };
        if let Err(e) = written {
            self.rollback_locked();
            return Err(e);
        }
        self.commit_locked(head, changes).map(Some)
    }

    /// Node reports (`PutNode`/`DeleteNode`), in one transaction of their
    /// own: not logged, so the log's head is not taken.
    pub fn store_nodes(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.block(async {
            let mut stmts = Vec::new();
            rows::statements(changes, false, &mut stmts)?;
            let c = self.conn().await?;
            let written = rows::pipeline(&c, Some("BEGIN"), &stmts, Some("COMMIT")).await;
            if written.is_err() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            written
        })
    }

    /// Node reports stored (by any daemon) after `seq`, oldest first, at
    /// most `limit`: (group, node, its seq).
    pub fn nodes_after(&self, seq: i64, limit: i64) -> Result<Vec<(Uuid, Node, i64)>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let after = c
                .prepare_cached(
                    "SELECT group_id, node::text, seq FROM nodes WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .await
                .map_err(db_err("read nodes"))?;
            let rows = c
                .query(&after, &[&seq, &limit])
                .await
                .map_err(db_err("read nodes"))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let (group, node) = node_row(&row)?;
                out.push((group, node, row.get(2)));
            }
            Ok(out)
        })
    }

    /// The log entries after `pos`, at most `limit`, on the locked
    /// connection during a write (else on any).
    pub fn entries_after(&self, pos: u64, limit: i64) -> Result<Entries, StoreError> {
        self.block(async {
            let pooled;
            let c: &Object = match &self.locked {
                Some(c) => c,
                None => {
                    pooled = self.conn().await?;
                    &pooled
                }
            };
            let log = c
                .prepare_cached(LOG_AFTER)
                .await
                .map_err(db_err("read the change log"))?;
            let rows = c
                .query(&log, &[&(pos as i64), &limit])
                .await
                .map_err(db_err("read the change log"))?;
            entries_from(c, pos, rows).await
        })
    }

    /// Appends audit entries, numbering them, and drops the oldest past `keep`.
    pub fn append_audit(&self, entries: &mut [AuditEntry], keep: u64) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.block(async {
            let c = self.conn().await?;
            let mut stmts = Vec::new();
            audit_statements(&c, entries, keep, &mut stmts).await?;
            let written = rows::pipeline(&c, Some("BEGIN"), &stmts, Some("COMMIT")).await;
            if written.is_err() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            written
        })
    }

    /// Audit entries matching `filter`, newest first.
    pub fn read_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let mut out = Vec::new();
            let mut before = filter.before.map_or(i64::MAX, |b| b as i64);
            loop {
                let rows = c
                    .query(
                        "SELECT seq, entry FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT 1000",
                        &[&before],
                    )
                    .await
                    .map_err(db_err("read audit"))?;
                let Some(last) = rows.last() else {
                    return Ok(out);
                };
                before = last.get(0);
                for row in &rows {
                    let Ok(entry) = serde_json::from_slice::<AuditEntry>(row.get(1)) else {
                        continue;
                    };
                    if filter
                        .since
                        .as_ref()
                        .is_some_and(|s| entry.time.as_str() < s.as_str())
                    {
                        return Ok(out);
                    }
                    if filter.matches(&entry) {
                        out.push(entry);
                        if out.len() >= filter.limit {
                            return Ok(out);
                        }
                    }
                }
            }
        })
    }

    /// Follows the log: calls `wake` on every commit's notification, once
    /// a second, and after each (re)connection, until the store is dropped.
    pub fn listen(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let Some(rt) = self.rt.as_ref() else {
            return;
        };
        let config = self.config.clone();
        let tls = self.tls.clone();
        rt.spawn(async move {
            loop {
                if let Err(e) = listen_once(&config, tls.clone(), &wake).await {
                    tracing::warn!(error = %e, "lost the database's notifications; reconnecting");
                }
                wake();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// One LISTEN session, until its connection ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: &Arc<dyn Fn() + Send + Sync>,
) -> Result<(), String> {
    use futures_util::StreamExt;
    let (client, mut conn) = config.connect(tls).await.map_err(|e| describe(&e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "notification connection ended");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| describe(&e))?;
    wake();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some(()) => wake(),
                None => break,
            },
            _ = tick.tick() => {
                if client.is_closed() {
                    break;
                }
                wake();
            }
        }
    }
    driver.abort();
    Err("the connection closed".into())
}

/// Puts an import's audit entries into `audit` (see
/// [`PgStore::commit_restoring`]) inside the transaction open on `c`.
async fn restore_audit(c: &Object, entries: &[AuditEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: i64 = c
        .query_one("SELECT coalesce(max(seq), 0) FROM audit", &[])
        .await
        .map_err(db_err("read the audit log"))?
        .get(0);
    let keep = entries.windows(2).all(|p| p[0].seq < p[1].seq)
        && entries.first().is_none_or(|e| e.seq as i64 > last);
    let mut top = last;
    for (i, e) in (1i64..).zip(entries) {
        let seq = if keep { e.seq as i64 } else { last + i };
        let mut e = e.clone();
        e.seq = seq as u64;
        let bytes = encode(&e)?;
        c.execute(
            "INSERT INTO audit (seq, entry) VALUES ($1, $2)",
            &[&seq, &bytes],
        )
        .await
        .map_err(db_err("restore the audit log"))?;
        top = top.max(seq);
    }
    c.execute("SELECT setval('audit_seq_seq', $1)", &[&top])
        .await
        .map_err(db_err("restore the audit log"))?;
    Ok(())
}

/// The log's head and the change log after a position, oldest first (`$1`
/// the position, `$2` the most rows): one statement, so one snapshot —
/// no entry after the position while the head is past it is a trimmed log,
/// never a commit that landed between two reads. Without entries, one row
/// with the head and nulls.
const LOG_AFTER: &str = "SELECT h.pos, l.pos, l.at, l.changes FROM log_head h \
     LEFT JOIN LATERAL (SELECT pos, at, changes FROM change_log WHERE pos > $1 ORDER BY pos LIMIT $2) l ON true";

/// The entries of `rows` (the log after `pos`, read by [`LOG_AFTER`] on
/// `c`) with the blobs they put, read on `c`.
async fn entries_from(
    c: &Object,
    pos: u64,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Entries, StoreError> {
    let head = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
    let mut entries = Vec::with_capacity(rows.len());
    let mut want: Vec<String> = Vec::new();
    let logged_rows = rows.iter().filter(|r| r.get::<_, Option<i64>>(1).is_some());
    for (expect, row) in (pos + 1..).zip(logged_rows) {
        let p: i64 = row.get(1);
        if p as u64 != expect {
            tracing::info!(
                pos = expect,
                found = p,
                "the change log skips a position: reloading"
            );
            return Ok(Entries::Gap);
        }
        let at: std::time::SystemTime = row.get(2);
        let logged: Vec<Logged> = decode(&format!("change log entry {p}"), row.get(3))?;
        want.extend(logged.iter().filter_map(|l| match l {
            Logged::PutBlob(h) => Some(h.clone()),
            _ => None,
        }));
        entries.push((p as u64, ms_of(at), logged));
    }
    if entries.is_empty() {
        // Nothing after `pos`: either caught up or trimmed past it.
        if head > pos {
            tracing::info!(
                pos,
                head,
                "the change log was trimmed past this daemon's position: reloading"
            );
            return Ok(Entries::Gap);
        }
        return Ok(Entries::Next(Vec::new()));
    }
    let mut blobs = std::collections::HashMap::new();
    if !want.is_empty() {
        let put = c
            .prepare_cached("SELECT hash, data FROM blobs WHERE hash = ANY($1)")
            .await
            .map_err(db_err("read blobs"))?;
        for row in c
            .query(&put, &[&want])
            .await
            .map_err(db_err("read blobs"))?
        {
            let h: String = row.get(0);
            if let Some(b) = Blob::decode(row.get(1)) {
                blobs.insert(h, b);
            }
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    for (pos, at_ms, logged) in entries {
        let mut changes = Vec::with_capacity(logged.len());
        for l in logged {
            changes.push(match l {
                Logged::PutGroup(r) => Change::PutGroup(r),
                Logged::DeleteGroup(id) => Change::DeleteGroup(id),
                Logged::PutBlob(h) => match blobs.get(&h) {
                    Some(b) => Change::PutBlob(h, b.clone()),
                    // Deleted by a later write: replaying can't rebuild it.
                    None => {
                        tracing::info!(pos, blob = %h, "a logged config was deleted since: reloading");
                        return Ok(Entries::Gap);
                    }
                },
                Logged::DeleteBlob(h) => Change::DeleteBlob(h),
                Logged::PutHistory(id, e) => Change::PutHistory(id, e),
                Logged::DeleteHistory(id, v) => Change::DeleteHistory(id, v),
                Logged::PutTeam(t) => Change::PutTeam(t),
                Logged::DeleteTeam(n) => Change::DeleteTeam(n),
                Logged::PutAccessKey(k) => Change::PutAccessKey(k),
                Logged::DeleteNode(g, n) => Change::DeleteNode(g, n),
            });
        }
        out.push(Entry {
            pos,
            at_ms,
            changes,
        });
    }
    Ok(Entries::Next(out))
}

/// Numbers `entries` from the audit sequence (one round trip) and appends
/// the statements that store them and drop the oldest past `keep`.
async fn audit_statements(
    c: &Object,
    entries: &mut [AuditEntry],
    keep: u64,
    out: &mut Vec<Stmt>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let next = c
        .prepare_cached("SELECT nextval('audit_seq_seq') FROM generate_series(1, $1::int)")
        .await
        .map_err(db_err("number audit entries"))?;
    let n = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    let mut seqs: Vec<i64> = c
        .query(&next, &[&n])
        .await
        .map_err(db_err("number audit entries"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    seqs.sort_unstable();
    if seqs.len() != entries.len() {
        return Err(StoreError::Database(format!(
            "the audit sequence gave {} numbers for {} entries",
            seqs.len(),
            entries.len()
        )));
    }
    let mut bytes = Vec::with_capacity(entries.len());
    for (e, s) in entries.iter_mut().zip(&seqs) {
        e.seq = *s as u64;
        bytes.push(encode(&*e)?);
    }
    let last = seqs.last().copied().unwrap_or(0);
    out.push(Stmt::new(
        "append audit",
        "INSERT INTO audit (seq, entry) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        vec![Box::new(seqs), Box::new(bytes)],
    ));
    out.push(Stmt::new(
        "trim audit",
        "DELETE FROM audit WHERE seq <= $1",
        vec![Box::new(last - keep.max(1) as i64)],
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            ("postgres://u:secret@h/db", "postgres://u@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres:///db?host=/tmp", "postgres:///db?host=/tmp"),
        ] {
            assert_eq!(redact(url), shown);
        }
    }

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1);
        }
    }
}
