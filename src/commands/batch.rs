//! Member configs from files: the CLI's `validate`, `merge` and bundles.
//!
//! Each file is one member named by its file stem; a directory contributes
//! each `*.yaml`, `*.yml` and `*.json` in it. Files are read and members built
//! in parallel (rayon). I/O and usage problems are `BatchError`s (exit 2);
//! problems *in* a config are findings in the report (exit 1).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compose::Composite;
use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One input file and the member name it gives.
#[derive(Clone, Debug)]
pub struct MemberFile {
    pub name: String,
    pub path: PathBuf,
}

fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

/// Expands directories and names each member by its file stem.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<MemberFile>, BatchError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(io(input))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(io(input))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_config_file(p))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(input.clone());
        }
    }
    if files.is_empty() {
        return Err(BatchError::Usage(
            "no member config files given (expected *.yaml, *.yml or *.json)".into(),
        ));
    }
    let mut out: Vec<MemberFile> = Vec::with_capacity(files.len());
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| {
                BatchError::Usage(format!("{}: file name is not valid UTF-8", path.display()))
            })?
            .to_string();
        if let Some(other) = out.iter().find(|f| f.name == name) {
            return Err(BatchError::Usage(format!(
                "{} and {} would both be member '{name}': member names come from file stems and must differ",
                other.path.display(),
                path.display()
            )));
        }
        out.push(MemberFile { name, path });
    }
    Ok(out)
}

/// Reads and builds every member, in parallel.
pub fn load(files: &[MemberFile], interner: &Interner) -> Result<Vec<Arc<Member>>, BatchError> {
    load_with_default(files, None, interner)
}

/// Whether two paths name the same file (compared as given when either
/// can't be resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Like [`load`]; the default group is the file `default` names when given
/// (a bundle manifest's `default_member`), else the member named `default`.
pub fn load_with_default(
    files: &[MemberFile],
    default: Option<&Path>,
    interner: &Interner,
) -> Result<Vec<Arc<Member>>, BatchError> {
    files
        .par_iter()
        .map(|f| {
            let bytes = std::fs::read(&f.path).map_err(io(&f.path))?;
            let info = MemberInfo {
                id: f.name.clone(),
                name: f.name.clone(),
                is_default: match default {
                    Some(d) => same_file(&f.path, d),
                    None => f.name == "default",
                },
            };
            Ok(Arc::new(Member::build(
                info,
                &bytes,
                Format::from_path(&f.path, &bytes),
                interner,
            )))
        })
        .collect()
}

/// Builds one composite of the given files and directories.
pub fn composite(inputs: &[PathBuf], interner: Arc<Interner>) -> Result<Composite, BatchError> {
    composite_with_default(inputs, None, interner)
}

/// Like [`composite`], with the default group given by its file (see
/// [`load_with_default`]).
pub fn composite_with_default(
    inputs: &[PathBuf],
    default: Option<&Path>,
    interner: Arc<Interner>,
) -> Result<Composite, BatchError> {
    let files = collect(inputs)?;
    let members = load_with_default(&files, default, &interner)?;
    Ok(Composite::from_members(interner, members))
}

/// A bundle manifest: many composites, each a list of member files or
/// directories relative to the manifest. `rgmerge export` writes one.
/// `default_member` names the default group's file; without it, a member
/// named `default` (by its file stem) is the default group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_member: Option<PathBuf>,
    pub composites: Vec<BundleComposite>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleComposite {
    pub name: String,
    pub members: Vec<PathBuf>,
}

impl Bundle {
    /// Reads a manifest (YAML or JSON) and resolves member paths against its folder.
    pub fn read(manifest: &Path) -> Result<Bundle, BatchError> {
        let bytes = std::fs::read(manifest).map_err(io(manifest))?;
        let value =
            crate::config::parse(&bytes, Format::from_path(manifest, &bytes)).map_err(|f| {
                BatchError::Usage(format!(
                    "{}:{}:{}: {}",
                    manifest.display(),
                    f.line.unwrap_or(0),
                    f.column.unwrap_or(0),
                    f.message
                ))
            })?;
        let mut bundle: Bundle = serde_json::from_value(value)
            .map_err(|e| BatchError::Usage(format!("{}: not a bundle manifest: {e} (expected `composites: [{{name, members: [paths]}}]`)", manifest.display())))?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        if let Some(d) = &mut bundle.default_member
            && d.is_relative()
        {
            *d = base.join(&*d);
        }
        for c in &mut bundle.composites {
            if c.members.is_empty() {
                return Err(BatchError::Usage(format!(
                    "{}: composite '{}' lists no members",
                    manifest.display(),
                    c.name
                )));
            }
            for m in &mut c.members {
                if m.is_relative() {
                    *m = base.join(&*m);
                }
            }
        }
        Ok(bundle)
    }
}
