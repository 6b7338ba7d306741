//! Applying another daemon's write: the changes it committed (one entry of
//! a shared store's change log), replayed onto this registry incrementally,
//! as `restore` would rebuild those records — a member is rebuilt only when
//! its config or name changed, and only the composites holding it re-merge.
//! Each served snapshot is re-assembled from its recorded sources and must
//! hash to the recorded hash, so every daemon serves the same versions and
//! bytes at the same log position.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::record::{Blob, Change, GroupRecord, HistoryEntry, decode_key, named_collections};
use super::{Config, Effects, Group, Kind, Published, Registry};
use crate::compose::{Body, Composite};
use crate::member::{Member, MemberInfo};

impl Registry {
    /// Applies one logged write. `fetch` finds a blob the entry does not
    /// carry (an older config a snapshot or pin is made of). An `Err` leaves
    /// the registry partly changed: the caller must rebuild it from the store.
    pub fn apply_logged(
        &mut self,
        changes: &[Change],
        fetch: &mut dyn FnMut(&str) -> Option<Blob>,
    ) -> Result<Effects, String> {
        let mut effects = Effects::default();
        let mut blobs: HashMap<&str, &Blob> = HashMap::new();
        let mut records: Vec<&GroupRecord> = Vec::new();
        let mut deleted: Vec<Uuid> = Vec::new();
        let mut history: Vec<(Uuid, Option<&HistoryEntry>, u64)> = Vec::new();
        let mut viewed_nodes: Vec<Uuid> = Vec::new();
        for c in changes {
            match c {
                Change::PutBlob(h, b) => {
                    blobs.insert(h.as_str(), b);
                }
                Change::PutGroup(r) => records.push(r),
                Change::DeleteGroup(id) => deleted.push(*id),
                Change::PutHistory(id, e) => history.push((*id, Some(e), e.version)),
                Change::DeleteHistory(id, v) => history.push((*id, None, *v)),
                Change::PutTeam(t) => {
                    self.access.teams.insert(t.name.clone(), (**t).clone());
                    effects.access_changed = true;
                }
                Change::DeleteTeam(name) => {
                    self.access.teams.remove(name);
                    effects.access_changed = true;
                }
                Change::PutAccessKey(k) => {
                    self.access.key = Some(decode_key(k)?);
                    effects.access_changed = true;
                }
                // Blobs go with the writes that drop them; node reports are
                // never logged (each daemon keeps its own).
                // A node deleted through another daemon's API.
                Change::DeleteNode(g, node) => {
                    if let Some(gr) = self.groups.get(g) {
                        gr.nodes.remove(node);
                        viewed_nodes.push(*g);
                    }
                }
                // Blobs go with the writes that drop them; node reports are
                // not logged (each daemon stores its own; others read them
                // from the `nodes` table, see `Registry::absorb_nodes`);
                // frozen members are not logged either.
                Change::DeleteBlob(_) | Change::PutNode(..) | Change::PutMember(..) => {}
            }
        }
        let mut blob = |h: &str| -> Result<Blob, String> {
            match blobs.get(h) {
                Some(b) => Ok((*b).clone()),
                None => fetch(h).ok_or_else(|| format!("config blob {h} is missing")),
            }
        };
        let mut viewed: BTreeSet<Uuid> = viewed_nodes.into_iter().collect();
        // Standard groups first: composites take their members from them.
        let mut rebuilt: Vec<Uuid> = Vec::new();
        for r in records
            .iter()
            .filter(|r| !r.meta.cluster_type.is_composite())
        {
            let id = r.meta.id;
            let hash = r
                .config
                .as_ref()
                .ok_or_else(|| format!("group {id} has no config"))?;
            let existing = self.groups.get(&id);
            let keep = existing.and_then(|g| match &g.kind {
                Kind::Standard { config, .. }
                    if &config.hash == hash
                        && g.meta.name == r.meta.name
                        && g.meta.is_default == r.meta.is_default =>
                {
                    Some(config.clone())
                }
                _ => None,
            });
            let config = match keep {
                Some(c) => c,
                None => {
                    let b = match existing.map(|g| &g.kind) {
                        Some(Kind::Standard { config, .. }) if &config.hash == hash => {
                            config.blob.clone()
                        }
                        _ => blob(hash)?,
                    };
                    let member = Member::build_for(
                        r.meta.member_info(),
                        &b.bytes,
                        b.format,
                        &self.interner,
                        &self.settings.kong,
                    );
                    rebuilt.push(id);
                    Arc::new(Config {
                        hash: hash.clone(),
                        blob: b,
                        member: Arc::new(member),
                    })
                }
            };
            let composites = match existing.map(|g| &g.kind) {
                Some(Kind::Standard { composites, .. }) => composites.clone(),
                _ => BTreeSet::new(),
            };
            viewed.extend(composites.iter().copied());
            self.put_group(r, Kind::Standard { config, composites });
            viewed.insert(id);
        }
        // Composites: their member lists, then every member rebuilt above.
        let mut upserted: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
        for r in records
            .iter()
            .filter(|r| r.meta.cluster_type.is_composite())
        {
            let id = r.meta.id;
            let new: BTreeSet<Uuid> = r.members.iter().copied().collect();
            let member_of = |reg: &Registry, m: &Uuid| match reg.groups.get(m).map(|g| &g.kind) {
                Some(Kind::Standard { config, .. }) => Ok(config.member.clone()),
                _ => Err(format!(
                    "composite {id} names member {m}, which has no config"
                )),
            };
            let kind = match self.groups.get_mut(&id).map(|g| &mut g.kind) {
                Some(Kind::Composite { members, composite }) => {
                    let old = std::mem::take(members);
                    let mut composite = std::mem::replace(
                        composite,
                        Box::new(Composite::new(self.interner.clone())),
                    );
                    for m in old.difference(&new) {
                        composite.remove(&m.to_string());
                        self.set_composite_of(*m, id, false);
                        viewed.insert(*m);
                    }
                    for m in new.difference(&old) {
                        composite.upsert(member_of(self, m)?);
                        upserted.insert((id, *m));
                        viewed.insert(*m);
                    }
                    Kind::Composite {
                        members: new.clone(),
                        composite,
                    }
                }
                _ => {
                    let members = new
                        .iter()
                        .map(|m| member_of(self, m))
                        .collect::<Result<Vec<_>, _>>()?;
                    upserted.extend(new.iter().map(|m| (id, *m)));
                    viewed.extend(new.iter().copied());
                    Kind::Composite {
                        members: new.clone(),
                        composite: Box::new(Composite::from_members(
                            self.interner.clone(),
                            members,
                        )),
                    }
                }
            };
            for m in &new {
                self.set_composite_of(*m, id, true);
            }
            self.put_group(r, kind);
            viewed.insert(id);
        }
        for m in rebuilt {
            let Some(Kind::Standard {
                config, composites, ..
            }) = self.groups.get(&m).map(|g| &g.kind)
            else {
                continue;
            };
            let (member, composites) = (config.member.clone(), composites.clone());
            for c in composites {
                if upserted.contains(&(c, m)) {
                    continue;
                }
                if let Some(Kind::Composite { composite, .. }) =
                    self.groups.get_mut(&c).map(|g| &mut g.kind)
                {
                    composite.upsert(member.clone());
                    viewed.insert(c);
                }
            }
        }
        for id in deleted {
            if let Some(g) = self.groups.remove(&id) {
                self.names.remove(&g.meta.name);
                match g.kind {
                    Kind::Composite { members, .. } => {
                        for m in members {
                            self.set_composite_of(m, id, false);
                            viewed.insert(m);
                        }
                    }
                    Kind::Standard { composites, .. } => {
                        for c in composites {
                            if let Some(Kind::Composite {
                                members, composite, ..
                            }) = self.groups.get_mut(&c).map(|g| &mut g.kind)
                            {
                                members.remove(&id);
                                composite.remove(&id.to_string());
                                viewed.insert(c);
                            }
                        }
                    }
                }
                effects.deleted.push(id);
            }
            viewed.remove(&id);
        }
        let keep = self.settings.history_len();
        for (id, entry, version) in history {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            let h = Arc::make_mut(&mut g.history);
            let at = h.partition_point(|e| e.version < version);
            let same = h.get(at).is_some_and(|e| e.version == version);
            match entry {
                Some(e) if same => h[at] = Arc::new(e.clone()),
                Some(e) => h.insert(at, Arc::new(e.clone())),
                None if same => {
                    h.remove(at);
                }
                None => {}
            }
            while h.len() > keep {
                h.pop_front();
            }
            viewed.insert(id);
        }
        // Served snapshots: re-assembled where the record moved on.
        for r in &records {
            let id = r.meta.id;
            let Some(g) = self.groups.get(&id) else {
                continue;
            };
            let s = &g.snapshot;
            if s.version == r.snapshot.version
                && s.body.hash() == r.snapshot.hash
                && s.sources == r.snapshot.sources
                && s.published_ms == r.snapshot.published_ms
            {
                continue;
            }
            let published = Arc::new(self.assemble_recorded(r, &mut blob)?);
            if let Some(g) = self.groups.get_mut(&id) {
                g.snapshot = published.clone();
            }
            effects.published.push((id, published));
        }
        for id in viewed {
            if let Some(v) = self.view_of(id) {
                effects.views.push((id, v));
            }
        }
        Ok(effects)
    }

    /// Inserts or replaces group `r.meta.id` with `kind` and the record's
    /// fields, keeping its snapshot and history (set apart).
    fn put_group(&mut self, r: &GroupRecord, kind: Kind) {
        let id = r.meta.id;
        let certificates = Arc::new(r.certificates.iter().map(|c| (c.id, c.clone())).collect());
        match self.groups.get_mut(&id) {
            Some(g) => {
                if g.meta.name != r.meta.name {
                    self.names.remove(&g.meta.name);
                }
                g.meta = r.meta.clone();
                g.kind = kind;
                // Nodes are each daemon's own soft state: a followed write
                // leaves this daemon's node table as it is.
                g.certificates = certificates;
                g.pin = r.pin.clone();
            }
            None => {
                let snapshot = Arc::new(Published {
                    version: 0,
                    published_ms: 0,
                    body: Body::empty(),
                    deck: Body::empty(),
                    sources: Vec::new(),
                    provenance: Vec::new(),
                });
                self.groups.insert(
                    id,
                    Group {
                        meta: r.meta.clone(),
                        kind,
                        snapshot,
                        nodes: Arc::new(super::NodeTable::restored(r.nodes.iter().cloned(), false)),
                        certificates,
                        history: Arc::default(),
                        pin: r.pin.clone(),
                    },
                );
            }
        }
        self.names.insert(r.meta.name.clone(), id);
    }

    /// Records (or forgets) that standard group `member` is in `composite`.
    fn set_composite_of(&mut self, member: Uuid, composite: Uuid, is_in: bool) {
        if let Some(Kind::Standard { composites, .. }) =
            self.groups.get_mut(&member).map(|g| &mut g.kind)
        {
            if is_in {
                composites.insert(composite);
            } else {
                composites.remove(&composite);
            }
        }
    }

    /// The snapshot a record serves, assembled from its sources (current
    /// members where the blob is the same), checked against its hash.
    fn assemble_recorded(
        &self,
        r: &GroupRecord,
        blob: &mut dyn FnMut(&str) -> Result<Blob, String>,
    ) -> Result<Published, String> {
        let mut members = Vec::with_capacity(r.snapshot.sources.len());
        for (mid, h) in &r.snapshot.sources {
            let current = self.groups.get(mid).and_then(|g| match &g.kind {
                Kind::Standard { config, .. } if &config.hash == h => Some(config.member.clone()),
                _ => None,
            });
            let m = match current {
                Some(m) => m,
                None => {
                    let b = blob(h)?;
                    let info = match self.groups.get(mid) {
                        Some(g) => g.meta.member_info(),
                        None => MemberInfo::unnamed(mid),
                    };
                    Arc::new(Member::build_for(
                        info,
                        &b.bytes,
                        b.format,
                        &self.interner,
                        &self.settings.kong,
                    ))
                }
            };
            members.push(m);
        }
        let body = Body::assemble_kong(members.iter().map(|m| m.as_ref()));
        if body.hash() != r.snapshot.hash {
            return Err(format!(
                "the snapshot of '{}' (version {}) assembles to {}, not its recorded hash {}",
                r.meta.name,
                r.snapshot.version,
                body.hash(),
                r.snapshot.hash
            ));
        }
        Ok(Published {
            version: r.snapshot.version,
            published_ms: r.snapshot.published_ms,
            deck: Body::assemble(members.iter().map(|m| m.as_ref())),
            provenance: named_collections(crate::compose::snapshot::provenance(
                members.iter().map(|m| m.as_ref()),
            )),
            sources: r.snapshot.sources.clone(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::intern::Interner;
    use crate::registry::record::Loaded;
    use crate::registry::{GroupUpdate, Mode, NewGroup, Settings, Tx, transact};

    fn yaml(services: &[(&str, &str)]) -> Blob {
        let mut s = String::from("_format_version: \"3.0\"\nservices:\n");
        for (n, h) in services {
            s.push_str(&format!("- name: {n}\n  host: {h}\n"));
        }
        Blob {
            format: Format::Yaml,
            bytes: s.into_bytes(),
        }
    }

    /// The leader's state as a follower must see it.
    fn state(reg: &Registry) -> Vec<String> {
        reg.groups()
            .map(|g| {
                let report = match &g.kind {
                    Kind::Composite { composite, members } => {
                        format!("{members:?} {:?}", composite.report())
                    }
                    Kind::Standard { config, composites } => {
                        format!("{} {composites:?}", config.hash)
                    }
                };
                let history: Vec<(u64, &str)> = g
                    .history
                    .iter()
                    .map(|e| (e.version, e.hash.as_str()))
                    .collect();
                format!(
                    "{} {} v{} {} {:?} {history:?} {report}",
                    g.meta.id,
                    g.meta.name,
                    g.snapshot.version,
                    g.snapshot.body.hash(),
                    g.snapshot.sources
                )
            })
            .collect()
    }

    /// Every write of a scripted sequence on a leader, replayed on a
    /// follower with `apply_logged`: the two agree after each one.
    #[test]
    fn a_follower_replaying_the_changes_agrees_with_the_leader_after_every_write() {
        let settings = Settings::default();
        let mut leader = Registry::new(Arc::new(Interner::new()), settings.clone());
        let mut blobs: HashMap<String, Blob> = HashMap::new();
        let mut loaded = Loaded::default();
        for c in leader.all_changes() {
            match c {
                Change::PutGroup(r) => loaded.groups.push(*r),
                Change::PutBlob(h, b) => {
                    loaded.blobs.insert(h.clone(), b.clone());
                    blobs.insert(h, b);
                }
                Change::PutHistory(id, e) => loaded.history.entry(id).or_default().push(*e),
                _ => {}
            }
        }
        let mut follower =
            Registry::restore(Arc::new(Interner::new()), settings, loaded).expect("restore");
        assert_eq!(state(&follower), state(&leader));

        let ids: std::cell::RefCell<HashMap<&str, Uuid>> = Default::default();
        let id = |n: &str| ids.borrow()[n];
        let create = |name: &'static str, composite: bool| {
            let ids = &ids;
            move |tx: &mut Tx| {
                let meta = tx.create_group(NewGroup {
                    name: name.into(),
                    cluster_type: composite.then(|| "CLUSTER_TYPE_CONTROL_PLANE_GROUP".into()),
                    ..Default::default()
                })?;
                ids.borrow_mut().insert(name, meta.id);
                Ok(())
            }
        };
        type Step<'a> = Box<dyn FnOnce(&mut Tx) -> crate::registry::Result<()> + 'a>;
        let put = |name: &'static str, services: &'static [(&'static str, &'static str)]| {
            let id = &id;
            Box::new(move |tx: &mut Tx| {
                let blob = yaml(services);
                let g = id(name);
                let info = tx.registry().group(g)?.meta.member_info();
                let member =
                    Member::build(info, &blob.bytes, blob.format, tx.registry().interner());
                tx.put_config(g, blob, member).map(|_| ())
            }) as Step
        };
        let steps: Vec<Step> = vec![
            Box::new(create("blue", false)),
            Box::new(create("yellow", false)),
            Box::new(create("green", false)),
            Box::new(create("shared", true)),
            put("blue", &[("a", "a.internal")]),
            Box::new(|tx: &mut Tx| {
                tx.add_members(id("shared"), &[id("blue"), id("yellow")])
                    .map(|_| ())
            }),
            put("yellow", &[("b", "b.internal")]),
            // A conflict: the composite keeps its last good snapshot.
            put("green", &[("a", "elsewhere")]),
            Box::new(|tx: &mut Tx| tx.add_members(id("shared"), &[id("green")]).map(|_| ())),
            put("blue", &[("a", "a2.internal"), ("c", "c.internal")]),
            Box::new(|tx: &mut Tx| {
                tx.update_group(
                    id("yellow"),
                    GroupUpdate {
                        name: Some("amber".into()),
                        ..Default::default()
                    },
                )
                .map(|_| ())
            }),
            Box::new(|tx: &mut Tx| tx.remove_members(id("shared"), &[id("green")]).map(|_| ())),
            Box::new(create("second", true)),
            Box::new(|tx: &mut Tx| {
                tx.add_members(id("second"), &[id("blue"), id("green")])
                    .map(|_| ())
            }),
            put("green", &[("g", "g.internal")]),
            Box::new(|tx: &mut Tx| tx.delete_group(id("second"))),
            Box::new(|tx: &mut Tx| tx.remove_members(id("shared"), &[id("yellow")]).map(|_| ())),
            Box::new(|tx: &mut Tx| tx.delete_group(id("yellow"))),
        ];
        for (i, step) in steps.into_iter().enumerate() {
            let mut changes = Vec::new();
            transact(
                &mut leader,
                Mode::Apply,
                |effects| {
                    changes = effects.changes.clone();
                    Ok(())
                },
                step,
            )
            .unwrap_or_else(|e| panic!("step {i}: {e}"));
            for c in &changes {
                if let Change::PutBlob(h, b) = c {
                    blobs.insert(h.clone(), b.clone());
                }
            }
            follower
                .apply_logged(&changes, &mut |h| blobs.get(h).cloned())
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
            assert_eq!(state(&follower), state(&leader), "after step {i}");
        }
    }
}
