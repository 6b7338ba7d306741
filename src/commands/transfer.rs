//! `rgmerge export` and `rgmerge import`: the whole state as plain files, so
//! it can live in git and be restored.
//!
//! Layout of an export directory:
//! - `groups.json`: every group's fields, composites' member ids, the file
//!   holding each standard group's config, and what each group served: its
//!   snapshot (version, hash, and the file of each source config), its pin and
//!   the history entries of the served (and pinned) version;
//! - `members/<name>.yaml|json`: each standard group's config, byte for byte.
//!   File names are unique even on a case-insensitive filesystem: names that
//!   differ only in case (or escape to the same name) get `-<id8>`;
//! - `blobs/<hash>.yaml|json`: source configs a served snapshot needs that are
//!   no longer any group's config (a composite in conflict serves its last
//!   conflict-free merge; a pin serves an older version);
//! - `bundle.yaml`: a manifest `rgmerge validate --bundle` reads, which names
//!   the default group's file (`default_member`), whatever its name.
//!
//! Import restores every group's served snapshot exactly (version, hash and
//! bytes, re-assembled and checked), so a restore never serves less than was
//! served before. Both work on a data directory the daemon is not running on
//! (the store is locked while it runs).
//!
//! Either works against a PostgreSQL store too ([`Source::Postgres`]):
//! export reads one consistent snapshot of it (daemons may keep running),
//! and import writes everything as one change log entry, which running
//! daemons follow. [`migrate`] moves an embedded store into PostgreSQL in
//! one command (`rgmerge migrate --data-dir D --to postgres://…`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::{Bundle, BundleComposite};
use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::{Blob, HistoryEntry, Pin};
use crate::registry::{
    ConfigWrite, GroupMeta, Kind, Mode, Refusal, Registry, Settings, Tx, assemble_version, transact,
};
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreError};

/// Where the state is: an embedded store's data directory, or PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    Dir(&'a Path),
    /// A `postgres://…` URL.
    Postgres(&'a str),
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(d) => write!(f, "{}", d.display()),
            Source::Postgres(url) => f.write_str(&crate::store::postgres::redact(url)),
        }
    }
}

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
    /// What the group served at export time. (Absent in exports made before
    /// snapshots were carried: the group then starts again at version 1.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<ExportedSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin: Option<Pin>,
    /// The history entries of the served version and of the pinned one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<HistoryEntry>,
}

/// A served snapshot: its version, its hash, and each source config's file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedSnapshot {
    version: u64,
    hash: String,
    sources: Vec<ExportedSource>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedSource {
    /// The member group the config belonged to.
    member: Uuid,
    /// The config's content address (see `Blob::hash`).
    blob: String,
    /// The file holding its bytes, relative to the export directory.
    file: PathBuf,
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

/// A file stem per group, unique ignoring case: `file_stem(name)`, or with
/// `-<first 8 hex of the id>` for every group whose stem collides with
/// another's when case is ignored (so `blue` and `Blue` both get one, and
/// neither depends on the order groups are read in).
fn unique_stems(groups: &[&GroupMeta]) -> Result<HashMap<Uuid, String>, TransferError> {
    let plain: Vec<(Uuid, String)> = groups.iter().map(|g| (g.id, file_stem(&g.name))).collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, s) in &plain {
        *count.entry(s.to_lowercase()).or_default() += 1;
    }
    let mut out = HashMap::new();
    let mut taken: HashMap<String, Uuid> = HashMap::new();
    for (id, stem) in plain {
        let simple = id.simple().to_string();
        let mut candidates = Vec::new();
        if count.get(&stem.to_lowercase()) == Some(&1) {
            candidates.push(stem.clone());
        }
        candidates.push(format!("{stem}-{}", &simple[..8]));
        candidates.push(format!("{stem}-{simple}"));
        // A suffixed name must not be some other group's plain one either.
        let chosen = candidates
            .into_iter()
            .find(|c| {
                let lower = c.to_lowercase();
                !taken.contains_key(&lower) && (*c == stem || !count.contains_key(&lower))
            })
            .ok_or_else(|| {
                TransferError::Invalid(format!(
                    "can't give control plane {id} a file name that differs from every other one"
                ))
            })?;
        taken.insert(chosen.to_lowercase(), id);
        out.insert(id, chosen);
    }
    Ok(out)
}

fn ext(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
    }
}

/// Writes the state of `data_dir` into `out` (which must be empty or absent).
pub fn export(data_dir: &Path, out: &Path) -> Result<usize, TransferError> {
    export_from(Source::Dir(data_dir), out)
}

/// Writes the state of either store into `out` (which must be empty or absent).
pub fn export_from(source: Source, out: &Path) -> Result<usize, TransferError> {
    let loaded = match source {
        Source::Dir(data_dir) => {
            if !data_dir.join(crate::store::FILE_NAME).exists() {
                return Err(TransferError::Invalid(format!(
                    "{} holds no rgmerge store",
                    data_dir.display()
                )));
            }
            Store::open(data_dir)?.load()?
        }
        Source::Postgres(url) => {
            let (loaded, _) = PgStore::open(url)?.load()?;
            if loaded.groups.is_empty() {
                return Err(TransferError::Invalid(format!(
                    "{source} holds no rgmerge state"
                )));
            }
            loaded
        }
    };
    let blobs = loaded.blobs.clone();
    let reg = Registry::restore(Arc::new(Interner::new()), Settings::default(), loaded)
        .map_err(TransferError::Invalid)?;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(TransferError::Invalid(format!(
            "{} is not empty; export into a new directory",
            out.display()
        )));
    }
    let members_dir = out.join("members");
    std::fs::create_dir_all(&members_dir).map_err(io(&members_dir))?;
    let metas: Vec<&GroupMeta> = reg.groups().map(|g| &g.meta).collect();
    let stems = unique_stems(&metas)?;
    // Every standard group's config file, by group and by blob.
    let mut files: HashMap<Uuid, PathBuf> = HashMap::new();
    let mut by_blob: HashMap<String, PathBuf> = HashMap::new();
    for g in reg.groups() {
        if let Kind::Standard { config, .. } = &g.kind {
            let stem = stems.get(&g.meta.id).cloned().unwrap_or_default();
            let rel = PathBuf::from("members").join(format!("{stem}.{}", ext(config.blob.format)));
            let path = out.join(&rel);
            std::fs::write(&path, &config.blob.bytes).map_err(io(&path))?;
            files.insert(g.meta.id, rel.clone());
            by_blob.entry(config.hash.clone()).or_insert(rel);
        }
    }
    let mut groups = Vec::new();
    for g in reg.groups() {
        let mut sources = Vec::with_capacity(g.snapshot.sources.len());
        for (member, h) in &g.snapshot.sources {
            let file = match by_blob.get(h) {
                Some(f) => f.clone(),
                None => {
                    let b = blobs.get(h).ok_or_else(|| {
                        TransferError::Invalid(format!(
                            "the snapshot of '{}' names config blob {h}, which the store lacks",
                            g.meta.name
                        ))
                    })?;
                    let rel = PathBuf::from("blobs").join(format!("{h}.{}", ext(b.format)));
                    let path = out.join(&rel);
                    let dir = out.join("blobs");
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    std::fs::write(&path, &b.bytes).map_err(io(&path))?;
                    by_blob.insert(h.clone(), rel.clone());
                    rel
                }
            };
            sources.push(ExportedSource {
                member: *member,
                blob: h.clone(),
                file,
            });
        }
        let pinned = g.pin.as_ref().map(|p| p.version);
        let history = g
            .history
            .iter()
            .filter(|e| e.version == g.snapshot.version || Some(e.version) == pinned)
            .filter(|e| e.sources == g.snapshot.sources)
            .map(|e| (**e).clone())
            .collect();
        let mut eg = ExportedGroup {
            meta: g.meta.clone(),
            config: None,
            members: Vec::new(),
            snapshot: Some(ExportedSnapshot {
                version: g.snapshot.version,
                hash: g.snapshot.body.hash().to_string(),
                sources,
            }),
            pin: g.pin.clone(),
            history,
        };
        match &g.kind {
            Kind::Standard { .. } => eg.config = files.get(&g.meta.id).cloned(),
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
    let default_member = groups
        .iter()
        .find(|g| g.meta.is_default)
        .and_then(|g| files.get(&g.meta.id).cloned());
    let bundle = Bundle {
        default_member,
        composites,
    };
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
    import_into(dir, Source::Dir(data_dir))
}

/// The store an import writes to.
enum Target {
    Dir(Store),
    /// The database, the log position loaded, and whether it held nothing
    /// (no daemon ever started on it).
    Postgres(Box<PgStore>, u64, bool),
}

/// Loads an export into either store, which must hold no state yet (at
/// most the default group a daemon made). All or nothing: into PostgreSQL
/// as one change log entry, refused if another write came meanwhile.
pub fn import_into(dir: &Path, target: Source) -> Result<usize, TransferError> {
    let data_dir = target;
    let path = dir.join("groups.json");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let exported: Exported = serde_json::from_slice(&bytes)
        .map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())))?;
    let (mut store, loaded) = match target {
        Source::Dir(d) => {
            let store = Store::open(d)?;
            let loaded = store.load()?;
            (Target::Dir(store), loaded)
        }
        Source::Postgres(url) => {
            let store = PgStore::open(url)?;
            let (loaded, pos) = store.load()?;
            let empty = loaded.groups.is_empty();
            (Target::Postgres(Box::new(store), pos, empty), loaded)
        }
    };
    let mut reg = Registry::restore(Arc::new(Interner::new()), Settings::default(), loaded)
        .map_err(TransferError::Invalid)?;
    let fresh = reg.groups().all(|g| {
        g.meta.is_default && matches!(&g.kind, Kind::Standard { config, .. } if config.blob.bytes == crate::compose::EMPTY_CONFIG)
    });
    if !fresh {
        return Err(TransferError::Invalid(format!(
            "{data_dir} already holds state; import only into an empty store"
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
    // The whole state after the import, for a database that holds nothing.
    let full = std::cell::RefCell::new(Vec::new());
    let result = transact(
        &mut reg,
        Mode::Apply,
        |effects| match &mut store {
            Target::Dir(s) => s.commit(&effects.changes).map_err(|e| e.to_string()),
            Target::Postgres(s, pos, empty) => {
                // Into a database no daemon started on: everything, the
                // default group included; else what the import changed.
                let mut changes = full.borrow_mut();
                if *empty {
                    // Blobs only an imported snapshot names come with the write.
                    changes.extend(
                        effects
                            .changes
                            .iter()
                            .filter(|c| matches!(c, crate::registry::record::Change::PutBlob(..)))
                            .cloned(),
                    );
                } else {
                    *changes = effects.changes.clone();
                }
                match s.commit(Some(*pos), &changes) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(
                        "the database changed during the import (a daemon wrote to it); nothing was imported, try again"
                            .to_string(),
                    ),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
        |tx| match import_all(tx, &exported, dir, &interner, &mut defaults) {
            Ok(()) => {
                *full.borrow_mut() = tx.registry().all_changes();
                Ok(())
            }
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

/// A relative path inside the export directory, or an error.
fn inside(dir: &Path, rel: &Path, what: &str) -> Result<PathBuf, TransferError> {
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(TransferError::Invalid(format!(
            "{what}: path {} leaves the export directory",
            rel.display()
        )));
    }
    Ok(dir.join(rel))
}

/// The exported snapshot of `g`, assembled from its source files and checked
/// against its hash, then restored as what `g` serves (version included).
fn restore_served(
    tx: &mut Tx,
    g: &ExportedGroup,
    snap: &ExportedSnapshot,
    dir: &Path,
    infos: &HashMap<Uuid, MemberInfo>,
) -> Result<(), TransferError> {
    let what = format!("group '{}'", g.meta.name);
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    for src in &snap.sources {
        if blobs.contains_key(&src.blob) {
            continue;
        }
        let file = inside(dir, &src.file, &what)?;
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        let blob = Blob {
            format: Format::from_path(&file, &bytes),
            bytes,
        };
        if blob.hash() != src.blob {
            return Err(TransferError::Invalid(format!(
                "{what}: {} is not the config {} its snapshot was assembled from",
                file.display(),
                src.blob
            )));
        }
        blobs.insert(src.blob.clone(), blob);
    }
    let sources: Vec<(Uuid, String)> = snap
        .sources
        .iter()
        .map(|s| (s.member, s.blob.clone()))
        .collect();
    let published = assemble_version(
        snap.version,
        &snap.hash,
        &sources,
        |h| blobs.get(h),
        |m| {
            infos
                .get(&m)
                .cloned()
                .unwrap_or_else(|| MemberInfo::unnamed(m))
        },
    )
    .map_err(|e| TransferError::Invalid(format!("{what}: the exported snapshot {e}")))?;
    if let Some(p) = &g.pin
        && (p.served_as != snap.version || p.hash != snap.hash)
    {
        return Err(TransferError::Invalid(format!(
            "{what}: its pin (version {} served as {}) is not the exported snapshot (version {})",
            p.version, p.served_as, snap.version
        )));
    }
    // Only entries whose configs came along can be served again.
    let history = g
        .history
        .iter()
        .filter(|e| e.sources == sources)
        .cloned()
        .collect();
    tx.restore_served(
        g.meta.id,
        Arc::new(published),
        history,
        g.pin.clone(),
        blobs.into_iter().collect(),
    )
    .map_err(|e| TransferError::Invalid(format!("{what}: {}", e.detail)))
}

/// Every exported group into `tx`: groups first (the default one replacing
/// the fresh store's), then configs, then memberships, then what each served.
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
            let file = inside(dir, rel, &format!("group '{}': config", g.meta.name))?;
            let bytes = std::fs::read(&file).map_err(io(&file))?;
            let format = Format::from_path(&file, &bytes);
            let info = g.meta.member_info();
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
        let infos: HashMap<Uuid, MemberInfo> = exported
            .groups
            .iter()
            .map(|g| (g.meta.id, g.meta.member_info()))
            .collect();
        for g in &ordered {
            if let Some(snap) = &g.snapshot {
                restore_served(tx, g, snap, dir, &infos)?;
            }
        }
        Ok(())
    }
}

/// Moves the embedded store in `data_dir` into PostgreSQL (which must hold
/// no state yet): an export into a temporary directory, then an import.
/// The data directory is left as it was.
pub fn migrate(data_dir: &Path, url: &str) -> Result<usize, TransferError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = std::env::temp_dir().join(format!("rgmerge-migrate-{}-{nanos}", std::process::id()));
    let result = export(data_dir, &tmp).and_then(|_| import_into(&tmp, Source::Postgres(url)));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
