//! Kept versions and pins (issue 15).
//!
//! Every group keeps its last `snapshot_history` published versions: version,
//! hash, sources (member id, config blob hash), when, the group's state, and
//! the change that made it. The served version is always the last one kept.
//! A kept version is re-assembled from its sources' blobs on demand
//! ([`assemble_version`]); the blobs a kept version names stay in the store.
//!
//! **Pins.** Pinning a group to a kept version V serves V's content until it
//! is unpinned, whatever its members do meanwhile. Versions only ever grow,
//! so a data plane that long-polls with the version it has moves to the pin:
//! unless V's content is what is served already, the pin publishes it again
//! as the next version (its history entry says `pin_of: V`). While pinned
//! nothing else is published; the current merge goes on being computed and
//! the view shows what the pin hides. Unpinning publishes the current merge
//! as the next version if it differs from the pinned content (a composite in
//! conflict goes on serving the pinned content, its last conflict-free one,
//! until its first conflict-free merge).

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::record::{Blob, HistoryEntry, Pin, named_collections};
use super::tx::Undo;
use super::{Group, History, Kind, Published, Refusal, Registry, Result, Tx, now};
use crate::compose::Body;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::State;

/// Versions kept per group unless `--snapshot-history` says otherwise.
pub const DEFAULT_SNAPSHOT_HISTORY: usize = 20;

/// A pin's effect: the pin, and the version now served.
#[derive(Clone, Debug)]
pub struct PinOutcome {
    pub pin: Option<Pin>,
    pub served_version: u64,
    pub served_hash: String,
    /// Whether the write published a new version.
    pub published: bool,
}

/// Assembles a kept version from its sources' config blobs, checking that
/// the bytes hash to what was published. Builds its members with a throwaway
/// interner: nothing of it enters the registry. Pure, so it runs off the
/// writer.
pub fn assemble_version<'b>(
    version: u64,
    hash: &str,
    sources: &[(Uuid, String)],
    blob: impl Fn(&str) -> Option<&'b Blob>,
    info: impl Fn(Uuid) -> MemberInfo,
) -> std::result::Result<Published, String> {
    let interner = Interner::new();
    let mut members = Vec::with_capacity(sources.len());
    for (mid, h) in sources {
        let b = blob(h).ok_or_else(|| {
            format!("version {version}: the config blob {h} of member {mid} is missing")
        })?;
        members.push(Arc::new(Member::build(
            info(*mid),
            &b.bytes,
            b.format,
            &interner,
        )));
    }
    let body = Body::assemble_kong(members.iter().map(|m| m.as_ref()));
    let deck = Body::assemble(members.iter().map(|m| m.as_ref()));
    // A version recorded before snapshots were served in Kong's form has the
    // decK form's hash.
    if body.hash() != hash && deck.hash() != hash {
        return Err(format!(
            "version {version} no longer assembles to its recorded hash {hash} (got {})",
            body.hash()
        ));
    }
    let provenance = named_collections(crate::compose::snapshot::provenance(
        members.iter().map(|m| m.as_ref()),
    ));
    Ok(Published {
        version,
        published_ms: 0,
        body,
        deck,
        sources: sources.to_vec(),
        provenance,
    })
}

/// The refusal for a version the group does not keep.
pub(super) fn not_kept(g: &Group, version: u64) -> Refusal {
    let (oldest, newest) = kept_range(&g.history);
    Refusal::not_found(format!(
        "version {version} of '{}' is not kept: the kept versions are {oldest} to {newest}",
        g.meta.name
    ))
}

/// The oldest and newest kept versions.
pub fn kept_range(h: &History) -> (u64, u64) {
    (
        h.front().map_or(0, |e| e.version),
        h.back().map_or(0, |e| e.version),
    )
}

impl Registry {
    /// A current config's blob by its hash, if some standard group has it.
    pub fn config_blob(&self, hash: &str) -> Option<Blob> {
        self.groups.values().find_map(|g| match &g.kind {
            Kind::Standard { config, .. } if config.hash == hash => Some(config.blob.clone()),
            _ => None,
        })
    }

    /// A group's state now: a composite's, or `OK` for a standard group
    /// (its config is valid, or it was refused).
    pub(super) fn state_of(&self, g: &Group) -> State {
        match &g.kind {
            Kind::Composite { composite, .. } => composite.state(),
            Kind::Standard { .. } => State::Ok,
        }
    }

    /// What the group would publish now without a pin: its sources, and the
    /// hash (none for a composite in conflict, which publishes nothing).
    pub(super) fn current_merge(&self, g: &Group) -> (Vec<(Uuid, String)>, Option<String>) {
        match &g.kind {
            Kind::Standard { config, .. } => (
                vec![(g.meta.id, config.hash.clone())],
                Some(
                    Body::assemble_kong(std::iter::once(config.member.as_ref()))
                        .hash()
                        .to_string(),
                ),
            ),
            Kind::Composite { members, composite } => {
                let sources = members
                    .iter()
                    .filter_map(|m| match &self.groups.get(m)?.kind {
                        Kind::Standard { config, .. } => Some((*m, config.hash.clone())),
                        Kind::Composite { .. } => None,
                    })
                    .collect();
                let hash = (composite.state() == State::Ok)
                    .then(|| composite.assemble_kong().hash().to_string());
                (sources, hash)
            }
        }
    }

    /// The members whose configs the served snapshot does not carry as
    /// they are now: `changed`, `added` (since the served version) or
    /// `removed`, by member id.
    pub(super) fn hidden_members(
        &self,
        g: &Group,
        now: &[(Uuid, String)],
    ) -> Vec<(Uuid, &'static str)> {
        let served: BTreeMap<Uuid, &str> = g
            .snapshot
            .sources
            .iter()
            .map(|(m, h)| (*m, h.as_str()))
            .collect();
        let current: BTreeMap<Uuid, &str> = now.iter().map(|(m, h)| (*m, h.as_str())).collect();
        let mut out = Vec::new();
        for (m, h) in &current {
            match served.get(m) {
                None => out.push((*m, "added")),
                Some(s) if s != h => out.push((*m, "changed")),
                Some(_) => {}
            }
        }
        out.extend(
            served
                .keys()
                .filter(|m| !current.contains_key(m))
                .map(|m| (*m, "removed")),
        );
        out.sort();
        out
    }
}

impl Tx<'_> {
    /// Serves `new`: it becomes the group's snapshot and its newest kept
    /// version (the oldest past `snapshot_history` is dropped). The same
    /// version published again with other sources (the same bytes from
    /// other blobs) replaces its entry's sources only.
    pub(super) fn serve(
        &mut self,
        id: Uuid,
        new: Arc<Published>,
        pin_of: Option<u64>,
    ) -> Result<()> {
        let keep = self.reg.settings.history_len();
        let g = self.reg.group(id)?;
        let mut entry = HistoryEntry {
            version: new.version,
            hash: new.body.hash().to_string(),
            sources: new.sources.clone(),
            published_at: now(),
            state: self.reg.state_of(g),
            change: self.change.clone(),
            actor: self.actor.clone(),
            pin_of,
        };
        if let Some(prev) = g.history.back().filter(|e| e.version == entry.version) {
            entry = HistoryEntry {
                sources: entry.sources,
                ..(**prev).clone()
            };
        }
        let g = self.group_mut(id)?;
        let old_snapshot = std::mem::replace(&mut g.snapshot, new);
        let old_history = g.history.clone();
        let h = Arc::make_mut(&mut g.history);
        if h.back().is_some_and(|e| e.version == entry.version) {
            h.pop_back();
        }
        h.push_back(Arc::new(entry));
        while h.len() > keep {
            h.pop_front();
        }
        self.undo.push(Undo::Snapshot(id, old_snapshot));
        self.history_before
            .entry(id)
            .or_insert_with(|| old_history.clone());
        self.undo.push(Undo::History(id, old_history));
        self.touch(id);
        self.published.insert(id);
        Ok(())
    }

    /// Pins group `id` to its kept `version`, whose content `pinned` is
    /// (assembled off the writer by [`assemble_version`]). Unless that
    /// content is served already, it is published again as the next version.
    pub fn pin(&mut self, id: Uuid, version: u64, pinned: &Published) -> Result<PinOutcome> {
        let g = self.reg.group(id)?;
        let entry = g
            .history
            .iter()
            .find(|e| e.version == version)
            .cloned()
            .ok_or_else(|| not_kept(g, version))?;
        if entry.hash != pinned.body.hash() || entry.sources != pinned.sources {
            return Err(Refusal::conflict(format!(
                "version {version} of '{}' is not the content that was assembled for it; try again",
                g.meta.name
            )));
        }
        let same = g.snapshot.body.hash() == entry.hash && g.snapshot.sources == entry.sources;
        let served_as = if same {
            g.snapshot.version
        } else {
            g.snapshot.version + 1
        };
        let pin = Pin {
            version,
            hash: entry.hash.clone(),
            served_as,
            pinned_at: now(),
            actor: self.actor.clone(),
        };
        let old = g.pin.clone();
        self.undo.push(Undo::Pin(id, old));
        self.group_mut(id)?.pin = Some(pin.clone());
        self.touch(id);
        if !same {
            self.because(format!("pin to version {version}"));
            let new = Arc::new(Published {
                version: served_as,
                published_ms: super::now_ms(),
                body: pinned.body.clone(),
                deck: pinned.deck.clone(),
                sources: entry.sources.clone(),
                provenance: pinned.provenance.clone(),
            });
            self.serve(id, new, Some(version))?;
        }
        Ok(PinOutcome {
            pin: Some(pin),
            served_version: served_as,
            served_hash: entry.hash.clone(),
            published: !same,
        })
    }

    /// Unpins group `id`: the current merge is published as the next version
    /// if it differs from the pinned content (see the module's notes).
    pub fn unpin(&mut self, id: Uuid) -> Result<PinOutcome> {
        let g = self.reg.group(id)?;
        let Some(old) = g.pin.clone() else {
            return Err(Refusal::not_found(format!(
                "control plane '{}' is not pinned",
                g.meta.name
            )));
        };
        let before = g.snapshot.version;
        self.undo.push(Undo::Pin(id, Some(old)));
        self.group_mut(id)?.pin = None;
        self.touch(id);
        self.because("unpin");
        self.republish(id)?;
        let g = self.reg.group(id)?;
        Ok(PinOutcome {
            pin: None,
            served_version: g.snapshot.version,
            served_hash: g.snapshot.body.hash().to_string(),
            published: g.snapshot.version != before,
        })
    }

    /// Restores what an export says group `id` served: `served` exactly (its
    /// version, bytes and sources, assembled and checked by the caller), its
    /// kept entries (trimmed; ending with the served one) and its pin. The
    /// blobs its sources name are kept in the store.
    pub fn restore_served(
        &mut self,
        id: Uuid,
        served: Arc<Published>,
        entries: Vec<HistoryEntry>,
        pin: Option<Pin>,
        blobs: Vec<(String, Blob)>,
    ) -> Result<()> {
        let keep = self.reg.settings.history_len();
        let g = self.reg.group(id)?;
        let hash = served.body.hash().to_string();
        let mut kept: Vec<HistoryEntry> = entries
            .into_iter()
            .filter(|e| e.version <= served.version)
            .collect();
        kept.sort_by_key(|e| e.version);
        kept.dedup_by_key(|e| e.version);
        // The exported entry of the served version, if it is that content;
        // otherwise one that says it came from an import.
        let head_ok = kept.last().is_some_and(|e| {
            e.version == served.version && e.hash == hash && e.sources == served.sources
        });
        if !head_ok {
            if kept.last().is_some_and(|e| e.version == served.version) {
                kept.pop();
            }
            kept.push(HistoryEntry {
                version: served.version,
                hash: hash.clone(),
                sources: served.sources.clone(),
                published_at: now(),
                state: self.reg.state_of(g),
                change: "import".into(),
                actor: self.actor.clone(),
                pin_of: pin.as_ref().map(|p| p.version),
            });
        }
        let excess = kept.len().saturating_sub(keep);
        let history: History = kept.into_iter().skip(excess).map(Arc::new).collect();
        self.blobs
            .extend(blobs.into_iter().map(|(h, b)| (h, b, None)));
        let g = self.group_mut(id)?;
        let old_snapshot = std::mem::replace(&mut g.snapshot, served);
        let old_history = std::mem::replace(&mut g.history, Arc::new(history));
        let old_pin = std::mem::replace(&mut g.pin, pin);
        self.undo.push(Undo::Snapshot(id, old_snapshot));
        self.undo.push(Undo::Pin(id, old_pin));
        self.history_before
            .entry(id)
            .or_insert_with(|| old_history.clone());
        self.undo.push(Undo::History(id, old_history));
        self.touch(id);
        self.published.insert(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::registry::record::{Change, Loaded};
    use crate::registry::{Mode, NewGroup, Restored, Settings, transact};
    use std::collections::HashMap;

    /// What a store would hold after `changes`.
    fn apply(loaded: &mut Loaded, changes: &[Change]) {
        for c in changes {
            match c {
                Change::PutGroup(r) => {
                    loaded.groups.retain(|g| g.meta.id != r.meta.id);
                    loaded.groups.push((**r).clone());
                }
                Change::DeleteGroup(id) => {
                    loaded.groups.retain(|g| g.meta.id != *id);
                    loaded.history.remove(id);
                }
                Change::PutBlob(h, b) => {
                    loaded.blobs.insert(h.clone(), b.clone());
                }
                Change::PutMember(h, m) => {
                    loaded.members.insert(h.clone(), m.to_vec());
                }
                Change::DeleteBlob(h) => {
                    loaded.blobs.remove(h);
                    loaded.members.remove(h);
                }
                // Access control is not what these tests look at.
                Change::PutTeam(_) | Change::DeleteTeam(_) | Change::PutAccessKey(_) => {}
                // Nor are nodes.
                Change::PutNode(..) | Change::DeleteNode(..) => {}
                Change::PutHistory(id, e) => {
                    let h = loaded.history.entry(*id).or_default();
                    h.retain(|x| x.version != e.version);
                    h.push((**e).clone());
                }
                Change::DeleteHistory(id, v) => {
                    if let Some(h) = loaded.history.get_mut(id) {
                        h.retain(|x| x.version != *v);
                    }
                }
            }
        }
    }

    fn yaml(name: &str) -> Blob {
        Blob {
            format: Format::Yaml,
            bytes: format!("_format_version: \"3.0\"\nservices:\n- name: {name}\n  host: h\n")
                .into_bytes(),
        }
    }

    struct World {
        reg: Registry,
        store: Loaded,
    }

    impl World {
        fn new(keep: usize) -> World {
            let settings = Settings {
                snapshot_history: keep,
                ..Settings::default()
            };
            let reg = Registry::new(Arc::new(Interner::new()), settings);
            let mut store = Loaded::default();
            apply(&mut store, &reg.all_changes());
            World { reg, store }
        }

        fn write<R>(&mut self, f: impl FnOnce(&mut Tx) -> Result<R>) -> Result<R> {
            let store = &mut self.store;
            transact(
                &mut self.reg,
                Mode::Apply,
                |e| {
                    apply(store, &e.changes);
                    Ok(())
                },
                f,
            )
            .map(|(r, _)| r)
        }

        fn put(&mut self, id: Uuid, name: &str) {
            let blob = yaml(name);
            let info = self.reg.group(id).unwrap().meta.member_info();
            let member = Member::build(info, &blob.bytes, blob.format, self.reg.interner());
            self.write(|tx| tx.put_config(id, blob, member)).unwrap();
        }

        fn assembled(&self, id: Uuid, version: u64) -> Published {
            let e = self
                .reg
                .group(id)
                .unwrap()
                .history
                .iter()
                .find(|e| e.version == version)
                .cloned()
                .unwrap();
            assemble_version(
                version,
                &e.hash,
                &e.sources,
                |h| self.store.blobs.get(h),
                MemberInfo::unnamed,
            )
            .unwrap()
        }

        fn restart(&mut self, keep: usize) {
            let settings = Settings {
                snapshot_history: keep,
                ..Settings::default()
            };
            let loaded = Loaded {
                groups: self.store.groups.clone(),
                blobs: self.store.blobs.clone(),
                members: self.store.members.clone(),
                history: self.store.history.clone(),
                ..Loaded::default()
            };
            self.reg = Registry::restore(Arc::new(Interner::new()), settings, loaded).unwrap();
            let tidy = self.reg.take_restore_changes();
            apply(&mut self.store, &tidy);
            apply(&mut self.store, &self.reg.take_frozen_changes());
        }

        fn versions(&self, id: Uuid) -> Vec<u64> {
            let g = self.reg.group(id).unwrap();
            g.history.iter().map(|e| e.version).collect()
        }
    }

    /// A clean config's record carries this binary's validation stamp; a
    /// record without it (an older store, another binary) is restamped by
    /// the restore that checked it in full, and a restore that trusted it
    /// writes nothing back.
    #[test]
    fn clean_configs_are_stamped_and_a_restore_restamps_only_what_it_checked() {
        let stamp = crate::member::validation_stamp(&crate::config::KongTarget::default());
        assert!(stamp.is_some(), "a test binary can be told by its file");
        let mut w = World::new(5);
        let id = standard(&mut w, "stamped");
        w.put(id, "svc");
        let rec = |w: &World| {
            w.store
                .groups
                .iter()
                .find(|r| r.meta.id == id)
                .cloned()
                .unwrap()
        };
        assert_eq!(rec(&w).validated, stamp);
        // Trusted: nothing to write back.
        w.restart(5);
        assert_eq!(rec(&w).validated, stamp);
        let before = w.reg.group(id).unwrap().snapshot.body.hash().to_string();
        // As an older store (or another binary) left it: checked in full,
        // then restamped; the snapshot is the same either way.
        for r in &mut w.store.groups {
            r.validated = None;
        }
        let settings = Settings::default();
        let loaded = Loaded {
            groups: w.store.groups.clone(),
            blobs: w.store.blobs.clone(),
            history: w.store.history.clone(),
            ..Loaded::default()
        };
        let mut reg = Registry::restore(Arc::new(Interner::new()), settings, loaded).unwrap();
        let tidy = reg.take_restore_changes();
        let restamped: Vec<_> = tidy
            .iter()
            .filter_map(|c| match c {
                Change::PutGroup(r) => Some((r.meta.id, r.validated.clone())),
                _ => None,
            })
            .collect();
        assert!(restamped.contains(&(id, stamp.clone())), "{restamped:?}");
        assert_eq!(
            reg.group(id).unwrap().snapshot.body.hash().to_string(),
            before
        );
    }

    /// Every clean config's member is frozen beside its blob, and dropped
    /// with it; a restart thaws them all and writes nothing back. A frozen
    /// member that does not decode is built instead, frozen anew, and
    /// serves the same snapshot.
    #[test]
    fn members_are_frozen_with_their_blobs_and_thawed_at_restart() {
        let mut w = World::new(2);
        let blue = standard(&mut w, "blue");
        let green = standard(&mut w, "green");
        for i in 0..4 {
            w.put(blue, &format!("svc-{i}"));
        }
        w.put(green, "g");
        fn keys<V>(m: &HashMap<String, V>) -> Vec<&String> {
            let mut k: Vec<&String> = m.keys().collect();
            k.sort();
            k
        }
        assert_eq!(keys(&w.store.members), keys(&w.store.blobs));
        assert!(!w.store.members.contains_key(&yaml("svc-0").hash()));

        w.restart(2);
        let standard_groups = 3; // blue, green and the default group
        assert_eq!(
            w.reg.restored(),
            Restored {
                thawed: standard_groups,
                built: 0,
                stale: 0
            }
        );
        let served = |w: &World| w.reg.group(blue).unwrap().snapshot.body.hash().to_string();
        let before = served(&w);

        let h = yaml("svc-3").hash();
        w.store.members.get_mut(&h).unwrap()[40] ^= 1;
        w.restart(2);
        assert_eq!(
            w.reg.restored(),
            Restored {
                thawed: standard_groups - 1,
                built: 1,
                stale: 0
            }
        );
        assert_eq!(served(&w), before);
        w.restart(2);
        assert_eq!(
            w.reg.restored().built,
            0,
            "the rebuilt member was frozen anew"
        );
    }

    fn standard(w: &mut World, name: &str) -> Uuid {
        w.write(|tx| {
            tx.create_group(NewGroup {
                name: name.into(),
                ..Default::default()
            })
        })
        .unwrap()
        .id
    }

    #[test]
    fn history_is_trimmed_durable_and_its_blobs_stay_until_dropped() {
        let mut w = World::new(3);
        let blue = standard(&mut w, "blue");
        for i in 0..5 {
            w.put(blue, &format!("svc-{i}"));
        }
        assert_eq!(w.versions(blue), vec![4, 5, 6]);
        let stored: Vec<u64> = {
            let mut v: Vec<u64> = w.store.history[&blue].iter().map(|e| e.version).collect();
            v.sort();
            v
        };
        assert_eq!(
            stored,
            vec![4, 5, 6],
            "the store keeps what the registry keeps"
        );
        // Every kept version's blobs are stored; dropped ones' are gone.
        assert_eq!(w.store.blobs.len(), 3 + 1, "3 kept configs + the default's");
        for v in [4, 5, 6] {
            let p = w.assembled(blue, v);
            assert_eq!(p.version, v);
        }
        assert!(!w.store.blobs.contains_key(&yaml("svc-0").hash()));

        w.restart(3);
        assert_eq!(w.versions(blue), vec![4, 5, 6]);
        assert!(w.reg.take_restore_changes().is_empty());
        w.restart(2);
        assert_eq!(w.versions(blue), vec![5, 6]);
        let mut stored: Vec<u64> = w.store.history[&blue].iter().map(|e| e.version).collect();
        stored.sort();
        assert_eq!(stored, vec![5, 6], "trimmed at start-up, for good");
    }

    #[test]
    fn a_store_without_history_gets_its_served_version_as_the_first_entry() {
        let mut w = World::new(20);
        let blue = standard(&mut w, "blue");
        w.put(blue, "svc");
        w.store.history.clear();
        w.restart(20);
        assert_eq!(w.versions(blue), vec![2]);
        let e = w.reg.group(blue).unwrap().history[0].clone();
        assert_eq!(e.change, "restored");
        assert_eq!(w.store.history[&blue].len(), 1, "and it is stored");
    }

    #[test]
    fn pin_serves_the_kept_version_undo_leaves_no_trace_and_unpin_moves_on() {
        let mut w = World::new(20);
        let blue = standard(&mut w, "blue");
        w.put(blue, "one");
        w.put(blue, "two");
        let v2 = w.assembled(blue, 2);
        // A pin whose commit fails changes nothing.
        let before = (
            w.versions(blue),
            w.reg.group(blue).unwrap().snapshot.version,
        );
        let failed = transact(
            &mut w.reg,
            Mode::Apply,
            |_| Err("disk full".into()),
            |tx| tx.pin(blue, 2, &v2),
        );
        assert!(failed.is_err());
        let g = w.reg.group(blue).unwrap();
        assert_eq!((w.versions(blue), g.snapshot.version), before);
        assert!(g.pin.is_none());

        let out = w.write(|tx| tx.pin(blue, 2, &v2)).unwrap();
        assert!(out.published);
        assert_eq!(out.served_version, 4);
        let g = w.reg.group(blue).unwrap();
        assert_eq!(g.snapshot.version, 4);
        assert_eq!(g.snapshot.body.hash(), v2.body.hash());
        assert_eq!(g.history.back().unwrap().pin_of, Some(2));
        // Members change: nothing is published.
        w.put(blue, "three");
        let g = w.reg.group(blue).unwrap();
        assert_eq!(g.snapshot.version, 4);
        let view = w.reg.view(g);
        let pin = view.pin.as_ref().unwrap();
        assert_eq!(pin.hidden, vec![(blue, "changed")]);
        assert_ne!(pin.current_hash.as_deref(), Some(v2.body.hash()));
        // Durable.
        w.restart(20);
        let g = w.reg.group(blue).unwrap();
        assert_eq!(g.pin.as_ref().map(|p| p.version), Some(2));
        assert_eq!(g.snapshot.version, 4);
        // Unpin: the current config, as version 5.
        let out = w.write(|tx| tx.unpin(blue)).unwrap();
        assert!(out.published);
        assert_eq!(out.served_version, 5);
        assert_eq!(w.versions(blue), vec![1, 2, 3, 4, 5]);
        assert!(w.write(|tx| tx.unpin(blue)).is_err(), "not pinned any more");
    }
}
