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
            ))
            .on("id")),
        }
    }

    fn check_request_ids(ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Err(
                Refusal::invalid("`members` must list at least one control plane").on("members"),
            );
        }
        if ids.len() > MAX_PER_REQUEST {
            return Err(Refusal::invalid(format!(
                "one request can add or remove at most {MAX_PER_REQUEST} members; this one lists {}",
                ids.len()
            ))
            .on("members"));
        }
        Self::check_unique(ids)
    }

    fn check_unique(ids: &[Uuid]) -> Result<()> {
        let mut seen = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !seen.insert(id) {
                return Err(
                    Refusal::invalid("`members` lists the same control plane twice")
                        .on(format!("members[{i}].id")),
                );
            }
        }
        Ok(())
    }

    /// Adds members to a composite: all of them, or (on any refusal) none.
    pub fn add_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        self.enter(cid, ids, ids)?;
        self.because(format!("members added: {}", self.names_of(ids)));
        self.settle(cid)
    }

    pub fn remove_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_request_ids(ids)?;
        self.leave(cid, ids, ids)?;
        self.because(format!("members removed: {}", self.names_of(ids)));
        self.settle(cid)
    }

    /// Makes `ids` the composite's exact member list (Konnect's upsert): the
    /// others leave, the new ones enter, at most [`MAX_PER_REQUEST`] of each;
    /// all of it, or (on any refusal) none.
    pub fn set_members(&mut self, cid: Uuid, ids: &[Uuid]) -> Result<Report> {
        Self::check_unique(ids)?;
        let current = self.composite_members(cid)?.clone();
        if ids.len() > MAX_MEMBERS {
            return Err(Refusal::invalid(format!(
                "a composite has at most {MAX_MEMBERS} members; this request lists {}",
                ids.len()
            ))
            .on("members"));
        }
        let leaving: Vec<Uuid> = current
            .iter()
            .filter(|m| !ids.contains(m))
            .copied()
            .collect();
        let entering: Vec<Uuid> = ids
            .iter()
            .filter(|m| !current.contains(m))
            .copied()
            .collect();
        for (what, n) in [("add", entering.len()), ("remove", leaving.len())] {
            if n > MAX_PER_REQUEST {
                return Err(Refusal::invalid(format!(
                    "one request can add or remove at most {MAX_PER_REQUEST} members; this one would {what} {n}"
                ))
                .on("members"));
            }
        }
        if leaving.is_empty() && entering.is_empty() {
            return self.reg.composite_report(cid);
        }
        if !leaving.is_empty() {
            self.leave(cid, &leaving, ids)?;
        }
        if !entering.is_empty() {
            self.enter(cid, &entering, ids)?;
        }
        self.because(format!("members set: {}", self.names_of(ids)));
        self.settle(cid)
    }

    /// The composite after its members changed: persisted, republished, judged.
    fn settle(&mut self, cid: Uuid) -> Result<Report> {
        self.touch(cid);
        self.republish(cid)?;
        self.reg.composite_report(cid)
    }

    /// `ids` enter composite `cid`; `request` is the member list as sent,
    /// to name the one at fault.
    fn enter(&mut self, cid: Uuid, ids: &[Uuid], request: &[Uuid]) -> Result<()> {
        let current = self.composite_members(cid)?.clone();
        let cname = self.reg.group(cid)?.meta.name.clone();
        if current.len() + ids.len() > MAX_MEMBERS {
            return Err(Refusal::conflict(format!(
                "composite '{cname}' has {} members; adding {} would pass the limit of {MAX_MEMBERS}",
                current.len(),
                ids.len()
            ))
            .on("members"));
        }
        for id in ids {
            let field = field_of(request, id);
            let g = self.reg.group(*id).map_err(|_| {
                Refusal::invalid(format!("no control plane with id {id} (nothing was added)"))
                    .on(field.clone())
            })?;
            let name = &g.meta.name;
            match (&g.kind, g.meta.cluster_type) {
                (Kind::Composite { .. }, _) => {
                    return Err(Refusal::invalid(format!(
                        "'{name}' is a composite: a composite can't be a member of a composite"
                    ))
                    .on(field));
                }
                (_, ClusterType::K8sIngressController) => {
                    return Err(Refusal::invalid(format!(
                        "'{name}' is a Kong Ingress Controller group, which can't be a member of a composite"
                    ))
                    .on(field));
                }
                (Kind::Standard { composites, .. }, _) => {
                    if current.contains(id) {
                        return Err(Refusal::conflict(format!(
                            "'{name}' is already a member of '{cname}'"
                        ))
                        .on(field));
                    }
                    if composites.len() >= MAX_COMPOSITES_PER_GROUP {
                        return Err(Refusal::conflict(format!(
                            "'{name}' is already a member of {MAX_COMPOSITES_PER_GROUP} composites, the most a group can join"
                        ))
                        .on(field));
                    }
                    // Heartbeats to it wait until this write is settled.
                    if let Err(active) = self.reg.begin_join(g) {
                        return Err(Refusal::conflict(format!(
                            "'{name}' has {active} connected runtime instance(s): a member's instances must connect to the composite, so disconnect them first"
                        ))
                        .on(field));
                    }
                    self.undo.push(Undo::Joining(*id));
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
        Ok(())
    }

    /// `ids` leave composite `cid`.
    fn leave(&mut self, cid: Uuid, ids: &[Uuid], request: &[Uuid]) -> Result<()> {
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
                ))
                .on(field_of(request, id)));
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
        Ok(())
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

/// `members[i].id` for `id`'s place in the request (`members` if it has none).
fn field_of(request: &[Uuid], id: &Uuid) -> String {
    request
        .iter()
        .position(|r| r == id)
        .map_or_else(|| "members".to_string(), |i| format!("members[{i}].id"))
}
