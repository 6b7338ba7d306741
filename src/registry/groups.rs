//! Runtime groups: their fields and the rules on them.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tx::Undo;
use super::{Config, Kind, Refusal, Result, Tx};
use crate::member::Member;

/// Konnect's cluster types; the legacy spellings are accepted on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterType {
    #[serde(rename = "CLUSTER_TYPE_CONTROL_PLANE", alias = "CLUSTER_TYPE_HYBRID")]
    ControlPlane,
    #[serde(rename = "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER")]
    K8sIngressController,
    #[serde(
        rename = "CLUSTER_TYPE_CONTROL_PLANE_GROUP",
        alias = "CLUSTER_TYPE_COMPOSITE"
    )]
    ControlPlaneGroup,
}

impl ClusterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterType::ControlPlane => "CLUSTER_TYPE_CONTROL_PLANE",
            ClusterType::K8sIngressController => "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER",
            ClusterType::ControlPlaneGroup => "CLUSTER_TYPE_CONTROL_PLANE_GROUP",
        }
    }

    pub fn parse(s: &str) -> Option<ClusterType> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    pub fn is_composite(self) -> bool {
        self == ClusterType::ControlPlaneGroup
    }
}

/// How data plane nodes authenticate to a control plane (Konnect's `auth_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    #[default]
    #[serde(rename = "pinned_client_certs")]
    PinnedClientCerts,
    #[serde(rename = "pki_client_certs")]
    PkiClientCerts,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::PinnedClientCerts => "pinned_client_certs",
            AuthType::PkiClientCerts => "pki_client_certs",
        }
    }
}

/// Where the data planes of a control plane can be reached (Konnect's `proxy_urls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u64,
    pub protocol: String,
}

/// A group's own fields, as stored and as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMeta {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub cluster_type: ClusterType,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub is_default: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Stored only: rgmerge serves every data plane over its socket.
    #[serde(default)]
    pub auth_type: AuthType,
    #[serde(default)]
    pub cloud_gateway: bool,
    #[serde(default)]
    pub proxy_urls: Vec<ProxyUrl>,
}

pub const MAX_NAME: usize = 256;
pub const MAX_DESCRIPTION: usize = 2048;
pub const MAX_LABELS: usize = 50;
pub const MAX_PROXY_URLS: usize = 5;
const RESERVED_LABEL_PREFIXES: [&str; 5] = ["kong", "konnect", "mesh", "kic", "_"];

pub fn check_name(name: &str) -> Result<()> {
    let refuse = |why: String| Err(Refusal::invalid(why).on("name"));
    if name.trim().is_empty() {
        return refuse("`name` must not be empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return refuse(format!("`name` is longer than {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return refuse("`name` must not contain control characters".into());
    }
    Ok(())
}

pub fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(Refusal::invalid(format!(
            "`description` is longer than {MAX_DESCRIPTION} characters"
        ))
        .on("description"));
    }
    Ok(())
}

/// At most five, each with a host (1 to 120 characters), a port (1 to
/// 65535) and a protocol (1 to 32 characters), none twice.
pub fn check_proxy_urls(urls: &[ProxyUrl]) -> Result<()> {
    if urls.len() > MAX_PROXY_URLS {
        return Err(Refusal::invalid(format!(
            "at most {MAX_PROXY_URLS} proxy URLs are allowed, found {}",
            urls.len()
        ))
        .on("proxy_urls"));
    }
    for (i, u) in urls.iter().enumerate() {
        let bad = |field: &str, why: String| {
            Err(Refusal::invalid(why).on(format!("proxy_urls[{i}].{field}")))
        };
        let host = u.host.chars().count();
        if !(1..=120).contains(&host) || u.host.chars().any(char::is_control) {
            return bad(
                "host",
                "a proxy URL's host is 1 to 120 printable characters".into(),
            );
        }
        if !(1..=65535).contains(&u.port) {
            return bad("port", format!("port {} is not from 1 to 65535", u.port));
        }
        let protocol = u.protocol.chars().count();
        if !(1..=32).contains(&protocol) || u.protocol.chars().any(char::is_control) {
            return bad(
                "protocol",
                "a proxy URL's protocol is 1 to 32 printable characters".into(),
            );
        }
        if urls[..i].contains(u) {
            return Err(Refusal::invalid(format!(
                "proxy URL {}://{}:{} is listed twice",
                u.protocol, u.host, u.port
            ))
            .on(format!("proxy_urls[{i}]")));
        }
    }
    Ok(())
}

pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Refusal::invalid(format!(
            "at most {MAX_LABELS} labels are allowed, found {}",
            labels.len()
        ))
        .on("labels"));
    }
    for (k, v) in labels {
        let field = || format!("labels.{}", k.chars().take(63).collect::<String>());
        for (what, s) in [("key", k), ("value", v)] {
            let n = s.chars().count();
            if !(1..=63).contains(&n) {
                return Err(Refusal::invalid(format!(
                    "label {what} '{}' must be 1 to 63 characters long",
                    s.chars().take(63).collect::<String>()
                ))
                .on(field()));
            }
        }
        let lower = k.to_ascii_lowercase();
        if let Some(p) = RESERVED_LABEL_PREFIXES
            .iter()
            .find(|p| lower.starts_with(*p))
        {
            return Err(Refusal::invalid(format!(
                "label key '{k}' starts with the reserved prefix '{p}'"
            ))
            .on(field()));
        }
    }
    Ok(())
}

/// RFC 3339 in UTC with a fixed six-digit fraction, so timestamps sort as strings.
pub fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A request to create a group.
#[derive(Clone, Debug, Default)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    /// `CLUSTER_TYPE_…`; a standard control plane when absent.
    pub cluster_type: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `pinned_client_certs` when absent.
    pub auth_type: Option<AuthType>,
    pub cloud_gateway: bool,
    pub proxy_urls: Vec<ProxyUrl>,
}

/// A request to change a group; a label set to `None` is removed.
#[derive(Clone, Debug, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub labels: Option<BTreeMap<String, Option<String>>>,
    pub cluster_type: Option<String>,
    pub is_default: Option<bool>,
    pub auth_type: Option<AuthType>,
    pub proxy_urls: Option<Vec<ProxyUrl>>,
}

impl Tx<'_> {
    /// Adds a new group with its empty config and first snapshot.
    fn insert_group(&mut self, meta: GroupMeta) {
        let group = self.reg.new_group(meta.clone());
        if let Kind::Standard { config, .. } = &group.kind {
            self.blobs.push((
                config.hash.clone(),
                config.blob.clone(),
                Some(config.member.clone()),
            ));
        }
        self.reg.names.insert(meta.name.clone(), meta.id);
        self.reg.groups.insert(meta.id, group);
        self.history_before.insert(meta.id, Default::default());
        self.undo.push(Undo::Created(meta.id));
        self.touch(meta.id);
        self.published.insert(meta.id);
    }

    /// Recreates an exported group with its id and fields. The exported default
    /// group takes the place of this registry's (empty) default group.
    pub fn import_group(&mut self, meta: GroupMeta) -> Result<()> {
        check_name(&meta.name)?;
        check_labels(&meta.labels)?;
        if self.reg.groups.contains_key(&meta.id) {
            return Err(Refusal::conflict(format!(
                "a control plane with id {} already exists",
                meta.id
            )));
        }
        if meta.is_default {
            let old = self
                .reg
                .groups
                .values()
                .find(|g| g.meta.is_default)
                .map(|g| g.meta.id);
            if let Some(old) = old {
                self.drop_grants_on(old);
            }
            if let Some(old) = old
                && let Some(g) = self.reg.groups.remove(&old)
            {
                self.reg.names.remove(&g.meta.name);
                self.undo.push(Undo::Deleted(Box::new(g)));
                self.deleted.insert(old);
            }
        }
        if self.reg.names.contains_key(&meta.name) {
            return Err(Refusal::conflict(format!(
                "a control plane named '{}' already exists",
                meta.name
            )));
        }
        self.insert_group(meta);
        Ok(())
    }

    pub fn create_group(&mut self, req: NewGroup) -> Result<GroupMeta> {
        check_name(&req.name)?;
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        check_labels(&req.labels)?;
        check_proxy_urls(&req.proxy_urls)?;
        let cluster_type = match req.cluster_type.as_deref() {
            None => ClusterType::ControlPlane,
            Some(s) => ClusterType::parse(s).ok_or_else(|| {
                Refusal::invalid(format!(
                    "unsupported cluster_type '{s}': rgmerge serves CLUSTER_TYPE_CONTROL_PLANE, CLUSTER_TYPE_K8S_INGRESS_CONTROLLER and CLUSTER_TYPE_CONTROL_PLANE_GROUP"
                ))
                .on("cluster_type")
            })?,
        };
        if self.reg.names.contains_key(&req.name) {
            return Err(Refusal::conflict(format!(
                "a control plane named '{}' already exists",
                req.name
            ))
            .on("name"));
        }
        if let Some(max) = self.reg.settings.max_groups
            && self.reg.groups.len() >= max
        {
            return Err(Refusal::conflict(format!(
                "the organisation already has {} control planes, its limit (max_groups = {max})",
                self.reg.groups.len()
            ))
            .on("object"));
        }
        let t = now();
        let meta = GroupMeta {
            id: Uuid::new_v4(),
            name: req.name,
            description: req.description,
            cluster_type,
            labels: req.labels,
            is_default: false,
            created_at: t.clone(),
            updated_at: t,
            auth_type: req.auth_type.unwrap_or_default(),
            cloud_gateway: req.cloud_gateway,
            proxy_urls: req.proxy_urls,
        };
        self.insert_group(meta.clone());
        Ok(meta)
    }

    pub fn update_group(&mut self, id: Uuid, req: GroupUpdate) -> Result<GroupMeta> {
        let old = self.reg.group(id)?.meta.clone();
        let mut meta = old.clone();
        if let Some(ct) = &req.cluster_type
            && ClusterType::parse(ct) != Some(old.cluster_type)
        {
            return Err(Refusal::invalid(
                "`cluster_type` is fixed at creation and can't be changed",
            )
            .on("cluster_type"));
        }
        if let Some(d) = req.is_default
            && d != old.is_default
        {
            return Err(Refusal::invalid(
                "the default group is fixed: `is_default` can't be changed or moved",
            )
            .on("is_default"));
        }
        if let Some(name) = req.name {
            check_name(&name)?;
            if name != old.name && self.reg.names.contains_key(&name) {
                return Err(Refusal::conflict(format!(
                    "a control plane named '{name}' already exists"
                ))
                .on("name"));
            }
            meta.name = name;
        }
        if let Some(auth_type) = req.auth_type {
            meta.auth_type = auth_type;
        }
        if let Some(urls) = req.proxy_urls {
            check_proxy_urls(&urls)?;
            meta.proxy_urls = urls;
        }
        if let Some(d) = req.description {
            check_description(&d)?;
            meta.description = if d.is_empty() { None } else { Some(d) };
        }
        if let Some(labels) = req.labels {
            for (k, v) in labels {
                match v {
                    Some(v) => meta.labels.insert(k, v),
                    None => meta.labels.remove(&k),
                };
            }
            check_labels(&meta.labels)?;
        }
        if meta == old {
            return Ok(old);
        }
        meta.updated_at = now();
        self.reg.names.remove(&old.name);
        self.reg.names.insert(meta.name.clone(), id);
        self.undo.push(Undo::Meta(id, old.clone()));
        self.group_mut(id)?.meta = meta.clone();
        self.touch(id);
        if meta.name != old.name {
            // Findings name members by group name: re-enter the member under its new name.
            if let Kind::Standard { config, .. } = &self.reg.group(id)?.kind {
                let config = config.clone();
                let member = Member::build_for(
                    meta.member_info(),
                    &config.blob.bytes,
                    config.blob.format,
                    &self.reg.interner,
                    &self.reg.settings.kong,
                );
                self.set_config(
                    id,
                    Arc::new(Config {
                        hash: config.hash.clone(),
                        blob: config.blob.clone(),
                        member: Arc::new(member),
                    }),
                )?;
            }
        }
        Ok(meta)
    }

    pub fn delete_group(&mut self, id: Uuid) -> Result<()> {
        let g = self.reg.group(id)?;
        if g.meta.is_default {
            return Err(Refusal::conflict("the default group can't be deleted").on("id"));
        }
        let releases: Vec<Uuid> = match &g.kind {
            Kind::Standard { composites, .. } if !composites.is_empty() => {
                let names: Vec<String> = composites
                    .iter()
                    .filter_map(|c| self.reg.groups.get(c))
                    .map(|c| format!("'{}'", c.meta.name))
                    .collect();
                return Err(Refusal::conflict(format!(
                    "control plane '{}' is a member of {}: remove it from every composite first",
                    g.meta.name,
                    names.join(", ")
                ))
                .on("id"));
            }
            Kind::Standard { .. } => Vec::new(),
            Kind::Composite { members, .. } => members.iter().copied().collect(),
        };
        for m in releases {
            let Kind::Standard { composites, .. } = &self.reg.group(m)?.kind else {
                continue;
            };
            let before = composites.clone();
            self.undo.push(Undo::Composites(m, before));
            if let Kind::Standard { composites, .. } = &mut self.group_mut(m)?.kind {
                composites.remove(&id);
            }
            self.touch(m);
        }
        self.drop_grants_on(id);
        let Some(g) = self.reg.groups.remove(&id) else {
            return Ok(());
        };
        self.reg.names.remove(&g.meta.name);
        self.undo.push(Undo::Deleted(Box::new(g)));
        self.touched.remove(&id);
        self.published.remove(&id);
        self.deleted.insert(id);
        Ok(())
    }
}
