//! Changes as a few multi-row statements, sent in one pipeline.
//!
//! A batch of writes makes many changes; one statement each would cost a
//! round trip each (two, with its prepare). Instead the changes are folded
//! into each table's final rows — the last change to a key wins, which is
//! what applying them one after another leaves — and each table takes at
//! most a delete and an upsert with array parameters (`unnest`). The
//! statements are prepared once per connection (`prepare_cached`) and sent
//! back to back, in order, before any answer is awaited: with the `COMMIT`
//! at the end, a batch is one round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{db_err, encode};
use crate::registry::record::{Blob, Change, GroupRecord, HistoryEntry, Node, TeamRecord};
use crate::store::StoreError;

type Param = Box<dyn ToSql + Sync + Send>;

/// One statement of a pipeline, with its parameters.
pub(super) struct Stmt {
    what: &'static str,
    sql: &'static str,
    params: Vec<Param>,
}

impl Stmt {
    pub(super) fn new(what: &'static str, sql: &'static str, params: Vec<Param>) -> Stmt {
        Stmt { what, sql, params }
    }
}

/// The final state of every row a list of changes touches.
#[derive(Default)]
struct Fold<'a> {
    /// Groups deleted: their history, memberships and nodes go with them
    /// (before any row of theirs put later in the same batch).
    dropped: BTreeSet<Uuid>,
    groups: BTreeMap<Uuid, Option<&'a GroupRecord>>,
    blobs: BTreeMap<&'a str, Option<&'a Blob>>,
    history: BTreeMap<(Uuid, u64), Option<&'a HistoryEntry>>,
    teams: BTreeMap<&'a str, Option<&'a TeamRecord>>,
    nodes: BTreeMap<(Uuid, &'a str), Option<&'a Node>>,
    access_key: Option<&'a str>,
    /// `DeleteBlob` is left to the caller (a blob outlives its last record
    /// for a while, so followers can replay the entries that put it).
    keep_blobs: bool,
}

impl<'a> Fold<'a> {
    fn add(&mut self, c: &'a Change) {
        match c {
            Change::PutGroup(r) => {
                self.groups.insert(r.meta.id, Some(r));
            }
            Change::DeleteGroup(id) => {
                self.groups.insert(*id, None);
                self.dropped.insert(*id);
                self.history.retain(|(g, _), _| g != id);
                self.nodes.retain(|(g, _), _| g != id);
            }
            Change::PutBlob(h, b) => {
                self.blobs.insert(h, Some(b));
            }
            Change::DeleteBlob(h) => {
                if !self.keep_blobs {
                    self.blobs.insert(h, None);
                }
            }
            Change::PutHistory(id, e) => {
                self.history.insert((*id, e.version), Some(e));
            }
            Change::DeleteHistory(id, v) => {
                self.history.insert((*id, *v), None);
            }
            Change::PutTeam(t) => {
                self.teams.insert(&t.name, Some(t));
            }
            Change::DeleteTeam(n) => {
                self.teams.insert(n, None);
            }
            Change::PutNode(g, n) => {
                self.nodes.insert((*g, &n.id), Some(n));
            }
            Change::DeleteNode(g, n) => {
                self.nodes.insert((*g, n), None);
            }
            Change::PutAccessKey(k) => self.access_key = Some(k),
            // Frozen members are a local cache: every daemon sharing the
            // database builds its members from the blobs.
            Change::PutMember(..) => {}
        }
    }

    /// The statements that leave every touched row as the changes did:
    /// deletes first, then upserts (a key is in one or the other).
    fn statements(self, out: &mut Vec<Stmt>) -> Result<(), StoreError> {
        let ids = |v: &mut dyn Iterator<Item = &Uuid>| -> Vec<String> {
            v.map(Uuid::to_string).collect()
        };
        if !self.dropped.is_empty() {
            let dropped = ids(&mut self.dropped.iter());
            for (what, sql) in [
                ("delete a group", "DELETE FROM groups WHERE id = ANY($1)"),
                (
                    "delete a group's history",
                    "DELETE FROM history WHERE group_id = ANY($1)",
                ),
                (
                    "delete a group's memberships",
                    "DELETE FROM memberships WHERE composite_id = ANY($1)",
                ),
                (
                    "delete a group's nodes",
                    "DELETE FROM nodes WHERE group_id = ANY($1)",
                ),
            ] {
                out.push(Stmt::new(what, sql, vec![Box::new(dropped.clone())]));
            }
        }
        let put: Vec<&GroupRecord> = self.groups.values().filter_map(|r| *r).collect();
        if !put.is_empty() {
            let mut gid = Vec::with_capacity(put.len());
            let mut rec = Vec::with_capacity(put.len());
            let (mut comp, mut member) = (Vec::new(), Vec::new());
            for r in &put {
                let id = r.meta.id.to_string();
                rec.push(encode(r)?);
                for m in &r.members {
                    comp.push(id.clone());
                    member.push(m.to_string());
                }
                gid.push(id);
            }
            out.push(Stmt::new(
                "write groups",
                "INSERT INTO groups (id, record) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                vec![Box::new(gid.clone()), Box::new(rec)],
            ));
            // A group's nodes are rows of their own (`PutNode`), kept
            // apart from its record; its memberships are replaced.
            out.push(Stmt::new(
                "write memberships",
                "DELETE FROM memberships WHERE composite_id = ANY($1)",
                vec![Box::new(gid)],
            ));
            if !comp.is_empty() {
                out.push(Stmt::new(
                    "write memberships",
                    "INSERT INTO memberships SELECT * FROM unnest($1::text[], $2::text[])",
                    vec![Box::new(comp), Box::new(member)],
                ));
            }
        }
        let (mut gone, mut hash, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for (h, b) in &self.blobs {
            match b {
                Some(b) => {
                    hash.push(h.to_string());
                    data.push(b.encode());
                }
                None => gone.push(h.to_string()),
            }
        }
        if !gone.is_empty() {
            out.push(Stmt::new(
                "delete blobs",
                "DELETE FROM blobs WHERE hash = ANY($1)",
                vec![Box::new(gone)],
            ));
        }
        if !hash.is_empty() {
            out.push(Stmt::new(
                "write blobs",
                "INSERT INTO blobs (hash, data) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (hash) DO NOTHING",
                vec![Box::new(hash), Box::new(data)],
            ));
        }
        let (mut dg, mut dv) = (Vec::new(), Vec::<i64>::new());
        let (mut pg, mut pv, mut pe) = (Vec::new(), Vec::<i64>::new(), Vec::new());
        for ((g, v), e) in &self.history {
            match e {
                Some(e) => {
                    pg.push(g.to_string());
                    pv.push(*v as i64);
                    pe.push(encode(e)?);
                }
                None => {
                    dg.push(g.to_string());
                    dv.push(*v as i64);
                }
            }
        }
        if !dg.is_empty() {
            out.push(Stmt::new(
                "delete history",
                "DELETE FROM history h USING unnest($1::text[], $2::bigint[]) AS d(g, v) \
                 WHERE h.group_id = d.g AND h.version = d.v",
                vec![Box::new(dg), Box::new(dv)],
            ));
        }
        if !pg.is_empty() {
            out.push(Stmt::new(
                "write history",
                "INSERT INTO history (group_id, version, entry) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[]) \
                 ON CONFLICT (group_id, version) DO UPDATE SET entry = EXCLUDED.entry",
                vec![Box::new(pg), Box::new(pv), Box::new(pe)],
            ));
        }
        if !self.teams.is_empty() {
            let touched: Vec<String> = self.teams.keys().map(|n| n.to_string()).collect();
            let (mut gone, mut name, mut rec) = (Vec::new(), Vec::new(), Vec::new());
            let (mut gt, mut gg, mut gr) = (Vec::new(), Vec::new(), Vec::new());
            for (n, t) in &self.teams {
                match t {
                    Some(t) => {
                        name.push(n.to_string());
                        rec.push(encode(t)?);
                        for (g, r) in &t.grants {
                            gt.push(n.to_string());
                            gg.push(g.to_string());
                            gr.push(r.as_str().to_string());
                        }
                    }
                    None => gone.push(n.to_string()),
                }
            }
            if !gone.is_empty() {
                out.push(Stmt::new(
                    "delete teams",
                    "DELETE FROM teams WHERE name = ANY($1)",
                    vec![Box::new(gone)],
                ));
            }
            // Grants are replaced for every team touched.
            out.push(Stmt::new(
                "write grants",
                "DELETE FROM grants WHERE team = ANY($1)",
                vec![Box::new(touched)],
            ));
            if !name.is_empty() {
                out.push(Stmt::new(
                    "write teams",
                    "INSERT INTO teams (name, record) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                     ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
                    vec![Box::new(name), Box::new(rec)],
                ));
            }
            if !gt.is_empty() {
                out.push(Stmt::new(
                    "write grants",
                    "INSERT INTO grants SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                    vec![Box::new(gt), Box::new(gg), Box::new(gr)],
                ));
            }
        }
        let (mut dg, mut dn) = (Vec::new(), Vec::new());
        let (mut pg, mut pn, mut pd) = (Vec::new(), Vec::new(), Vec::new());
        for ((g, n), node) in &self.nodes {
            match node {
                Some(node) => {
                    pg.push(g.to_string());
                    pn.push(n.to_string());
                    pd.push(
                        serde_json::to_string(node).map_err(|e| {
                            StoreError::Database(format!("can't encode a node: {e}"))
                        })?,
                    );
                }
                None => {
                    dg.push(g.to_string());
                    dn.push(n.to_string());
                }
            }
        }
        if !dg.is_empty() {
            out.push(Stmt::new(
                "delete nodes",
                "DELETE FROM nodes n USING unnest($1::text[], $2::text[]) AS d(g, i) \
                 WHERE n.group_id = d.g AND n.node_id = d.i",
                vec![Box::new(dg), Box::new(dn)],
            ));
        }
        if !pg.is_empty() {
            out.push(Stmt::new(
                "write nodes",
                "INSERT INTO nodes (group_id, node_id, node) \
                 SELECT g, i, d::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(g, i, d) \
                 ON CONFLICT (group_id, node_id) DO UPDATE SET node = EXCLUDED.node, seq = nextval('node_seq')",
                vec![Box::new(pg), Box::new(pn), Box::new(pd)],
            ));
        }
        if let Some(key) = self.access_key {
            out.push(Stmt::new(
                "write the access key",
                "INSERT INTO access_key (id, key) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key",
                vec![Box::new(key.to_string())],
            ));
        }
        Ok(())
    }
}

/// Appends the statements that write `changes` (one write's or many, in
/// order) to `out`; with `keep_blobs`, blobs they delete are not deleted.
pub(super) fn statements<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    keep_blobs: bool,
    out: &mut Vec<Stmt>,
) -> Result<(), StoreError> {
    let mut fold = Fold {
        keep_blobs,
        ..Fold::default()
    };
    for c in changes {
        fold.add(c);
    }
    fold.statements(out)
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// Runs `head` (a simple query, e.g. `BEGIN`), `stmts` and `tail` (e.g.
/// `COMMIT`) on `c`, sent back to back in this order before any answer is
/// read: one round trip once the statements are prepared on `c` (the first
/// use of a statement on a connection prepares it, all at once). The
/// server runs them in order; the first error is returned — and since a
/// failed statement aborts the transaction, a `COMMIT` after it commits
/// nothing.
pub(super) async fn pipeline(
    c: &Object,
    head: Option<&str>,
    stmts: &[Stmt],
    tail: Option<&str>,
) -> Result<(), StoreError> {
    let prepared =
        futures_util::future::try_join_all(stmts.iter().map(|s| c.prepare_cached(s.sql)))
            .await
            .map_err(db_err("prepare a statement"))?;
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = stmts
        .iter()
        .map(|s| {
            s.params
                .iter()
                .map(|p| &**p as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    let mut whats: Vec<&str> = Vec::with_capacity(stmts.len() + 2);
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(stmts.len() + 2);
    if let Some(h) = head {
        whats.push("begin");
        steps.push(Box::pin(c.batch_execute(h)));
    }
    for ((s, st), ps) in stmts.iter().zip(&prepared).zip(&params) {
        whats.push(s.what);
        steps.push(Box::pin(async move { c.execute(st, ps).await.map(|_| ()) }));
    }
    if let Some(t) = tail {
        whats.push("commit");
        steps.push(Box::pin(c.batch_execute(t)));
    }
    for (what, r) in whats.into_iter().zip(in_order(steps).await) {
        r.map_err(db_err(what))?;
    }
    Ok(())
}

/// Polls every future in index order until all are done: each sends its
/// message on its first poll, so they reach the server in this order.
async fn in_order<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
