//! Before a change: which connected data planes its config would be held
//! back from, and why ("2 data planes on 3.4.0 lack the plugin `ai-proxy`"),
//! by the same rules the nodes are pushed by.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::compat::{self, KongVersion};
use crate::registry::GroupView;

/// Data planes of one group held back for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    /// The group they are connected to (the composite, or the group itself).
    pub control_plane_id: Uuid,
    pub control_plane_name: String,
    pub code: String,
    pub message: String,
    pub node_ids: Vec<String>,
}

/// The connected hybrid data planes of `groups` that a config configuring
/// `plugins` would be held back from.
pub fn held_back(groups: &[&GroupView], plugins: &[String], cp: KongVersion) -> Vec<HeldBack> {
    let mut out = Vec::new();
    for view in groups {
        // (code, what, version) → node ids
        let mut found: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for node in view.nodes.list() {
            let Some(h) = node.hybrid.as_ref().filter(|h| h.connected) else {
                continue;
            };
            let key = |code: &str, what: String| (code.to_string(), what, node.version.clone());
            match KongVersion::parse(&node.version) {
                Some(v) if compat::check_version(cp, v).is_ok() => {}
                _ => {
                    found
                        .entry(key(
                            compat::KONG_VERSION_INCOMPATIBLE,
                            "run a Kong version this control plane can serve".into(),
                        ))
                        .or_default()
                        .push(node.id.clone());
                    continue;
                }
            }
            for p in plugins {
                if !h.plugins.iter().any(|(name, _)| name == p) {
                    found
                        .entry(key(
                            compat::PLUGIN_SET_INCOMPATIBLE,
                            format!("lack the plugin `{p}`"),
                        ))
                        .or_default()
                        .push(node.id.clone());
                }
            }
        }
        for ((code, what, version), node_ids) in found {
            let n = node_ids.len();
            let message = if code == compat::KONG_VERSION_INCOMPATIBLE {
                format!(
                    "{n} data plane{} on {version} cannot load configs from this control plane ({cp}): {what}",
                    if n == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{n} data plane{} on {version} {what}",
                    if n == 1 { "" } else { "s" }
                )
            };
            out.push(HeldBack {
                control_plane_id: view.meta.id,
                control_plane_name: view.meta.name.clone(),
                code,
                message,
                node_ids,
            });
        }
    }
    out
}
