//! The persisted form of the registry: what the store keeps of each group,
//! config blobs by content address, the changes a write makes, and how a
//! registry is rebuilt from them. `store` depends on this module; the
//! registry never calls the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Config, DpCertificate, Group, GroupMeta, Kind, Node, Published, Registry, Settings, member_info,
};
use crate::compose::{Body, Composite, ProvenanceRun};
use crate::config::{Coll, Format};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};

/// What the store keeps of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub meta: GroupMeta,
    #[serde(default)]
    pub members: Vec<Uuid>,
    #[serde(default)]
    pub config: Option<String>,
    pub snapshot: SnapshotRecord,
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Pinned data plane client certificates (absent in older stores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<DpCertificate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub version: u64,
    pub hash: String,
    pub sources: Vec<(Uuid, String)>,
    /// When it was published, Unix milliseconds (absent in older stores).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub published_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A member config as stored: its bytes and the syntax they are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub format: Format,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// The content address: blake3 of format tag and bytes, lowercase hex.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&[self.tag()]);
        h.update(&self.bytes);
        h.finalize().to_hex().to_string()
    }
    fn tag(&self) -> u8 {
        match self.format {
            Format::Json => b'j',
            Format::Yaml => b'y',
        }
    }
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.bytes.len() + 1);
        v.push(self.tag());
        v.extend_from_slice(&self.bytes);
        v
    }
    pub(crate) fn decode(v: &[u8]) -> Option<Blob> {
        let (&tag, bytes) = v.split_first()?;
        let format = match tag {
            b'j' => Format::Json,
            b'y' => Format::Yaml,
            _ => return None,
        };
        Some(Blob {
            format,
            bytes: bytes.to_vec(),
        })
    }
}

/// One step of a write.
#[derive(Clone, Debug)]
pub enum Change {
    PutGroup(Box<GroupRecord>),
    DeleteGroup(uuid::Uuid),
    PutBlob(String, Blob),
    DeleteBlob(String),
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: Vec<GroupRecord>,
    pub blobs: HashMap<String, Blob>,
}

impl Registry {
    /// Everything the store must hold to restore this registry: every
    /// group's record and every config it names.
    pub fn all_changes(&self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .groups
            .values()
            .map(|g| Change::PutGroup(Box::new(self.record(g))))
            .collect();
        for g in self.groups.values() {
            if let Kind::Standard { config, .. } = &g.kind {
                changes.push(Change::PutBlob(config.hash.clone(), config.blob.clone()));
            }
        }
        changes
    }

    pub fn record(&self, g: &Group) -> GroupRecord {
        let (members, config) = match &g.kind {
            Kind::Standard { config, .. } => (Vec::new(), Some(config.hash.clone())),
            Kind::Composite { members, .. } => (members.iter().copied().collect(), None),
        };
        GroupRecord {
            meta: g.meta.clone(),
            members,
            config,
            snapshot: SnapshotRecord {
                version: g.snapshot.version,
                hash: g.snapshot.body.hash().to_string(),
                sources: g.snapshot.sources.clone(),
                published_ms: g.snapshot.published_ms,
            },
            nodes: g.nodes.values().cloned().collect(),
            certificates: g.certificates.values().cloned().collect(),
        }
    }

    /// Whether some record names blob `hash` (a config or a snapshot's
    /// source). Asked of a write's few candidate blobs; allocates nothing.
    pub fn names_blob(&self, hash: &str) -> bool {
        self.groups.values().any(|g| {
            matches!(&g.kind, Kind::Standard { config, .. } if config.hash == hash)
                || g.snapshot.sources.iter().any(|(_, h)| h == hash)
        })
    }

    /// Every blob a record names: configs and the sources of published snapshots.
    pub fn live_blobs(&self) -> HashSet<String> {
        let mut live = HashSet::new();
        for g in self.groups.values() {
            if let Kind::Standard { config, .. } = &g.kind {
                live.insert(config.hash.clone());
            }
            live.extend(g.snapshot.sources.iter().map(|(_, h)| h.clone()));
        }
        live
    }

    /// Rebuilds the registry from the store's contents, checking that every
    /// published snapshot still assembles to the bytes it had.
    pub fn restore(
        interner: Arc<Interner>,
        settings: Settings,
        loaded: Loaded,
    ) -> std::result::Result<Registry, String> {
        if loaded.groups.is_empty() {
            return Ok(Registry::new(interner, settings));
        }
        let mut reg = Registry {
            interner,
            groups: BTreeMap::new(),
            names: HashMap::new(),
            settings,
        };
        let blob = |h: &str| {
            loaded
                .blobs
                .get(h)
                .ok_or_else(|| format!("config blob {h} is missing"))
        };
        // Build every standard group's member in parallel: this is the expensive part.
        let built: Vec<std::result::Result<(Uuid, Arc<Config>), String>> = loaded
            .groups
            .par_iter()
            .filter_map(|r| r.config.as_ref().map(|h| (r, h)))
            .map(|(r, h)| {
                let b = blob(h)?.clone();
                let member = Member::build(member_info(&r.meta), &b.bytes, b.format, &reg.interner);
                Ok((
                    r.meta.id,
                    Arc::new(Config {
                        hash: h.clone(),
                        blob: b,
                        member: Arc::new(member),
                    }),
                ))
            })
            .collect();
        let mut configs = HashMap::new();
        for b in built {
            let (id, c) = b?;
            configs.insert(id, c);
        }
        let mut composites_of: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
        for r in &loaded.groups {
            for m in &r.members {
                composites_of.entry(*m).or_default().insert(r.meta.id);
            }
        }
        for r in &loaded.groups {
            let kind = if r.meta.cluster_type.is_composite() {
                let mut members = Vec::with_capacity(r.members.len());
                for m in &r.members {
                    let c = configs.get(m).ok_or_else(|| {
                        format!(
                            "composite {} names member {m}, which has no config",
                            r.meta.id
                        )
                    })?;
                    members.push(c.member.clone());
                }
                // Merged in one go: the key index is sized once for every member.
                let composite = Composite::from_members(reg.interner.clone(), members);
                Kind::Composite {
                    members: r.members.iter().copied().collect(),
                    composite: Box::new(composite),
                }
            } else {
                let config = configs
                    .get(&r.meta.id)
                    .cloned()
                    .ok_or_else(|| format!("group {} has no config", r.meta.id))?;
                Kind::Standard {
                    config,
                    composites: composites_of.remove(&r.meta.id).unwrap_or_default(),
                }
            };
            // The published snapshot: reuse current members where the blob is the same.
            let mut members = Vec::new();
            for (mid, h) in &r.snapshot.sources {
                let current = configs
                    .get(mid)
                    .filter(|c| &c.hash == h)
                    .map(|c| c.member.clone());
                let m = match current {
                    Some(m) => m,
                    None => {
                        let b = blob(h)?;
                        let info = MemberInfo {
                            id: mid.to_string(),
                            name: mid.to_string(),
                            is_default: false,
                        };
                        Arc::new(Member::build(info, &b.bytes, b.format, &reg.interner))
                    }
                };
                members.push(m);
            }
            let body = Body::assemble(members.iter().map(|m| m.as_ref()));
            if body.hash() != r.snapshot.hash {
                return Err(format!(
                    "the snapshot of control plane '{}' (version {}) no longer assembles to its recorded hash {}",
                    r.meta.name, r.snapshot.version, r.snapshot.hash
                ));
            }
            let provenance = named_provenance(&members, &loaded.groups);
            let published_ms = match r.snapshot.published_ms {
                0 => rfc3339_to_ms(&r.meta.created_at),
                ms => ms,
            };
            let snapshot = Arc::new(Published {
                version: r.snapshot.version,
                published_ms,
                body,
                sources: r.snapshot.sources.clone(),
                provenance,
            });
            let nodes = Arc::new(r.nodes.iter().map(|n| (n.id.clone(), n.clone())).collect());
            let certificates = Arc::new(r.certificates.iter().map(|c| (c.id, c.clone())).collect());
            reg.names.insert(r.meta.name.clone(), r.meta.id);
            reg.groups.insert(
                r.meta.id,
                Group {
                    meta: r.meta.clone(),
                    kind,
                    snapshot,
                    nodes,
                    certificates,
                },
            );
        }
        if !reg.groups.values().any(|g| g.meta.is_default) {
            return Err("no default group in the store".into());
        }
        Ok(reg)
    }
}

/// An RFC 3339 time as Unix milliseconds (0 if it is not one).
fn rfc3339_to_ms(s: &str) -> u64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .unwrap_or(0)
}

/// Provenance keyed by collection name, as readers see it.
pub(super) fn named_collections(
    p: Vec<(Coll, Vec<ProvenanceRun>)>,
) -> Vec<(&'static str, Vec<ProvenanceRun>)> {
    p.into_iter().map(|(c, runs)| (c.name(), runs)).collect()
}

fn named_provenance(
    members: &[Arc<Member>],
    records: &[GroupRecord],
) -> Vec<(&'static str, Vec<ProvenanceRun>)> {
    let mut p = crate::compose::snapshot::provenance(members.iter().map(|m| m.as_ref()));
    for (_, runs) in &mut p {
        for run in runs {
            if let Some(r) = records
                .iter()
                .find(|r| r.meta.id.to_string() == run.member_id)
            {
                run.member.clone_from(&r.meta.name);
            }
        }
    }
    named_collections(p)
}
