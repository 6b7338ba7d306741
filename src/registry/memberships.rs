//! Composite memberships and their rules (README, "The daemon"): all of a request's
//! members enter or leave, or (on any refusal) none.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::tx::Undo;
use super::{ClusterType, Kind, Refusal, Result, Tx};
use crate::report::Report;

/// The membership limits (the README lists them).
pub const MAX_MEMBERS: usize = 256;
pub const MAX_PER_REQUEST: usize = 50;
pub const MAX_COMPOSITES_PER_GROUP: usize = 5;

impl Tx<'_> {
    fn composite_members(&self, cid: Uuid) -> Result<&BTreeSet<Uuid>> {
        let g = self.reg.group(cid)?;
        match &g.kind {
            Kind::Composite { members, .. } => Ok(members),
            Kind::Standard { .. } => Err(Refusal::invalid(format!(
                "control plane '{}' is not a control plane group (composite): only composites have members",
                g.meta.name
            ))),
        }
    }

    fn check_request_ids(ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Err(Refusal::invalid(
                "`members` must list at least one control plane",
            ));
        }
        if ids.len() > MAX_PER_REQUEST {
            return Err(Refusal::invalid(format!(
                "one request can add or remove at most {MAX_PER_REQUEST} members; this one lists {}",
                ids.len()
            )));
        }
        let unique: BTreeSet<&Uuid> = ids.iter().collect();
        if unique.len() != ids.len() {
            return Err(Refusal::invalid(
                "`members` lists the same control plane twice",
            ));
        }
        Ok(())
    }

    /// Adds members to a composite: all of them, or (on any refusal) none.
    pub fn add_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        let current = self.composite_members(cid)?.clone();
        let cname = self.reg.group(cid)?.meta.name.clone();
        if current.len() + ids.len() > MAX_MEMBERS {
            return Err(Refusal::conflict(format!(
                "composite '{cname}' has {} members; adding {} would pass the limit of {MAX_MEMBERS}",
                current.len(),
                ids.len()
            )));
        }
        for id in ids {
            let g = self.reg.group(*id).map_err(|_| {
                Refusal::invalid(format!("no control plane with id {id} (nothing was added)"))
            })?;
            let name = &g.meta.name;
            match (&g.kind, g.meta.cluster_type) {
                (Kind::Composite { .. }, _) => {
                    return Err(Refusal::invalid(format!(
                        "'{name}' is a composite: a composite can't be a member of a composite"
                    )));
                }
                (_, ClusterType::K8sIngressController) => {
                    return Err(Refusal::invalid(format!(
                        "'{name}' is a Kong Ingress Controller group, which can't be a member of a composite"
                    )));
                }
                (Kind::Standard { composites, .. }, _) => {
                    if current.contains(id) {
                        return Err(Refusal::conflict(format!(
                            "'{name}' is already a member of '{cname}'"
                        )));
                    }
                    if composites.len() >= MAX_COMPOSITES_PER_GROUP {
                        return Err(Refusal::conflict(format!(
                            "'{name}' is already a member of {MAX_COMPOSITES_PER_GROUP} composites, the most a group can join"
                        )));
                    }
                    let active = self.reg.active_nodes(g);
                    if active > 0 {
                        return Err(Refusal::conflict(format!(
                            "'{name}' has {active} connected runtime instance(s): a member's instances must connect to the composite, so disconnect them first"
                        )));
                    }
                }
            }
        }
        self.undo.push(Undo::Members(cid, current));
        for id in ids {
            let Kind::Standard { config, composites } = &self.reg.group(*id)?.kind else {
                continue;
            };
            let (member, before) = (config.member.clone(), composites.clone());
            self.undo.push(Undo::Composites(*id, before));
            if let Kind::Standard { composites, .. } = &mut self.group_mut(*id)?.kind {
                composites.insert(cid);
            }
            self.touch(*id);
            if let Kind::Composite { members, composite } = &mut self.group_mut(cid)?.kind {
                members.insert(*id);
                let prev = composite.upsert(member.clone());
                self.undo
                    .push(Undo::Upserted(cid, member.info.id.clone(), prev));
            }
        }
        self.touch(cid);
        self.because(format!("members added: {}", self.names_of(ids)));
        self.republish(cid)?;
        self.reg.composite_report(cid)
    }

    pub fn remove_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        let current = self.composite_members(cid)?.clone();
        for id in ids {
            if !current.contains(id) {
                let what = self
                    .reg
                    .groups
                    .get(id)
                    .map(|g| format!("'{}'", g.meta.name))
                    .unwrap_or_else(|| id.to_string());
                return Err(Refusal::invalid(format!(
                    "{what} is not a member of this composite (nothing was removed)"
                )));
            }
        }
        self.undo.push(Undo::Members(cid, current));
        for id in ids {
            if let Kind::Standard { composites, .. } = &self.reg.group(*id)?.kind {
                let before = composites.clone();
                self.undo.push(Undo::Composites(*id, before));
            }
            if let Kind::Standard { composites, .. } = &mut self.group_mut(*id)?.kind {
                composites.remove(&cid);
            }
            self.touch(*id);
            if let Kind::Composite { members, composite } = &mut self.group_mut(cid)?.kind {
                members.remove(id);
                if let Some(old) = composite.remove(&id.to_string()) {
                    self.undo.push(Undo::Removed(cid, old));
                }
            }
        }
        self.touch(cid);
        self.because(format!("members removed: {}", self.names_of(ids)));
        self.republish(cid)?;
        self.reg.composite_report(cid)
    }

    /// `'blue', 'yellow'`, for history entries.
    fn names_of(&self, ids: &[Uuid]) -> String {
        ids.iter()
            .map(|id| {
                self.reg
                    .groups
                    .get(id)
                    .map_or_else(|| id.to_string(), |g| format!("'{}'", g.meta.name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
