//! Runtime instances (data plane nodes).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tx::Undo;
use super::{Kind, Refusal, Result, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub version: String,
    /// Hash of the snapshot the node runs.
    #[serde(default)]
    pub config_hash: String,
    /// Unix milliseconds.
    pub last_seen_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    InSync,
    OutOfSync,
}

impl Node {
    pub fn sync_status(&self, current_hash: &str) -> SyncStatus {
        if self.config_hash == current_hash {
            SyncStatus::InSync
        } else {
            SyncStatus::OutOfSync
        }
    }

    pub fn is_active(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_seen_ms) <= window_ms
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A node's heartbeat.
/// What a node says about itself in a heartbeat.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    /// Defaults to the hostname.
    pub id: Option<String>,
    pub hostname: String,
    pub ip: String,
    pub version: String,
    pub config_hash: String,
}

impl Tx<'_> {
    pub fn heartbeat(&mut self, gid: Uuid, hb: NodeReport) -> Result<Node> {
        let g = self.reg.group(gid)?;
        if let Kind::Standard { composites, .. } = &g.kind
            && !composites.is_empty()
        {
            return Err(Refusal::conflict(format!(
                "'{}' is a member of a composite: runtime instances must connect to the composite, not to a member",
                g.meta.name
            )));
        }
        if hb.hostname.trim().is_empty() || hb.hostname.len() > 255 {
            return Err(Refusal::invalid("`hostname` must be 1 to 255 characters"));
        }
        let id = hb.id.unwrap_or_else(|| hb.hostname.clone());
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(Refusal::invalid(
                "node `id` must be 1 to 255 printable characters",
            ));
        }
        let node = Node {
            id: id.clone(),
            hostname: hb.hostname,
            ip: hb.ip,
            version: hb.version,
            config_hash: hb.config_hash,
            last_seen_ms: now_ms(),
        };
        let old = g.nodes.get(&id);
        // Only registration and what the node runs are worth a disk write;
        // `last_seen` alone changes every few seconds.
        let durable = match old {
            None => true,
            Some(o) => {
                o.config_hash != node.config_hash
                    || o.hostname != node.hostname
                    || o.ip != node.ip
                    || o.version != node.version
            }
        };
        let before = g.nodes.clone();
        self.undo.push(Undo::Nodes(gid, before));
        Arc::make_mut(&mut self.group_mut(gid)?.nodes).insert(id, node.clone());
        if durable {
            self.touch(gid);
        } else {
            self.viewed.insert(gid);
        }
        Ok(node)
    }

    pub fn delete_node(&mut self, gid: Uuid, node_id: &str) -> Result<()> {
        let g = self.reg.group(gid)?;
        if !g.nodes.contains_key(node_id) {
            return Err(Refusal::not_found(format!(
                "no node '{node_id}' in control plane '{}'",
                g.meta.name
            )));
        }
        let before = g.nodes.clone();
        self.undo.push(Undo::Nodes(gid, before));
        Arc::make_mut(&mut self.group_mut(gid)?.nodes).remove(node_id);
        self.touch(gid);
        Ok(())
    }
}
