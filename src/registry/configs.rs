//! Member configs: installing one on a standard group, re-merging the
//! composites it is in, publishing new snapshot versions, and keeping the
//! interner small.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use uuid::Uuid;

use super::record::Blob;
use super::record::named_collections;
use super::tx::Undo;
use super::{Config, GroupMeta, Kind, Published, Refusal, Registry, Result, Tx};
use crate::compose::{Body, Composite, EMPTY_CONFIG};
use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::{ErrorKind, MemberError, Report, State};

/// `env`, `aws`, … are interned by every key index.
/// The field of the conflict [`Tx::put_config_if`] answers when the config
/// changed since it was read.
pub const STALE_FIELD: &str = "config_hash";

const BUILTIN_VAULT_COUNT: usize = crate::config::BUILTIN_VAULTS.len();

/// The answer to a config write: applied, or refused for its member errors.
#[derive(Clone, Debug)]
pub enum ConfigWrite {
    Applied(ConfigOutcome),
    /// Every member error, as the composites the group is in name them;
    /// nothing was changed.
    Invalid(Vec<MemberError>),
}

/// What a config write would do (dry run) or did.
#[derive(Clone, Debug)]
pub struct ConfigOutcome {
    /// The group's own snapshot version after the write.
    pub version: u64,
    pub hash: String,
    /// Each composite the group belongs to, and its report after the change.
    pub composites: Vec<CompositeOutcome>,
    /// The member as written, for what the answer derives on demand.
    member: Arc<Member>,
}

impl ConfigOutcome {
    /// The names of the plugins the config configures, at any nesting depth,
    /// sorted and once each (what a data plane must have to load it). Reads
    /// the member's serialized entities: for dry runs, not every write.
    pub fn configured_plugins(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for chunk in self.member.kong() {
            let mut doc = Vec::with_capacity(chunk.bytes.len() + 2);
            doc.push(b'[');
            doc.extend_from_slice(&chunk.bytes);
            doc.push(b']');
            let Ok(entities) = serde_json::from_slice::<serde_json::Value>(&doc) else {
                continue;
            };
            let is_plugins = chunk.coll == crate::config::Coll::Plugins;
            plugin_names(&entities, is_plugins, &mut names);
        }
        names.into_iter().collect()
    }
}

/// Collects `name` of every plugin entity in `v`; `plugins` says `v` is a
/// list of plugins itself.
fn plugin_names(
    v: &serde_json::Value,
    plugins: bool,
    out: &mut std::collections::BTreeSet<String>,
) {
    match v {
        serde_json::Value::Array(items) => {
            for item in items {
                if plugins && let Some(n) = item.get("name").and_then(serde_json::Value::as_str) {
                    out.insert(n.to_string());
                }
                plugin_names(item, false, out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                if child.is_array() {
                    plugin_names(child, k == "plugins", out);
                }
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
pub struct CompositeOutcome {
    pub id: Uuid,
    pub name: String,
    pub report: Report,
}

impl Registry {
    /// An invalid member's errors, one per mistake: an unresolved reference
    /// whose target another member of any of `composites` holds is named as
    /// a cross-member reference, once.
    fn errors_in_context(
        &self,
        member: &Member,
        composites: &std::collections::BTreeSet<Uuid>,
    ) -> Vec<MemberError> {
        let mut errors = member.errors.clone();
        for c in composites {
            if let Some(Kind::Composite { composite, .. }) = self.groups.get(c).map(|g| &g.kind) {
                for (e, seen) in errors.iter_mut().zip(composite.errors_of(member)) {
                    if seen.kind == ErrorKind::CrossMemberReference
                        && e.kind != ErrorKind::CrossMemberReference
                    {
                        *e = seen;
                    }
                }
            }
        }
        errors
    }

    /// The interner only ever grows: every distinct name, id or key it has
    /// seen stays, even from refused configs and dry runs. When what it holds
    /// is mostly garbage (over twice what the current members use, and more
    /// than `min` strings), re-intern every member into a fresh one, as a
    /// restart would. Returns (strings before, strings after).
    pub fn compact_interner(&mut self, min: usize) -> Option<(usize, usize)> {
        let before = self.interner.len();
        let live: usize = self
            .groups
            .values()
            .filter_map(|g| match &g.kind {
                Kind::Standard { config, .. } => Some(config.member.symbol_count()),
                Kind::Composite { .. } => None,
            })
            .sum::<usize>()
            + BUILTIN_VAULT_COUNT;
        if before <= min || before <= 2 * live {
            return None;
        }
        let fresh = Arc::new(Interner::new());
        let standard: Vec<(Uuid, MemberInfo, Arc<Config>)> = self
            .groups
            .values()
            .filter_map(|g| match &g.kind {
                Kind::Standard { config, .. } => {
                    Some((g.meta.id, g.meta.member_info(), config.clone()))
                }
                Kind::Composite { .. } => None,
            })
            .collect();
        let rebuilt: HashMap<Uuid, Arc<Config>> = standard
            .into_par_iter()
            .map(|(id, info, c)| {
                let member = Member::build_for(
                    info,
                    &c.blob.bytes,
                    c.blob.format,
                    &fresh,
                    &self.settings.kong,
                );
                (
                    id,
                    Arc::new(Config {
                        hash: c.hash.clone(),
                        blob: c.blob.clone(),
                        member: Arc::new(member),
                    }),
                )
            })
            .collect();
        for g in self.groups.values_mut() {
            match &mut g.kind {
                Kind::Standard { config, .. } => {
                    if let Some(c) = rebuilt.get(&g.meta.id) {
                        *config = c.clone();
                    }
                }
                Kind::Composite { members, composite } => {
                    let ms = members
                        .iter()
                        .filter_map(|m| rebuilt.get(m))
                        .map(|c| c.member.clone());
                    **composite = Composite::from_members(fresh.clone(), ms);
                }
            }
        }
        self.interner = fresh;
        Some((before, self.interner.len()))
    }

    pub(super) fn empty_config(&self, meta: &GroupMeta) -> Arc<Config> {
        let blob = Blob {
            format: Format::Json,
            bytes: EMPTY_CONFIG.to_vec(),
        };
        let member = Member::build_for(
            meta.member_info(),
            &blob.bytes,
            blob.format,
            &self.interner,
            &self.settings.kong,
        );
        Arc::new(Config {
            hash: blob.hash(),
            blob,
            member: Arc::new(member),
        })
    }
}

impl Tx<'_> {
    /// [`Tx::put_config`] only if the group's config is still the one whose
    /// hash is `expected`; else a conflict on `config_hash`, which the caller
    /// answers by reading again. Checked in the writer, so no write between
    /// the caller's read and this one is lost.
    pub fn put_config_if(
        &mut self,
        id: Uuid,
        blob: Blob,
        member: Member,
        expected: &str,
    ) -> Result<ConfigWrite> {
        let g = self.reg.group(id)?;
        if let Kind::Standard { config, .. } = &g.kind
            && config.hash != expected
        {
            let mut r = Refusal::conflict(format!(
                "the config of control plane '{}' changed while this write was prepared",
                g.meta.name
            ));
            r.field = Some(STALE_FIELD.into());
            return Err(r);
        }
        self.put_config(id, blob, member)
    }

    /// Replaces a standard group's config. The config is judged alone (and
    /// against each composite, which names cross-member references) before
    /// anything is touched: an invalid one is refused as a value and changes
    /// nothing. `member` was built outside the writer; it is rebuilt here
    /// only if the group was renamed or the interner replaced meanwhile.
    pub fn put_config(&mut self, id: Uuid, blob: Blob, member: Member) -> Result<ConfigWrite> {
        let g = self.reg.group(id)?;
        let composites = match &g.kind {
            Kind::Composite { .. } => {
                return Err(Refusal::read_only(format!(
                    "control plane group '{}' is read-only: write the config of one of its members instead",
                    g.meta.name
                )));
            }
            Kind::Standard { composites, .. } => composites.clone(),
        };
        let info = g.meta.member_info();
        let member = if member.info.name == info.name
            && member.info.is_default == info.is_default
            && member.interner_id == self.reg.interner.id()
        {
            member
        } else {
            Member::build_for(
                info,
                &blob.bytes,
                blob.format,
                &self.reg.interner,
                &self.reg.settings.kong,
            )
        };
        if !member.is_valid() {
            return Ok(ConfigWrite::Invalid(
                self.reg.errors_in_context(&member, &composites),
            ));
        }
        let config = Arc::new(Config {
            hash: blob.hash(),
            blob,
            member: Arc::new(member),
        });
        self.blobs.push((
            config.hash.clone(),
            config.blob.clone(),
            Some(config.member.clone()),
        ));
        self.set_config(id, config)?;
        Ok(ConfigWrite::Applied(self.config_outcome(id)?))
    }

    fn config_outcome(&self, id: Uuid) -> Result<ConfigOutcome> {
        let g = self.reg.group(id)?;
        let Kind::Standard { composites, .. } = &g.kind else {
            return Err(Refusal::invalid("not a standard group"));
        };
        let mut out = Vec::new();
        for c in composites {
            let cg = self.reg.group(*c)?;
            out.push(CompositeOutcome {
                id: *c,
                name: cg.meta.name.clone(),
                report: self.reg.composite_report(*c)?,
            });
        }
        let Kind::Standard { config, .. } = &g.kind else {
            return Err(Refusal::invalid("not a standard group"));
        };
        Ok(ConfigOutcome {
            version: g.snapshot.version,
            hash: g.snapshot.body.hash().to_string(),
            composites: out,
            member: Arc::clone(&config.member),
        })
    }

    /// Installs `config` on a standard group and re-merges every composite it is in.
    pub(super) fn set_config(&mut self, id: Uuid, config: Arc<Config>) -> Result<()> {
        let name = self.reg.group(id)?.meta.name.clone();
        self.because(format!("config of '{name}'"));
        let composites: Vec<Uuid> = match &mut self.group_mut(id)?.kind {
            Kind::Standard {
                config: slot,
                composites,
            } => {
                let old = std::mem::replace(slot, config.clone());
                let comps = composites.iter().copied().collect();
                self.undo.push(Undo::Config(id, old));
                comps
            }
            Kind::Composite { .. } => return Err(Refusal::invalid("not a standard group")),
        };
        self.touch(id);
        self.republish(id)?;
        for c in composites {
            // Its report changes even when its snapshot does not (a conflict
            // keeps the last good one), so readers must see it anew.
            self.viewed.insert(c);
            if let Kind::Composite { composite, .. } = &mut self.group_mut(c)?.kind {
                let prev = composite.upsert(config.member.clone());
                self.undo
                    .push(Undo::Upserted(c, config.member.info.id.clone(), prev));
            }
            self.republish(c)?;
        }
        Ok(())
    }

    /// Publishes a new snapshot version if the group's effective config changed
    /// (for a composite: only while it is conflict-free; never while pinned:
    /// the pin is served, and the view shows what it hides). Each new version
    /// is kept in the group's history.
    pub(super) fn republish(&mut self, id: Uuid) -> Result<()> {
        let g = self.reg.group(id)?;
        if g.pin.is_some() {
            self.viewed.insert(id);
            return Ok(());
        }
        let (body, sources, members): (Body, Vec<(Uuid, String)>, Vec<Arc<Member>>) = match &g.kind
        {
            Kind::Standard { config, .. } => (
                Body::assemble_kong(std::iter::once(config.member.as_ref())),
                vec![(id, config.hash.clone())],
                vec![config.member.clone()],
            ),
            Kind::Composite { composite, .. } => {
                if composite.state() != State::Ok {
                    return Ok(());
                }
                let members: Vec<Arc<Member>> = composite.members().cloned().collect();
                let sources = members
                    .iter()
                    .filter_map(|m| {
                        let mid = Uuid::parse_str(&m.info.id).ok()?;
                        match &self.reg.groups.get(&mid)?.kind {
                            Kind::Standard { config, .. } => Some((mid, config.hash.clone())),
                            Kind::Composite { .. } => None,
                        }
                    })
                    .collect();
                (composite.assemble_kong(), sources, members)
            }
        };
        if body.hash() == g.snapshot.body.hash() && sources == g.snapshot.sources {
            return Ok(());
        }
        let version = if body.hash() == g.snapshot.body.hash() {
            g.snapshot.version
        } else {
            g.snapshot.version + 1
        };
        let provenance = named_collections(crate::compose::snapshot::provenance(
            members.iter().map(|m| m.as_ref()),
        ));
        let new = Arc::new(Published {
            version,
            published_ms: super::now_ms(),
            body,
            deck: Body::assemble(members.iter().map(|m| m.as_ref())),
            sources,
            provenance,
        });
        self.serve(id, new, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewGroup, Settings};

    fn yaml(names: &[&str]) -> Blob {
        let mut s = String::from("_format_version: \"3.0\"\nservices:\n");
        for n in names {
            s.push_str(&format!("- name: {n}\n  host: {n}.internal\n"));
        }
        Blob {
            format: Format::Yaml,
            bytes: s.into_bytes(),
        }
    }

    fn put(reg: &mut Registry, id: Uuid, blob: Blob, interner: &Interner) {
        let info = reg.group(id).unwrap().meta.member_info();
        let member = Member::build(info, &blob.bytes, blob.format, interner);
        let mut tx = reg.begin();
        tx.put_config(id, blob, member).unwrap();
        drop(tx);
    }

    #[test]
    fn compaction_keeps_every_answer_and_old_members_are_rebuilt() {
        let mut reg = Registry::new(Arc::new(Interner::new()), Settings::default());
        let mut tx = reg.begin();
        let comp = tx
            .create_group(NewGroup {
                name: "shared".into(),
                cluster_type: Some("CLUSTER_TYPE_CONTROL_PLANE_GROUP".into()),
                ..Default::default()
            })
            .unwrap()
            .id;
        let blue = tx
            .create_group(NewGroup {
                name: "blue".into(),
                ..Default::default()
            })
            .unwrap()
            .id;
        let yellow = tx
            .create_group(NewGroup {
                name: "yellow".into(),
                ..Default::default()
            })
            .unwrap()
            .id;
        tx.add_members(comp, &[blue, yellow]).unwrap();
        drop(tx);
        let old = reg.interner().clone();
        // Churn: many names that no config keeps.
        for round in 0..20 {
            let names: Vec<String> = (0..50).map(|i| format!("churn-{round}-{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            put(&mut reg, blue, yaml(&refs), &old);
        }
        put(&mut reg, blue, yaml(&["shared-svc", "blue-only"]), &old);
        put(&mut reg, yellow, yaml(&["shared-svc"]), &old);
        let report = reg.composite_report(comp).unwrap();
        assert_eq!(report.conflicts.len(), 1);
        let snapshot = reg.group(comp).unwrap().snapshot.body.hash().to_string();

        let (before, after) = reg.compact_interner(0).expect("mostly garbage: compacted");
        assert!(after < before / 4, "{before} -> {after}");
        assert_ne!(reg.interner().id(), old.id());
        assert_eq!(reg.composite_report(comp).unwrap(), report);
        assert_eq!(reg.group(comp).unwrap().snapshot.body.hash(), snapshot);
        // The incrementally kept composite still equals a fresh merge.
        let Kind::Composite { composite, .. } = &reg.group(comp).unwrap().kind else {
            unreachable!()
        };
        let fresh = Composite::from_members(
            reg.interner().clone(),
            composite.members().cloned().collect::<Vec<_>>(),
        );
        assert_eq!(composite.report(), fresh.report());
        assert_eq!(composite.assemble().to_vec(), fresh.assemble().to_vec());

        // A member built with the old interner (in flight during compaction)
        // is rebuilt, so its keys still meet the others'.
        put(&mut reg, yellow, yaml(&["blue-only"]), &old);
        let r = reg.composite_report(comp).unwrap();
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert_eq!(r.conflicts[0].value, "blue-only");
        assert!(reg.compact_interner(0).is_none(), "nothing left to drop");
    }
}
