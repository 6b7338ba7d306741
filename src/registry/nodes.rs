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
    /// Its first heartbeat, Unix milliseconds (0 in records older than the field).
    #[serde(default)]
    pub created_ms: u64,
    /// The last heartbeat that changed what it reports, Unix milliseconds.
    #[serde(default)]
    pub updated_ms: u64,
    /// What it is (`gateway` unless it says otherwise).
    #[serde(default = "gateway")]
    pub node_type: String,
    /// Whether it can run this group's config, as it reports.
    #[serde(default)]
    pub compatibility: Compatibility,
}

fn gateway() -> String {
    "gateway".into()
}

/// A node's compatibility with the config it is given, as Konnect shows it:
/// a state such as `COMPATIBILITY_STATE_FULLY_COMPATIBLE` and the issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compatibility {
    pub state: String,
    #[serde(default)]
    pub issues: Vec<CompatibilityIssue>,
}

impl Default for Compatibility {
    fn default() -> Compatibility {
        Compatibility {
            state: FULLY_COMPATIBLE.into(),
            issues: Vec::new(),
        }
    }
}

pub const FULLY_COMPATIBLE: &str = "COMPATIBILITY_STATE_FULLY_COMPATIBLE";
/// Most issues a heartbeat may report.
pub const MAX_COMPATIBILITY_ISSUES: usize = 100;

/// Konnect's `NodeCompatibilityIssue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityIssue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected_resources: Vec<AffectedResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// Konnect's `NodeCompatibilityIssueAffectedResource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffectedResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
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

    /// First seen; a record from before the field says its last heartbeat.
    pub fn created_at_ms(&self) -> u64 {
        if self.created_ms == 0 {
            self.last_seen_ms
        } else {
            self.created_ms
        }
    }

    pub fn updated_at_ms(&self) -> u64 {
        if self.updated_ms == 0 {
            self.last_seen_ms
        } else {
            self.updated_ms
        }
    }

    /// Why the Kong Gateway release this node runs is at (or near) its end
    /// of life on `today` (`(year, month)`), and what to upgrade to; `None`
    /// when it is supported or not a Kong version.
    pub fn end_of_life(&self, today: (i32, u8)) -> Option<String> {
        end_of_life(&self.version, today)
    }
}

/// `(major, minor)` of a Kong Gateway release line.
type ReleaseLine = (u64, u64);
/// A month: (year, month 1–12).
type YearMonth = (i32, u8);

/// The end of support of Kong Gateway release lines (year, month), from
/// Kong's version support policy: long-term support (LTS) lines for three
/// years, the others for one. Lines not listed are current.
const SUPPORT_ENDS: &[(ReleaseLine, YearMonth)] = &[
    ((2, 8), (2025, 3)),
    ((3, 0), (2023, 9)),
    ((3, 1), (2023, 12)),
    ((3, 2), (2024, 2)),
    ((3, 3), (2024, 5)),
    ((3, 4), (2026, 8)),
    ((3, 5), (2024, 11)),
    ((3, 6), (2025, 2)),
    ((3, 7), (2025, 5)),
    ((3, 8), (2025, 9)),
    ((3, 9), (2025, 12)),
    ((3, 10), (2028, 3)),
];

/// The long-term support line to move to.
const CURRENT_LTS: &str = "3.10";

/// How far ahead an end of support is announced, in months.
const EOL_NOTICE_MONTHS: i32 = 3;

fn end_of_life(version: &str, (year, month): (i32, u8)) -> Option<String> {
    let mut parts = version
        .trim()
        .trim_start_matches(['v', 'V'])
        .split(['.', '-', ' ']);
    let major: u64 = parts.next()?.parse().ok()?;
    let minor: u64 = parts.next()?.parse().ok()?;
    let line = format!("{major}.{minor}");
    let ends = if (major, minor) < (2, 8) {
        Some((2022, 1))
    } else {
        SUPPORT_ENDS
            .iter()
            .find(|(l, _)| *l == (major, minor))
            .map(|(_, e)| *e)
    }?;
    let months = |(y, m): (i32, u8)| y * 12 + i32::from(m);
    let left = months(ends) - months((year, month));
    let upgrade = format!(
        "upgrade to Kong Gateway {CURRENT_LTS} (LTS), the closest long-term support version"
    );
    if left < 0 {
        Some(format!(
            "Kong Gateway {line} reached its end of life in {}-{:02}: {upgrade}",
            ends.0, ends.1
        ))
    } else if left <= EOL_NOTICE_MONTHS {
        Some(format!(
            "Kong Gateway {line} reaches its end of life in {}-{:02}: {upgrade}",
            ends.0, ends.1
        ))
    } else {
        None
    }
}

/// Today as (year, month), in UTC.
pub fn this_month() -> (i32, u8) {
    let t = time::OffsetDateTime::now_utc();
    (t.year(), u8::from(t.month()))
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

/// What a node says about itself in a heartbeat.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    /// Defaults to the hostname.
    pub id: Option<String>,
    pub hostname: String,
    pub ip: String,
    pub version: String,
    pub config_hash: String,
    /// `gateway` when absent.
    pub node_type: Option<String>,
    /// Fully compatible when absent.
    pub compatibility: Option<Compatibility>,
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
            return Err(Refusal::invalid("`hostname` must be 1 to 255 characters").on("hostname"));
        }
        let id = hb.id.unwrap_or_else(|| hb.hostname.clone());
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(
                Refusal::invalid("node `id` must be 1 to 255 printable characters").on("id"),
            );
        }
        let node_type = hb.node_type.unwrap_or_else(gateway);
        if node_type.is_empty() || node_type.len() > 64 || node_type.chars().any(char::is_control) {
            return Err(Refusal::invalid("`type` must be 1 to 64 printable characters").on("type"));
        }
        let compatibility = hb.compatibility.unwrap_or_default();
        check_compatibility(&compatibility)?;
        let now = now_ms();
        let old = g.nodes.get(&id);
        let mut node = Node {
            id: id.clone(),
            hostname: hb.hostname,
            ip: hb.ip,
            version: hb.version,
            config_hash: hb.config_hash,
            last_seen_ms: now,
            created_ms: old.map_or(now, Node::created_at_ms),
            updated_ms: now,
            node_type,
            compatibility,
        };
        // Only registration and what the node runs are worth a disk write;
        // `last_seen` alone changes every few seconds.
        let durable = match old {
            None => true,
            Some(o) => {
                o.config_hash != node.config_hash
                    || o.hostname != node.hostname
                    || o.ip != node.ip
                    || o.version != node.version
                    || o.node_type != node.node_type
                    || o.compatibility != node.compatibility
            }
        };
        if !durable && let Some(o) = old {
            node.updated_ms = o.updated_at_ms();
        }
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

fn check_compatibility(c: &Compatibility) -> Result<()> {
    if c.state.is_empty() || c.state.len() > 64 || c.state.chars().any(char::is_control) {
        return Err(Refusal::invalid(
            "`compatibility_status.state` must be 1 to 64 printable characters",
        )
        .on("compatibility_status.state"));
    }
    if c.issues.len() > MAX_COMPATIBILITY_ISSUES {
        return Err(Refusal::invalid(format!(
            "at most {MAX_COMPATIBILITY_ISSUES} compatibility issues, found {}",
            c.issues.len()
        ))
        .on("compatibility_status.issues"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_life_by_release_line() {
        let nov_2026 = (2026, 11);
        assert!(end_of_life("2.8.4.14", nov_2026).is_some_and(|m| m.contains("2.8")));
        assert!(end_of_life("3.4.3.12", nov_2026).is_some());
        assert!(end_of_life("2.1.0", nov_2026).is_some());
        assert!(end_of_life("3.10.0.1", nov_2026).is_none());
        assert!(end_of_life("3.12.0.0", nov_2026).is_none());
        assert!(end_of_life("rgmerge-sidecar/0.1.0", nov_2026).is_none());
        assert!(end_of_life("", nov_2026).is_none());
        // Announced three months ahead.
        assert!(end_of_life("3.4.0", (2026, 5)).is_some_and(|m| m.contains("reaches")));
        assert!(end_of_life("3.4.0", (2026, 1)).is_none());
    }
}
