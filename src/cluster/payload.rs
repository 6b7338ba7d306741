//! What a data plane is sent for a served snapshot: its Kong config hash and
//! the gzip'd `reconfigure` frame, made once per snapshot and per
//! compatibility variant and shared by every node (koko's `payload`).
//!
//! The forms live beside the snapshot's body (`Body::derived`), so they are
//! dropped with it and every daemon derives the same hash from the same bytes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::compat::{self, KongVersion};
use super::hash;
use super::wire;
use crate::registry::Published;

/// One encoded form of a snapshot.
#[derive(Debug)]
pub struct Payload {
    /// Kong's `config_hash` of this form: what a data plane holding it pings.
    pub hash: String,
    /// The per-section hashes sent beside it.
    pub hashes: Value,
    /// The gzip'd `reconfigure` frame.
    pub frame: Bytes,
    /// The plugins the config configures: `(name, entity id)`.
    pub plugins: Vec<(String, String)>,
    /// What was removed for an older data plane (empty for the full form).
    pub removed: Vec<String>,
}

/// Which form a data plane gets: the full config, or the one with the fields
/// its version does not know removed. Data planes sharing a key share bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant(Option<VariantKey>);

/// `compat::variant`'s key.
type VariantKey = u32;

impl Variant {
    pub const FULL: Variant = Variant(None);

    /// The form for a data plane of `version`.
    pub fn of(version: KongVersion) -> Variant {
        match compat::variant(version) {
            0 => Variant::FULL,
            key => Variant(Some(key)),
        }
    }
}

/// Every form of one snapshot made so far.
#[derive(Default)]
pub struct Forms {
    cells: Mutex<HashMap<Variant, Arc<OnceCell<Arc<Payload>>>>>,
}

/// Why a payload could not be made (a snapshot that is not JSON: never for
/// one the daemon assembled).
#[derive(Debug, thiserror::Error)]
#[error("payload: {0}")]
pub struct PayloadError(String);

fn forms(published: &Published) -> Arc<Forms> {
    match published.body.derived(Forms::default) {
        Some(f) => f,
        // Another layer's value sits in the slot (never today): derive afresh.
        None => Arc::new(Forms::default()),
    }
}

/// The payload of `published` for data planes of `version` (the full form
/// for `None`), made on first use off the async threads.
pub async fn payload(
    published: &Arc<Published>,
    version: Option<KongVersion>,
) -> Result<Arc<Payload>, PayloadError> {
    let variant = version.map_or(Variant::FULL, Variant::of);
    let cell = {
        let forms = forms(published);
        let mut cells = forms.cells.lock();
        Arc::clone(cells.entry(variant).or_default())
    };
    let published = Arc::clone(published);
    cell.get_or_try_init(|| async move {
        tokio::task::spawn_blocking(move || make(&published, variant, version))
            .await
            .map_err(|e| PayloadError(format!("encoding task failed: {e}")))?
    })
    .await
    .cloned()
}

/// The hashes of every form of `published` made so far: a node holding any
/// of them runs this snapshot.
pub fn known_hashes(published: &Published) -> Vec<String> {
    let Some(forms) = published.body.derived_if_made::<Forms>() else {
        return Vec::new();
    };
    let cells = forms.cells.lock();
    cells
        .values()
        .filter_map(|c| c.get().map(|p| p.hash.clone()))
        .collect()
}

fn make(
    published: &Published,
    variant: Variant,
    version: Option<KongVersion>,
) -> Result<Arc<Payload>, PayloadError> {
    let bytes = published.body.to_vec();
    let mut config: Value =
        serde_json::from_slice(&bytes).map_err(|e| PayloadError(e.to_string()))?;
    let mut removed = Vec::new();
    let mut table: Option<Vec<u8>> = None;
    if variant != Variant::FULL
        && let Some(v) = version
        && let Some((downgraded, what)) = compat::downgrade(&config, v)
    {
        config = downgraded;
        removed = what;
        table = Some(serde_json::to_vec(&config).map_err(|e| PayloadError(e.to_string()))?);
    }
    let (config_hash, hashes) = hash::config_hash(&config);
    let hashes = serde_json::to_value(&hashes).map_err(|e| PayloadError(e.to_string()))?;
    let frame = wire::reconfigure(
        published.published_ms,
        table.as_deref().unwrap_or(&bytes),
        &config_hash,
        &hashes,
    )
    .map_err(|e| PayloadError(e.to_string()))?;
    Ok(Arc::new(Payload {
        hash: config_hash,
        hashes,
        frame: Bytes::from(frame),
        plugins: configured_plugins(&config),
        removed,
    }))
}

/// Every plugin entity of a declarative config, at any nesting depth.
pub fn configured_plugins(config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect_plugins(config, &mut out);
    out
}

fn collect_plugins(v: &Value, out: &mut Vec<(String, String)>) {
    let Value::Object(m) = v else { return };
    for (k, child) in m {
        let Value::Array(items) = child else { continue };
        for item in items {
            if k == "plugins"
                && let Some(name) = item.get("name").and_then(Value::as_str)
            {
                let id = item.get("id").and_then(Value::as_str).unwrap_or("");
                out.push((name.to_string(), id.to_string()));
            }
            collect_plugins(item, out);
        }
    }
}
