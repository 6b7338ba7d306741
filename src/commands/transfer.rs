//! `rgmerge export` and `rgmerge import`: the whole state as plain files, so
//! it can live in git and be restored.
//!
//! Layout of an export directory:
//! - `groups.json`: every group's fields, composites' member ids, and the file
//!   holding each standard group's config;
//! - `members/<name>.yaml|json`: each standard group's config, byte for byte;
//! - `bundle.yaml`: a manifest `rgmerge validate --bundle` reads.
//!
//! Both work on a data directory the daemon is not running on (the store is
//! locked while it runs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::{Bundle, BundleComposite};
use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::Blob;
use crate::registry::{
    ConfigWrite, GroupMeta, Kind, Mode, Refusal, Registry, Settings, Tx, transact,
};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedGroup {
    #[serde(flatten)]
    meta: GroupMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    members: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exported {
    groups: Vec<ExportedGroup>,
}

/// A file stem for a group name: safe characters kept, others `%XX`, so a name
/// can never climb out of the export directory.
pub fn file_stem(name: &str) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if safe {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn load_registry(store: &Store) -> Result<Registry, TransferError> {
    let loaded = store.load()?;
    Registry::restore(Arc::new(Interner::new()), Settings::default(), loaded)
        .map_err(TransferError::Invalid)
}

/// Writes the state of `data_dir` into `out` (which must be empty or absent).
pub fn export(data_dir: &Path, out: &Path) -> Result<usize, TransferError> {
    if !data_dir.join(crate::store::FILE_NAME).exists() {
        return Err(TransferError::Invalid(format!(
            "{} holds no rgmerge store",
            data_dir.display()
        )));
    }
    let store = Store::open(data_dir)?;
    let reg = load_registry(&store)?;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(TransferError::Invalid(format!(
            "{} is not empty; export into a new directory",
            out.display()
        )));
    }
    let members_dir = out.join("members");
    std::fs::create_dir_all(&members_dir).map_err(io(&members_dir))?;
    let mut groups = Vec::new();
    let mut files = std::collections::HashMap::new();
    for g in reg.groups() {
        let mut eg = ExportedGroup {
            meta: g.meta.clone(),
            config: None,
            members: Vec::new(),
        };
        match &g.kind {
            Kind::Standard { config, .. } => {
                let ext = match config.blob.format {
                    Format::Json => "json",
                    Format::Yaml => "yaml",
                };
                let rel =
                    PathBuf::from("members").join(format!("{}.{ext}", file_stem(&g.meta.name)));
                let path = out.join(&rel);
                std::fs::write(&path, &config.blob.bytes).map_err(io(&path))?;
                files.insert(g.meta.id, rel.clone());
                eg.config = Some(rel);
            }
            Kind::Composite { members, .. } => eg.members = members.iter().copied().collect(),
        }
        groups.push(eg);
    }
    let composites = groups
        .iter()
        .filter(|g| !g.members.is_empty())
        .map(|g| BundleComposite {
            name: g.meta.name.clone(),
            members: g
                .members
                .iter()
                .filter_map(|m| files.get(m).cloned())
                .collect(),
        })
        .collect();
    let bundle = Bundle { composites };
    let n = groups.len();
    let mut json = serde_json::to_vec_pretty(&Exported { groups })
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
    json.push(b'\n');
    let yaml =
        serde_saphyr::to_string(&bundle).map_err(|e| TransferError::Invalid(e.to_string()))?;
    for (name, bytes) in [("groups.json", json), ("bundle.yaml", yaml.into_bytes())] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(n)
}

/// Loads an export into `data_dir`, which must hold no state yet. All or nothing.
pub fn import(dir: &Path, data_dir: &Path) -> Result<usize, TransferError> {
    let path = dir.join("groups.json");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let exported: Exported = serde_json::from_slice(&bytes)
        .map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())))?;
    let mut store = Store::open(data_dir)?;
    let mut reg = load_registry(&store)?;
    let fresh = reg.groups().all(|g| {
        g.meta.is_default && matches!(&g.kind, Kind::Standard { config, .. } if config.blob.bytes == crate::compose::EMPTY_CONFIG)
    });
    if !fresh {
        return Err(TransferError::Invalid(format!(
            "{} already holds state; import only into an empty data directory",
            data_dir.display()
        )));
    }
    let mut defaults = exported.groups.iter().filter(|g| g.meta.is_default).count();
    if defaults != 1 {
        return Err(TransferError::Invalid(format!(
            "{}: expected exactly one default group, found {defaults}",
            path.display()
        )));
    }
    let interner = reg.interner().clone();
    // The first failure, as the transaction's refusal can only carry text.
    let mut failure = None;
    let result = transact(
        &mut reg,
        Mode::Apply,
        |effects| store.commit(&effects.changes).map_err(|e| e.to_string()),
        |tx| match import_all(tx, &exported, dir, &interner, &mut defaults) {
            Ok(()) => Ok(()),
            Err(e) => {
                let detail = e.to_string();
                failure = Some(e);
                Err(Refusal::invalid(detail))
            }
        },
    );
    match result {
        Ok(_) => Ok(exported.groups.len()),
        Err(refusal) => Err(failure.unwrap_or(TransferError::Invalid(refusal.detail))),
    }
}

/// Every exported group into `tx`: groups first (the default one replacing
/// the fresh store's), then configs, then memberships.
fn import_all(
    tx: &mut Tx,
    exported: &Exported,
    dir: &Path,
    interner: &Interner,
    defaults: &mut usize,
) -> Result<(), TransferError> {
    {
        let mut ordered: Vec<&ExportedGroup> = exported.groups.iter().collect();
        ordered.sort_by_key(|g| !g.meta.is_default);
        for g in &ordered {
            tx.import_group(g.meta.clone()).map_err(|e| {
                TransferError::Invalid(format!("group '{}': {}", g.meta.name, e.detail))
            })?;
            *defaults -= usize::from(g.meta.is_default);
        }
        for g in &ordered {
            let Some(rel) = &g.config else { continue };
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(TransferError::Invalid(format!(
                    "group '{}': config path {} leaves the export directory",
                    g.meta.name,
                    rel.display()
                )));
            }
            let file = dir.join(rel);
            let bytes = std::fs::read(&file).map_err(io(&file))?;
            let format = Format::from_path(&file, &bytes);
            let info = MemberInfo {
                id: g.meta.id.to_string(),
                name: g.meta.name.clone(),
                is_default: g.meta.is_default,
            };
            let member = Member::build(info, &bytes, format, interner);
            let written = tx
                .put_config(g.meta.id, Blob { format, bytes }, member)
                .map_err(|e| TransferError::Invalid(format!("{}: {}", file.display(), e.detail)))?;
            if let ConfigWrite::Invalid(errors) = written {
                let first = errors
                    .first()
                    .map(|e| format!(": {} at {}: {}", e.kind.code(), e.path, e.message))
                    .unwrap_or_default();
                return Err(TransferError::Invalid(format!(
                    "{}: the config has {} member error(s){first}",
                    file.display(),
                    errors.len()
                )));
            }
        }
        for g in &ordered {
            for chunk in g.members.chunks(crate::registry::MAX_PER_REQUEST) {
                tx.add_members(g.meta.id, chunk).map_err(|e| {
                    TransferError::Invalid(format!("composite '{}': {}", g.meta.name, e.detail))
                })?;
            }
        }
        Ok(())
    }
}
