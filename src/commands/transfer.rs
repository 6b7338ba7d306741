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
//!   the default group's file (`default_member`), whatever its name;
//! - `teams.json`: the key token and session hashes are made with, and every
//!   team: its uids and gids, tokens (hashes, never tokens), page sessions
//!   (hashes), grants;
//! - `certificates.json`: each group's pinned data-plane client certificates;
//! - `nodes.json`: each group's runtime instances as they last reported;
//! - `audit.jsonl`: the audit log, oldest first, one entry a line;
//! - `manifest.json`: the format version, the rgmerge that took it, the
//!   point in time, and for every other file its record count and SHA-256.
//!
//! Import checks every file against the manifest before it writes anything
//! (a missing, changed or unlisted file, or an unknown format, is an error
//! naming the file), then restores it all in one transaction: every group's
//! served snapshot exactly (version, hash and bytes, re-assembled and
//! checked), so a restore never serves less than was served before, and
//! every token, session, grant, certificate, node and audit entry. An export
//! from before manifests (groups and configs only) still imports.
//!
//! `--data-dir` works on a data directory the daemon is not running on (the
//! store is locked while it runs); [`export_online`] asks a running daemon
//! for one point in time over its socket (`GET /v2/backup`, org admins).
//!
//! Either works against a PostgreSQL store too ([`Source::Postgres`]):
//! export reads one consistent snapshot of it (daemons may keep running),
//! and import writes everything as one change log entry, which running
//! daemons follow. [`migrate`] moves an embedded store into PostgreSQL in
//! one command (`rgmerge migrate --data-dir D --to postgres://…`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::{Bundle, BundleComposite};
use crate::config::Format;
use crate::engine::{Dump, EXPORT_FORMAT};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::{Blob, Change, HistoryEntry, Pin, decode_key};
use crate::registry::{
    AuditEntry, AuditFilter, ConfigWrite, DpCertificate, GroupMeta, Kind, Mode, Node, Refusal,
    Registry, Settings, TeamRecord, Tx, assemble_version, transact,
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

/// `out` is absent or an empty directory, else an error.
fn check_out(out: &Path) -> Result<(), TransferError> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(TransferError::Invalid(format!(
            "{} is not empty; export into a new directory",
            out.display()
        )));
    }
    Ok(())
}

/// Writes the state of either store into `out` (which must be empty or absent).
pub fn export_from(source: Source, out: &Path) -> Result<usize, TransferError> {
    check_out(out)?;
    let (loaded, audit) = match source {
        Source::Dir(data_dir) => {
            if !data_dir.join(crate::store::FILE_NAME).exists() {
                return Err(TransferError::Invalid(format!(
                    "{} holds no rgmerge store",
                    data_dir.display()
                )));
            }
            let store = Store::open(data_dir)?;
            let mut audit = store.read_audit(&AuditFilter {
                limit: usize::MAX,
                ..AuditFilter::default()
            })?;
            audit.reverse();
            (store.load()?, audit)
        }
        Source::Postgres(url) => {
            let (loaded, _, audit) = PgStore::open(url)?.load_whole()?;
            if loaded.groups.is_empty() {
                return Err(TransferError::Invalid(format!(
                    "{source} holds no rgmerge state"
                )));
            }
            (loaded, audit)
        }
    };
    let blobs = loaded.blobs.clone();
    let reg = Registry::restore(Arc::new(Interner::new()), Settings::default(), loaded)
        .map_err(TransferError::Invalid)?;
    let dump = Dump::of(
        &reg,
        |hashes| {
            hashes
                .iter()
                .map(|h| {
                    blobs.get(h).map(|b| (h.clone(), b.clone())).ok_or_else(|| {
                        format!("a served snapshot names config blob {h}, which the store lacks")
                    })
                })
                .collect()
        },
        audit,
    )
    .map_err(TransferError::Invalid)?;
    write_export(&dump, out)
}

/// Asks the daemon on `socket` for a backup (`GET /v2/backup`, org admins
/// only: as the calling Unix user, or with `token`) and writes it into
/// `out` (which must be empty or absent), as [`export_from`] does.
pub fn export_online(
    socket: &Path,
    token: Option<&str>,
    out: &Path,
) -> Result<usize, TransferError> {
    check_out(out)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
    let lines = runtime.block_on(fetch_backup(socket, token))?;
    let mut lines = lines.into_iter();
    let dump = Dump::read_lines(|| Ok(lines.next())).map_err(|e| {
        TransferError::Invalid(format!("the backup from {}: {e}", socket.display()))
    })?;
    write_export(&dump, out)
}

/// The lines of the daemon's backup stream.
async fn fetch_backup(socket: &Path, token: Option<&str>) -> Result<Vec<Vec<u8>>, TransferError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        TransferError::Invalid(format!(
            "can't reach the daemon at {}: {e}",
            socket.display()
        ))
    };
    let client = reqwest::Client::builder()
        .unix_socket(socket.to_path_buf())
        .build()
        .map_err(|e| unreachable(&e))?;
    let mut req = client.get("http://localhost/v2/backup");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut resp = req.send().await.map_err(|e| unreachable(&e))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(TransferError::Invalid(format!(
            "the daemon at {} refused the backup ({status}): {detail}",
            socket.display()
        )));
    }
    let mut lines = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        TransferError::Invalid(format!(
            "the backup stream from {} broke off: {e}",
            socket.display()
        ))
    })? {
        let mut rest = &chunk[..];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            partial.extend_from_slice(&rest[..i]);
            lines.push(std::mem::take(&mut partial));
            rest = &rest[i + 1..];
        }
        partial.extend_from_slice(rest);
    }
    if !partial.is_empty() {
        lines.push(partial);
    }
    Ok(lines)
}

/// SHA-256 of `bytes`, lowercase hex: ring's, through rustls (linked for
/// TLS already), so no crate of its own.
pub fn sha256_hex(bytes: &[u8]) -> String {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|s| {
            s.common
                .hash_provider
                .hash(bytes)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default()
}

/// `manifest.json`: what an export is and a count and digest of each file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// The export format ([`EXPORT_FORMAT`]).
    format: u32,
    /// The rgmerge that took the state (the daemon's, online).
    rgmerge: String,
    /// The point in time it is of, RFC 3339 UTC.
    at: String,
    parts: Vec<ManifestPart>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestPart {
    /// Relative to the export directory.
    file: PathBuf,
    /// Records in it (groups, teams, certificates, nodes, audit entries;
    /// 1 for a config).
    count: usize,
    /// SHA-256 of the file, lowercase hex.
    sha256: String,
}

/// The parts every export of format 2 has, besides configs.
const GROUPS: &str = "groups.json";
const BUNDLE: &str = "bundle.yaml";
const TEAMS: &str = "teams.json";
const CERTIFICATES: &str = "certificates.json";
const NODES: &str = "nodes.json";
const AUDIT: &str = "audit.jsonl";
const MANIFEST: &str = "manifest.json";
const REQUIRED: [&str; 6] = [GROUPS, BUNDLE, TEAMS, CERTIFICATES, NODES, AUDIT];

/// `teams.json`: the token-hash key and every team with its credentials,
/// token and session hashes and grants.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedAccess {
    /// `None`: access control was never set up (a daemon sets it up at start).
    key: Option<String>,
    teams: Vec<TeamRecord>,
}

/// One group's pinned data-plane certificates in `certificates.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedCertificates {
    group: Uuid,
    certificates: Vec<DpCertificate>,
}

/// One runtime instance in `nodes.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedNode {
    group: Uuid,
    node: Node,
}

/// Writes files into the export directory and notes each in the manifest.
struct Parts<'a> {
    out: &'a Path,
    parts: Vec<ManifestPart>,
}

impl Parts<'_> {
    fn put(&mut self, rel: &Path, bytes: &[u8], count: usize) -> Result<(), TransferError> {
        let path = self.out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
        self.parts.push(ManifestPart {
            file: rel.to_path_buf(),
            count,
            sha256: sha256_hex(bytes),
        });
        Ok(())
    }

    fn json<T: Serialize>(&mut self, name: &str, v: &T, count: usize) -> Result<(), TransferError> {
        let mut json =
            serde_json::to_vec_pretty(v).map_err(|e| TransferError::Invalid(e.to_string()))?;
        json.push(b'\n');
        self.put(Path::new(name), &json, count)
    }
}

/// Writes `dump` into `out` as files (see the module's text); the number
/// of control planes.
fn write_export(dump: &Dump, out: &Path) -> Result<usize, TransferError> {
    check_out(out)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut parts = Parts {
        out,
        parts: Vec::new(),
    };
    let metas: Vec<&GroupMeta> = dump.groups.iter().map(|g| &g.meta).collect();
    let stems = unique_stems(&metas)?;
    let blob = |h: &str, name: &str| {
        dump.blobs.get(h).ok_or_else(|| {
            TransferError::Invalid(format!(
                "control plane '{name}' names config blob {h}, which the store lacks"
            ))
        })
    };
    // Every standard group's config file, by group and by blob.
    let mut files: HashMap<Uuid, PathBuf> = HashMap::new();
    let mut by_blob: HashMap<String, PathBuf> = HashMap::new();
    for g in dump
        .groups
        .iter()
        .filter(|g| !g.meta.cluster_type.is_composite())
    {
        let Some(h) = &g.config else { continue };
        let b = blob(h, &g.meta.name)?;
        let stem = stems.get(&g.meta.id).cloned().unwrap_or_default();
        let rel = PathBuf::from("members").join(format!("{stem}.{}", ext(b.format)));
        parts.put(&rel, &b.bytes, 1)?;
        files.insert(g.meta.id, rel.clone());
        by_blob.entry(h.clone()).or_insert(rel);
    }
    let mut history: HashMap<Uuid, Vec<&HistoryEntry>> = HashMap::new();
    for (id, e) in &dump.history {
        history.entry(*id).or_default().push(e);
    }
    let mut groups = Vec::new();
    for g in &dump.groups {
        let mut sources = Vec::with_capacity(g.snapshot.sources.len());
        for (member, h) in &g.snapshot.sources {
            let file = match by_blob.get(h) {
                Some(f) => f.clone(),
                None => {
                    let b = blob(h, &g.meta.name)?;
                    let rel = PathBuf::from("blobs").join(format!("{h}.{}", ext(b.format)));
                    parts.put(&rel, &b.bytes, 1)?;
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
        let mut kept: Vec<HistoryEntry> = history
            .get(&g.meta.id)
            .into_iter()
            .flatten()
            .filter(|e| e.version == g.snapshot.version || Some(e.version) == pinned)
            .filter(|e| e.sources == g.snapshot.sources)
            .map(|e| (*e).clone())
            .collect();
        kept.sort_by_key(|e| e.version);
        let composite = g.meta.cluster_type.is_composite();
        groups.push(ExportedGroup {
            meta: g.meta.clone(),
            config: if composite {
                None
            } else {
                files.get(&g.meta.id).cloned()
            },
            members: if composite {
                g.members.clone()
            } else {
                Vec::new()
            },
            snapshot: Some(ExportedSnapshot {
                version: g.snapshot.version,
                hash: g.snapshot.hash.clone(),
                sources,
            }),
            pin: g.pin.clone(),
            history: kept,
        });
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
    // The parts format 1 lacked come before `groups.json`, and the manifest
    // last: a directory an export stopped writing half-way never passes
    // for a complete export, of either format.
    let access = ExportedAccess {
        key: dump.access.as_ref().map(|a| a.key.clone()),
        teams: dump
            .access
            .as_ref()
            .map(|a| a.teams.clone())
            .unwrap_or_default(),
    };
    parts.json(TEAMS, &access, access.teams.len())?;
    let certificates: Vec<ExportedCertificates> = dump
        .groups
        .iter()
        .filter(|g| !g.certificates.is_empty())
        .map(|g| ExportedCertificates {
            group: g.meta.id,
            certificates: g.certificates.clone(),
        })
        .collect();
    let n_certs = certificates.iter().map(|c| c.certificates.len()).sum();
    parts.json(CERTIFICATES, &certificates, n_certs)?;
    let nodes: Vec<ExportedNode> = dump
        .nodes
        .iter()
        .map(|(group, node)| ExportedNode {
            group: *group,
            node: node.clone(),
        })
        .collect();
    parts.json(NODES, &nodes, nodes.len())?;
    let mut audit = Vec::new();
    for e in &dump.audit {
        serde_json::to_writer(&mut audit, e).map_err(|e| TransferError::Invalid(e.to_string()))?;
        audit.push(b'\n');
    }
    parts.put(Path::new(AUDIT), &audit, dump.audit.len())?;
    let n = groups.len();
    parts.json(GROUPS, &Exported { groups }, n)?;
    let yaml =
        serde_saphyr::to_string(&bundle).map_err(|e| TransferError::Invalid(e.to_string()))?;
    parts.put(Path::new(BUNDLE), yaml.as_bytes(), bundle.composites.len())?;
    let manifest = Manifest {
        format: EXPORT_FORMAT,
        rgmerge: dump.rgmerge.clone(),
        at: dump.at.clone(),
        parts: parts.parts,
    };
    let mut json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| TransferError::Invalid(e.to_string()))?;
    json.push(b'\n');
    let path = out.join(MANIFEST);
    std::fs::write(&path, json).map_err(io(&path))?;
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

/// An export directory's files, as its import reads them: checked against
/// `manifest.json` (each listed file there, whole, with its digest) before
/// anything is written, and read once, so what is imported is what was
/// checked. An export from before manifests (format 1: groups and configs
/// only) is read from the directory as it is.
struct Files {
    dir: PathBuf,
    /// Every file the manifest lists and its count; `None` for format 1.
    checked: Option<HashMap<PathBuf, (usize, Vec<u8>)>>,
}

impl Files {
    fn open(dir: &Path) -> Result<Files, TransferError> {
        let manifest_path = dir.join(MANIFEST);
        let bad = |file: &Path, why: String| {
            TransferError::Invalid(format!("{}: {why}", dir.join(file).display()))
        };
        let bytes = match std::fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Format 1 had none of the parts format 2 added.
                if let Some(part) = [TEAMS, CERTIFICATES, NODES, AUDIT]
                    .iter()
                    .find(|p| dir.join(p).exists())
                {
                    return Err(bad(
                        Path::new(MANIFEST),
                        format!(
                            "missing, though {part} is there: the export is incomplete; nothing was imported"
                        ),
                    ));
                }
                return Ok(Files {
                    dir: dir.to_path_buf(),
                    checked: None,
                });
            }
            Err(e) => return Err(io(&manifest_path)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(Path::new(MANIFEST), format!("not a manifest: {e}")))?;
        if manifest.format != EXPORT_FORMAT {
            return Err(bad(
                Path::new(MANIFEST),
                format!(
                    "format version {} is unknown; this rgmerge reads versions 1 and {EXPORT_FORMAT}",
                    manifest.format
                ),
            ));
        }
        let mut checked = HashMap::new();
        for part in manifest.parts {
            let path = inside(dir, &part.file, MANIFEST)?;
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(bad(
                        &part.file,
                        "missing (manifest.json lists it): the export is incomplete".into(),
                    ));
                }
                Err(e) => return Err(io(&path)(e)),
            };
            let digest = sha256_hex(&bytes);
            if digest != part.sha256 {
                return Err(bad(
                    &part.file,
                    format!(
                        "its SHA-256 is {digest}, manifest.json says {}: the file was changed or damaged",
                        part.sha256
                    ),
                ));
            }
            if checked
                .insert(part.file.clone(), (part.count, bytes))
                .is_some()
            {
                return Err(bad(
                    Path::new(MANIFEST),
                    format!("lists {} twice", part.file.display()),
                ));
            }
        }
        if let Some(part) = REQUIRED
            .iter()
            .find(|p| !checked.contains_key(Path::new(p)))
        {
            return Err(bad(
                Path::new(part),
                "manifest.json lists no such part: the export is incomplete".into(),
            ));
        }
        Ok(Files {
            dir: dir.to_path_buf(),
            checked: Some(checked),
        })
    }

    /// A file's path, for messages and for telling its format.
    fn path(&self, rel: &Path) -> PathBuf {
        self.dir.join(rel)
    }

    /// The bytes of `rel` (a path inside the directory; `what` names who
    /// asks). With a manifest, only a file it lists.
    fn read(&self, rel: &Path, what: &str) -> Result<Vec<u8>, TransferError> {
        let path = inside(&self.dir, rel, what)?;
        match &self.checked {
            None => std::fs::read(&path).map_err(io(&path)),
            Some(files) => files.get(rel).map(|(_, b)| b.clone()).ok_or_else(|| {
                TransferError::Invalid(format!(
                    "{what}: {} is not listed in manifest.json, so it can't be checked; nothing was imported",
                    path.display()
                ))
            }),
        }
    }

    /// A JSON part, and that it holds as many records as the manifest says
    /// (`count` of what was read). `None` for a format 1 export.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        count: impl FnOnce(&T) -> usize,
    ) -> Result<Option<T>, TransferError> {
        let rel = Path::new(name);
        let path = self.path(rel);
        let Some(files) = &self.checked else {
            if name != GROUPS {
                return Ok(None);
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())));
        };
        let Some((expected, bytes)) = files.get(rel) else {
            return Err(TransferError::Invalid(format!(
                "{}: manifest.json lists no such part",
                path.display()
            )));
        };
        let v: T = serde_json::from_slice(bytes)
            .map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())))?;
        let n = count(&v);
        if n != *expected {
            return Err(TransferError::Invalid(format!(
                "{}: holds {n} record(s), manifest.json says {expected}: the export is inconsistent",
                path.display()
            )));
        }
        Ok(Some(v))
    }

    /// The audit log part, oldest first (empty for a format 1 export).
    fn audit(&self) -> Result<Vec<AuditEntry>, TransferError> {
        let Some(files) = &self.checked else {
            return Ok(Vec::new());
        };
        let rel = Path::new(AUDIT);
        let path = self.path(rel);
        let Some((expected, bytes)) = files.get(rel) else {
            return Err(TransferError::Invalid(format!(
                "{}: manifest.json lists no such part",
                path.display()
            )));
        };
        let mut out = Vec::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let e: AuditEntry = serde_json::from_slice(line).map_err(|e| {
                TransferError::Invalid(format!("{}: line {}: {e}", path.display(), i + 1))
            })?;
            out.push(e);
        }
        if out.len() != *expected {
            return Err(TransferError::Invalid(format!(
                "{}: holds {} record(s), manifest.json says {expected}: the export is inconsistent",
                path.display(),
                out.len()
            )));
        }
        Ok(out)
    }
}

/// What a format 2 export carries besides groups: written with them.
#[derive(Default)]
struct Extras {
    access: Option<ExportedAccess>,
    certificates: Vec<ExportedCertificates>,
    nodes: Vec<ExportedNode>,
    audit: Vec<AuditEntry>,
}

impl Extras {
    /// Reads them, and checks that everything they name is in the export.
    fn read(files: &Files, exported: &Exported) -> Result<Extras, TransferError> {
        let ids: HashSet<Uuid> = exported.groups.iter().map(|g| g.meta.id).collect();
        let access: Option<ExportedAccess> =
            files.json(TEAMS, |a: &ExportedAccess| a.teams.len())?;
        let certificates: Vec<ExportedCertificates> = files
            .json(CERTIFICATES, |c: &Vec<ExportedCertificates>| {
                c.iter().map(|c| c.certificates.len()).sum()
            })?
            .unwrap_or_default();
        let nodes: Vec<ExportedNode> = files
            .json(NODES, |n: &Vec<ExportedNode>| n.len())?
            .unwrap_or_default();
        let unknown = |file: &str, id: &Uuid| {
            TransferError::Invalid(format!(
                "{}: names control plane {id}, which {GROUPS} does not have",
                files.path(Path::new(file)).display()
            ))
        };
        if let Some(a) = &access {
            let path = files.path(Path::new(TEAMS));
            match &a.key {
                Some(k) => {
                    decode_key(k)
                        .map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())))?;
                }
                None if !a.teams.is_empty() => {
                    return Err(TransferError::Invalid(format!(
                        "{}: teams without the key of their token hashes",
                        path.display()
                    )));
                }
                None => {}
            }
            let mut names = HashSet::new();
            for t in &a.teams {
                if !names.insert(t.name.as_str()) {
                    return Err(TransferError::Invalid(format!(
                        "{}: team '{}' is there twice",
                        path.display(),
                        t.name
                    )));
                }
                if let Some(g) = t.grants.keys().find(|g| !ids.contains(g)) {
                    return Err(unknown(TEAMS, g));
                }
            }
        }
        let mut seen = HashSet::new();
        for c in &certificates {
            if !ids.contains(&c.group) {
                return Err(unknown(CERTIFICATES, &c.group));
            }
            if !seen.insert(c.group) {
                return Err(TransferError::Invalid(format!(
                    "{}: control plane {} is there twice",
                    files.path(Path::new(CERTIFICATES)).display(),
                    c.group
                )));
            }
        }
        if let Some(n) = nodes.iter().find(|n| !ids.contains(&n.group)) {
            return Err(unknown(NODES, &n.group));
        }
        Ok(Extras {
            access,
            certificates,
            nodes,
            audit: files.audit()?,
        })
    }

    /// The changes that write them over what the import made of the groups
    /// (`reg`): records with their certificates, the access state in place
    /// of the target's, the node reports.
    fn changes(&self, reg: &Registry) -> Result<Vec<Change>, TransferError> {
        let mut out = Vec::new();
        for c in &self.certificates {
            let g = reg
                .group(c.group)
                .map_err(|e| TransferError::Invalid(e.detail))?;
            let mut rec = reg.record(g);
            rec.certificates = c.certificates.clone();
            out.push(Change::PutGroup(Box::new(rec)));
        }
        if let Some(ExportedAccess {
            key: Some(key),
            teams,
        }) = &self.access
        {
            let keep: HashSet<&str> = teams.iter().map(|t| t.name.as_str()).collect();
            out.extend(reg.access_changes().into_iter().filter_map(|c| match c {
                Change::PutTeam(t) if !keep.contains(t.name.as_str()) => {
                    Some(Change::DeleteTeam(t.name))
                }
                _ => None,
            }));
            out.push(Change::PutAccessKey(key.clone()));
            out.extend(teams.iter().map(|t| Change::PutTeam(Box::new(t.clone()))));
        }
        out.extend(
            self.nodes
                .iter()
                .map(|n| Change::PutNode(n.group, Box::new(n.node.clone()))),
        );
        Ok(out)
    }
}

/// Loads an export into either store, which must hold no state yet (at
/// most the default group a daemon made). All or nothing: into PostgreSQL
/// as one change log entry, refused if another write came meanwhile.
/// Everything is checked before anything is written: the manifest's
/// digests and counts, every config, every served snapshot.
pub fn import_into(dir: &Path, target: Source) -> Result<usize, TransferError> {
    let data_dir = target;
    let files = Files::open(dir)?;
    let path = files.path(Path::new(GROUPS));
    let exported: Exported = files
        .json(GROUPS, |e: &Exported| e.groups.len())?
        .ok_or_else(|| TransferError::Invalid(format!("{}: missing", path.display())))?;
    let extras = Extras::read(&files, &exported)?;
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
    // What the export carries besides groups, as changes.
    let more = std::cell::RefCell::new(Vec::new());
    let audit = &extras.audit;
    let result = transact(
        &mut reg,
        Mode::Apply,
        |effects| match &mut store {
            Target::Dir(s) => {
                let mut changes = effects.changes.clone();
                changes.extend(more.borrow_mut().drain(..));
                s.commit_restoring(&changes, audit)
                    .map_err(|e| e.to_string())
            }
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
                changes.extend(more.borrow_mut().drain(..));
                match s.commit_restoring(Some(*pos), &changes, audit) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(
                        "the database changed during the import (a daemon wrote to it); nothing was imported, try again"
                            .to_string(),
                    ),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
        |tx| {
            let done = import_all(tx, &exported, &files, &interner, &mut defaults)
                .and_then(|()| extras.changes(tx.registry()));
            match done {
                Ok(changes) => {
                    *full.borrow_mut() = tx.registry().all_changes();
                    *more.borrow_mut() = changes;
                    Ok(())
                }
                Err(e) => {
                    let detail = e.to_string();
                    failure = Some(e);
                    Err(Refusal::invalid(detail))
                }
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
    files: &Files,
    infos: &HashMap<Uuid, MemberInfo>,
) -> Result<(), TransferError> {
    let what = format!("group '{}'", g.meta.name);
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    for src in &snap.sources {
        if blobs.contains_key(&src.blob) {
            continue;
        }
        let bytes = files.read(&src.file, &what)?;
        let file = files.path(&src.file);
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
    files: &Files,
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
            let bytes = files.read(rel, &format!("group '{}': config", g.meta.name))?;
            let file = files.path(rel);
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
                restore_served(tx, g, snap, files, &infos)?;
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
