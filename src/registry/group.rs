//! Runtime groups (SPEC §2): their fields and the rules on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RegistryError;

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
}

pub const MAX_NAME: usize = 256;
pub const MAX_DESCRIPTION: usize = 2048;
pub const MAX_LABELS: usize = 50;
const RESERVED_LABEL_PREFIXES: [&str; 5] = ["kong", "konnect", "mesh", "kic", "_"];

pub fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.trim().is_empty() {
        return Err(RegistryError::invalid("`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(RegistryError::invalid(format!(
            "`name` is longer than {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(RegistryError::invalid(
            "`name` must not contain control characters",
        ));
    }
    Ok(())
}

pub fn check_description(d: &str) -> Result<(), RegistryError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(RegistryError::invalid(format!(
            "`description` is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    if labels.len() > MAX_LABELS {
        return Err(RegistryError::invalid(format!(
            "at most {MAX_LABELS} labels are allowed, found {}",
            labels.len()
        )));
    }
    for (k, v) in labels {
        for (what, s) in [("key", k), ("value", v)] {
            let n = s.chars().count();
            if !(1..=63).contains(&n) {
                return Err(RegistryError::invalid(format!(
                    "label {what} '{s}' must be 1 to 63 characters long"
                )));
            }
        }
        let lower = k.to_ascii_lowercase();
        if let Some(p) = RESERVED_LABEL_PREFIXES
            .iter()
            .find(|p| lower.starts_with(*p))
        {
            return Err(RegistryError::invalid(format!(
                "label key '{k}' starts with the reserved prefix '{p}'"
            )));
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
