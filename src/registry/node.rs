//! Runtime instances (data plane nodes, SPEC §4).

use serde::{Deserialize, Serialize};

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
